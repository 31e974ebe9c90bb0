/*
 * File descriptor readiness on the epoll backend; the protocol is in
 * fdtable.h.
 *
 * Locking: a state's lock covers its waiters, its epoll registration and
 * its generation. Wakers are taken out under the lock and woken after it is
 * released; a waiter is done with its own memory once it has seen itself
 * unlinked under the lock, and the waker holds a reference to its task.
 */
#include "fdtable.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <weft/task.h>

#include "../runtime/lock.h"
#include "../runtime/spin.h"
#include "../runtime/tls.h"
#include "../runtime/wait.h"
#include "../runtime/worker.h"
#include "accept.h"
#include "poller.h"
#include "ring.h"
#include "uring_ops.h"

static struct weft__fd_state *_Atomic chunks[WEFT__FD_CHUNKS];
static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;

static struct weft__fd_state *chunk_of(int fd, bool create)
{
	if (fd < 0 || fd >= WEFT__FD_CHUNK * WEFT__FD_CHUNKS)
		return NULL;
	unsigned ci = (unsigned)fd / WEFT__FD_CHUNK;
	struct weft__fd_state *c = atomic_load_explicit(&chunks[ci], memory_order_acquire);
	if (c || !create)
		return c;
	pthread_mutex_lock(&grow_lock);
	c = atomic_load_explicit(&chunks[ci], memory_order_relaxed);
	if (!c && (c = calloc(WEFT__FD_CHUNK, sizeof *c))) {
		for (unsigned k = 0; k < WEFT__FD_CHUNK; k++) {
			weft__lock_init(&c[k].lock);
			c[k].epfd = -1;
		}
		atomic_store_explicit(&chunks[ci], c, memory_order_release);
	}
	pthread_mutex_unlock(&grow_lock);
	return c;
}

struct weft__fd_state *weft__fd_state(int fd)
{
	struct weft__fd_state *c = chunk_of(fd, true);
	return c ? &c[(unsigned)fd % WEFT__FD_CHUNK] : NULL;
}

int weft__fd_kind(struct weft__fd_state *st, int fd)
{
	pthread_mutex_lock(&st->lock);
	int kind = st->kind;
	pthread_mutex_unlock(&st->lock);
	if (kind != WEFT__FD_UNKNOWN)
		return kind;
	struct stat sb;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fstat(fd, &sb) < 0)
		return -errno;
	kind = S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode) || S_ISDIR(sb.st_mode)
	               ? WEFT__FD_FILE
	               : WEFT__FD_POLLABLE;
	pthread_mutex_lock(&st->lock);
	st->kind = (uint8_t)kind;
	atomic_store_explicit(&st->nonblock, (fl & O_NONBLOCK) != 0, memory_order_relaxed);
	pthread_mutex_unlock(&st->lock);
	return kind;
}

/* ------------------------------------------------------------ under lock */

static struct weft__fd_waiter *waiter_of(struct weft__dlink *l)
{
	return weft__container_of(l, struct weft__fd_waiter, link);
}

static void link_waiter(struct weft__fd_state *st, struct weft__fd_waiter *w)
{
	weft__dlist_push_head(&st->waiters, &w->link);
	w->linked = true;
}

static void unlink_waiter(struct weft__fd_state *st, struct weft__fd_waiter *w)
{
	weft__dlist_unlink(&st->waiters, &w->link);
	w->linked = false;
}

static uint32_t interest_of(const struct weft__fd_state *st)
{
	uint32_t in = 0;
	for (struct weft__dlink *l = st->waiters.head; l; l = l->next)
		in |= waiter_of(l)->interest;
	return in;
}

/* Arms fd in its epoll (or the given one, the first time) for what its
   waiters want, once. */
