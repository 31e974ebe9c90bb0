/*
 * weft I/O on file descriptors: sockets, pipes, files.
 *
 * Every call that may wait is a wait (weft.h): from a task it parks the task
 * (never the worker), checks cancellation and the deadline scope first
 * (-ECANCELED, -ETIMEDOUT, taking no effect), and once its operation took
 * effect returns its result. Called from a plain thread (or a blocking job)
 * it blocks the thread, honouring the thread's deadline scope.
 *
 * A cancelled or timed-out call has transferred nothing: data is never lost
 * to a cancellation. Calls return a count or fd, or a negative errno: the
 * system call's own errors (-ECONNRESET, -EPIPE, -EMFILE, ...), -EBADF when
 * the fd is closed with weft_close() while the call waits on it.
 *
 * Descriptors stay ordinary file descriptors. weft sets O_NONBLOCK on the
 * ones it creates and copes with blocking descriptors it is given. Close
 * descriptors that tasks wait on with weft_close(), which wakes them.
 *
 * Backend (weft_runtime_new, docs/io.md): io_uring where it works -- each
 * call one SQE on the ring of the worker the task runs on, files included
 * -- else epoll, readiness per worker, with regular files read and written
 * on the blocking pool. Same guarantees on both.
 */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Accepts a connection (the new fd is non-blocking and close-on-exec).
   addr/len may be NULL. -EMFILE/-ENFILE when out of descriptors (the
   listening socket stays usable). */
int weft_accept(int fd, struct sockaddr *addr, socklen_t *len);

/* Connects fd (made non-blocking if it was not) and waits for the result:
   0 or the connection error (-ECONNREFUSED, ...). Cancelled or timed out,
   the connection attempt is abandoned: close fd. */
int weft_connect(int fd, const struct sockaddr *addr, socklen_t len);

/* recv/send: at most len bytes, as the system calls (flags as theirs; 0 at
   end of stream). recv with MSG_WAITALL waits for all len bytes; stopped
   after some arrived (end of stream, an error, a cancellation, a deadline)
   it returns that short count. */
ssize_t weft_recv(int fd, void *buf, size_t len, int flags);
ssize_t weft_send(int fd, const void *buf, size_t len, int flags);
ssize_t weft_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                      socklen_t *addrlen);
ssize_t weft_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                    socklen_t addrlen);

/* Receives into a buffer the runtime lends, so that a connection waiting
   for data owns no memory (10,000 idle connections cost no 10,000
   buffers): the buffer is picked only when data arrives -- by the kernel
   from the worker's buffer ring on io_uring, once the socket is readable
   on epoll. On success returns n > 0 with buf->data pointing at the n
   bytes (n <= WEFT_BUF_SIZE, buf->len = n), valid until
   weft_buf_release(buf), which the task may call from any worker or
   thread; 0 at end of stream and a negative errno (as weft_recv) lend
   nothing. -EINVAL for a NULL buf. Each buffer lent must be released
   before the runtime is freed. Where the worker's 1,024 buffers are all
   lent, a malloc'd one is lent instead. */
#define WEFT_BUF_SIZE 4096
typedef struct weft_buf {
	char *data; /* the bytes received */
	size_t len; /* how many */
	void *priv_pool;
	unsigned priv_id;
} weft_buf;
ssize_t weft_recv_buf(int fd, weft_buf *buf);

/* Returns what weft_recv_buf lent (buf->data NULL: nothing) and clears
   buf. Not a wait. */
void weft_buf_release(weft_buf *buf);

/* Sends all len bytes (MSG_NOSIGNAL). Returns len; or, when an error,
   a cancellation or a deadline stops it after some bytes went out, that
   short count (the next call reports the error); or the error itself when
   nothing was sent. weft_send and weft_sendto add MSG_NOSIGNAL too. */
ssize_t weft_send_all(int fd, const void *buf, size_t len);

/* read/write (offset -1: the current position; else pread/pwrite). On a
   regular file they run on the blocking pool and are not interrupted once
   started: a cancellation arriving meanwhile is reported by the next wait. */
ssize_t weft_read(int fd, void *buf, size_t len, int64_t offset);
ssize_t weft_write(int fd, const void *buf, size_t len, int64_t offset);
ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset);

/* open(2) (O_CLOEXEC added) and fsync(2) on the blocking pool. */
int weft_open(const char *path, int flags, mode_t mode);
int weft_fsync(int fd);

/* Closes fd; tasks waiting on it get -EBADF. Never interrupted, not a
   wait. */
int weft_close(int fd);

/* shutdown(2). */
int weft_shutdown(int fd, int how);

/* Waits until fd is ready for events (POLLIN and/or POLLOUT) and returns
   which of them are ready (a positive mask; POLLHUP/POLLERR count as both):
   the readiness wait for foreign libraries that do their own I/O. */
int weft_wait_fd(int fd, short events);

/* Waits until signal signo is delivered to the process (a wait; 0 once it
   arrived). The first call for a signal installs weft's handler for it for
   the rest of the process -- the signal no longer has its default effect,
   e.g. SIGINT no longer terminates -- and a delivery nobody waits for yet is
   kept for the next call. Each delivery ends one call. -EINVAL for signals
   that cannot be caught or are synchronous (SIGKILL, SIGSTOP, SIGSEGV,
   SIGBUS, SIGILL, SIGFPE). For graceful shutdown on SIGINT/SIGTERM. */
int weft_signal_wait(int signo);

#ifdef __cplusplus
}
#endif

#endif
