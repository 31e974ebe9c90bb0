/*
 * The LIFO slot's handshake (runtime/lifo.h) under real concurrency: no
 * task lost, none taken twice, each published with its memory.
 *
 * An owner thread uses its slot as a worker does -- puts (each displacing
 * the task before), takes, a reopen whenever the slot is frozen, now and
 * then a freeze of its own -- as fast as it can, while a monitor thread
 * steals from the slot as fast as membarrier() lets it. Every put carries
 * a fresh sequence number, written into the task without atomics before the
 * put (so that ThreadSanitizer checks that a steal acquires what the owner
 * wrote); whoever a task comes out to -- the owner as displaced, taken,
 * or handed back by a frozen put, or the monitor as stolen -- marks its
 * number. At the end each number must be marked exactly once.
 *
 * Without membarrier() there is no handshake (the monitor takes nothing):
 * the test then says so and passes.
 *
 * A plain main() program (Criterion does not run under TSan). Exit status
 * 0 on success, 1 with a message on failure.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/common.h"

/* The owner's uses of the slot are compiled here, from lifo.h's inline
   functions, with the window between their load and store widened. */
static void window(void);
#define WEFT__LIFO_WINDOW() window()

#include "runtime/asym.h"
#include "runtime/lifo.h"

#define ITEMS 256
#define REOPEN_EVERY 61 /* the workers' global_queue_interval */
#define FREEZE_EVERY 5003

struct item {
	uint64_t seq;
	struct item *next; /* on a free list */
};

static struct weft__lifo slot;
static struct item items[ITEMS];
static uint8_t *owner_seen, *monitor_seen;
static uint64_t nputs, puts_made;
static _Atomic bool owner_done;

/* Stolen items go back to the owner through this list. */
static pthread_mutex_t back_lock = PTHREAD_MUTEX_INITIALIZER;
static struct item *back;

static struct item *owner_free;
static _Atomic long steals, empty_steals, frozen_puts, prev_taken, frozen_takes_lost;

/* Most uses run straight through; one in four spins up to a microsecond
   in the window, and one in 128 sleeps there 100 us, as if preempted: the
   monitor's exchange can land in a window only if it outlasts the
   monitor's membarrier() (the freeze is visible to the owner from the
   barrier on). */
static uint64_t window_rng = 0x2545F4914F6CDD1Dull;
static void window(void)
{
	window_rng ^= window_rng << 13, window_rng ^= window_rng >> 7,
	        window_rng ^= window_rng << 17;
	if (window_rng % 128 == 0) {
		struct timespec pause = {0, 100000};
		nanosleep(&pause, NULL);
	} else if (window_rng % 4 == 1) {
		for (volatile unsigned i = (unsigned)(window_rng >> 40) % 512; i > 0; i--)
			;
	}
}

static struct weft_task *as_task(struct item *it)
{
	return (struct weft_task *)(void *)it;
}

static struct item *as_item(struct weft_task *t)
{
	return (struct item *)(void *)t;
}

static int fail(const char *what, uint64_t seq)
{
	fprintf(stderr, "stress_lifo: %s (task %llu)\n", what, (unsigned long long)seq);
	return 1;
}

/* The owner got t out of its slot: marked, and free again. */
static int owner_out(struct weft_task *t)
{
	struct item *it = as_item(t);
	if (it->seq >= nputs || owner_seen[it->seq]++)
		return fail("the owner got a task twice", it->seq);
	it->next = owner_free;
	owner_free = it;
	return 0;
}

static struct item *fresh_item(void)
{
	while (!owner_free) {
		pthread_mutex_lock(&back_lock);
		owner_free = back;
		back = NULL;
		pthread_mutex_unlock(&back_lock);
		if (!owner_free)
			sched_yield(); /* all of them are with the monitor */
	}
	struct item *it = owner_free;
	owner_free = it->next;
	return it;
}

static int put(uint64_t seq)
{
	struct item *it = fresh_item();
	it->seq = seq; /* plain: the monitor's steal must see it */
	struct weft_task *prev;
	if (weft__lifo_put(&slot, as_task(it), &prev))
		return prev ? owner_out(prev) : 0;
	atomic_fetch_add(&frozen_puts, 1);
	struct weft_task *out[2];
	unsigned n = weft__lifo_put_frozen(&slot, prev, out);
	bool prev_back = false;
	for (unsigned i = 0; i < n; i++) {
		prev_back |= out[i] == prev;
		if (owner_out(out[i]))
			return 1;
	}
	if (prev && !prev_back)
		atomic_fetch_add(&prev_taken, 1); /* the monitor took it mid-put */
	return 0;
}