static int arm(struct weft__fd_state *st, int fd, struct weft__poller *home, uint32_t interest)
{
	struct epoll_event ev = {.events = interest | EPOLLONESHOT | EPOLLRDHUP,
	                         .data.u64 = weft__fd_event_data(fd, st->gen)};
	if (st->epfd >= 0) {
		if (epoll_ctl(st->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
			return 0;
		if (errno != ENOENT)
			return -errno;
		/* Closed behind our back and reused: add the new file. */
		if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
			return 0;
		return -errno;
	}
	if (!home || home->epfd < 0)
		return -ENOSYS;
	if (epoll_ctl(home->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		if (errno != EEXIST || epoll_ctl(home->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
			return -errno;
	}
	st->epfd = home->epfd;
	st->epfd_count = &home->registered;
	atomic_fetch_add_explicit(&home->registered, 1, memory_order_relaxed);
	return 0;
}

/* Takes the waiters woken by `events` off the list, into *woken. */
static void take_woken(struct weft__fd_state *st, uint32_t events, int result,
                       struct weft__waker *woken, size_t *n, size_t cap)
{
	uint32_t in = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR) ? EPOLLIN : 0;
	uint32_t out = events & (EPOLLOUT | EPOLLHUP | EPOLLERR) ? EPOLLOUT : 0;
	for (struct weft__dlink *l = st->waiters.head, *next; l && *n < cap; l = next) {
		next = l->next;
		struct weft__fd_waiter *w = waiter_of(l);
		if (!(w->interest & (in | out)))
			continue;
		unlink_waiter(st, w);
		w->result = result;
		woken[(*n)++] = w->waker;
	}
}

#define WAKE_BATCH 64

void weft__fdtable_event(uint64_t data, uint32_t events)
{
	int fd = (int)(uint32_t)data;
	struct weft__fd_state *c = chunk_of(fd, false);
	if (!c)
		return;
	struct weft__fd_state *st = &c[(unsigned)fd % WEFT__FD_CHUNK];
	struct weft__waker woken[WAKE_BATCH];
	size_t n = 0;
	pthread_mutex_lock(&st->lock);
	if (st->gen == (uint32_t)(data >> 32) && !st->closing) {
		take_woken(st, events, 0, woken, &n, WAKE_BATCH);
		/* One-shot: re-arm for whoever still waits (the other
		   direction, or those beyond a full batch). */
		uint32_t rest = interest_of(st);
		if (rest && arm(st, fd, NULL, rest) < 0) {
			/* Gone (a foreign close): wake them to find out. */
			take_woken(st, EPOLLERR, 0, woken, &n, WAKE_BATCH);
		}
	}
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; i < n; i++)
		weft__waker_wake(woken[i]);
}

/* ------------------------------------------------------------------ wait */

/* A plain thread waits with poll(2), up to its deadline scope's deadline. */
static int thread_wait(int fd, uint32_t interest)
{
	uint64_t dl = weft__deadline_in_force(weft__tls()->scope, 0);
	struct pollfd p = {.fd = fd,
	                   .events = (short)((interest & EPOLLIN ? POLLIN : 0) |
	                                     (interest & EPOLLOUT ? POLLOUT : 0))};
	for (;;) {
		int timeout = -1;
		if (dl != UINT64_MAX) {
			uint64_t now = weft__mono_ns();
			if (now >= dl)
				return -ETIMEDOUT;
			uint64_t ms = (dl - now + 999999) / 1000000;
			timeout = ms > 1000000 ? 1000000 : (int)ms;
		}
		int r = poll(&p, 1, timeout);
		if (r > 0)
			return p.revents & POLLNVAL ? -EBADF : 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

int weft__fd_wait(int fd, uint32_t interest)
{
	struct weft__tls *tls = weft__tls();
	if (!tls->task) {
		int rc = weft__wait_check();
		return rc ? rc : thread_wait(fd, interest);
	}
	int rc = weft__wait_enter();
	if (rc)
		return rc;
#ifdef WEFT_HAVE_URING
	if (weft__ring_current()) {
		rc = weft__uring_poll_fd(fd, interest);
		return rc < 0 ? rc : 0;
	}
#endif
	struct weft__fd_state *st = weft__fd_state(fd);
	if (!st)
		return fd < 0 ? -EBADF : -ENOMEM;
	struct weft__fd_waiter w = {.interest = interest};
	pthread_mutex_lock(&st->lock);
	if (st->closing) {
		pthread_mutex_unlock(&st->lock);
		return -EBADF;
	}
	w.waker = weft__waker_self(NULL);
	link_waiter(st, &w);
	rc = arm(st, fd, &weft__tls()->thread->poller, interest_of(st));
	if (rc < 0) {
		unlink_waiter(st, &w);
		pthread_mutex_unlock(&st->lock);
		weft__waker_drop(w.waker);
		return rc == -EBADF || rc == -ENOENT ? -EBADF : rc;
	}
	pthread_mutex_unlock(&st->lock);
	for (;;) {
		weft__block(NULL, WEFT__WAIT_FD, (const void *)(intptr_t)fd, interest);
		pthread_mutex_lock(&st->lock);
		if (!w.linked) {
			pthread_mutex_unlock(&st->lock);
			return w.result; /* ready, or closed */
		}
		rc = weft__wait_check();
		if (rc) {
			unlink_waiter(st, &w);
			pthread_mutex_unlock(&st->lock);
			weft__waker_drop(w.waker);
			return rc;
		}
		pthread_mutex_unlock(&st->lock); /* a stale wake-up */
	}
}

/* ------------------------------------------------------------------ uops */

int weft__fd_track(int fd, struct weft__uop *op)
{
	struct weft__fd_state *st = weft__fd_state(fd);
	if (!st)
		return fd < 0 ? -EBADF : -ENOMEM;
	pthread_mutex_lock(&st->lock);
	if (st->closing) {
		pthread_mutex_unlock(&st->lock);
		return -EBADF;
	}
	weft__dlist_push_head(&st->uops, &op->link);
	op->linked = true;
	op->closing = false;
	pthread_mutex_unlock(&st->lock);
	return 0;
}

bool weft__fd_untrack(struct weft__uop *op)
{
	struct weft__fd_state *st = weft__fd_state(op->fd);
	pthread_mutex_lock(&st->lock);
	if (op->linked) {
		weft__dlist_unlink(&st->uops, &op->link);
		op->linked = false;
	}
	bool closed = op->closing;
	pthread_mutex_unlock(&st->lock);
	return closed;
}

/* A ring and how far it must have submitted before fd may be closed. */
struct unsubmitted {
	struct weft__ring *ring;
	uint64_t seq;
};

#define UNSUBMITTED_MAX 16

/* Under the state's lock: cancels every uop on the fd; notes those whose
   SQE is still in a ring's queue (up to UNSUBMITTED_MAX rings; beyond,
   *more is set and the caller looks again). */
static size_t cancel_uops(struct weft__fd_state *st, struct unsubmitted *u, bool *more)
{
	size_t n = 0;
	*more = false;
	for (struct weft__dlink *l = st->uops.head; l; l = l->next) {
		struct weft__uop *op = weft__container_of(l, struct weft__uop, link);
		if (!op->closing) {
			op->closing = true;
			weft__ring_cancel(op);
		}
		if (atomic_load_explicit(&op->ring->submitted_seq, memory_order_acquire) >= op->seq)
			continue;
		size_t k = 0;
		while (k < n && u[k].ring != op->ring)
			k++;
		if (k == n) {
			if (n == UNSUBMITTED_MAX) {
				*more = true;
				continue;
			}
			u[n++] = (struct unsubmitted){op->ring, op->seq};
		} else if (op->seq > u[k].seq) {
			u[k].seq = op->seq;
		}
	}
	return n;
}

/* Lock not held: until each ring submitted up to its mark. Our own ring
   submits now; another thread's does at its next submit, which its cancel
   request (a wake) hastens. Meanwhile our own ring keeps submitting and
   taking cancel requests -- that other thread may be closing an fd with an
   op queued on ours -- and a task lets its worker's other tasks run. */
static void await_submitted(const struct unsubmitted *u, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct weft__ring *own = weft__ring_current();
		if (u[i].ring == own) {
			weft__ring_poll(own);
			continue;
		}
		while (atomic_load_explicit(&u[i].ring->submitted_seq, memory_order_acquire) <
		       u[i].seq) {
			if ((own = weft__ring_current()))
				weft__ring_poll_now(own);
			if (weft__tls()->task)
				weft_yield();
			else
				sched_yield();
		}
	}
}

/* ----------------------------------------------------------------- close */

int weft__fd_close(int fd)
{
	struct weft__fd_state *c = chunk_of(fd, false);
	struct weft__fd_state *st = c ? &c[(unsigned)fd % WEFT__FD_CHUNK] : NULL;
	struct weft__waker woken[WAKE_BATCH];
	size_t n = 0;
	if (st) {
		pthread_mutex_lock(&st->lock);
		st->closing = true;
		st->gen++;
		if (st->epfd >= 0) {
			epoll_ctl(st->epfd, EPOLL_CTL_DEL, fd, NULL);
			atomic_fetch_sub_explicit(st->epfd_count, 1, memory_order_relaxed);
			st->epfd = -1;
		}
		st->kind = WEFT__FD_UNKNOWN;
		/* Waits starting meanwhile see `closing`; the number cannot be
		   reused before close(2) below. */
		while (st->waiters.head) {
			take_woken(st, EPOLLERR, -EBADF, woken, &n, WAKE_BATCH);
			pthread_mutex_unlock(&st->lock);
			for (size_t i = 0; i < n; i++)
				weft__waker_wake(woken[i]);
			n = 0;
			pthread_mutex_lock(&st->lock);
		}
		weft__accept_discard(st);
		struct unsubmitted u[UNSUBMITTED_MAX];
		bool more;
		size_t nu;
		while ((nu = cancel_uops(st, u, &more)) > 0) {
			pthread_mutex_unlock(&st->lock);
			await_submitted(u, nu);
			pthread_mutex_lock(&st->lock);
			if (!more)
				break;
		}
	}
	/* Under the lock: a wait on the number's next owner starts only after
	   `closing` is cleared. */
	int rc = close(fd) == 0 || errno == EINTR ? 0 : -errno;
	if (st) {
		st->closing = false;
		pthread_mutex_unlock(&st->lock);
	}
	return rc;
}

void weft__fdtable_forget_epoll(int epfd)
{
	for (unsigned ci = 0; ci < WEFT__FD_CHUNKS; ci++) {
		struct weft__fd_state *c = atomic_load_explicit(&chunks[ci], memory_order_acquire);
		for (unsigned k = 0; c && k < WEFT__FD_CHUNK; k++) {
			pthread_mutex_lock(&c[k].lock);
			if (c[k].epfd == epfd)
				c[k].epfd = -1;
			pthread_mutex_unlock(&c[k].lock);
		}
	}
}
