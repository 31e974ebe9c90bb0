/*
 * The local run queue and the injector under real concurrency: no task lost,
 * none taken twice.
 *
 * One owner thread pushes tasks into its queue in bursts (often past the
 * 256-slot capacity, so overflow batches go to an injector) and pops some
 * itself; three thief threads steal half of the owner's queue -- or of each
 * other's -- into their own queues, pop from those, and take batches from the
 * injector, just as workers do. Every task object carries a generation id in
 * a side array indexed by its address (written by the producer before the
 * push, without atomics, so ThreadSanitizer also checks that the queue
 * publishes a task's memory with it); whoever takes a task marks its id
 * seen. At the end every id must have been seen exactly once.
 *
 * Task objects are recycled through a mutex-protected free pool so that
 * millions of operations fit in a few thousand objects.
 *
 * A plain main() program (Criterion does not run under TSan). Exit status 0
 * on success, 1 with a message on failure.
 */
#include <pthread.h>
#include <stdarg.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/inject.h"
#include "runtime/queue.h"
#include "runtime/task.h"
#include "tests/common.h"

#define NTHIEVES 3
#define NQUEUES (NTHIEVES + 1)
#define POOL 8192
#define RETURN_BATCH 64
#define STALL_NS (30ull * 1000 * 1000 * 1000) /* hang guard: no progress for 30 s */

static struct weft_task pool_tasks[POOL];
static uint64_t gen_id[POOL]; /* id of the object's current incarnation */

static uint64_t total;            /* tasks the owner produces */
static _Atomic uint8_t *seen;     /* per id: times taken */
static _Atomic uint64_t consumed; /* tasks taken, all consumers */
static _Atomic int failed;        /* set once a violation was found */
static _Atomic int producer_done; /* the owner pushed everything */

static struct weft__lqueue queues[NQUEUES]; /* 0: owner's; 1..: thieves' */
static struct weft__inject inject;

static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft_task *free_list;
static unsigned free_count;

struct stats {
	uint64_t pushes, pops, steals, stolen, overflows, overflowed, inject_takes, injected;
};
static struct stats thread_stats[NQUEUES];

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	if (atomic_exchange(&failed, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		fprintf(stderr, "stress_queue: FAILED: ");
		vfprintf(stderr, fmt, ap);
		fprintf(stderr, "\n");
		va_end(ap);
	}
}

static unsigned idx_of(struct weft_task *t)
{
	if (t < pool_tasks || t >= pool_tasks + POOL) {
		fail("a queue returned a pointer that is no task: %p", (void *)t);
		return 0;
	}
	return (unsigned)(t - pool_tasks);
}

struct consumer {
	struct weft_task *ret[RETURN_BATCH];
	unsigned nret;
};

static void flush_returns(struct consumer *c)
{
	if (!c->nret)
		return;
	pthread_mutex_lock(&free_lock);
	for (unsigned i = 0; i < c->nret; i++) {
		c->ret[i]->qnext = free_list;
		free_list = c->ret[i];
	}
	free_count += c->nret;
	pthread_mutex_unlock(&free_lock);
	c->nret = 0;
}

/* Marks t's current id taken; the object goes back to the pool. */
static void take(struct consumer *c, struct weft_task *t)
{
	unsigned i = idx_of(t);
	uint64_t id = gen_id[i];
	if (id >= total) {
		fail("task object %u carries id %llu, never produced", i, (unsigned long long)id);
		return;
	}
	uint8_t prev = atomic_fetch_add_explicit(&seen[id], 1, memory_order_relaxed);
	if (prev != 0)
		fail("task id %llu taken %d times", (unsigned long long)id, prev + 1);
	atomic_fetch_add_explicit(&consumed, 1, memory_order_relaxed);
	c->ret[c->nret++] = t;
	if (c->nret == RETURN_BATCH)
		flush_returns(c);
}

/* Checks an overflow batch before it leaves the owner's hands. */
static void check_batch(const struct weft__batch *b)
{
	unsigned n = 1;
	struct weft_task *t = b->first;
	while (t != b->last && n <= WEFT__LQ_CAP) {
		t = t->qnext;
		n++;
	}
	if (t != b->last || n != b->n)
		fail("overflow batch: chain of %u tasks, n says %u", n, b->n);
	if (b->last->qnext)
		fail("overflow batch of %u tasks is not NULL-terminated", b->n);
	if (b->n != 1 && b->n != WEFT__LQ_CAP / 2)
		fail("overflow batch of %u tasks (expected 1 or %u)", b->n, WEFT__LQ_CAP / 2);
}

/* Takes a share of the injector into q (owned by the caller), as a worker
   does; returns how many were taken. */
