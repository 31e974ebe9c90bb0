/*
 * Lent receive buffers (internal): the per-thread pool behind
 * weft_recv_buf, so a connection waiting for data owns no buffer.
 *
 * Each worker thread has one pool, made at its first weft_recv_buf: a
 * reserved, untouched mapping of WEFT__BUFS_MAX buffers of WEFT_BUF_SIZE
 * bytes, of which the first `carved` are in circulation (grown
 * WEFT__BUFS_GROW at a time when all are out). A buffer is free, lent
 * (a weft_buf names it), or on its way home.
 *
 * On io_uring (where the kernel has buffer rings, 5.19+) the free buffers
 * are in a ring registered with the thread's io_uring as buffer group 0,
 * and a receive picks one only when data arrives (IOSQE_BUFFER_SELECT). On
 * epoll, or a ring without buffer rings, they are on a free stack, taken
 * only once the socket is readable and put back if the receive found
 * nothing.
 *
 * Only the owner thread touches the buffer ring and the free stack. A
 * buffer released on another thread (its task migrated, or a plain thread
 * got it) is pushed onto the pool's lock-free return stack, linked through
 * the buffer's own first bytes; the owner takes the whole stack back at its
 * periodic I/O poll and whenever it runs out. So no task is pinned while it
 * holds a buffer.
 *
 * Beyond WEFT__BUFS_MAX lent at once on one thread, a receive lends a
 * malloc'd buffer instead (pool NULL), freed at release.
 */
#ifndef WEFT_IO_BUFS_H
#define WEFT_IO_BUFS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <weft/io.h>

#define WEFT__BUFS_MAX 1024 /* per thread: 4 MiB reserved, touched as used */
#define WEFT__BUFS_GROW 64
#define WEFT__BUFS_GROUP 0 /* the buffer group id in each ring */

struct weft__ring;

struct weft__bufs {
	char *mem; /* WEFT__BUFS_MAX * WEFT_BUF_SIZE bytes, NULL until first use */
	unsigned carved;
	bool in_ring; /* free buffers are in the io_uring buffer ring */
	void *br;     /* struct io_uring_buf_ring * when in_ring */
	unsigned nfree;
	uint16_t free_ids[WEFT__BUFS_MAX];
	_Atomic(char *) returns; /* released elsewhere: a stack through the buffers */
};

/* Prepares the calling worker thread's pool on first use; ring is its
   active io_uring or NULL. -ENOMEM when the reservation fails. */
int weft__bufs_open(struct weft__bufs *p, struct weft__ring *ring);

/* Unmaps the pool (after its thread ended; the ring is gone already). */
void weft__bufs_close(struct weft__bufs *p);

/* Free-stack pools: a free buffer (carving more, taking returns in first
   when none is left); -1 when all WEFT__BUFS_MAX are lent. Owner only. */
int weft__bufs_take(struct weft__bufs *p);

/* Ring pools: more buffers into the ring after the kernel found it empty
   (-ENOBUFS); false when all WEFT__BUFS_MAX are out already. Owner
   only. */
bool weft__bufs_refill_ring(struct weft__bufs *p);

static inline char *weft__bufs_data(struct weft__bufs *p, unsigned id)
{
	return p->mem + (size_t)id * WEFT_BUF_SIZE;
}

/* Gives buffer id back: at once on the owner thread, else through the
   return stack. Any thread. */
void weft__bufs_give_back(struct weft__bufs *p, unsigned id);

/* Takes back what other threads returned; a load when nothing was. Owner
   only. */
void weft__bufs_take_returns(struct weft__bufs *p);

static inline void weft__bufs_poll(struct weft__bufs *p)
{
	if (atomic_load_explicit(&p->returns, memory_order_relaxed))
		weft__bufs_take_returns(p);
}

/* The pool of the worker thread the calling task runs on, made on first
   use; NULL on plain threads and blocking jobs, or when it cannot be made
   (recv_buf.c). */
struct weft__bufs *weft__bufs_current(void);

/* weft_recv_buf into a malloc'd buffer: where there is no pool, or all its
   buffers are lent. */
ssize_t weft__recv_heap_buf(int fd, weft_buf *b);

#endif
