/*
 * Socket and fd operations on the readiness backend: each is tried without
 * blocking, and on EAGAIN the caller waits for readiness (fdtable.c) and
 * tries again. Checks come first: a cancelled task's call takes no effect.
 *
 * Blocking descriptors the caller gave us: recv/send-style calls pass
 * MSG_DONTWAIT, which works whatever the fd's mode; calls without such a
 * flag (read, accept, ...) on a blocking fd wait for readiness first, so
 * they block the worker only if another reader takes the data in between.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <weft/io.h>
#include <weft/net.h>

#include "../runtime/tls.h"
#include "../runtime/wait.h"
#include "accept.h"
#include "fdtable.h"
#include "uring_ops.h"

/* The check every call makes before it takes effect. */
static int enter(void)
{
	return weft__tls()->task ? weft__wait_enter() : weft__wait_check();
}

/* Whether fd is in blocking mode (remembered in its state for fds the
   runtime knows). */
static bool is_blocking(int fd)
{
	struct weft__fd_state *st = weft__fd_state(fd);
	if (st && weft__fd_kind(st, fd) >= 0)
		return !atomic_load_explicit(&st->nonblock, memory_order_relaxed);
	int fl = fcntl(fd, F_GETFL);
	return fl >= 0 && !(fl & O_NONBLOCK);
}

static bool would_block(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK;
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	WEFT__ON_RING(weft__uring_accept(fd, addr, len));
	int rc = enter();
	if (rc)
		return rc;
	/* Connections a multishot accept queued for tasks come first. */
	if ((rc = weft__accept_queued(fd)) != -EAGAIN)
		return rc;
	if (is_blocking(fd)) {
		/* accept4 would block the worker: wait first -- unless fd is no
		   listener at all, which accept4 reports at once. */
		int listening = 0;
		socklen_t l = sizeof listening;
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) < 0)
			return -errno;
		if (!listening)
			return -EINVAL;
		if ((rc = weft__fd_wait(fd, EPOLLIN)) < 0)
			return rc;
	}
	for (;;) {
		int c = accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c >= 0)
			return c;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (!would_block(errno))
			return -errno;
		if ((rc = weft__fd_wait(fd, EPOLLIN)) < 0)
			return rc;
	}
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	WEFT__ON_RING(weft__uring_connect(fd, addr, len));
	int rc = enter();
	if (rc)
		return rc;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (connect(fd, addr, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return -errno;
	for (;;) {
		if ((rc = weft__fd_wait(fd, EPOLLOUT)) < 0)
			return rc;
		int err = 0;
		socklen_t l = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			return -errno;
		if (err)
			return -err;
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT))
			return 0; /* connected */
	}
}

ssize_t weft_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                      socklen_t *addrlen)
{
	WEFT__ON_RING(weft__uring_recvfrom(fd, buf, len, flags, addr, addrlen));
	int rc = enter();
	if (rc)
		return rc;
	/* MSG_DONTWAIT would cut MSG_WAITALL short: gather the rest here. */
	bool all = (flags & MSG_WAITALL) && !(flags & MSG_DONTWAIT);
	size_t got = 0;
	for (;;) {
		ssize_t n = recvfrom(fd, (char *)buf + got, len - got, flags | MSG_DONTWAIT, addr,
		                     addrlen);
		if (n > 0 && all && (got += (size_t)n) < len)
			continue;
		if (n >= 0)
			return all ? (ssize_t)got : n;
		if (errno == EINTR)
			continue;
		if (!would_block(errno))
			return got ? (ssize_t)got : -errno;
		if ((rc = weft__fd_wait(fd, EPOLLIN)) < 0)
			return got ? (ssize_t)got : rc; /* a short count: some came in */
	}
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags)
{
	return weft_recvfrom(fd, buf, len, flags, NULL, NULL);
}

