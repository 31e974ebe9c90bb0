/*
 * Lent receive buffers: the pool of a worker thread (protocol in bufs.h).
 */
#include "bufs.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "../runtime/tls.h"
#include "../runtime/worker.h"
#include "ring.h"

static size_t ring_bytes(void)
{
#ifdef WEFT_HAVE_URING
	return WEFT__BUFS_MAX * sizeof(struct io_uring_buf);
#else
	return 0;
#endif
}

/* Registers a buffer ring with ring as group WEFT__BUFS_GROUP; false when the
   kernel has none (before 5.19) or refuses. */
static bool open_buffer_ring(struct weft__bufs *p, struct weft__ring *ring)
{
#ifdef WEFT_HAVE_URING
	void *br = mmap(NULL, ring_bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
	                0);
	if (br == MAP_FAILED)
		return false;
	io_uring_buf_ring_init(br);
	struct io_uring_buf_reg reg = {
	        .ring_addr = (uintptr_t)br,
	        .ring_entries = WEFT__BUFS_MAX,
	        .bgid = WEFT__BUFS_GROUP,
	};
	if (io_uring_register_buf_ring(&ring->uring, &reg, 0) != 0) {
		munmap(br, ring_bytes());
		return false;
	}
	p->br = br;
	p->in_ring = true;
	return true;
#else
	(void)p;
	(void)ring;
	return false;
#endif
}

static void ring_add(struct weft__bufs *p, unsigned id, int offset)
{
#ifdef WEFT_HAVE_URING
	io_uring_buf_ring_add(p->br, weft__bufs_data(p, id), WEFT_BUF_SIZE, (unsigned short)id,
	                      io_uring_buf_ring_mask(WEFT__BUFS_MAX), offset);
#else
	(void)p;
	(void)id;
	(void)offset;
#endif
}

static void ring_publish(struct weft__bufs *p, unsigned count)
{
#ifdef WEFT_HAVE_URING
	io_uring_buf_ring_advance(p->br, (int)count);
#else
	(void)p;
	(void)count;
#endif
}

/* Puts buffer ids [from, to) into circulation. */
static void carve(struct weft__bufs *p, unsigned to)
{
	unsigned from = p->carved;
	for (unsigned id = from; id < to; id++) {
		if (p->in_ring)
			ring_add(p, id, (int)(id - from));
		else
			p->free_ids[p->nfree++] = (uint16_t)id;
	}
	if (p->in_ring)
		ring_publish(p, to - from);
	p->carved = to;
}

int weft__bufs_open(struct weft__bufs *p, struct weft__ring *ring)
{
	if (p->mem)
		return 0;
	/* Reserved, not touched: a buffer costs memory once a receive wrote
	   into it. */
	void *mem = mmap(NULL, (size_t)WEFT__BUFS_MAX * WEFT_BUF_SIZE, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return -ENOMEM;
	p->mem = mem;
	p->carved = 0;
	p->nfree = 0;
	p->in_ring = false;
	atomic_init(&p->returns, NULL);
	if (ring)
		open_buffer_ring(p, ring);
	carve(p, WEFT__BUFS_GROW);
	return 0;
}

void weft__bufs_close(struct weft__bufs *p)
{
	if (!p->mem)
		return;
	munmap(p->mem, (size_t)WEFT__BUFS_MAX * WEFT_BUF_SIZE);
	if (p->in_ring)
		munmap(p->br, ring_bytes());
	memset(p, 0, sizeof *p);
}

static unsigned id_of(struct weft__bufs *p, const char *data)
{
	return (unsigned)((size_t)(data - p->mem) / WEFT_BUF_SIZE);
}

static char *next_of(const char *data)
{
	char *next;
	memcpy(&next, data, sizeof next);
	return next;
}

static void give_back_here(struct weft__bufs *p, unsigned id, int offset)
{
	if (p->in_ring)
		ring_add(p, id, offset);
	else
		p->free_ids[p->nfree++] = (uint16_t)id;
}

void weft__bufs_take_returns(struct weft__bufs *p)
{
	char *b = atomic_exchange_explicit(&p->returns, NULL, memory_order_acquire);
	unsigned n = 0;
	for (; b; b = next_of(b))
		give_back_here(p, id_of(p, b), (int)n++);
	if (p->in_ring && n)
		ring_publish(p, n);
}

void weft__bufs_give_back(struct weft__bufs *p, unsigned id)
{
	struct weft__thread *th = weft__tls()->thread;
	if (th && &th->bufs == p) {
		give_back_here(p, id, 0);
		if (p->in_ring)
			ring_publish(p, 1);
		return;
	}
	char *b = weft__bufs_data(p, id);
	char *head = atomic_load_explicit(&p->returns, memory_order_relaxed);
	do
		memcpy(b, &head, sizeof head);
	while (!atomic_compare_exchange_weak_explicit(&p->returns, &head, b, memory_order_release,
	                                              memory_order_relaxed));
}

/* Puts another WEFT__BUFS_GROW into circulation; false at the maximum. */
static bool grow(struct weft__bufs *p)
{
	if (p->carved >= WEFT__BUFS_MAX)
		return false;
	unsigned to = p->carved + WEFT__BUFS_GROW;
	carve(p, to < WEFT__BUFS_MAX ? to : WEFT__BUFS_MAX);
	return true;
}

int weft__bufs_take(struct weft__bufs *p)
{
	if (!p->nfree)
		weft__bufs_take_returns(p);
	if (!p->nfree && !grow(p))
		return -1;
	return p->free_ids[--p->nfree];
}

bool weft__bufs_refill_ring(struct weft__bufs *p)
{
	if (atomic_load_explicit(&p->returns, memory_order_relaxed)) {
		weft__bufs_take_returns(p);
		return true;
	}
	return grow(p);
}
