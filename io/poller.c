/*
 * The epoll poller of a worker thread; see poller.h.
 */
#include "poller.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "fdtable.h"

#define EVENTS_PER_POLL 128
#define WAKE_DATA UINT64_MAX /* an fd event's data is never all ones */

int weft__poller_init(struct weft__poller *p)
{
	atomic_init(&p->registered, 0);
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return -errno;
	p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	/* Edge-triggered: every write is an event of its own, so the counter
	   is never read back -- a wake costs the waker's write and nothing on
	   the woken side (it would take 2^64 wakes to fill it). */
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = WAKE_DATA};
	if (p->wakefd < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &ev) < 0) {
		int err = errno;
		if (p->wakefd >= 0)
			close(p->wakefd);
		close(p->epfd);
		p->epfd = p->wakefd = -1;
		return -err;
	}
	return 0;
}

void weft__poller_destroy(struct weft__poller *p)
{
	if (p->epfd < 0)
		return;
	weft__fdtable_forget_epoll(p->epfd);
	close(p->wakefd);
	close(p->epfd);
	p->epfd = p->wakefd = -1;
}

/* epoll_pwait2 takes a timeout in nanoseconds (timer deadlines need no
   rounding); kernels before 5.11 and emulators (qemu-user 7) lack it: then
   epoll_wait, with the timeout rounded up to whole milliseconds. */
static _Atomic bool have_pwait2 = true;

static int wait_events(int epfd, struct epoll_event *ev, uint64_t timeout_ns)
{
	if (atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
		struct timespec ts, *tp = NULL;
		if (timeout_ns != UINT64_MAX) {
			ts.tv_sec = (time_t)(timeout_ns / 1000000000ull);
			ts.tv_nsec = (long)(timeout_ns % 1000000000ull);
			tp = &ts;
		}
		int n = epoll_pwait2(epfd, ev, EVENTS_PER_POLL, tp, NULL);
		if (n >= 0 || errno != ENOSYS)
			return n;
		atomic_store_explicit(&have_pwait2, false, memory_order_relaxed);
	}
	uint64_t ms = timeout_ns == UINT64_MAX ? UINT64_MAX : (timeout_ns + 999999) / 1000000;
	return epoll_wait(epfd, ev, EVENTS_PER_POLL, ms > INT_MAX ? -1 : (int)ms);
}

unsigned weft__poller_poll(struct weft__poller *p, uint64_t timeout_ns)
{
	struct epoll_event ev[EVENTS_PER_POLL];
	int n = wait_events(p->epfd, ev, timeout_ns);
	unsigned handled = 0;
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u64 == WAKE_DATA)
			continue; /* an unpark */
		weft__fdtable_event(ev[i].data.u64, ev[i].events);
		handled++;
	}
	atomic_store_explicit(&p->events,
	                      atomic_load_explicit(&p->events, memory_order_relaxed) + handled,
	                      memory_order_relaxed);
	return handled;
}

void weft__poller_wake(struct weft__poller *p)
{
	uint64_t one = 1;
	if (write(p->wakefd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is saturated, so a wake is pending anyway */
	}
}
