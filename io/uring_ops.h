/*
 * The I/O calls on the io_uring backend (internal; uring_ops.c). The public
 * calls (net.c, file.c) hand over to these when the calling task runs on a
 * worker with a ring (WEFT__ON_RING); plain threads, blocking jobs and
 * epoll workers keep the readiness path.
 */
#ifndef WEFT_IO_URING_OPS_H
#define WEFT_IO_URING_OPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <weft/io.h>

#ifdef WEFT_HAVE_URING
#include "ring.h"

#define WEFT__ON_RING(call)                                                                        \
	do {                                                                                       \
		if (weft__ring_current())                                                          \
			return call;                                                               \
	} while (0)

int weft__uring_poll_fd(int fd, uint32_t events);
int weft__uring_wait_fd(int fd, short events);
/* accept.c: through the listener's multishot accept */
int weft__uring_accept(int fd, struct sockaddr *addr, socklen_t *len);
int weft__uring_connect(int fd, const struct sockaddr *addr, socklen_t len);
ssize_t weft__uring_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                             socklen_t *addrlen);
ssize_t weft__uring_sendto(int fd, const void *buf, size_t len, int flags,
                           const struct sockaddr *addr, socklen_t addrlen);
ssize_t weft__uring_send_all(int fd, const void *buf, size_t len);
ssize_t weft__uring_rw(bool write, int fd, const struct iovec *iov, int iovcnt, int64_t offset);
/* weft_recv_buf on a ring whose pool is in its buffer ring (bufs.h). */
ssize_t weft__uring_recv_buf(int fd, weft_buf *b);
int weft__uring_open(const char *path, int flags, mode_t mode);
int weft__uring_fsync(int fd);
#else
#define WEFT__ON_RING(call)                                                                        \
	do {                                                                                       \
	} while (0)
#endif

#endif
