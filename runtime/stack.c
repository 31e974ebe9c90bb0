/*
 * Task stacks: mapping, guard regions and the per-worker pool.
 *
 * Guard regions. On kernels with MADV_GUARD_INSTALL (6.13+) a generous
 * 64 KiB guard is installed inside the stack's own mapping, which costs no
 * extra VMA: that is what lets 100,000+ parked tasks fit under the default
 * vm.max_map_count of 65530. The first guard is checked to really fault
 * (qemu-user accepts the advice and installs nothing). Older kernels answer
 * EINVAL, and then, or when the check fails, we fall back to an mprotect()ed
 * guard page, which splits the mapping in two VMAs (about
 * 32,000 live stacks then). The library is built with
 * -fstack-clash-protection so a large frame probes page by page and cannot
 * jump over the guard.
 *
 * Pools. Each worker keeps a LIFO cache of up to 256 free stacks of the
 * runtime's default size -- the next task gets the most recently used,
 * cache-hot stack -- and exchanges batches of 64 with the runtime's depot.
 * Mapping a stack costs ~4.7 us here alone (mmap 1.4, guard 1.2, first
 * page fault 2.1; 2.3 us in batches), so a burst of many parked tasks --
 * 100,000 sleepers -- must not pay that again on every burst: the depot
 * keeps what bursts needed, and idle workers map ahead of demand up to the
 * recent peak and a quarter (stack.h). The timers benchmark showed why:
 * each round ran a little faster than the last, so more of its tasks were
 * alive at once, and the extra thousands of stacks mapped mid-burst cut
 * the start rate from 2,500 to 600 tasks per ms and worker (rounds of 167,
 * 145, 140 ms against 122-132 ms with enough stacks ready). A trim, run by
 * the workers about once a second, unmaps the stacks beyond that reserve
 * that sat in the depot through the whole interval. Stacks finish on
 * whichever worker ran their task last, so without the depot one worker's
 * cache would fill while another kept mapping. Stacks of other sizes are
 * never pooled.
 *
 * Batches. mmap and munmap take the process's mmap lock for writing, and
 * page faults of the other workers wait behind it (and it behind them): two
 * workers mapping a stack per call spent 10-20 us each. So an empty cache is
 * refilled with WEFT__STACK_MAP_BATCH stacks from one mmap, and stacks go
 * back with one munmap per run of neighbours. Each stack remains its own
 * range, [map, map + map_len), so any subset can be unmapped.
 */
#include "stack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fault.h"
#include "lock.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; Debian 12's headers lack it */
#endif

#define GUARD_MADVISE_LEN (64u * 1024)
#define GUARD_BELOW_SLACK (1u << 20)

enum { GUARD_UNKNOWN, GUARD_MADVISE, GUARD_MPROTECT };
static _Atomic int guard_mode = GUARD_UNKNOWN;
static atomic_flag warned_map_count = ATOMIC_FLAG_INIT;

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

/* Whether reading addr faults: the kernel copying a byte from it into a pipe
   answers EFAULT. Used once, because some environments (qemu-user) accept
   MADV_GUARD_INSTALL and install nothing. */
static bool access_faults(const void *addr)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return true; /* cannot tell: trust the kernel's answer */
	bool faults = write(fds[1], addr, 1) < 0 && errno == EFAULT;
	close(fds[0]);
	close(fds[1]);
	return faults;
}

static bool install_guard(char *map, size_t len)
{
	int mode = atomic_load_explicit(&guard_mode, memory_order_relaxed);
	if (mode != GUARD_MPROTECT) {
		int rc = madvise(map, len, MADV_GUARD_INSTALL);
		if (rc != 0 && errno != EINVAL)
			return false; /* out of memory, not unsupported */
		if (rc == 0 && (mode == GUARD_MADVISE || access_faults(map + len - 1))) {
			atomic_store_explicit(&guard_mode, GUARD_MADVISE, memory_order_relaxed);
			return true;
		}
		/* Unsupported (EINVAL), or accepted but not enforced. */
		atomic_store_explicit(&guard_mode, GUARD_MPROTECT, memory_order_relaxed);
	}
	if (mprotect(map, len, PROT_NONE) == 0)
		return true;
	if (errno == ENOMEM && !atomic_flag_test_and_set(&warned_map_count))
		fprintf(stderr,
		        "weft: cannot add a stack guard page: the process has reached "
		        "vm.max_map_count (each guarded stack uses 2 mappings on this kernel)\n");
	return false;
}

