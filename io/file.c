/*
 * read/write on any fd, open and fsync.
 *
 * Pollable fds (pipes, sockets, terminals) use readiness like the socket
 * calls. Regular files and block devices cannot be polled -- their reads
 * always "succeed" after blocking in the kernel -- so from a task these
 * calls run on the blocking pool, as open and fsync always do. The task
 * waits for the job shielded: the job uses the caller's buffer, so the call
 * must not return before the job is done. The operation is not interrupted
 * once started, and a cancellation arriving meanwhile is reported by the
 * next wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <weft/blocking.h>
#include <weft/io.h>
#include <weft/task.h>

#include "../runtime/tls.h"
#include "../runtime/wait.h"
#include "fdtable.h"
#include "uring_ops.h"

enum op { OP_READV, OP_WRITEV, OP_OPEN, OP_FSYNC };

struct file_op {
	enum op op;
	int fd;
	const struct iovec *iov;
	int iovcnt;
	int64_t offset;
	const char *path;
	int flags;
	mode_t mode;
};

static ssize_t run_op(const struct file_op *o)
{
	ssize_t r;
	do {
		switch (o->op) {
		case OP_READV:
			r = o->offset < 0 ? readv(o->fd, o->iov, o->iovcnt)
			                  : preadv(o->fd, o->iov, o->iovcnt, (off_t)o->offset);
			break;
		case OP_WRITEV:
			r = o->offset < 0 ? writev(o->fd, o->iov, o->iovcnt)
			                  : pwritev(o->fd, o->iov, o->iovcnt, (off_t)o->offset);
			break;
		case OP_OPEN:
			r = open(o->path, o->flags | O_CLOEXEC, o->mode);
			break;
		default:
			r = fsync(o->fd);
			break;
		}
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static void *op_job(void *arg)
{
	return (void *)(intptr_t)run_op(arg);
}

/* Runs o on the blocking pool from a task (directly from a plain thread or
   a job), after the checks of a wait. */
static ssize_t on_pool(const struct file_op *o)
{
	if (!weft__tls()->task) {
		int rc = weft__wait_check();
		return rc ? rc : run_op(o);
	}
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	weft_task *job = weft_spawn_blocking(op_job, (void *)o);
	if (!job)
		return weft_is_cancelled() ? -ECANCELED : -ENOMEM;
	void *r = NULL;
	weft_shield_push();
	weft_join(job, &r);
	weft_shield_pop();
	return (ssize_t)(intptr_t)r;
}

/* readv/writev on a pollable fd: without blocking, waiting for readiness
   in between (first, on a blocking fd). */
static ssize_t on_readiness(const struct file_op *o, bool blocking)
{
	uint32_t dir = o->op == OP_READV ? EPOLLIN : EPOLLOUT;
	int rc;
	if (blocking && (rc = weft__fd_wait(o->fd, dir)) < 0)
		return rc;
	for (;;) {
		ssize_t n = run_op(o);
		if (n != -EAGAIN && n != -EWOULDBLOCK)
			return n;
		if ((rc = weft__fd_wait(o->fd, dir)) < 0)
			return rc;
	}
}

static ssize_t rw(enum op op, int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
	WEFT__ON_RING(weft__uring_rw(op == OP_WRITEV, fd, iov, iovcnt, offset));
	struct file_op o = {.op = op, .fd = fd, .iov = iov, .iovcnt = iovcnt, .offset = offset};
	struct weft__fd_state *st = weft__fd_state(fd);
	int kind = st ? weft__fd_kind(st, fd) : -EBADF;
	if (kind < 0)
		return kind;
	if (kind == WEFT__FD_FILE)
		return on_pool(&o);
	int rc = weft__tls()->task ? weft__wait_enter() : weft__wait_check();
	return rc ? rc
	          : on_readiness(&o, !atomic_load_explicit(&st->nonblock, memory_order_relaxed));
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
	return rw(OP_READV, fd, iov, iovcnt, offset);
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
	return rw(OP_WRITEV, fd, iov, iovcnt, offset);
}

ssize_t weft_read(int fd, void *buf, size_t len, int64_t offset)
{
	struct iovec iov = {buf, len};
	return rw(OP_READV, fd, &iov, 1, offset);
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t offset)
{
	struct iovec iov = {(void *)buf, len};
	return rw(OP_WRITEV, fd, &iov, 1, offset);
}

int weft_open(const char *path, int flags, mode_t mode)
{
	if (!path)
		return -EINVAL;
	WEFT__ON_RING(weft__uring_open(path, flags, mode));
	struct file_op o = {.op = OP_OPEN, .path = path, .flags = flags, .mode = mode};
	return (int)on_pool(&o);
}

int weft_fsync(int fd)
{
	WEFT__ON_RING(weft__uring_fsync(fd));
	struct file_op o = {.op = OP_FSYNC, .fd = fd};
	return (int)on_pool(&o);
}
