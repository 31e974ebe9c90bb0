/*
 * The stall monitor (internal): one thread per runtime that samples each
 * worker's switch counter and reports a worker that has run one task
 * without switching for the stall threshold (include/weft/observe.h).
 *
 * Workers pay one relaxed store per task switch (the counter) and one
 * release store of the running task, both already part of a switch; no
 * clock is read on their side. The monitor's samples are `period` apart, so
 * a reported run time is a lower bound, short by at most one period.
 */
#ifndef WEFT_RUNTIME_MONITOR_H
#define WEFT_RUNTIME_MONITOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <weft/observe.h>

struct weft_runtime;
struct weft_task;

/* What the monitor last saw of one worker. */
struct weft__watch {
	uint32_t tick;
	struct weft_task *task;
	uint64_t since_ns;       /* first sample that saw this tick and task */
	uint64_t next_report_ns; /* stall length that triggers the next report */
	unsigned reports;
	bool handed; /* stuck past handoff_ms: its work goes to the spare */
};

struct weft__monitor {
	pthread_t thread;
	bool started;
	_Atomic uint32_t stop; /* futex word: the monitor sleeps on it */
	uint64_t period_ns, stall_ns, handoff_ns;
	weft_stall_handler handler;
	void *handler_arg;
	struct weft__watch *watch;
	uint64_t window_start_ns; /* rate limit: reports in the current minute */
	unsigned window_reports, suppressed;
	unsigned handed_off;     /* workers handed off now: the spare is wanted while > 0 */
	_Atomic uint64_t stalls; /* stalls reported (metrics) */
	_Atomic int dump_fd;     /* weft_dump_tasks_on_signal's fd, or -1 */
	_Atomic int dump_asked;  /* set by the signal handler */
};

/* A clock in ms (wrapping) that every running monitor advances each
   period: what task dumps measure waits with, read without a system call.
   It stands still while no monitor runs. */
extern _Atomic uint32_t weft__coarse_ms_now;

static inline uint32_t weft__coarse_ms(void)
{
	return atomic_load_explicit(&weft__coarse_ms_now, memory_order_relaxed);
}

/* Starts the monitor for rt (after its workers started): 0, or -errno. */
int weft__monitor_start(struct weft_runtime *rt);

/* Stops and joins it (before the workers are joined); idempotent. */
void weft__monitor_stop(struct weft_runtime *rt);

#endif
