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

#include <pthread.h>
#include <stdatomic.h>
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

/* Starts fetching, for writing, the top lines of s, where a task's first
   and shallowest frames live right below the descriptor: a pooled or
   parked stack's lines are usually out of the cache (and its page out of
   the TLB), and a start or a resume would otherwise miss on each in turn.
   Fetching them all at once halved the cost of starting 100,000 tasks. */
#define WEFT__STACK_PREFETCH_LINES 8
static inline void weft__stack_prefetch(const struct weft__stack *s)
{
	for (int l = 0; l < WEFT__STACK_PREFETCH_LINES; l++)
		__builtin_prefetch((const char *)s - 64 * l, 1);
}

/* Whether addr falls in the guard region below s (or just under it: a frame
   may skip a little further down). */
bool weft__stack_guard_hit(const struct weft__stack *s, const void *addr);

/* Free stacks live in two tiers, the shape of jemalloc's thread caches and
   arenas: each worker keeps a small cache it alone touches, and spills to or
   refills from the runtime's shared depot in batches.

   The depot is paced, the way Go paces its heap: it keeps the stacks the
   busiest recent moment needed plus a quarter (`peak` decays by half each
   trim interval), and idle workers map up to that ahead of demand
   (weft__stack_depot_top_up), so a burst a little bigger than the last one
   does not map its extra stacks -- 2.3 us each here, the mmap and the
   guard and the first page fault -- while it runs. Stacks mapped ahead are
   kept as runs whose pages nothing touched yet, so the reserve costs no
   memory (10,000 idle connections paid 2,500 reserve pages, 10 MB, when
   their descriptors were written ahead): a burst pays only the fault of
   each stack's top page, which its first frames would take anyway. A trim
   gives back to the OS the stacks that sat in the depot through a whole
   interval, beyond that reserve, the untouched ones first. */
#define WEFT__STACK_CACHE 256    /* a worker's own free stacks */
#define WEFT__STACK_BATCH 64     /* moved between a cache and the depot at once */
#define WEFT__STACK_MAP_BATCH 32 /* pooled stacks mapped with one mmap */
#define WEFT__STACK_TOP_UP 8     /* stacks an idle worker maps between looks for work */

/* Stacks mapped side by side and never used: [map, map + n * len), guards
   installed, no page touched -- not even the descriptor's. */
struct weft__stack_run {
	char *map;
	size_t len, guard, n;
};

struct weft__stack_depot {
	pthread_mutex_t lock;
	struct weft__stack **items; /* most recently deposited last */
	size_t count, cap;
	struct weft__stack_run *runs; /* mapped ahead (top-ups), not yet described */
	size_t nruns, runs_cap;
	size_t unborn; /* stacks in runs */
	size_t low;    /* fewest stacks held (count + unborn) since the last trim */
	_Atomic uint64_t last_trim_ns;
	_Atomic size_t held;   /* count + unborn, readable without the lock */
	_Atomic size_t mapped; /* pooled-size stacks in existence: in use, cached or held */
	_Atomic size_t peak;   /* most in use at once lately (decaying) */
	size_t size;           /* usable size of the stacks it keeps */
	size_t page;
};

struct weft__stack_pool {
	struct weft__stack *items[WEFT__STACK_CACHE]; /* most recently used last */
	size_t count;
	struct weft__stack_depot *depot;
};

void weft__stack_depot_init(struct weft__stack_depot *d, size_t size);
void weft__stack_depot_destroy(struct weft__stack_depot *d);

/* Unmaps the stacks that stayed in the depot since the last trim, if a trim
   interval has passed since then; cheap to call often. */
void weft__stack_depot_trim(struct weft__stack_depot *d, uint64_t now_ns);

static inline size_t weft__stack_depot_held(struct weft__stack_depot *d)
{
	return atomic_load_explicit(&d->held, memory_order_relaxed);
}

/* Stacks the depot paces itself to keep in existence: the recent peak and a
   quarter. */
static inline size_t weft__stack_depot_target(struct weft__stack_depot *d)
{
	size_t peak = atomic_load_explicit(&d->peak, memory_order_relaxed);
	return peak + peak / 4;
}

/* Maps up to WEFT__STACK_TOP_UP stacks into the depot if fewer than its
   target exist (an idle worker's chore); false when there was nothing to
   do or the OS refused. */
bool weft__stack_depot_top_up(struct weft__stack_depot *d);

void weft__stack_pool_init(struct weft__stack_pool *p, struct weft__stack_depot *d);

/* Returns the cache's stacks to the depot. */
void weft__stack_pool_drain(struct weft__stack_pool *p);

/* A stack with at least `size` usable bytes; NULL when the OS refuses. */
struct weft__stack *weft__stack_get(struct weft__stack_pool *p, size_t size);
void weft__stack_put(struct weft__stack_pool *p, struct weft__stack *s);

/* Whether guards are installed with MADV_GUARD_INSTALL (no extra VMA) rather
   than an mprotect()ed page. Probed on the first stack. */
bool weft__stack_guard_is_madvise(void);

#endif