/* Writes the descriptor of the stack occupying [map, map + len). */
static struct weft__stack *describe(char *map, size_t len, size_t guard)
{
	uintptr_t desc = ((uintptr_t)(map + len) - sizeof(struct weft__stack)) & ~(uintptr_t)63;
	struct weft__stack *s = (struct weft__stack *)desc;
	s->next = NULL;
	s->map = map;
	s->map_len = len;
	s->guard_len = guard;
	s->size = (size_t)((char *)s - (map + guard));
	return s;
}

/* Maps up to n stacks of `size` usable bytes side by side with one mmap,
   guards installed but no page touched, as *run; returns how many (0 when
   the OS refuses, errno set). */
static size_t map_run(size_t size, size_t n, struct weft__stack_run *run)
{
	if (weft__fault(WEFT__FAULT_STACK_ALLOC)) {
		errno = ENOMEM;
		return 0;
	}
	size_t page = page_size();
	size_t guard = atomic_load_explicit(&guard_mode, memory_order_relaxed) == GUARD_MPROTECT
	                       ? page
	                       : GUARD_MADVISE_LEN;
	size_t len = guard + round_up(size + sizeof(struct weft__stack) + 64, page);
	char *map = mmap(NULL, len * n, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (map == MAP_FAILED)
		return n > 1 ? map_run(size, 1, run) : 0;
	size_t i;
	for (i = 0; i < n; i++) {
		if (!install_guard(map + i * len, guard)) {
			int err = errno;
			munmap(map + i * len, (n - i) * len);
			errno = err;
			break;
		}
	}
	*run = (struct weft__stack_run){.map = map, .len = len, .guard = guard, .n = i};
	return i;
}

/* Takes up to n stacks off the end of run and describes them into out[]
   (touching each one's top page); returns how many. */
static size_t describe_from(struct weft__stack_run *run, struct weft__stack **out, size_t n)
{
	if (n > run->n)
		n = run->n;
	for (size_t i = 0; i < n; i++) {
		run->n--;
		out[i] = describe(run->map + run->n * run->len, run->len, run->guard);
	}
	return n;
}

/* Maps up to n described stacks into out[] (each stays its own range,
   unmapped on its own or with neighbours: stack_unmap_many); returns how
   many, 0 with errno set when the OS refuses. */
static size_t stack_map_many(size_t size, struct weft__stack **out, size_t n)
{
	struct weft__stack_run run;
	return describe_from(&run, out, map_run(size, n, &run));
}

/* Unmaps the last n stacks of run. */
static void unmap_from(struct weft__stack_run *run, size_t n)
{
	run->n -= n;
	munmap(run->map + run->n * run->len, n * run->len);
}

static int by_address(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)(*(struct weft__stack *const *)a)->map;
	uintptr_t y = (uintptr_t)(*(struct weft__stack *const *)b)->map;
	return x < y ? -1 : x > y;
}

/* Unmaps n stacks (reordering s[]), one munmap per run of adjacent ones:
   stacks mapped together usually go back together, and each munmap takes
   the process's mmap lock for writing. */
static void stack_unmap_many(struct weft__stack **s, size_t n)
{
	if (n > 1)
		qsort(s, n, sizeof *s, by_address); /* s may be NULL when n is 0 */
	for (size_t i = 0; i < n;) {
		char *lo = s[i]->map, *hi = lo + s[i]->map_len;
		size_t j = i + 1;
		for (; j < n && s[j]->map == hi; j++)
			hi += s[j]->map_len;
		munmap(lo, (size_t)(hi - lo));
		i = j;
	}
}

static void stack_unmap(struct weft__stack *s)
{
	munmap(s->map, s->map_len);
}

bool weft__stack_guard_hit(const struct weft__stack *s, const void *addr)
{
	uintptr_t a = (uintptr_t)addr, lo = (uintptr_t)s->map;
	return a < lo + s->guard_len && a + GUARD_BELOW_SLACK >= lo;
}

bool weft__stack_guard_is_madvise(void)
{
	return atomic_load_explicit(&guard_mode, memory_order_relaxed) == GUARD_MADVISE;
}

void weft__stack_depot_init(struct weft__stack_depot *d, size_t size)
{
	weft__lock_init(&d->lock);
	d->items = NULL;
	d->count = d->cap = d->low = 0;
	d->runs = NULL;
	d->nruns = d->runs_cap = d->unborn = 0;
	atomic_init(&d->last_trim_ns, 0);
	atomic_init(&d->held, 0);
	atomic_init(&d->mapped, 0);
	atomic_init(&d->peak, 0);
	d->size = size;
	d->page = page_size();
}

void weft__stack_depot_destroy(struct weft__stack_depot *d)
{
	stack_unmap_many(d->items, d->count);
	free(d->items);
	for (size_t i = 0; i < d->nruns; i++)
		unmap_from(&d->runs[i], d->runs[i].n);
	free(d->runs);
	pthread_mutex_destroy(&d->lock);
}