static unsigned take_injected(struct consumer *c, struct weft__lqueue *q, struct stats *st)
{
	if (weft__inject_len(&inject) == 0)
		return 0;
	unsigned room = weft__lq_free_slots(q);
	unsigned max = room + 1 < 64 ? room + 1 : 64;
	struct weft__batch b;
	weft__inject_pop_batch(&inject, max, &b);
	if (b.n == 0)
		return 0;
	st->inject_takes++;
	st->injected += b.n;
	struct weft_task *first = b.first;
	if (b.n > 1)
		weft__lq_push_batch(q, first->qnext, b.n - 1);
	take(c, first);
	return b.n;
}

static void *owner_main(void *arg)
{
	(void)arg;
	struct consumer c = {.nret = 0};
	struct stats *st = &thread_stats[0];
	struct weft__lqueue *q = &queues[0];
	struct weft_task *local_free = NULL;
	uint64_t rng = 0x1234567887654321ull;
	uint64_t next_id = 0;

	while (next_id < total && !atomic_load(&failed)) {
		/* A burst of pushes, often larger than the ring. */
		unsigned burst = 1 + (unsigned)(test_rng_next(&rng) % 400);
		for (unsigned k = 0; k < burst && next_id < total; k++) {
			if (!local_free) {
				/* Own returns first, then the shared pool. */
				flush_returns(&c);
				pthread_mutex_lock(&free_lock);
				local_free = free_list;
				free_list = NULL;
				free_count = 0;
				pthread_mutex_unlock(&free_lock);
				if (!local_free) {
					/* Everything is queued: consume some. */
					struct weft_task *t = weft__lq_pop(q);
					if (t)
						take(&c, t);
					else
						take_injected(&c, q, st);
					sched_yield();
					continue;
				}
			}
			struct weft_task *t = local_free;
			local_free = t->qnext;
			gen_id[idx_of(t)] = next_id++;
			struct weft__batch ov;
			st->pushes++;
			if (weft__lq_push(q, t, &ov)) {
				check_batch(&ov);
				st->overflows++;
				st->overflowed += ov.n;
				weft__inject_push_batch(&inject, &ov);
			}
		}
		/* Pop a few of our own, sometimes from the injector too. */
		unsigned pops = (unsigned)(test_rng_next(&rng) % 200);
		for (unsigned k = 0; k < pops; k++) {
			struct weft_task *t = weft__lq_pop(q);
			if (!t)
				break;
			st->pops++;
			take(&c, t);
		}
		if (test_rng_next(&rng) % 8 == 0)
			take_injected(&c, q, st);
		if (test_rng_next(&rng) % 16 == 0)
			sched_yield(); /* let the thieves find a full queue */
	}
	atomic_store(&producer_done, 1);

	/* Drain: our queue and the injector, until everything is consumed. */
	uint64_t last = 0, last_change = test_now_ns();
	while (!atomic_load(&failed)) {
		struct weft_task *t = weft__lq_pop(q);
		if (t) {
			st->pops++;
			take(&c, t);
			continue;
		}
		if (take_injected(&c, q, st))
			continue;
		uint64_t n = atomic_load(&consumed);
		if (n == total)
			break;
		if (n != last) {
			last = n;
			last_change = test_now_ns();
		} else if (test_now_ns() - last_change > STALL_NS) {
			fail("no progress for 30 s: %llu of %llu tasks taken (tasks lost)",
			     (unsigned long long)n, (unsigned long long)total);
			break;
		}
		sched_yield();
	}
	/* Put back the objects we hold so the pool count adds up. */
	while (local_free) {
		struct weft_task *t = local_free;
		local_free = t->qnext;
		c.ret[c.nret++] = t;
		if (c.nret == RETURN_BATCH)
			flush_returns(&c);
	}
	flush_returns(&c);
	return NULL;
}

static void *thief_main(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	struct consumer c = {.nret = 0};
	struct stats *st = &thread_stats[me];
	struct weft__lqueue *own = &queues[me];
	uint64_t rng = 0x9E3779B97F4A7C15ull * (me + 1);

	uint64_t last = 0, last_change = test_now_ns();
	while (!atomic_load(&failed)) {
		/* Mostly the owner's queue; sometimes another thief's. */
		unsigned victim = 0;
		if (test_rng_next(&rng) % 4 == 0) {
			victim = 1 + (unsigned)(test_rng_next(&rng) % NTHIEVES);
			if (victim == me)
				victim = 0;
		}
		unsigned stolen = 0;
		struct weft_task *t = weft__lq_steal(&queues[victim], own, &stolen);
		bool progress = false;
		if (t) {
			if (stolen == 0 || stolen > WEFT__LQ_CAP / 2)
				fail("steal returned a task but reported %u stolen", stolen);
			st->steals++;
			st->stolen += stolen;
			take(&c, t);
			progress = true;
		}
		/* Work through part of our own queue; leave the rest for other
		   thieves. */
		unsigned pops = (unsigned)(test_rng_next(&rng) % 48);
		for (unsigned k = 0; k < pops; k++) {
			struct weft_task *x = weft__lq_pop(own);
			if (!x)
				break;
			st->pops++;
			take(&c, x);
			progress = true;
		}
		if (test_rng_next(&rng) % 4 == 0 && take_injected(&c, own, st))
			progress = true;

		if (!atomic_load(&producer_done) || progress)
			continue;
		/* The producer has finished: drain our own queue and leave
		   once every task is accounted for. */
		while ((t = weft__lq_pop(own))) {
			st->pops++;
			take(&c, t);
		}
		flush_returns(&c);
		uint64_t n = atomic_load(&consumed);
		if (n == total)
			break;
		if (n != last) {
			last = n;
			last_change = test_now_ns();
		} else if (test_now_ns() - last_change > STALL_NS) {
			fail("no progress for 30 s: %llu of %llu tasks taken (tasks lost)",
			     (unsigned long long)n, (unsigned long long)total);
			break;
		}
		sched_yield();
	}
	flush_returns(&c);
	return NULL;
}

