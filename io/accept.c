/*
 * Multishot accept: a listener's armed accept and its queue of connections
 * (protocol in accept.h).
 */
#include "accept.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../runtime/wait.h"
#include "fdtable.h"
#include "uring_ops.h"

#define ACCEPT_QUEUE_MAX 128 /* unclaimed connections before the multishot pauses */
#define WAKE_BATCH 64

int weft__accept_take_queued(struct weft__fd_state *st)
{
	struct weft__acceptq *q = st->acceptq;
	if (!q || !q->len)
		return -EAGAIN;
	int v = q->fds[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return v;
}

void weft__accept_discard(struct weft__fd_state *st)
{
	int v;
	while ((v = weft__accept_take_queued(st)) != -EAGAIN)
		if (v >= 0)
			close(v);
}

int weft__accept_queued(int fd)
{
	struct weft__fd_state *st = weft__fd_state(fd);
	if (!st || !st->acceptq)
		return -EAGAIN;
	pthread_mutex_lock(&st->lock);
	int v = st->closing ? -EAGAIN : weft__accept_take_queued(st);
	pthread_mutex_unlock(&st->lock);
	return v;
}

#ifdef WEFT_HAVE_URING

static bool push(struct weft__acceptq *q, int v)
{
	if (q->len == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 16;
		int *fds = malloc(cap * sizeof *fds);
		if (!fds)
			return false;
		for (size_t i = 0; i < q->len; i++)
			fds[i] = q->fds[(q->head + i) % q->cap];
		free(q->fds);
		q->fds = fds;
		q->cap = cap;
		q->head = 0;
	}
	q->fds[(q->head + q->len++) % q->cap] = v;
	return true;
}

static struct weft__fd_waiter *waiter_of(struct weft__dlink *l)
{
	return weft__container_of(l, struct weft__fd_waiter, link);
}

/* Under the lock: takes up to cap acceptors off the list, the longest
   waiting first (they are pushed at the head), into woken[]. */
static size_t take_acceptors(struct weft__fd_state *st, struct weft__waker *woken, size_t cap)
{
	size_t n = 0;
	while (n < cap && st->waiters.tail) {
		struct weft__fd_waiter *w = waiter_of(st->waiters.tail);
		weft__dlist_unlink(&st->waiters, &w->link);
		w->linked = false;
		w->result = 0;
		woken[n++] = w->waker;
	}
	return n;
}

static unsigned wake(struct weft__waker *woken, size_t n)
{
	for (size_t i = 0; i < n; i++)
		weft__waker_wake(woken[i]);
	return (unsigned)n;
}

/* On the ring's owner, inside its reap (must not submit). */
static unsigned accept_cqe(struct weft__uop *op, int32_t res, uint32_t flags)
{
	struct weft__acceptq *q = weft__container_of(op, struct weft__acceptq, op);
	struct weft__fd_state *st = weft__fd_state(op->fd);
	struct weft__waker w;
	size_t n = 0;
	pthread_mutex_lock(&st->lock);
	bool live = q->gen == st->gen && !st->closing;
	if (res >= 0) {
		if (live && push(q, res))
			n = take_acceptors(st, &w, 1);
		else
			close(res); /* the listener was closed (or no memory) */
	} else if (live && res != -ECANCELED && res != -EAGAIN && res != -EINTR &&
	           res != -ECONNABORTED && push(q, res)) {
		n = take_acceptors(st, &w, 1); /* e.g. -EMFILE: an acceptor reports it */
	}
	if (live && (flags & IORING_CQE_F_MORE) && q->len >= ACCEPT_QUEUE_MAX)
		weft__ring_cancel(op); /* nobody takes them: leave the rest to the backlog */
	pthread_mutex_unlock(&st->lock);
	return wake(&w, n);
}

/* The multishot ended: whoever waits re-arms it. */
static unsigned accept_idle(struct weft__uop *op)
{
	struct weft__acceptq *q = weft__container_of(op, struct weft__acceptq, op);
	struct weft__fd_state *st = weft__fd_state(op->fd);
	struct weft__waker woken[WAKE_BATCH];
	size_t n;
	unsigned total = 0;
	pthread_mutex_lock(&st->lock);
	q->armed = false;
	if (op->linked) {
		weft__dlist_unlink(&st->uops, &op->link);
		op->linked = false;
	}
	do {
		n = take_acceptors(st, woken, WAKE_BATCH);
		pthread_mutex_unlock(&st->lock);
		total += wake(woken, n);
		pthread_mutex_lock(&st->lock);
	} while (n == WAKE_BATCH);
	pthread_mutex_unlock(&st->lock);
	return total;
}

/* Lock not held, q->armed claimed: the multishot's SQE on the current
   ring, tracked on fd's state so that weft_close cancels it. */
static int arm(int fd, struct weft__acceptq *q)
{
	struct weft__ring *r = weft__ring_current();
	if (!r)
		return -EBUSY; /* resumed on a worker whose ring failed */
	struct io_uring_sqe *sqe =
	        weft__ring_prep_multishot(r, &q->op, fd, accept_cqe, accept_idle);
	if (!sqe)
		return -EBUSY;
	int err = weft__fd_track(fd, &q->op);
	if (err < 0) {
		weft__ring_unprep(r, sqe, &q->op);
		return err;
	}
	io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, &q->op);
	return 0;
}