static int take(void)
{
	struct weft_task *before = atomic_load_explicit(&slot.task, memory_order_relaxed);
	struct weft_task *t = weft__lifo_take(&slot);
	if (before && !t)
		atomic_fetch_add(&frozen_takes_lost, 1);
	return t ? owner_out(t) : 0;
}

/* What a worker does every global_queue_interval. */
static int follow(uint64_t op)
{
	if (weft__lifo_state(&slot) == WEFT__LIFO_TAKEN) {
		weft__lifo_reopen(&slot);
	} else if (op % FREEZE_EVERY == 0) {
		struct weft_task *t;
		if (weft__lifo_freeze(&slot, &t) && t)
			return owner_out(t);
	}
	return 0;
}

static void *owner(void *arg)
{
	uint64_t ops = *(uint64_t *)arg, seq = 0, rng = 88172645463325252ull;
	int rc = 0;
	for (uint64_t op = 1; op <= ops && !rc; op++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		if (rng % 10 < 7)
			rc = put(seq++);
		else
			rc = take();
		if (!rc && op % REOPEN_EVERY == 0)
			rc = follow(op);
	}
	/* Empty the slot for good: reopened if frozen, then taken. */
	if (!rc && weft__lifo_state(&slot) != WEFT__LIFO_OPEN) {
		while (weft__lifo_state(&slot) == WEFT__LIFO_TAKING)
			sched_yield();
		weft__lifo_reopen(&slot);
	}
	puts_made = seq;
	atomic_store(&owner_done, true);
	if (!rc)
		rc = take();
	return (void *)(intptr_t)rc;
}

static void *monitor(void *arg)
{
	(void)arg;
	int rc = 0;
	while (!atomic_load(&owner_done) && !rc) {
		struct weft_task *t;
		if (!weft__lifo_steal(&slot, &t)) {
			sched_yield();
			continue;
		}
		if (!t) {
			atomic_fetch_add(&empty_steals, 1);
			continue;
		}
		atomic_fetch_add(&steals, 1);
		struct item *it = as_item(t);
		if (it->seq >= nputs || monitor_seen[it->seq]++) {
			rc = fail("the monitor stole a task twice", it->seq);
			break;
		}
		pthread_mutex_lock(&back_lock);
		it->next = back;
		back = it;
		pthread_mutex_unlock(&back_lock);
	}
	return (void *)(intptr_t)rc;
}

int main(void)
{
	weft__asym_prepare();
	if (!weft__asym_heavy_fence()) {
		printf("stress_lifo: no membarrier(): the monitor never takes a slot; skipped\n");
		return 0;
	}
	uint64_t ops = (uint64_t)test_scale(1000000);
	nputs = ops; /* at most one put per operation */
	owner_seen = calloc(nputs, 1);
	monitor_seen = calloc(nputs, 1);
	if (!owner_seen || !monitor_seen)
		return fail("out of memory", 0);
	for (int i = ITEMS - 1; i >= 0; i--) {
		items[i].next = owner_free;
		owner_free = &items[i];
	}
	weft__lifo_init(&slot, false);

	pthread_t o, m;
	pthread_create(&m, NULL, monitor, NULL);
	pthread_create(&o, NULL, owner, &ops);
	void *orc, *mrc;
	pthread_join(o, &orc);
	pthread_join(m, &mrc);
	if (orc || mrc)
		return 1;

	for (uint64_t s = 0; s < puts_made; s++) {
		unsigned n = owner_seen[s] + monitor_seen[s];
		if (n > 1)
			return fail("a task came out twice (to the owner and the monitor)", s);
		if (n == 0)
			return fail("a task was lost", s);
	}
	if (atomic_load(&steals) == 0)
		return fail("the monitor never stole a task", 0);
	printf("stress_lifo: %llu puts, %ld stolen (%ld empty slots), %ld frozen puts, "
	       "%ld tasks taken mid-put, %ld mid-take\n",
	       (unsigned long long)puts_made, atomic_load(&steals), atomic_load(&empty_steals),
	       atomic_load(&frozen_puts), atomic_load(&prev_taken),
	       atomic_load(&frozen_takes_lost));
	free(owner_seen);
	free(monitor_seen);
	return 0;
}
