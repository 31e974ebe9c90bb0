/*
 * Wait queues (internal): the FIFO of tasks and threads parked on a sync
 * primitive, behind a small spinlock in the primitive itself.
 *
 * A waiter lives on the waiting caller's stack. It is queued and dequeued
 * only under the queue's lock; whoever dequeues it sets `state` (GRANTED:
 * the operation took effect for it; WOKEN: it should look again) before
 * waking it, and that store is the dequeuer's last access to the waiter's
 * memory except for the wake itself, which goes through the waker (a task
 * reference, or the thread's futex word, see runtime/wait.h). A waiter whose
 * wait is cancelled or times out takes the lock and, if it is still queued,
 * dequeues itself: then nothing was taken. If it was dequeued already, what
 * the dequeuer decided stands -- a GRANTED wait returns success.
 *
 * The lock is held for a few pointer updates only, never across a wake or a
 * park: it spins with a pause, and yields the CPU after a while (its holder
 * may be a thread the OS preempted).
 */
#ifndef WEFT_SYNC_WAITQ_H
#define WEFT_SYNC_WAITQ_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <weft/sync.h>

#include "../runtime/spin.h"
#include "../runtime/task.h"
#include "../runtime/wait.h"

enum { WEFT__W_QUEUED, WEFT__W_GRANTED, WEFT__W_WOKEN };

#define WEFT__WQ_PAUSES 60

struct weft__waiter {
	struct weft__waiter *prev, *next;
	struct weft__waker waker;
	_Atomic uint32_t word;  /* a plain thread's futex word */
	_Atomic uint32_t state; /* WEFT__W_* */
	uint64_t n;             /* what it asks for (permits; reader or writer) */
	void *data;             /* a channel waiter's element */
	uint64_t since_ns;      /* when it first queued (the mutex's fairness bound) */
	struct weft__sel *sel;  /* a weft_select's registration, or NULL */
	unsigned case_i;        /* its case */
};

/* A weft_select in progress, on the selecting caller's stack. Its waiters
   (one per case, on the channels' queues) share one waker. Whoever claims
   it -- `fired` from -1 to a case's index, once -- performs that case,
   stores its result, sets `delivered` and wakes the waker: exactly one
   party wakes it. The select itself claims it (WEFT__SEL_WITHDRAWN) when
   it gives up, and then nobody else will. */
#define WEFT__SEL_WITHDRAWN (-2)
struct weft__sel {
	_Atomic int fired;
	_Atomic int delivered;
	struct weft__waker waker;
	_Atomic uint32_t word;
	weft_select_case *cases;
};

static inline bool weft__sel_claim(struct weft__sel *s, int i)
{
	int none = -1;
	return atomic_compare_exchange_strong_explicit(&s->fired, &none, i, memory_order_acq_rel,
	                                               memory_order_acquire);
}

static inline void weft__wq_lock(struct weft_waitq_ *q)
{
	for (unsigned spins = 0;; spins++) {
		if (!__atomic_exchange_n(&q->lock, 1u, __ATOMIC_ACQUIRE))
			return;
		/* Look at the lock word only every WEFT__WQ_PAUSES pauses: each
		   look pulls its line away from the holder, who then misses
		   on its unlock (a channel between two workers ran 2-5x faster
		   so). */
		while (__atomic_load_n(&q->lock, __ATOMIC_RELAXED)) {
			if (++spins > 256) {
				sched_yield();
				spins = 0;
			} else {
				for (int p = 0; p < WEFT__WQ_PAUSES; p++)
					weft__cpu_relax();
			}
		}
	}
}

static inline void weft__wq_unlock(struct weft_waitq_ *q)
{
	__atomic_store_n(&q->lock, 0u, __ATOMIC_RELEASE);
}

static inline bool weft__wq_empty(const struct weft_waitq_ *q)
{
	return q->head == NULL;
}

static inline struct weft__waiter *weft__wq_head(const struct weft_waitq_ *q)
{
	return q->head;
}

/* Under the lock. */
static inline void weft__wq_push_tail(struct weft_waitq_ *q, struct weft__waiter *w)
{
	struct weft__waiter *tail = q->tail;
	w->next = NULL;
	w->prev = tail;
	if (tail)
		tail->next = w;
	else
		q->head = w;
	q->tail = w;
}

static inline void weft__wq_push_head(struct weft_waitq_ *q, struct weft__waiter *w)
{
	struct weft__waiter *head = q->head;
	w->prev = NULL;
	w->next = head;
	if (head)
		head->prev = w;
	else
		q->tail = w;
	q->head = w;
}

static inline void weft__wq_remove(struct weft_waitq_ *q, struct weft__waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		q->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		q->tail = w->prev;
	w->prev = w->next = NULL;
}

/* Under the lock: dequeues w and marks what happened to it; the caller
   wakes the returned waker after dropping the lock. */
static inline struct weft__waker weft__wq_release(struct weft_waitq_ *q, struct weft__waiter *w,
                                                  uint32_t state)
{
	weft__wq_remove(q, w);
	struct weft__waker k = w->waker;
	atomic_store_explicit(&w->state, state, memory_order_release);
	return k;
}

/* Under the lock: queues w (at the tail, or the head for a waiter going
   back to its place) with a waker for the caller. */
static inline void weft__wq_enqueue(struct weft_waitq_ *q, struct weft__waiter *w, bool at_head)
{
	atomic_init(&w->state, WEFT__W_QUEUED);
	w->sel = NULL;
	w->waker = weft__waker_self(&w->word);
	if (at_head)
		weft__wq_push_head(q, w);
	else
		weft__wq_push_tail(q, w);
}

/* Called with the lock held, w queued; drops the lock and parks until w is
   dequeued (returns its state, lock not held) or the wait is cancelled or
   times out (returns the negative errno with w dequeued by itself, lock not
   held) -- unless it was dequeued meanwhile, in which case its state
   stands. */
static inline int weft__wq_wait_in(struct weft_waitq_ *lk, struct weft_waitq_ *q,
                                   struct weft__waiter *w, unsigned kind, const void *obj,
                                   uint32_t arg);

/* kind, obj, arg: what the task dump shows it waits on (runtime/task.h). */
static inline int weft__wq_wait(struct weft_waitq_ *q, struct weft__waiter *w, unsigned kind,
                                const void *obj, uint32_t arg)
{
	return weft__wq_wait_in(q, q, w, kind, obj, arg);
}

/* The same for a waiter on list q guarded by another queue's lock lk (a
   channel keeps its senders and receivers under one lock). */
static inline int weft__wq_wait_in(struct weft_waitq_ *lk, struct weft_waitq_ *q,
                                   struct weft__waiter *w, unsigned kind, const void *obj,
                                   uint32_t arg)
{
	weft__wq_unlock(lk);
	uint32_t s;
	for (;;) {
		weft__block(&w->word, kind, obj, arg);
		s = atomic_load_explicit(&w->state, memory_order_acquire);
		if (s != WEFT__W_QUEUED)
			break;
		int rc = weft__wait_check();
		if (!rc)
			continue; /* an early return from the park */
		weft__wq_lock(lk);
		s = atomic_load_explicit(&w->state, memory_order_acquire);
		if (s == WEFT__W_QUEUED) {
			weft__wq_remove(q, w);
			weft__wq_unlock(lk);
			weft__waker_drop(w->waker);
			return rc;
		}
		weft__wq_unlock(lk);
		break; /* dequeued while we looked: that stands */
	}
	/* A thread's word is on this stack: wait until its waker is done. */
	weft__waker_settle(w->waker);
	return (int)s;
}

#endif