/* Under the lock (dropped while parked): until w is taken off the list
   (0, or -EBADF from weft_close), or the wait is cancelled or times out. */
static int wait_turn(struct weft__fd_state *st, struct weft__fd_waiter *w)
{
	w->waker = weft__waker_self(NULL);
	weft__dlist_push_head(&st->waiters, &w->link);
	w->linked = true;
	pthread_mutex_unlock(&st->lock);
	for (;;) {
		weft__block(NULL, WEFT__WAIT_ACCEPT, st, 0);
		pthread_mutex_lock(&st->lock);
		if (!w->linked)
			return w->result;
		int rc = weft__wait_check();
		if (rc) {
			weft__dlist_unlink(&st->waiters, &w->link);
			w->linked = false;
			weft__waker_drop(w->waker);
			return rc;
		}
		pthread_mutex_unlock(&st->lock); /* a stale wake-up */
	}
}

static int take_connection(int fd, struct weft__fd_state *st)
{
	struct weft__fd_waiter w = {.interest = EPOLLIN};
	struct weft__waker woken[WAKE_BATCH];
	pthread_mutex_lock(&st->lock);
	if (!st->acceptq && !(st->acceptq = calloc(1, sizeof *st->acceptq))) {
		pthread_mutex_unlock(&st->lock);
		return -ENOMEM;
	}
	struct weft__acceptq *q = st->acceptq;
	int rc;
	for (;;) {
		if (st->closing) {
			rc = -EBADF;
			break;
		}
		if ((rc = weft__accept_take_queued(st)) != -EAGAIN)
			break;
		if (!q->armed) {
			q->armed = true;
			q->gen = st->gen;
			pthread_mutex_unlock(&st->lock);
			rc = arm(fd, q);
			pthread_mutex_lock(&st->lock);
			if (rc < 0) {
				/* Not armed after all: others waiting try themselves. */
				q->armed = false;
				size_t n = take_acceptors(st, woken, WAKE_BATCH);
				pthread_mutex_unlock(&st->lock);
				wake(woken, n);
				return rc;
			}
			continue;
		}
		if ((rc = wait_turn(st, &w)) < 0)
			break;
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int weft__uring_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	struct weft__fd_state *st = weft__fd_state(fd);
	if (!st)
		return fd < 0 ? -EBADF : -ENOMEM;
	int c = take_connection(fd, st);
	if (c >= 0 && addr && len && getpeername(c, addr, len) < 0)
		*len = 0; /* reset already: the connection is still the caller's */
	return c;
}

#endif
