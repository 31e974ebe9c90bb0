/*
 * weft_recv_buf / weft_buf_release: receiving into lent buffers (bufs.h).
 *
 * A task on a worker borrows from its thread's pool: on a ring with a
 * buffer ring, the kernel picks the buffer when data arrives
 * (weft__uring_recv_buf); otherwise the task first waits for readability
 * holding nothing, then takes a free buffer and receives without blocking,
 * giving the buffer back if another reader got there first. Plain threads
 * and blocking jobs, which have no pool, receive into a malloc'd buffer.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <weft/io.h>

#include "../runtime/tls.h"
#include "../runtime/wait.h"
#include "../runtime/worker.h"
#include "bufs.h"
#include "fdtable.h"
#include "uring_ops.h"

static void lend(weft_buf *b, struct weft__bufs *p, unsigned id, char *data, size_t n)
{
	b->data = data;
	b->len = n;
	b->priv_pool = p;
	b->priv_id = id;
}

struct weft__bufs *weft__bufs_current(void)
{
	struct weft__tls *tls = weft__tls();
	if (!tls->task || !tls->thread)
		return NULL;
	struct weft__bufs *p = &tls->thread->bufs;
	return weft__bufs_open(p, weft__ring_current()) == 0 ? p : NULL;
}

ssize_t weft__recv_heap_buf(int fd, weft_buf *b)
{
	char *data = malloc(WEFT_BUF_SIZE);
	if (!data)
		return -ENOMEM;
	ssize_t n = weft_recv(fd, data, WEFT_BUF_SIZE, 0);
	if (n > 0)
		lend(b, NULL, 0, data, (size_t)n);
	else
		free(data);
	return n;
}

static int wait_readable(int fd)
{
#ifdef WEFT_HAVE_URING
	if (weft__ring_current()) {
		int m = weft__uring_poll_fd(fd, POLLIN);
		return m < 0 ? m : 0;
	}
#endif
	return weft__fd_wait(fd, EPOLLIN);
}

/* The free-stack pools: readable first, then a buffer. */
static ssize_t recv_when_readable(int fd, weft_buf *b)
{
	for (;;) {
		struct weft__bufs *p = weft__bufs_current();
		if (!p)
			return weft__recv_heap_buf(fd, b);
		int id = weft__bufs_take(p);
		if (id < 0)
			return weft__recv_heap_buf(fd, b); /* all lent */
		char *data = weft__bufs_data(p, (unsigned)id);
		ssize_t n = recv(fd, data, WEFT_BUF_SIZE, MSG_DONTWAIT);
		int err = errno;
		if (n > 0) {
			lend(b, p, (unsigned)id, data, (size_t)n);
			return n;
		}
		weft__bufs_give_back(p, (unsigned)id);
		if (n == 0)
			return 0;
		if (err == EINTR)
			continue;
		if (err != EAGAIN && err != EWOULDBLOCK)
			return -err;
		int rc = wait_readable(fd);
		if (rc < 0)
			return rc;
	}
}

ssize_t weft_recv_buf(int fd, weft_buf *b)
{
	if (!b)
		return -EINVAL;
	*b = (weft_buf){0};
	struct weft__bufs *p = weft__bufs_current();
	if (!p)
		return weft__recv_heap_buf(fd, b);
	int rc = weft__wait_enter();
	if (rc)
		return rc;
#ifdef WEFT_HAVE_URING
	if (p->in_ring)
		return weft__uring_recv_buf(fd, b);
#endif
	return recv_when_readable(fd, b);
}

void weft_buf_release(weft_buf *b)
{
	if (!b || !b->data)
		return;
	struct weft__bufs *p = b->priv_pool;
	if (p)
		weft__bufs_give_back(p, b->priv_id);
	else
		free(b->data);
	*b = (weft_buf){0};
}
