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
#include <stdint.h>

#define WEFT__STACK_TRIM_NS 1000000000ull /* trim interval: 1 s */

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

/* A worker's free stacks, most recently used last. The pool grows to what
   bursts need; stacks that then sit unused through a whole trim interval,
   beyond a floor, go back to the OS (weft__stack_pool_trim). */
struct weft__stack_pool {
	struct weft__stack **items;
	size_t count, cap;
	size_t low;   /* fewest stacks pooled since the last trim */
	size_t floor; /* never trimmed below this */
	uint64_t last_trim_ns;
	size_t size; /* usable size of pooled stacks */
	size_t page;
};

void weft__stack_pool_init(struct weft__stack_pool *p, size_t size, size_t floor);
void weft__stack_pool_drain(struct weft__stack_pool *p);

/* Unmaps the stacks that stayed in the pool since the last trim, beyond the
   floor, if a trim interval has passed since then. */
void weft__stack_pool_trim(struct weft__stack_pool *p, uint64_t now_ns);

/* A stack with at least `size` usable bytes; NULL when the OS refuses. */
struct weft__stack *weft__stack_get(struct weft__stack_pool *p, size_t size);
void weft__stack_put(struct weft__stack_pool *p, struct weft__stack *s);

/* Whether guards are installed with MADV_GUARD_INSTALL (no extra VMA) rather
   than an mprotect()ed page. Probed on the first stack. */
bool weft__stack_guard_is_madvise(void);

#endif
