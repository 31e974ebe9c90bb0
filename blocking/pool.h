/*
 * The blocking pool (internal): threads that run jobs which may block.
 *
 * A job is a task header (struct weft_task) of its own kind: it is
 * SCHEDULED from its spawn until it completes, so a wake (a cancel) only
 * ever marks it NOTIFIED and no worker ever queues it; joining it is joining
 * a task. What runs it is a pool thread.
 *
 * Threads start on demand up to max_threads and exit after keepalive_ns
 * idle. An idle thread waits on a futex word of its own, spinning first for
 * spin_ns: a wake of a sleeping thread on the other core costs ~6 us here,
 * so a job spawned while a thread spins is handed to it directly (the idle
 * list is LIFO: the most recently idle thread, the likeliest to spin, gets
 * the job) and a spawn-join round trip needs no system call on either side.
 * With no idle thread the job queues, and a thread is started when every
 * started thread is busy running a job -- one start at a time, so that a
 * burst of short jobs does not start a thread per job, as Tokio's pool does.
 *
 * Everything but the spin is under the pool's one lock: a spawn and a
 * dequeue are a few pointer moves.
 */
#ifndef WEFT_BLOCKING_POOL_H
#define WEFT_BLOCKING_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/list.h"

struct weft_runtime;
struct weft_task;

/* One pool thread. Its fields are under the pool's lock but for `word`. */
struct weft__pool_thread {
	struct weft__dlink idle_link;       /* in the idle list */
	struct weft__pool_thread *all_next; /* every thread, for reports and joins */
	struct weft__blocking *pool;
	pthread_t pthread;
	struct weft_task *handed;  /* a job handed over while idle */
	struct weft_task *running; /* the job it runs, for shutdown's report */
	bool idle;                 /* on the idle list */
	bool exited;               /* done; only to be joined */
	_Atomic uint32_t word;     /* POOL_SPINNING, POOL_SLEEPING, POOL_WOKEN */
};

struct weft__blocking {
	pthread_mutex_t lock;
	pthread_cond_t exited;         /* a thread exited */
	struct weft_task *head, *tail; /* queued jobs, through qnext */
	size_t queued;
	struct weft__dlist idle; /* most recently idle first */
	struct weft__pool_thread *all;
	unsigned threads;  /* started, not exited */
	unsigned starting; /* started, not yet looking for a job */
	unsigned busy;     /* running a job */
	unsigned max_threads;
	uint64_t keepalive_ns, spin_ns;
	bool closed;
	struct weft_runtime *rt;
	_Atomic size_t alive; /* jobs spawned, not yet completed */
};

void weft__blocking_init(struct weft__blocking *p, struct weft_runtime *rt, unsigned max_threads,
                         uint64_t keepalive_ns, uint64_t spin_ns);

/* Shutdown, first step: no new jobs; idle threads wake to run what is
   queued (with the runtime closed, weft_is_cancelled() is true in them) and
   exit when nothing is left. */
void weft__blocking_close(struct weft__blocking *p);

/* Waits until every pool thread exited or deadline_ns (CLOCK_MONOTONIC)
   passed, and joins the exited ones; true if none is left. */
bool weft__blocking_drain(struct weft__blocking *p, uint64_t deadline_ns);

/* Writes a line to fd for each job still running; returns how many. */
size_t weft__blocking_report(struct weft__blocking *p, int fd);

/* Frees the pool's memory; every thread must have been joined. */
void weft__blocking_destroy(struct weft__blocking *p);

#endif
