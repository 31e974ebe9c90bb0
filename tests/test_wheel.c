/*
 * The timing wheel (timer/wheel.c) driven by a manual clock, so cascading is
 * tested deterministically: every timer must fire at the first advance to a
 * tick >= its deadline -- never before, never later -- including deadlines
 * exactly on level boundaries, three years out (beyond the wheel's 2^36-tick
 * span), and a million timers at once, and removal must take a timer out
 * wherever it was cascaded to.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "tests/common.h"
#include "timer/wheel.h"

struct wt {
	struct weft__wheel_entry e;
	uint64_t fired_at; /* tick of the advance that fired it; 0: not yet */
	bool removed;
};

static struct weft__wheel wheel;

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1Dull;
}

/* Advances to now and records the tick each fired timer fired at; returns
   how many fired. */
static size_t advance(uint64_t now)
{
	size_t n = 0;
	weft__wheel_advance(&wheel, now);
	for (struct weft__wheel_entry *e; (e = weft__wheel_pop_due(&wheel));) {
		struct wt *t = (struct wt *)e;
		cr_assert_eq(t->fired_at, 0, "a timer fired twice");
		cr_assert(!t->removed, "a removed timer fired");
		cr_assert_geq(now, e->when, "fired early: deadline %llu at tick %llu",
		              (unsigned long long)e->when, (unsigned long long)now);
		t->fired_at = now;
		n++;
	}
	return n;
}

static void add(struct wt *t, uint64_t when)
{
	t->e.when = when;
	t->fired_at = 0;
	t->removed = false;
	cr_assert(weft__wheel_insert(&wheel, &t->e));
}

Test(wheel, fires_on_the_tick_and_not_before)
{
	weft__wheel_init(&wheel, 0);
	struct wt t;
	add(&t, 10);
	cr_assert_eq(weft__wheel_next(&wheel), 10);
	cr_assert_eq(advance(9), 0);
	cr_assert_eq(advance(10), 1);
	cr_assert_eq(t.fired_at, 10);
	cr_assert_eq(weft__wheel_next(&wheel), WEFT__WHEEL_NEVER);
	cr_assert_eq(wheel.count, 0);
}

Test(wheel, a_past_or_present_deadline_is_refused)
{
	weft__wheel_init(&wheel, 1000);
	struct wt t = {.e.when = 1000};
	cr_assert(!weft__wheel_insert(&wheel, &t.e));
	t.e.when = 5;
	cr_assert(!weft__wheel_insert(&wheel, &t.e));
	cr_assert_eq(wheel.count, 0);
}

/* Deadlines on and around every level boundary (64^L), from several start
   times, advanced one tick at a time near the boundary. */
Test(wheel, level_boundaries)
{
	static const uint64_t starts[] = {0, 1, 63, 64, 4095, 4096, 262143, 1234567};
	for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
		for (unsigned level = 1; level < WEFT__WHEEL_LEVELS; level++) {
			uint64_t b = 1ull << (6 * level);
			uint64_t base = starts[s];
			weft__wheel_init(&wheel, base);
			struct wt t[3];
			add(&t[0], base + b - 1);
			add(&t[1], base + b);
			add(&t[2], base + b + 1);
			/* Jump close, then walk tick by tick across the boundary. */
			advance(base + b - 3);
			for (uint64_t now = base + b - 2; now <= base + b + 2; now++)
				advance(now);
			for (int i = 0; i < 3; i++)
				cr_assert_eq(t[i].fired_at, t[i].e.when,
				             "start %llu level %u timer %d",
				             (unsigned long long)base, level, i);
		}
	}
}

/* Timers three years out: beyond the span of the top level, re-filed as the
   wheel turns, and still never early. */
Test(wheel, three_years_out, .timeout = 60)
{
	const uint64_t year = 365ull * 24 * 3600 * 1000;
	weft__wheel_init(&wheel, 0);
	struct wt t[4];
	add(&t[0], 3 * year);
	add(&t[1], 3 * year + 1);
	add(&t[2], (1ull << 36) + 5); /* just past the span */
	add(&t[3], 1000);
	/* Advance in large irregular steps. */
	uint64_t now = 0;
	while (now < 3 * year + 10) {
		now += 1 + rnd() % (40ull * 24 * 3600 * 1000);
		if (now > 3 * year + 10)
			now = 3 * year + 10;
		advance(now);
		for (int i = 0; i < 4; i++)
			if (!t[i].fired_at)
				cr_assert_lt(now, t[i].e.when);
	}
	for (int i = 0; i < 4; i++) {
		cr_assert_neq(t[i].fired_at, 0, "timer %d never fired", i);
		cr_assert_geq(t[i].fired_at, t[i].e.when);
	}
	cr_assert_eq(wheel.count, 0);
}

/* Random timers checked against the reference: each fires at the first
   advance reaching its deadline. Steps are small and large, so timers fire
   from every level and cascade. */
static void random_run(size_t n, uint64_t max_delay, uint64_t max_step)
{
	struct wt *t = calloc(n, sizeof *t);
	cr_assert_not_null(t);
	uint64_t now = rnd() % 100000;
	weft__wheel_init(&wheel, now);
	for (size_t i = 0; i < n; i++)
		add(&t[i], now + 1 + rnd() % max_delay);
	size_t fired = 0;
	uint64_t prev = now;
	while (fired < n) {
		uint64_t next = weft__wheel_next(&wheel);
		cr_assert_neq(next, WEFT__WHEEL_NEVER);
		now += 1 + rnd() % max_step;
		fired += advance(now);
		/* Every timer fired now must have had its deadline after the
		   previous advance (else it fired late). */
		for (size_t i = 0; i < n; i++)
			if (t[i].fired_at == now)
				cr_assert_gt(t[i].e.when, prev, "fired late");
		prev = now;
	}
	cr_assert_eq(wheel.count, 0);
	free(t);
}

