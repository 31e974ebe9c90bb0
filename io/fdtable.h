/*
 * The readiness of file descriptors (internal): one state per fd number, the
 * tasks waiting on it, and what close does to them.
 *
 * The epoll backend: an operation is tried first without blocking; only
 * when it would block does the task wait for readiness, then it tries
 * again. A wait arms the fd in an epoll with EPOLLONESHOT for what its
 * waiters want (level-triggered: readiness that arrived between the failed
 * try and the arm still fires at once, so no edge is lost), and the event
 * wakes the waiters it concerns and re-arms for the rest. Re-arming on each
 * wait costs an epoll_ctl, but survives an fd that a foreign library closed
 * behind weft's back and whose number came back: the re-arm of a gone
 * registration fails with ENOENT and adds the new file instead. Waiting
 * consumes nothing, so a cancelled or timed-out wait loses no data.
 *
 * An fd joins the epoll of the worker that first waits on it and stays
 * there until weft_close; events for it are handled by that worker.
 *
 * The table is the process's, as fd numbers are: weft_close from any
 * thread wakes the waiters of every runtime. States are never freed (chunks
 * of WEFT__FD_CHUNK, reachable from a static table), because a worker may be
 * handling an event for an fd that another thread closes. An event carries the fd and the state's
 * generation, which close bumps: an event for a closed and reused fd number is dropped.
 *
 * On the io_uring backend an operation is one SQE, which the state's list
 * of uops records while it is in flight.
 *
 * Close (weft__fd_close): the state is marked closing, leaves its epoll,
 * every waiter is woken with -EBADF and every uop is cancelled; then the fd is closed, still under
 * the state's lock, so the number's next owner cannot start a wait before
 * the state is reset. It is not a wait and cannot be interrupted. A wait
 * that starts while the close is under way also gets -EBADF.
 */
#ifndef WEFT_IO_FDTABLE_H
#define WEFT_IO_FDTABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../runtime/list.h"
#include "../runtime/task.h"

#define WEFT__FD_CHUNK 1024
#define WEFT__FD_CHUNKS 1024 /* fds below 2^20 */

enum { WEFT__FD_UNKNOWN, WEFT__FD_POLLABLE, WEFT__FD_FILE };

struct weft_runtime;

/* A task waiting for readiness; lives on the task's stack. */
struct weft__fd_waiter {
	struct weft__dlink link; /* in its state's waiters */
	uint32_t interest;       /* EPOLLIN and/or EPOLLOUT */
	struct weft__waker waker;
	int result;  /* 0: ready; -EBADF: closed */
	bool linked; /* on its state's list */
};

struct weft__fd_state {
	pthread_mutex_t lock;
	uint32_t gen;                 /* bumped by close */
	int epfd;                     /* the epoll it is in, or -1 */
	_Atomic unsigned *epfd_count; /* that poller's count of fds */
	uint8_t kind;                 /* WEFT__FD_*, found at first use */
	_Atomic bool nonblock; /* O_NONBLOCK was set when its kind was found (read unlocked) */
	bool closing;
	struct weft__dlist waiters;    /* readiness waits (epoll); acceptors (io_uring) */
	struct weft__dlist uops;       /* operations in flight on an io_uring */
	struct weft__acceptq *acceptq; /* a listener's multishot accept (accept.h) */
};

/* The state of fd, created on first use; NULL for a negative or too large
   fd, or out of memory. */
struct weft__fd_state *weft__fd_state(int fd);

static inline uint64_t weft__fd_event_data(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

/* What a poller calls for an epoll event (data as registered). */
void weft__fdtable_event(uint64_t data, uint32_t events);

/* A poller's epoll is going away: fds registered in it are registered
   afresh at their next wait. */
void weft__fdtable_forget_epoll(int epfd);

/* The kind of fd (a regular file or block device cannot be polled), found
   with fstat at the first call and remembered; -errno for a bad fd. */
int weft__fd_kind(struct weft__fd_state *st, int fd);

/* Waits until fd may be ready for interest (EPOLLIN/EPOLLOUT): a wait, from
   a task (parks) or a plain thread (poll(2)). 0: try the operation again;
   -EBADF if fd was closed meanwhile (or is bad); -ECANCELED, -ETIMEDOUT;
   -EPERM for an fd that cannot be polled; -ENOMEM. */
int weft__fd_wait(int fd, uint32_t interest);

struct weft__uop;

/* Puts an io_uring operation on fd's list before its SQE is prepared, so
   that weft_close finds it: -EBADF if fd is being closed (or negative),
   -ENOMEM. */
int weft__fd_track(int fd, struct weft__uop *op);

/* Takes op off its fd's list once it completed; true if fd was closed
   meanwhile. */
bool weft__fd_untrack(struct weft__uop *op);

/* weft_close: wakes fd's readiness waiters with -EBADF and cancels the
   io_uring operations on it (their tasks get -EBADF), then closes it. An
   operation prepared on another worker's ring but not yet submitted is
   waited for: submitted after the close, it would find the fd number's next
   owner. */
int weft__fd_close(int fd);

#endif
