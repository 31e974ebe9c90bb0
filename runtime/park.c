/*
 * Thread parking on a futex word: EMPTY -> PARKED (sleeping) and back;
 * NOTIFIED is a pending unpark. The unparker exchanges the word to NOTIFIED
 * and issues the futex wake only when the thread really sleeps, so an unpark
 * of a running thread costs one atomic and no system call.
 */
#include "park.h"

#include "../io/poller.h"
#include "../io/ring.h"
#include "futex.h"

enum { EMPTY, PARKED, NOTIFIED };

void weft__parker_init(struct weft__parker *p, struct weft__poller *poller, struct weft__ring *ring)
{
	atomic_init(&p->state, EMPTY);
	p->poller = poller;
	p->ring = ring;
}

static bool ring_active(const struct weft__parker *p)
{
	return p->ring && p->ring->active;
}

static bool poller_active(const struct weft__parker *p)
{
	return p->poller && p->poller->epfd >= 0;
}

void weft__parker_park(struct weft__parker *p)
{
	uint32_t s = EMPTY;
	if (!atomic_compare_exchange_strong_explicit(&p->state, &s, PARKED, memory_order_acq_rel,
	                                             memory_order_acquire)) {
		/* s == NOTIFIED: consume the pending unpark. */
		atomic_store_explicit(&p->state, EMPTY, memory_order_release);
		return;
	}
	for (;;) {
		weft__futex_wait(&p->state, PARKED, NULL);
		s = NOTIFIED;
		if (atomic_compare_exchange_strong_explicit(
		            &p->state, &s, EMPTY, memory_order_acq_rel, memory_order_acquire))
			return;
	}
}

bool weft__parker_park_timeout(struct weft__parker *p, uint64_t timeout_ns)
{
	if (ring_active(p) || poller_active(p)) {
		/* Sleep in the ring or poller: an unpark writes its eventfd,
		   and an unpark that came first makes the wait only look. */
		uint32_t s = EMPTY;
		bool parked = atomic_compare_exchange_strong_explicit(
		        &p->state, &s, PARKED, memory_order_acq_rel, memory_order_acquire);
		uint64_t t = parked ? timeout_ns : 0;
		unsigned events = ring_active(p) ? weft__ring_park(p->ring, t)
		                                 : weft__poller_poll(p->poller, t);
		atomic_store_explicit(&p->state, EMPTY, memory_order_release);
		return events > 0;
	}
	if (timeout_ns == UINT64_MAX) {
		weft__parker_park(p);
		return false;
	}
	uint32_t s = EMPTY;
	if (atomic_compare_exchange_strong_explicit(&p->state, &s, PARKED, memory_order_acq_rel,
	                                            memory_order_acquire)) {
		struct timespec ts = {(time_t)(timeout_ns / 1000000000ull),
		                      (long)(timeout_ns % 1000000000ull)};
		weft__futex_wait(&p->state, PARKED, &ts);
	}
	/* Woken, timed out, or an unpark was pending: consume it either way. */
	atomic_store_explicit(&p->state, EMPTY, memory_order_release);
	return false;
}

void weft__parker_unpark(struct weft__parker *p)
{
	if (atomic_exchange_explicit(&p->state, NOTIFIED, memory_order_acq_rel) != PARKED)
		return;
	if (ring_active(p))
		weft__ring_wake(p->ring);
	else if (poller_active(p))
		weft__poller_wake(p->poller);
	else
		weft__futex_wake(&p->state, 1);
}
