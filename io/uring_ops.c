/*
 * The I/O calls on the io_uring backend: each is one SQE on the ring of the
 * worker the calling task runs on (ring.h), awaited as a wait.
 *
 * Every call is tracked on its fd's list while in flight, so weft_close
 * cancels it (the call then returns -EBADF). An operation the kernel
 * reports as -EAGAIN (a file it cannot wait on without blocking, or
 * MSG_DONTWAIT semantics it chose) waits for readiness with a poll SQE
 * and is tried again, unless the caller asked for MSG_DONTWAIT itself.
 */
#include "uring_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>

#include "../runtime/wait.h"
#include "../runtime/worker.h"
#include "bufs.h"
#include "fdtable.h"
#include "ring.h"

/* An SQE for op on the current ring, op on fd's list (fd < 0: no fd to
   track). The SQE is reserved first -- reserving may submit, which must not
   happen while op is published but its SQE not yet written -- and op is
   published before the SQE can reach the kernel. NULL with *err set when
   fd is closing or the queue stays full. */
static struct io_uring_sqe *begin(struct weft__uop *op, int fd, int *err)
{
	struct weft__ring *r = weft__ring_current();
	struct io_uring_sqe *sqe = weft__ring_prep(r, op, fd);
	if (!sqe) {
		*err = -EBUSY;
		return NULL;
	}
	if (fd >= 0 && (*err = weft__fd_track(fd, op)) < 0) {
		weft__ring_unprep(r, sqe, op);
		return NULL;
	}
	return sqe;
}

/* Awaits op, whose SQE the caller filled in, and says what the call
   returns. */
static int finish(struct io_uring_sqe *sqe, struct weft__uop *op)
{
	io_uring_sqe_set_data(sqe, op);
	int rc = weft__ring_wait(op, sqe->opcode);
	bool closed = op->fd >= 0 && weft__fd_untrack(op);
	if (op->res != -ECANCELED)
		return op->res; /* it took effect (or failed) before any cancel */
	if (closed)
		return -EBADF;
	return rc ? rc : -ECANCELED;
}

/* The check every call makes before it takes effect. */
#define ENTER()                                                                                    \
	do {                                                                                       \
		int enter_rc = weft__wait_enter();                                                 \
		if (enter_rc)                                                                      \
			return enter_rc;                                                           \
	} while (0)

int weft__uring_poll_fd(int fd, uint32_t events)
{
	struct weft__uop op;
	int err;
	struct io_uring_sqe *sqe = begin(&op, fd, &err);
	if (!sqe)
		return err;
	io_uring_prep_poll_add(sqe, fd, events);
	return finish(sqe, &op);
}

int weft__uring_wait_fd(int fd, short events)
{
	ENTER();
	int m = weft__uring_poll_fd(fd, (uint32_t)(events & (POLLIN | POLLOUT)));
	if (m < 0)
		return m;
	if (m & (POLLERR | POLLHUP))
		m |= events & (POLLIN | POLLOUT);
	return m & (events | POLLERR | POLLHUP);
}

/* After an -EAGAIN the kernel would not wait out itself. */
static int wait_ready(int fd, uint32_t events)
{
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	rc = weft__uring_poll_fd(fd, events);
	return rc < 0 ? rc : 0;
}

int weft__uring_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	ENTER();
	struct weft__uop op;
	int err;
	struct io_uring_sqe *sqe = begin(&op, fd, &err);
	if (!sqe)
		return err;
	io_uring_prep_connect(sqe, fd, addr, len);
	return finish(sqe, &op);
}

/* recv/send, or recvmsg/sendmsg when an address is given (*addrlen is
   in/out for a receive, in for a send). */
static ssize_t sock_io(bool send, int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                       socklen_t *addrlen)
{
	ENTER();
	if (send)
		flags |= MSG_NOSIGNAL;
	for (;;) {
		struct iovec iov = {buf, len};
		struct msghdr msg = {.msg_name = addr,
		                     .msg_namelen = addr && addrlen ? *addrlen : 0,
		                     .msg_iov = &iov,
		                     .msg_iovlen = 1};
		struct weft__uop op;
		int err;
		struct io_uring_sqe *sqe = begin(&op, fd, &err);
		if (!sqe)
			return err;
		if (addr && send)
			io_uring_prep_sendmsg(sqe, fd, &msg, (unsigned)flags);
		else if (addr)
			io_uring_prep_recvmsg(sqe, fd, &msg, (unsigned)flags);
		else if (send)
			io_uring_prep_send(sqe, fd, buf, len, flags);
		else
			io_uring_prep_recv(sqe, fd, buf, len, flags);
		int n = finish(sqe, &op);
		if (n >= 0 && !send && addr && addrlen)
			*addrlen = msg.msg_namelen;
		if (n == -EINTR)
			continue;
		if (n != -EAGAIN || (flags & MSG_DONTWAIT))
			return n;
		if ((err = wait_ready(fd, send ? POLLOUT : POLLIN)) < 0)
			return err;
	}
}