/* Raises the recent peak of stacks in use to at least n. */
static void note_in_use(struct weft__stack_depot *d, size_t n)
{
	size_t peak = atomic_load_explicit(&d->peak, memory_order_relaxed);
	while (n > peak && !atomic_compare_exchange_weak_explicit(
	                           &d->peak, &peak, n, memory_order_relaxed, memory_order_relaxed))
		;
}

static void unmapped(struct weft__stack_depot *d, size_t n)
{
	atomic_fetch_sub_explicit(&d->mapped, n, memory_order_relaxed);
}

/* Under the lock, after count or unborn changed. */
static void held_changed(struct weft__stack_depot *d)
{
	size_t held = d->count + d->unborn;
	if (held < d->low)
		d->low = held;
	atomic_store_explicit(&d->held, held, memory_order_relaxed);
}

/* Unmaps up to n untouched stacks, the most recently mapped first; returns
   how many. Under the lock. */
static size_t unmap_unborn(struct weft__stack_depot *d, size_t n)
{
	size_t done = 0;
	while (done < n && d->nruns) {
		struct weft__stack_run *run = &d->runs[d->nruns - 1];
		size_t k = run->n < n - done ? run->n : n - done;
		unmap_from(run, k);
		done += k;
		if (!run->n)
			d->nruns--;
	}
	d->unborn -= done;
	return done;
}

void weft__stack_depot_trim(struct weft__stack_depot *d, uint64_t now_ns)
{
	if (now_ns - atomic_load_explicit(&d->last_trim_ns, memory_order_relaxed) <
	    WEFT__STACK_TRIM_NS)
		return;
	if (pthread_mutex_trylock(&d->lock) != 0)
		return; /* someone else is at it */
	atomic_store_explicit(&d->last_trim_ns, now_ns, memory_order_relaxed);
	/* The interval's busiest moment had all but `low` of the stacks in
	   use (the workers' small caches aside); the peak remembers the
	   busier of that and half the old peak. */
	size_t mapped = atomic_load_explicit(&d->mapped, memory_order_relaxed);
	size_t busiest = mapped > d->low ? mapped - d->low : 0;
	size_t decayed = atomic_load_explicit(&d->peak, memory_order_relaxed) / 2;
	atomic_store_explicit(&d->peak, busiest > decayed ? busiest : decayed,
	                      memory_order_relaxed);
	size_t target = weft__stack_depot_target(d);
	size_t idle = d->low, excess = mapped > target ? mapped - target : 0;
	if (idle > excess)
		idle = excess;
	size_t untouched = unmap_unborn(d, idle);
	unmapped(d, untouched);
	idle -= untouched;
	if (idle) {
		/* The least recently deposited are at the bottom. */
		stack_unmap_many(d->items, idle);
		unmapped(d, idle);
		d->count -= idle;
		memmove(d->items, d->items + idle, d->count * sizeof *d->items);
	}
	d->low = d->count + d->unborn;
	atomic_store_explicit(&d->held, d->low, memory_order_relaxed);
	pthread_mutex_unlock(&d->lock);
}

/* Moves up to WEFT__STACK_BATCH stacks from the depot into the cache:
   used ones first, then untouched ones, described after the lock is
   dropped (each description is a page fault). */
static void refill(struct weft__stack_pool *p)
{
	struct weft__stack_depot *d = p->depot;
	if (!weft__stack_depot_held(d))
		return;
	struct weft__stack_run carved[4];
	size_t ncarved = 0;
	pthread_mutex_lock(&d->lock);
	size_t n = d->count < WEFT__STACK_BATCH ? d->count : WEFT__STACK_BATCH;
	d->count -= n;
	if (n) /* items may be NULL: only untouched stacks held so far */
		memcpy(p->items + p->count, d->items + d->count, n * sizeof *d->items);
	p->count += n;
	for (size_t want = WEFT__STACK_BATCH - n; want && d->nruns && ncarved < 4;) {
		struct weft__stack_run *run = &d->runs[d->nruns - 1];
		size_t k = run->n < want ? run->n : want;
		run->n -= k;
		carved[ncarved++] = (struct weft__stack_run){.map = run->map + run->n * run->len,
		                                             .len = run->len,
		                                             .guard = run->guard,
		                                             .n = k};
		d->unborn -= k;
		want -= k;
		if (!run->n)
			d->nruns--;
	}
	held_changed(d);
	pthread_mutex_unlock(&d->lock);
	for (size_t i = 0; i < ncarved; i++)
		p->count += describe_from(&carved[i], p->items + p->count, carved[i].n);
}

