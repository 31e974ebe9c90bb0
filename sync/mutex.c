/*
 * The mutex: a state word and a FIFO of parked waiters (waitq.h).
 *
 * State bits: LOCKED (someone owns it), WAITERS (the queue is not empty;
 * set and cleared only under the queue's lock) and WOKEN (a waiter was
 * woken to compete and has not yet tried). Lock is a CAS 0 -> LOCKED when
 * uncontended; unlock a CAS LOCKED -> 0, which fails while another bit is
 * set and sends it down the slow path, under the queue's lock.
 *
 * Contended, a locker first spins briefly (the owner is usually a task
 * running on another worker, a few instructions from unlocking; with one
 * worker it cannot be, and nobody spins), then queues. Unlock, with
 * waiters, does one of three things:
 *   - the first has waited WEFT_MUTEX_HANDOFF_NS or more: the lock is
 *     handed to it (GRANTED) without ever being free, so nobody can barge
 *     ahead;
 *   - a waiter is WOKEN already: the lock is only freed. As in Go's
 *     sync.Mutex (mutexWoken), one woken waiter at a time competes: an
 *     owner that unlocks and relocks in a loop would otherwise wake the
 *     whole queue, one waiter per unlock, and every woken task that finds
 *     the lock free would become such an owner in turn;
 *   - else the first is woken (WOKEN) to compete for it with whoever runs;
 *     losing, it goes back to the head of the queue, keeping its first
 *     queueing time.
 * So a waiter waits at most about the bound plus one critical section per
 * waiter ahead of it.
 *
 * Cancellation: a waiter still queued leaves the queue and has taken
 * nothing. One already GRANTED owns the lock and returns 0. One WOKEN that
 * gives up passes the wake on to the next waiter if the lock is free, so
 * that its leaving strands nobody.
 */
#include <errno.h>
#include <stdbool.h>

#include <weft/sync.h>

#include "../runtime/spin.h"
#include "waitq.h"

#define LOCKED 1u
#define WAITERS 2u
#define WOKEN 4u
#define SPIN_ROUNDS 8
#define SPIN_PAUSES 30

void weft_mutex_init(weft_mutex *m)
{
	if (!m)
		return;
	m->state = 0;
	m->q = (struct weft_waitq_){0, NULL, NULL};
}

void weft_mutex_destroy(weft_mutex *m)
{
	(void)m;
}

static bool try_take(weft_mutex *m)
{
	unsigned s = __atomic_load_n(&m->state, __ATOMIC_RELAXED);
	while (!(s & LOCKED))
		if (__atomic_compare_exchange_n(&m->state, &s, s | LOCKED, true, __ATOMIC_ACQUIRE,
		                                __ATOMIC_RELAXED))
			return true;
	return false;
}

int weft_mutex_trylock(weft_mutex *m)
{
	if (!m)
		return -EINVAL;
	return try_take(m) ? 0 : -EBUSY;
}

/* Under the queue's lock: takes the mutex if it is free, else marks that
   waiters exist (false). */
