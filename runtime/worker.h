/*
 * Workers (internal): the scheduler state a worker owns, and the OS thread
 * that runs it.
 *
 * As Go separates a P (the right and the means to run tasks: run queue,
 * caches) from an M (the OS thread), weft separates struct weft__worker from
 * struct weft__thread: everything bound to a thread (its scheduler context,
 * parker, io ring, signal stack, the tasks pinned to it) lives in struct
 * weft__thread. Each thread runs one worker for its whole life.
 *
 * The spare. With the monitor on, a runtime has one more worker and thread
 * than it was configured with: the spare (index nworkers), which takes no
 * part in the idle protocol (never searching, never woken for new work) and
 * sleeps until the monitor finds a worker stuck for handoff_ms (one task
 * running without a switch). The monitor then hands the stuck worker's
 * work away (monitor.c): its due timers and its LIFO slot's task go to the
 * injector, and the spare, now wanted, runs like a searching worker --
 * injector and steals, the stuck worker's local queue included. The stuck
 * thread keeps its worker: once its task switches, it carries on, and the
 * spare sheds: what it runs or wakes goes to the injector, it takes nothing
 * new, and it sleeps once its own queue is empty.
 *
 * The spare steals the stuck worker's queue; the task in its LIFO slot,
 * which is not stealable, the monitor takes (lifo.h).
 */
#ifndef WEFT_RUNTIME_WORKER_H
#define WEFT_RUNTIME_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <weft/observe.h>

#include "asym.h"
#include "fiber.h"
#include "lifo.h"
#include "park.h"
#include "queue.h"
#include "stack.h"
#include "tls.h"
#include "../io/bufs.h"
#include "../io/poller.h"
#include "../io/ring.h"
#include "../timer/timer.h"

struct weft_runtime;
struct weft_task;

#define WEFT__LIFO_MAX_RUNS 3    /* consecutive LIFO-slot runs before fairness */
#define WEFT__TASK_CACHE_MAX 256 /* freed task headers kept per worker */
#define WEFT__REFILL_BELOW 16    /* top the local queue up from the injector below this */
#define WEFT__INJECT_HEADROOM 32 /* local queue slots an injector batch leaves free */
#define WEFT__TIMERS_PER_TICK 4  /* due timers a busy worker fires between two tasks */
#define WEFT__TIMERS_BEHIND_MS 1 /* ...unless the earliest is later than this: then all */
#define WEFT__SPARE_POLL_MS 1    /* how often a wanted spare with nothing to do looks again */
#define WEFT__TIMERS_STEAL_MS 2  /* another worker fires a wheel's timers this late */

struct weft__worker {
	struct weft__lqueue lq; /* stealable */
	struct weft__lifo lifo; /* runs next; taken only by the monitor (lifo.h) */
	unsigned lifo_runs;
	_Atomic bool shed;     /* the spare, not wanted: queue nothing here */
	_Atomic uint32_t tick; /* task switches: the monitor samples it */
	unsigned index;
	uint64_t rng;
	struct weft__stack_pool stacks;
	struct weft__timers timers;
	uint32_t gq_countdown; /* ticks until the next injector-first check */
	uint64_t slow_gate_ns; /* no pick from the slow lane before, while other work waits */
	struct weft_task *task_cache;
	unsigned task_cache_n;
	uint64_t id_next, id_end; /* block of task ids for local spawns */
	/* Owner-written counters, read by shutdown and metrics. Tasks alive =
	   injector spawns + sum(spawned) - sum(completed). */
	_Atomic uint64_t spawned, completed, steals, stolen_tasks, parks;
	_Atomic uint64_t lifo_hits, unparks, busy_ns;
	_Atomic uint64_t timers_rescued; /* its due timers the monitor fired while it was stuck */
	_Atomic uint64_t handoffs;       /* times it was found stuck and its work handed away */
	_Atomic uint64_t timers_stolen;  /* other workers' late timers it fired */
	_Atomic uint64_t preemptions;    /* runs it ended at a time slice's end */
	uint64_t active_since_ns;        /* when it last woke (busy_ns accrues at sleep) */
};

static inline bool weft__worker_shed(struct weft__worker *w)
{
	return atomic_load_explicit(&w->shed, memory_order_relaxed);
}

/* What a context switching away leaves for the one resuming on the same
   thread to finish (fiber_task.c). */
enum weft__pending {
	WEFT__PEND_NONE,
	WEFT__PEND_YIELD,   /* queue pend_task again */
	WEFT__PEND_DEMOTE,  /* queue pend_task on the slow lane */
	WEFT__PEND_PARK,    /* commit pend_task's park */
	WEFT__PEND_RELEASE, /* pend_stack and pend_fiber are free */
};

/* Why a task switches out; each but PARK_TIMED is its own pending work.
   DEMOTE: a yield at the end of a time slice (wait.c), to the slow lane
   (worker.c). PARK_TIMED: the task parks on a timer of this worker's wheel
   and nothing else (a sleep); the wheel is then what shutdown finds it
   through, so it is not added to the registry (registry.h). YIELD and
   DEMOTE, which carry on when nothing else is runnable, come first. */
