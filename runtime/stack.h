/*
 * Task stacks: guarded mappings, pooled per worker.
 *
 * Each stack is one anonymous mapping: a guard region at the bottom, the
 * usable stack above it, and this descriptor in the last bytes of the
 * mapping (so a stack costs no separate allocation, and the descriptor's
 * page is the page a new task touches first anyway).
 */
#ifndef WEFT_RUNTIME_STACK_H
#define WEFT_RUNTIME_STACK_H

#include <stdbool.h>
#include <stddef.h>

struct weft__stack {
	struct weft__stack *next; /* pool link */
	char *map;                /* start of the mapping (the guard) */
	size_t map_len;
	size_t guard_len;
	size_t size; /* usable bytes: [map + guard_len, map + guard_len + size) */
};

static inline void *weft__stack_lo(const struct weft__stack *s)
{
	return s->map + s->guard_len;
}

/* Whether addr falls in the guard region below s (or just under it: a frame
   may skip a little further down). */
bool weft__stack_guard_hit(const struct weft__stack *s, const void *addr);

struct weft__stack_pool {
	struct weft__stack *free;
	unsigned count;
	unsigned high_water; /* stacks above this go back to the OS */
	size_t size;         /* usable size of pooled stacks */
};

void weft__stack_pool_init(struct weft__stack_pool *p, size_t size, unsigned high_water);
void weft__stack_pool_drain(struct weft__stack_pool *p);

/* A stack with at least `size` usable bytes; NULL when the OS refuses. */
struct weft__stack *weft__stack_get(struct weft__stack_pool *p, size_t size);
void weft__stack_put(struct weft__stack_pool *p, struct weft__stack *s);

/* Whether guards are installed with MADV_GUARD_INSTALL (no extra VMA) rather
   than an mprotect()ed page. Probed on the first stack. */
bool weft__stack_guard_is_madvise(void);

#endif