static bool take_or_announce(weft_mutex *m)
{
	unsigned s = __atomic_load_n(&m->state, __ATOMIC_RELAXED);
	for (;;) {
		if (!(s & LOCKED)) {
			if (__atomic_compare_exchange_n(&m->state, &s, s | LOCKED, true,
			                                __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				return true;
			continue;
		}
		if ((s & WAITERS) ||
		    __atomic_compare_exchange_n(&m->state, &s, s | WAITERS, true, __ATOMIC_RELAXED,
		                                __ATOMIC_RELAXED))
			return false;
	}
}

/* Under the queue's lock, after a waiter left it. */
static void waiters_changed(weft_mutex *m)
{
	if (weft__wq_empty(&m->q))
		__atomic_fetch_and(&m->state, ~WAITERS, __ATOMIC_RELAXED);
}

/* A waiter gives up (cancelled, timed out) after being queued: if the lock
   is free meanwhile and others wait, the first of them is woken, since the
   unlock that freed it may have woken us. */
static void leave(weft_mutex *m)
{
	struct weft__waker k;
	bool wake = false;
	weft__wq_lock(&m->q);
	if (!weft__wq_empty(&m->q) &&
	    !(__atomic_load_n(&m->state, __ATOMIC_RELAXED) & (LOCKED | WOKEN))) {
		k = weft__wq_release(&m->q, weft__wq_head(&m->q), WEFT__W_WOKEN);
		__atomic_fetch_or(&m->state, WOKEN, __ATOMIC_RELAXED);
		wake = true;
	}
	waiters_changed(m);
	weft__wq_unlock(&m->q);
	if (wake)
		weft__waker_wake(k);
}

static int lock_slow(weft_mutex *m)
{
	/* Free after all (only a woken waiter yet to try was marked)? */
	if (try_take(m))
		return 0;
	/* Looking at the word less often than every pause leaves its line
	   with the owner, whose unlock and next lock then hit its cache. */
	for (int i = 0; i < SPIN_ROUNDS && weft__spin_may_pay(); i++) {
		for (int p = 0; p < SPIN_PAUSES; p++)
			weft__cpu_relax();
		if (try_take(m))
			return 0;
	}
	struct weft__waiter w;
	w.since_ns = 0;
	bool at_head = false;
	for (;;) {
		weft__wq_lock(&m->q);
		if (take_or_announce(m)) {
			weft__wq_unlock(&m->q);
			return 0;
		}
		if (!w.since_ns)
			w.since_ns = weft__mono_ns();
		weft__wq_enqueue(&m->q, &w, at_head);
		int r = weft__wq_wait(&m->q, &w, WEFT__WAIT_MUTEX, m, 0);
		if (r == WEFT__W_GRANTED)
			return 0; /* handed over: ours, whatever else happened */
		if (r < 0) {
			leave(m);
			return r;
		}
		/* Woken to compete: from here no waiter is woken, whichever way
		   it goes, and the next unlock may wake one. */
		__atomic_fetch_and(&m->state, ~WOKEN, __ATOMIC_RELAXED);
		if (try_take(m))
			return 0;
		int rc = weft__wait_check();
		if (rc) {
			leave(m);
			return rc;
		}
		at_head = true; /* lost to a running task: back to the front */
	}
}

int weft_mutex_lock(weft_mutex *m)
{
	if (!m)
		return -EINVAL;
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	unsigned free_ = 0;
	if (__atomic_compare_exchange_n(&m->state, &free_, LOCKED, false, __ATOMIC_ACQUIRE,
	                                __ATOMIC_RELAXED))
		return 0;
	return lock_slow(m);
}

static void unlock_slow(weft_mutex *m)
{
	struct weft__waker k;
	bool wake = false;
	weft__wq_lock(&m->q);
	struct weft__waiter *h = weft__wq_head(&m->q);
	if (!h) {
		/* The waiters left (cancelled) after announcing themselves. */
		__atomic_fetch_and(&m->state, ~(LOCKED | WAITERS), __ATOMIC_RELEASE);
	} else if (weft__mono_ns() - h->since_ns >= WEFT_MUTEX_HANDOFF_NS) {
		k = weft__wq_release(&m->q, h, WEFT__W_GRANTED); /* stays LOCKED: theirs */
		wake = true;
		waiters_changed(m);
	} else if (__atomic_load_n(&m->state, __ATOMIC_RELAXED) & WOKEN) {
		__atomic_fetch_and(&m->state, ~LOCKED, __ATOMIC_RELEASE); /* it competes */
	} else {
		k = weft__wq_release(&m->q, h, WEFT__W_WOKEN);
		wake = true;
		/* Nobody else changes the word now: it is LOCKED (ours), the
		   queue's lock is held, and no waiter is woken. */
		unsigned s = __atomic_load_n(&m->state, __ATOMIC_RELAXED);
		s = (s & ~(LOCKED | (weft__wq_empty(&m->q) ? WAITERS : 0))) | WOKEN;
		__atomic_store_n(&m->state, s, __ATOMIC_RELEASE);
	}
	weft__wq_unlock(&m->q);
	if (wake)
		weft__waker_wake(k);
}

void weft_mutex_unlock(weft_mutex *m)
{
	if (!m)
		return;
	unsigned locked = LOCKED;
	if (__atomic_compare_exchange_n(&m->state, &locked, 0, false, __ATOMIC_RELEASE,
	                                __ATOMIC_RELAXED))
		return;
	unlock_slow(m);
}