Test(wheel, random_small_steps)
{
	random_run(2000, 5000, 7);
}

Test(wheel, random_large_steps)
{
	random_run(2000, 50ull * 1000 * 1000 * 1000, 3ull * 1000 * 1000 * 1000);
}

/* A million timers filed, a third removed after some cascading, the rest
   fired exactly once and never early. */
Test(wheel, a_million_timers_inserted_removed_and_fired)
{
	size_t n = (size_t)test_scale(1000000);
	struct wt *t = calloc(n, sizeof *t);
	cr_assert_not_null(t);
	weft__wheel_init(&wheel, 0);
	for (size_t i = 0; i < n; i++)
		add(&t[i], 1 + rnd() % 200000);
	cr_assert_eq(wheel.count, n);
	advance(1000);
	size_t removed = 0;
	for (size_t i = 0; i < n; i += 3) {
		if (!t[i].fired_at) {
			weft__wheel_remove(&wheel, &t[i].e);
			t[i].removed = true;
			removed++;
		}
	}
	size_t fired = 0;
	for (size_t i = 0; i < n; i++)
		fired += t[i].fired_at != 0;
	for (uint64_t now = 1000; wheel.count; now += 997)
		fired += advance(now);
	cr_assert_eq(fired + removed, n);
	for (size_t i = 0; i < n; i++)
		cr_assert(t[i].removed || t[i].fired_at >= t[i].e.when);
	free(t);
}

Test(wheel, next_is_a_lower_bound_of_the_earliest_deadline)
{
	weft__wheel_init(&wheel, 0);
	struct wt t[200];
	uint64_t earliest = UINT64_MAX;
	for (int i = 0; i < 200; i++) {
		uint64_t w = 1 + rnd() % 1000000;
		add(&t[i], w);
		if (w < earliest)
			earliest = w;
	}
	for (uint64_t now = 0; wheel.count;) {
		uint64_t next = weft__wheel_next(&wheel);
		cr_assert_leq(next, earliest);
		cr_assert_gt(next, now);
		now = next;
		advance(now);
		earliest = UINT64_MAX;
		for (int i = 0; i < 200; i++)
			if (!t[i].fired_at && t[i].e.when < earliest)
				earliest = t[i].e.when;
	}
}

/* Expired timers wait on the due list until taken, oldest deadline first; a
   due timer can still be removed; next says "now" while any is due. */
Test(wheel, due_timers_are_taken_one_at_a_time_oldest_first)
{
	weft__wheel_init(&wheel, 0);
	struct wt t[5];
	add(&t[0], 70); /* level 1: cascades straight to the due list */
	add(&t[1], 3);
	add(&t[2], 3);
	add(&t[3], 5);
	add(&t[4], 200);
	weft__wheel_advance(&wheel, 100);
	cr_assert_eq(wheel.count, 5);
	cr_assert_eq(weft__wheel_next(&wheel), 100, "timers are due: next is now");
	weft__wheel_remove(&wheel, &t[3].e); /* due, never taken */
	cr_assert_eq(wheel.count, 4);
	struct weft__wheel_entry *a = weft__wheel_pop_due(&wheel);
	struct weft__wheel_entry *b = weft__wheel_pop_due(&wheel);
	struct weft__wheel_entry *c = weft__wheel_pop_due(&wheel);
	cr_assert(a == &t[1].e || a == &t[2].e);
	cr_assert(b == &t[1].e || b == &t[2].e);
	cr_assert_neq(a, b);
	cr_assert_eq(c, &t[0].e, "the deadline-70 timer came before or after its turn");
	cr_assert_null(weft__wheel_pop_due(&wheel));
	cr_assert_eq(wheel.count, 1);
	cr_assert_eq(weft__wheel_next(&wheel), 192, "next is t[4]'s level-1 slot");
	/* A timer filed after the advance is not confused with the due ones. */
	struct wt late;
	add(&late, 101);
	weft__wheel_remove(&wheel, &late.e);
	cr_assert_eq(advance(300), 1);
	cr_assert_eq(t[4].fired_at, 300);
	cr_assert_eq(wheel.count, 0);
}

/* Removing every other timer while part of them sits on the due list keeps
   both lists intact: the rest are taken exactly once. */
Test(wheel, removal_from_the_due_list_keeps_it_intact)
{
	enum { N = 1000 };
	static struct wt t[N];
	weft__wheel_init(&wheel, 0);
	for (int i = 0; i < N; i++)
		add(&t[i], 1 + (uint64_t)(i % 150));
	weft__wheel_advance(&wheel, 100); /* about two thirds due, the rest filed */
	for (int i = 0; i < N; i += 2) {
		weft__wheel_remove(&wheel, &t[i].e);
		t[i].removed = true;
	}
	size_t taken = advance(100) + advance(200);
	cr_assert_eq(taken, N / 2);
	for (int i = 1; i < N; i += 2)
		cr_assert_geq(t[i].fired_at, t[i].e.when);
	cr_assert_eq(wheel.count, 0);
}