ssize_t weft_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                    socklen_t addrlen)
{
	WEFT__ON_RING(weft__uring_sendto(fd, buf, len, flags, addr, addrlen));
	int rc = enter();
	if (rc)
		return rc;
	for (;;) {
		ssize_t n =
		        sendto(fd, buf, len, flags | MSG_DONTWAIT | MSG_NOSIGNAL, addr, addrlen);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (!would_block(errno))
			return -errno;
		if ((rc = weft__fd_wait(fd, EPOLLOUT)) < 0)
			return rc;
	}
}

ssize_t weft_send(int fd, const void *buf, size_t len, int flags)
{
	return weft_sendto(fd, buf, len, flags, NULL, 0);
}

ssize_t weft_send_all(int fd, const void *buf, size_t len)
{
	WEFT__ON_RING(weft__uring_send_all(fd, buf, len));
	int rc = enter();
	if (rc)
		return rc;
	size_t sent = 0;
	while (sent < len) {
		ssize_t n =
		        send(fd, (const char *)buf + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0) {
			sent += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (!would_block(errno))
			return sent ? (ssize_t)sent : -errno;
		if ((rc = weft__fd_wait(fd, EPOLLOUT)) < 0)
			return sent ? (ssize_t)sent : rc; /* a short count: some went out */
	}
	return (ssize_t)sent;
}

int weft_shutdown(int fd, int how)
{
	return shutdown(fd, how) == 0 ? 0 : -errno;
}

int weft_close(int fd)
{
	return weft__fd_close(fd);
}

int weft_wait_fd(int fd, short events)
{
	if (!(events & (POLLIN | POLLOUT)))
		return -EINVAL;
	WEFT__ON_RING(weft__uring_wait_fd(fd, events));
	int rc = enter();
	if (rc)
		return rc;
	uint32_t interest = (events & POLLIN ? EPOLLIN : 0) | (events & POLLOUT ? EPOLLOUT : 0);
	for (;;) {
		/* Level first: a library may not have drained what it waits on. */
		struct pollfd p = {.fd = fd, .events = (short)(events & (POLLIN | POLLOUT))};
		if (poll(&p, 1, 0) == 1) {
			if (p.revents & POLLNVAL)
				return -EBADF;
			if (p.revents & (POLLERR | POLLHUP))
				p.revents |= p.events;
			if (p.revents & p.events)
				return p.revents & (p.events | POLLERR | POLLHUP);
		}
		if ((rc = weft__fd_wait(fd, interest)) < 0)
			return rc;
	}
}

/* ------------------------------------------------------------------- TCP */

static int open_socket(const struct addrinfo *a)
{
	int fd =
	        socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
	return fd < 0 ? -errno : fd;
}

static int resolve(const char *host, uint16_t port, int flags, struct addrinfo **res)
{
	char service[8];
	snprintf(service, sizeof service, "%u", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = flags};
	return weft_getaddrinfo(host, service, &hints, res);
}

int weft_tcp_listen(const char *host, uint16_t port, int backlog)
{
	struct addrinfo *res;
	int rc = resolve(host, port, AI_PASSIVE, &res);
	if (rc)
		return rc;
	rc = -EADDRNOTAVAIL;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = open_socket(a);
		if (fd < 0) {
			rc = fd;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 &&
		    listen(fd, backlog > 0 ? backlog : SOMAXCONN) == 0) {
			freeaddrinfo(res);
			return fd;
		}
		rc = -errno;
		close(fd);
	}
	freeaddrinfo(res);
	return rc;
}

int weft_tcp_connect(const char *host, uint16_t port)
{
	if (!host)
		return -EINVAL;
	struct addrinfo *res;
	int rc = resolve(host, port, 0, &res);
	if (rc)
		return rc;
	rc = -ECONNREFUSED;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = open_socket(a);
		if (fd < 0) {
			rc = fd;
			continue;
		}
		rc = weft_connect(fd, a->ai_addr, a->ai_addrlen);
		if (rc == 0) {
			freeaddrinfo(res);
			return fd;
		}
		weft_close(fd);
		if (rc == -ECANCELED || rc == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return rc;
}
