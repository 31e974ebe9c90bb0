/*
 * A worker thread's poller (internal): its epoll instance and the eventfd
 * other threads write to wake it.
 *
 * Parking moves into the poller: a worker with nothing to run sleeps in
 * epoll_pwait2 with its next timer deadline as the timeout, so readiness
 * events and unparks both end the sleep (runtime/park.c). A running worker
 * looks at its epoll without blocking every global_queue_interval ticks and
 * while it searches for work, so events are not left waiting behind a busy
 * run queue; it skips the system call while no fd is registered with it.
 */
#ifndef WEFT_IO_POLLER_H
#define WEFT_IO_POLLER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct weft__poller {
	int epfd;                    /* -1: none (the parker then sleeps on its futex) */
	int wakefd;                  /* eventfd in epfd: an unpark */
	_Atomic unsigned registered; /* fds in epfd */
	_Atomic uint64_t events;     /* readiness events handled (metrics) */
};

/* Creates the epoll and eventfd; -errno (the poller is then unusable and
   the thread parks on a futex instead). */
int weft__poller_init(struct weft__poller *p);
void weft__poller_destroy(struct weft__poller *p);

/* Waits up to timeout_ns (0: only looks; UINT64_MAX: no limit) for events
   and dispatches them (waking their tasks); returns how many fd events it
   handled. An unpark ends the wait. */
unsigned weft__poller_poll(struct weft__poller *p, uint64_t timeout_ns);

/* Ends a poll in progress (or the next one). Any thread. */
void weft__poller_wake(struct weft__poller *p);

/* Looks for events without blocking, if any fd is registered. */
static inline unsigned weft__poller_poll_now(struct weft__poller *p)
{
	if (!atomic_load_explicit(&p->registered, memory_order_relaxed))
		return 0;
	return weft__poller_poll(p, 0);
}

#endif
