/*
 * The global injector: MPMC queues of tasks for spawns and wakes from
 * outside the runtime and for local-queue overflow.
 *
 * Two intrusive FIFOs (through task->qnext) under one mutex: tasks that have
 * already run (woken, yielded, pushed out of a full local queue) and tasks
 * that have not started yet; batches are taken from the first before the
 * second. A burst of spawns can leave tens of thousands of unstarted tasks
 * here, and a woken task must not wait behind all of them (with one FIFO,
 * 100,000 sleepers saw 40-60 ms of queueing after their timers fired);
 * finishing started tasks first also frees their stacks before new tasks
 * take more. The total length is also kept in an atomic so that workers
 * check for work without the lock. Workers take batches (one lock per
 * batch), as Go's globrunqgetbatch and Tokio's inject do.
 */
#ifndef WEFT_RUNTIME_INJECT_H
#define WEFT_RUNTIME_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue.h"

struct weft__task_fifo {
	struct weft_task *head, *tail;
};

struct weft__inject {
	_Alignas(64) _Atomic size_t len;
	pthread_mutex_t lock;
	struct weft__task_fifo started; /* taken first */
	struct weft__task_fifo fresh;   /* not started yet */
	bool closed;                    /* no more spawns (shutdown) */
	_Atomic uint64_t spawned;       /* tasks spawned through here: counted under
	                                   the lock, read by shutdown */
};

/* A plain thread spawning while the injector holds more than DEPTH tasks
   yields its CPU every EVERY spawns (task.c). */
#define WEFT__SPAWN_BACKOFF_DEPTH 1024
#define WEFT__SPAWN_BACKOFF_EVERY 64

void weft__inject_init(struct weft__inject *q);
void weft__inject_destroy(struct weft__inject *q);
void weft__inject_push(struct weft__inject *q, struct weft_task *t);

/* Pushes t behind everything, started or not: for a task that yielded. */
void weft__inject_push_last(struct weft__inject *q, struct weft_task *t);
void weft__inject_push_batch(struct weft__inject *q, const struct weft__batch *b);

/* Pushes a task spawned outside the workers and counts it, unless the
   injector is closed: -ESHUTDOWN; else the tasks queued now. Checking and counting under the lock
   that weft__inject_close takes means a spawn either is counted before shutdown looks, or is
   refused. */
long weft__inject_push_spawn(struct weft__inject *q, struct weft_task *t);
void weft__inject_close(struct weft__inject *q);

/* Removes up to max tasks (max >= 1) as a linked batch; b->n == 0 when empty. */
void weft__inject_pop_batch(struct weft__inject *q, unsigned max, struct weft__batch *b);

static inline size_t weft__inject_len(struct weft__inject *q)
{
	return atomic_load_explicit(&q->len, memory_order_acquire);
}

#endif