static bool depot_grow(struct weft__stack_depot *d, size_t need)
{
	if (need <= d->cap)
		return true;
	size_t cap = d->cap ? d->cap : 1024;
	while (cap < need)
		cap *= 2;
	struct weft__stack **items = realloc(d->items, cap * sizeof *items);
	if (!items)
		return false;
	d->items = items;
	d->cap = cap;
	return true;
}

/* Moves the cache's oldest WEFT__STACK_BATCH stacks into the depot (or back
   to the OS if the depot cannot grow). */
static void spill(struct weft__stack_pool *p)
{
	struct weft__stack_depot *d = p->depot;
	size_t n = WEFT__STACK_BATCH;
	pthread_mutex_lock(&d->lock);
	if (depot_grow(d, d->count + n)) {
		memcpy(d->items + d->count, p->items, n * sizeof *p->items);
		d->count += n;
	} else {
		stack_unmap_many(p->items, n);
		unmapped(d, n);
	}
	held_changed(d);
	pthread_mutex_unlock(&d->lock);
	p->count -= n;
	memmove(p->items, p->items + n, p->count * sizeof *p->items);
}

void weft__stack_pool_init(struct weft__stack_pool *p, struct weft__stack_depot *d)
{
	p->count = 0;
	p->depot = d;
}

void weft__stack_pool_drain(struct weft__stack_pool *p)
{
	while (p->count >= WEFT__STACK_BATCH)
		spill(p);
	stack_unmap_many(p->items, p->count);
	unmapped(p->depot, p->count);
	p->count = 0;
}

struct weft__stack *weft__stack_get(struct weft__stack_pool *p, size_t size)
{
	if (p && size == p->depot->size) {
		if (!p->count)
			refill(p);
		if (p->count) {
			struct weft__stack *s = p->items[--p->count];
			if (p->count) /* the next new task will start on it */
				weft__stack_prefetch(p->items[p->count - 1]);
			return s;
		}
		/* The cache is empty: fill part of it with one mapping. All
		   but the cache and the depot's few are in use. */
		size_t n = stack_map_many(size, p->items, WEFT__STACK_MAP_BATCH);
		if (!n)
			return NULL;
		size_t before =
		        atomic_fetch_add_explicit(&p->depot->mapped, n, memory_order_relaxed);
		size_t held = weft__stack_depot_held(p->depot);
		note_in_use(p->depot, before + 1 > held ? before + 1 - held : 0);
		p->count = n - 1;
		return p->items[n - 1];
	}
	struct weft__stack *s;
	return stack_map_many(size, &s, 1) ? s : NULL;
}

/* Adds run to the depot's untouched stacks, joined to the last run when
   the OS placed it right next to it. Under the lock; false when out of
   memory. */
static bool keep_run(struct weft__stack_depot *d, const struct weft__stack_run *run)
{
	struct weft__stack_run *last = d->nruns ? &d->runs[d->nruns - 1] : NULL;
	if (last && last->len == run->len && last->guard == run->guard &&
	    (run->map + run->n * run->len == last->map ||
	     last->map + last->n * last->len == run->map)) {
		if (run->map < last->map)
			last->map = run->map;
		last->n += run->n;
	} else {
		if (d->nruns == d->runs_cap) {
			size_t cap = d->runs_cap ? 2 * d->runs_cap : 64;
			struct weft__stack_run *runs = realloc(d->runs, cap * sizeof *runs);
			if (!runs)
				return false;
			d->runs = runs;
			d->runs_cap = cap;
		}
		d->runs[d->nruns++] = *run;
	}
	d->unborn += run->n;
	held_changed(d);
	return true;
}

bool weft__stack_depot_top_up(struct weft__stack_depot *d)
{
	if (atomic_load_explicit(&d->mapped, memory_order_relaxed) >= weft__stack_depot_target(d))
		return false;
	struct weft__stack_run run;
	size_t n = map_run(d->size, WEFT__STACK_TOP_UP, &run);
	if (!n)
		return false;
	atomic_fetch_add_explicit(&d->mapped, n, memory_order_relaxed);
	pthread_mutex_lock(&d->lock);
	bool kept = keep_run(d, &run);
	pthread_mutex_unlock(&d->lock);
	if (!kept) {
		unmap_from(&run, n);
		unmapped(d, n);
	}
	return kept;
}

void weft__stack_put(struct weft__stack_pool *p, struct weft__stack *s)
{
	if (p && s->size >= p->depot->size && s->size < p->depot->size + p->depot->page) {
		if (p->count == WEFT__STACK_CACHE)
			spill(p);
		p->items[p->count++] = s;
		return;
	}
	stack_unmap(s);
}