ssize_t weft__uring_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                             socklen_t *addrlen)
{
	return sock_io(false, fd, buf, len, flags, addr, addrlen);
}

ssize_t weft__uring_sendto(int fd, const void *buf, size_t len, int flags,
                           const struct sockaddr *addr, socklen_t addrlen)
{
	return sock_io(true, fd, (void *)buf, len, flags, (struct sockaddr *)addr, &addrlen);
}

ssize_t weft__uring_send_all(int fd, const void *buf, size_t len)
{
	size_t sent = 0;
	do {
		ssize_t n =
		        weft__uring_sendto(fd, (const char *)buf + sent, len - sent, 0, NULL, 0);
		if (n < 0)
			return sent ? (ssize_t)sent : n; /* a short count: some went out */
		sent += (size_t)n;
	} while (sent < len);
	return (ssize_t)sent;
}

/* The pool whose buffer a completion of op picked, and that buffer. */
static struct weft__bufs *picked(const struct weft__uop *op, unsigned *id)
{
	*id = op->cqe_flags >> IORING_CQE_BUFFER_SHIFT;
	return &weft__container_of(op->ring, struct weft__thread, ring)->bufs;
}

ssize_t weft__uring_recv_buf(int fd, weft_buf *b)
{
	for (;;) {
		struct weft__bufs *p = weft__bufs_current();
		if (!p || !p->in_ring)
			return weft__recv_heap_buf(fd, b); /* moved to a worker without */
		struct weft__uop op;
		int err;
		struct io_uring_sqe *sqe = begin(&op, fd, &err);
		if (!sqe)
			return err;
		io_uring_prep_recv(sqe, fd, NULL, WEFT_BUF_SIZE, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = WEFT__BUFS_GROUP;
		int n = finish(sqe, &op);
		if (op.cqe_flags & IORING_CQE_F_BUFFER) {
			unsigned id;
			struct weft__bufs *from = picked(&op, &id);
			if (n > 0) {
				b->data = weft__bufs_data(from, id);
				b->len = (size_t)n;
				b->priv_pool = from;
				b->priv_id = id;
				return n;
			}
			weft__bufs_give_back(from, id);
		}
		if (n == -ENOBUFS) {
			/* The ring ran dry: more buffers, or a heap one. */
			if (op.ring != weft__ring_current() || weft__bufs_refill_ring(p))
				continue;
			return weft__recv_heap_buf(fd, b);
		}
		if (n == -EINTR)
			continue;
		if (n != -EAGAIN)
			return n;
		if ((err = wait_ready(fd, POLLIN)) < 0)
			return err;
	}
}

ssize_t weft__uring_rw(bool write, int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
	ENTER();
	for (;;) {
		struct weft__uop op;
		int err;
		struct io_uring_sqe *sqe = begin(&op, fd, &err);
		if (!sqe)
			return err;
		/* -1: the file position (or a stream's next bytes). */
		uint64_t off = offset < 0 ? (uint64_t)-1 : (uint64_t)offset;
		if (write)
			io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, off);
		else
			io_uring_prep_readv(sqe, fd, iov, (unsigned)iovcnt, off);
		int n = finish(sqe, &op);
		if (n == -EINTR)
			continue;
		if (n != -EAGAIN)
			return n;
		if ((err = wait_ready(fd, write ? POLLOUT : POLLIN)) < 0)
			return err;
	}
}

int weft__uring_open(const char *path, int flags, mode_t mode)
{
	ENTER();
	struct weft__uop op;
	int err;
	struct io_uring_sqe *sqe = begin(&op, -1, &err);
	if (!sqe)
		return err;
	io_uring_prep_openat(sqe, AT_FDCWD, path, flags | O_CLOEXEC, mode);
	return finish(sqe, &op);
}

int weft__uring_fsync(int fd)
{
	ENTER();
	struct weft__uop op;
	int err;
	struct io_uring_sqe *sqe = begin(&op, fd, &err);
	if (!sqe)
		return err;
	io_uring_prep_fsync(sqe, fd, 0);
	return finish(sqe, &op);
}
