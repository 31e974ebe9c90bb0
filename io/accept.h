/*
 * Multishot accept (internal; io_uring backend): one armed accept per
 * listening socket, whose connections queue on the socket's fd state.
 *
 * The first weft_accept on a listener arms an IORING_OP_ACCEPT with
 * IORING_ACCEPT_MULTISHOT on the ring of the worker it runs on. From then
 * on every connection the kernel accepts is a CQE on that ring; its reap
 * queues the new fd on the listener's state and wakes the longest-waiting
 * acceptor, which may run on any worker: accepted fds are plain
 * descriptors, so neither the listener's tasks nor the connections are
 * pinned. The multishot stays armed between calls -- a server's accept
 * loop costs no SQE per connection -- until the kernel ends it (an error
 * such as EMFILE, which the next acceptor gets, then re-arms), the queue
 * reaches ACCEPT_QUEUE_MAX unclaimed connections (it is cancelled, and
 * re-armed once the queue drained: the kernel's backlog holds the rest),
 * weft_close of the listener, or the end of its worker thread
 * (weft__ring_quiesce).
 *
 * All of it is under the fd state's lock. The acceptor that finds the
 * multishot idle marks it armed before it drops the lock to prepare the
 * SQE, so only one arms it; `gen` remembers the state's generation it was
 * armed in, and a completion for a generation that was closed meanwhile
 * closes the fd it carries. A cancelled or timed-out acceptor leaves its
 * place and takes nothing; a woken one takes what it was woken for, so a
 * connection is never left queued while an acceptor sleeps.
 *
 * weft_close of the listener closes the connections still queued, like the
 * kernel closes those in its backlog.
 */
#ifndef WEFT_IO_ACCEPT_H
#define WEFT_IO_ACCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"

struct weft__fd_state;

struct weft__acceptq {
	struct weft__uop op; /* the multishot accept, while armed */
	bool armed;          /* op is in a ring, until its on_idle */
	uint32_t gen;        /* the fd state's generation it was armed in */
	int *fds;            /* accepted fds, or -errno the kernel reported */
	size_t head, len, cap;
};

/* Under st's lock: the next queued connection (or error), or -EAGAIN when
   none is queued. */
int weft__accept_take_queued(struct weft__fd_state *st);

/* Under st's lock, from weft_close: closes every queued connection. */
void weft__accept_discard(struct weft__fd_state *st);

/* A queued connection for the readiness path's weft_accept (a plain
   thread accepting on a listener tasks accepted on), or -EAGAIN. */
int weft__accept_queued(int fd);

#endif