int main(void)
{
	total = (uint64_t)test_scale(4000000);
	seen = calloc(total, sizeof *seen);
	if (!seen) {
		fprintf(stderr, "stress_queue: out of memory\n");
		return 1;
	}
	for (unsigned i = 0; i < NQUEUES; i++)
		weft__lq_init(&queues[i]);
	weft__inject_init(&inject);
	for (unsigned i = 0; i < POOL; i++) {
		pool_tasks[i].qnext = free_list;
		free_list = &pool_tasks[i];
	}
	free_count = POOL;

	uint64_t t0 = test_now_ns();
	pthread_t owner, thieves[NTHIEVES];
	pthread_create(&owner, NULL, owner_main, NULL);
	for (unsigned i = 0; i < NTHIEVES; i++)
		pthread_create(&thieves[i], NULL, thief_main, (void *)(uintptr_t)(i + 1));
	pthread_join(owner, NULL);
	for (unsigned i = 0; i < NTHIEVES; i++)
		pthread_join(thieves[i], NULL);
	double secs = (double)(test_now_ns() - t0) / 1e9;

	/* Every id exactly once, nothing left anywhere. */
	uint64_t missing = 0, first_missing = 0;
	for (uint64_t id = 0; id < total; id++) {
		uint8_t n = atomic_load_explicit(&seen[id], memory_order_relaxed);
		if (n == 0 && missing++ == 0)
			first_missing = id;
		else if (n > 1)
			fail("task id %llu taken %d times", (unsigned long long)id, n);
	}
	if (missing)
		fail("%llu task(s) never taken (first: id %llu)", (unsigned long long)missing,
		     (unsigned long long)first_missing);
	for (unsigned i = 0; i < NQUEUES; i++)
		if (!weft__lq_is_empty(&queues[i]))
			fail("queue %u still holds %u task(s)", i, weft__lq_len(&queues[i]));
	if (weft__inject_len(&inject))
		fail("the injector still holds %zu task(s)", weft__inject_len(&inject));
	if (free_count != POOL)
		fail("the pool holds %u of %u task objects", free_count, POOL);

	struct stats sum = {0};
	for (unsigned i = 0; i < NQUEUES; i++) {
		sum.pushes += thread_stats[i].pushes;
		sum.pops += thread_stats[i].pops;
		sum.steals += thread_stats[i].steals;
		sum.stolen += thread_stats[i].stolen;
		sum.overflows += thread_stats[i].overflows;
		sum.overflowed += thread_stats[i].overflowed;
		sum.inject_takes += thread_stats[i].inject_takes;
		sum.injected += thread_stats[i].injected;
	}
	printf("stress_queue: %llu tasks in %.2f s: %llu pops, %llu steals (%llu tasks), "
	       "%llu overflows (%llu tasks), %llu injector takes (%llu tasks)\n",
	       (unsigned long long)total, secs, (unsigned long long)sum.pops,
	       (unsigned long long)sum.steals, (unsigned long long)sum.stolen,
	       (unsigned long long)sum.overflows, (unsigned long long)sum.overflowed,
	       (unsigned long long)sum.inject_takes, (unsigned long long)sum.injected);
	if (sum.overflowed != sum.injected)
		fail("%llu tasks overflowed into the injector, %llu came out",
		     (unsigned long long)sum.overflowed, (unsigned long long)sum.injected);
	/* A run without concurrent steals or overflows proves nothing. */
	if (sum.steals == 0)
		fail("no steal succeeded (%llu tasks)", (unsigned long long)total);
	if (sum.overflows == 0)
		fail("the owner's queue never overflowed (%llu tasks)", (unsigned long long)total);

	weft__inject_destroy(&inject);
	free(seen);
	if (atomic_load(&failed))
		return 1;
	printf("stress_queue: OK\n");
	return 0;
}
