/*
 * Observability: stall reports from the runtime's monitor, and metrics.
 *
 * A monitor thread (one per runtime; off with stall_threshold_ms =
 * WEFT_DISABLED, or env WEFT_STALL_MS=off) samples each worker's switch
 * counter. A worker that has run one task without switching for
 * stall_threshold_ms (env WEFT_STALL_MS) is reported once: the task, its
 * spawn site, how long it has run, and either a backtrace of the spinning
 * thread (taken in a signal handler on that thread) or, for a thread
 * blocked in a system call, which call (read from /proc, without
 * signalling the thread: its call is not interrupted). The same stall is
 * reported again when it lasts twice as long as at its last report, and at
 * most 10 reports a minute are made in all (the next one says how many
 * were suppressed). Reports go to stderr, or to config.stall_handler.
 *
 * Hand-off: a worker stuck for config.handoff_ms (default 10) has its due
 * timers fired and the task in its LIFO slot moved to the global queue,
 * and a spare thread (one per runtime with the monitor on) runs the global
 * queue and steals the stuck worker's local queue until the worker
 * switches again -- so queued and timer-woken tasks keep running even with
 * one worker. Tasks pinned to the stuck thread and I/O in flight on its
 * ring wait for it. docs/starvation.md.
 */
#ifndef WEFT_OBSERVE_H
#define WEFT_OBSERVE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_runtime weft_runtime;

#define WEFT_STALL_MAX_FRAMES 32

typedef struct weft_stall_report {
	unsigned worker;  /* index of the stuck worker */
	uint64_t task_id; /* the task it runs */
	const char *name; /* its name ("" when unnamed) */
	const char *file; /* its spawn site */
	int line;
	uint64_t run_ms;                     /* how long it has run without switching (at least) */
	unsigned report;                     /* 1 for a stall's first report, 2, 3... for repeats */
	unsigned suppressed;                 /* reports dropped by the rate limit before this one */
	bool blocked;                        /* in a system call (below), else spinning */
	long syscall;                        /* its number (blocked), else -1 */
	const char *syscall_name;            /* e.g. "nanosleep", or "" when not known */
	void *frames[WEFT_STALL_MAX_FRAMES]; /* spinning: its backtrace */
	int nframes;                         /* 0 when blocked, or none was taken */
} weft_stall_report;

/* Called on the monitor thread, once per report; it must not block for
   long (the monitor checks no other worker meanwhile). The report and its
   strings are valid during the call only. */
typedef void (*weft_stall_handler)(const weft_stall_report *report, void *arg);

/* Writes a report the way the default handler does (to fd). */
void weft_stall_report_print(const weft_stall_report *report, int fd);

/*
 * Metrics: counters since the runtime started, and depths now. Read while
 * the runtime runs: each counter is exact as of some moment during the
 * call, but the counters are not one snapshot (a task may be counted
 * spawned and not yet completed or alive: alive = spawned - completed,
 * computed from completions read first, never undercounts).
 */
typedef struct weft_worker_metrics {
	uint64_t spawned;           /* tasks spawned from tasks on this worker */
	uint64_t completed;         /* tasks that finished on it */
	uint64_t runs;              /* task switches on it */
	uint64_t lifo_hits;         /* of those, into the task in its LIFO slot */
	uint64_t steals;            /* steals it made from other workers */
	uint64_t stolen_tasks;      /* tasks those steals took */
	uint64_t parks, unparks;    /* times its thread went to sleep / woke */
	uint64_t busy_ns;           /* time its thread was not asleep */
	uint64_t local_queue_depth; /* tasks in its local queue now */
	uint64_t io_submitted;      /* io_uring: SQEs handed to the kernel */
	uint64_t io_completed;      /* io_uring: CQEs reaped; epoll: readiness events */
	uint64_t timers_armed, timers_fired;
	uint64_t timers_rescued; /* of its timers, fired by the monitor while it was stuck */
	uint64_t handoffs;       /* times it was found stuck and its work handed away */
	uint64_t timers_stolen;  /* other workers' timers it fired 2 ms late (owner busy) */
	uint64_t preemptions;    /* runs it ended at a time slice's end (to the slow lane) */
} weft_worker_metrics;

typedef struct weft_metrics {
	unsigned workers;
	unsigned spares; /* 1 with the monitor on: the hand-off thread, worker index `workers` */
	uint64_t tasks_spawned; /* all tasks, from tasks and from outside */
	uint64_t tasks_completed;
	uint64_t tasks_alive;         /* spawned, not yet completed (a lower bound on none) */
	uint64_t injector_depth;      /* tasks queued in the global injector now */
	uint64_t runs, steals, parks; /* sums over the workers */
	uint64_t blocking_threads;    /* blocking pool threads alive */
	uint64_t blocking_busy;       /* of those, running a job */
	uint64_t blocking_queued;     /* jobs waiting for a thread */
	uint64_t stalls;              /* stall reports made (or suppressed) by the monitor */
	uint64_t handoffs;            /* stuck workers whose work the spare took over */
	uint64_t preemptions;         /* runs ended at a time slice's end (sum over the workers) */
	uint64_t slow_lane_depth;     /* tasks so preempted, queued to run again now */
	uint64_t spawn_backoffs;      /* plain threads spawning into a deep injector gave
	                                 their CPU to the workers (every 64 spawns past 1,024 queued) */
} weft_metrics;

/* 0, or -EINVAL (NULL). */
int weft_metrics_get(weft_runtime *rt, weft_metrics *out);

/* Worker `worker`'s metrics (0 .. workers - 1; `workers` is the spare when
   spares is 1): 0, or -EINVAL (NULL, or no such worker). */
int weft_metrics_worker(weft_runtime *rt, unsigned worker, weft_worker_metrics *out);

/*
 * Task dump: one line per live task that has started -- id, name, spawn
 * site, state (running on worker N / ready / parked), for a parked task
 * what it waits on and for how long (mutex 0x..., recv on chan 0x..., recv
 * on fd 7, join task 42, a sleep due in 20 ms...), how many times it ran
 * and its run time. Durations and run times come from a clock the monitor
 * advances every period (a quarter of the stall threshold, at most 25 ms):
 * estimates at that resolution, absent without a monitor. Safe to call
 * from a task or any thread. 0, -EINVAL, or -errno from writing.
 */
int weft_dump_tasks(weft_runtime *rt, int fd);

/* Opt-in: signal signo (e.g. SIGQUIT) makes the monitor thread write a
   task dump of rt to fd (the handler only wakes it). One runtime per
   process; needs the monitor (-ENOTSUP without). 0, -EINVAL, -errno. */
int weft_dump_tasks_on_signal(weft_runtime *rt, int signo, int fd);

/* Writes the metrics in Prometheus text exposition format (version 0.0.4)
   to fd: weft_* families, per-worker samples labelled worker="N". 0, or
   -errno from write. */
int weft_metrics_prometheus(weft_runtime *rt, int fd);

#ifdef __cplusplus
}
#endif

#endif
