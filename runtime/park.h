/*
 * A parker puts one OS thread to sleep until another unparks it: a futex
 * word with three states. An unpark that comes before the park is not lost
 * (the park then returns at once), and unparks do not accumulate.
 */
#ifndef WEFT_RUNTIME_PARK_H
#define WEFT_RUNTIME_PARK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct weft__poller;
struct weft__ring;

/* With an io backend (a worker's io_uring, or its epoll), the thread sleeps
   in it instead of on the futex, so that I/O completions and readiness end
   the sleep too (io/ring.h, io/poller.h). Whichever of the two is active
   when the thread parks is used; both are set up by the thread itself
   before its first park. */
struct weft__parker {
	_Alignas(64) _Atomic uint32_t state;
	struct weft__poller *poller;
	struct weft__ring *ring;
};

void weft__parker_init(struct weft__parker *p, struct weft__poller *poller,
                       struct weft__ring *ring);
void weft__parker_park(struct weft__parker *p);

/* Parks for at most timeout_ns (UINT64_MAX: no limit); may return early.
   True if the ring or poller completed operations or readiness meanwhile (their tasks are
   now runnable: the caller must not go back to sleep without running
   them). */
bool weft__parker_park_timeout(struct weft__parker *p, uint64_t timeout_ns);
void weft__parker_unpark(struct weft__parker *p);

#endif