enum weft__switch_reason {
	WEFT__SW_YIELD = WEFT__PEND_YIELD,
	WEFT__SW_DEMOTE = WEFT__PEND_DEMOTE,
	WEFT__SW_PARK = WEFT__PEND_PARK,
	WEFT__SW_PARK_TIMED = WEFT__PEND_RELEASE + 1,
};

struct weft__thread {
	struct weft_runtime *rt;
	struct weft__worker *worker;
	unsigned index;
	pthread_t pthread;
	bool started;
	bool searching;
	enum weft__pending pend;
	struct weft_task *pend_task;
	/* The time slice of the task running here (wait.c), known from its
	   first chunk's end on: the tick it was taken at tells a new run. */
	uint32_t slice_tick, slice_chunk, slice_waits; /* waits since the start */
	uint64_t slice_start_ns;
	struct weft__stack *pend_stack;
	struct weft__fiber pend_fiber;
	struct weft__fiber sched; /* the scheduler's own context on the thread stack */
	struct weft__parker parker;
	struct weft__ring ring;     /* its io_uring (io_uring backend), created on it */
	struct weft__poller poller; /* its epoll (epoll backend, or no ring) */
	struct weft__bufs bufs;     /* lent receive buffers, made at first use */
	void *altstack;
	struct weft__tls *_Atomic tls; /* its thread-local state (weft__running) */
	_Atomic uint32_t sampled;      /* the monitor saw a task running here */
	_Atomic bool parked;           /* asleep: it wakes for its own timers itself */
	pid_t tid;                     /* the OS thread's id (the monitor's /proc look) */
	_Atomic int bt_n;              /* the monitor's backtrace request: -1 asked */
	void *bt[WEFT_STALL_MAX_FRAMES];

	/* Tasks pinned to this thread that became runnable: never stolen. */
	_Alignas(64) _Atomic unsigned inbox_len;
	pthread_mutex_t inbox_lock;
	struct weft_task *inbox_head, *inbox_tail;
};

/* The task thread th runs now, or NULL, for another thread (the monitor,
   the dump): its tls->task, which the thread stores with release at every
   switch, so that a switch stores the running task once. The thread's
   thread-local memory goes away when it exits: it waits for readers as it
   leaves (worker.c). */
struct weft_task *weft__running(struct weft__thread *th);

static inline void weft__set_running(struct weft__tls *tls, struct weft_task *t)
{
	__atomic_store_n(&tls->task, t, __ATOMIC_RELEASE);
}

/* How a runnable task is queued. */
enum weft__sched_how {
	WEFT__SCHED_WAKE,  /* woken or spawned: the LIFO slot of the current worker */
	WEFT__SCHED_YIELD, /* back of the queue */
};

/* Queues a task that just became runnable (SCHEDULED already set by the
   caller), on the current worker when there is one of t's runtime, else on
   the injector. */
void weft__task_schedule(struct weft_task *t, enum weft__sched_how how);

/* Called by the running task to yield or park: switches to the next runnable
   task of this worker, or to the scheduler when there is none (a yield with
   nothing else to run returns at once). Returns when the task runs again. */
void weft__task_switch_out(enum weft__switch_reason why);

/* The task running on th used up its time slice after running ran_ns:
   it switches out to the slow lane (DEMOTE), and th's worker owes the
   other tasks as long before it picks from the lane again. */
void weft__task_demote(struct weft__thread *th, uint64_t ran_ns);

/* The next task to run from this worker's own sources (LIFO slot, pinned
   inbox, local queue, injector); never steals or sleeps. */
struct weft_task *weft__next_runnable(struct weft__thread *th);

/* Queues a task that was woken while it was parking. */
void weft__requeue(struct weft__thread *th, struct weft_task *t);

/* A yield goes behind every ready task, the injector's included. First a
   batch moves from the injector into the local queue (weft__before_yield),
   ahead of the yielder; then the yielder goes to the back of the local
   queue -- or, when the injector still holds more than a local queue could
   take, onto the injector itself, as Go's Gosched always does. Not always:
   with many tasks yielding, every yield would then go through the
   injector's lock. */
void weft__before_yield(struct weft__thread *th);
void weft__requeue_yielded(struct weft__thread *th, struct weft_task *t);

/* A task preempted at the end of its time slice (weft__task_demote) goes
   to the runtime's slow lane (worker.c). */
void weft__requeue_demoted(struct weft__thread *th, struct weft_task *t);

/* Completes the switch that resumed us (fiber_task.c). */
void weft__finish_pending(struct weft__thread *th);

/* No stack for t's first run: t is put back and retried later. */
void weft__stack_unavailable(struct weft__thread *th, struct weft_task *t);

/* Worker thread body. */
void *weft__worker_main(void *arg);

/* Wakes one sleeping worker if work may be waiting and nobody searches. */
void weft__notify_one(struct weft_runtime *rt);

/* Wakes every worker (shutdown). */
void weft__wake_all(struct weft_runtime *rt);

/* The next task id from the worker's block (blocks come from rt->next_id). */
uint64_t weft__next_task_id(struct weft_runtime *rt, struct weft__worker *w);

/* Task header allocation with the per-worker cache. */
struct weft_task *weft__task_alloc(void);
void weft__task_free(struct weft_task *t);

/* Frees a worker's caches (after its thread stopped). */
void weft__worker_drain(struct weft__worker *w);

#endif
