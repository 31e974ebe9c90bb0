/*
 * Single-threaded semantics of the worker-local run queue (runtime/queue.c)
 * and of the injector (runtime/inject.c).
 *
 * The scheduler's fairness and its overflow path rest on exact behaviour
 * here: FIFO order, the 257th push handing the older half to the injector as
 * one FIFO chain while the new task stays queued behind the newer half, a thief taking ceil(n/2)
 * tasks and refusing to steal while its own queue is more than half full, and 32-bit indices that
 * keep working when they wrap. Concurrency is covered by stress_queue.c; these tests pin the
 * sequential contract down precisely.
 *
 * Tasks are zeroed struct weft_task objects on the test's stack: the queue
 * only looks at their address and at qnext.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "runtime/inject.h"
#include "runtime/queue.h"
#include "runtime/task.h"

#define CAP WEFT__LQ_CAP

#define DECLARE_TASKS(name, n)                                                                     \
	struct weft_task name[n];                                                                  \
	memset(name, 0, sizeof name)

/* Sets a queue's indices directly, as if `base` tasks had gone through it. */
static void lq_init_at(struct weft__lqueue *q, uint32_t base)
{
	weft__lq_init(q);
	atomic_store(&q->head, weft__lq_pack(base, base));
	atomic_store(&q->tail, base);
}

static void push_ok(struct weft__lqueue *q, struct weft_task *t)
{
	struct weft__batch ov = {0};
	cr_assert(!weft__lq_push(q, t, &ov), "push overflowed on a queue with %u tasks",
	          weft__lq_len(q));
}

/* Pops expecting tasks[from..to) in order, then checks what is left. */
static void pop_expect(struct weft__lqueue *q, struct weft_task *tasks, unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++) {
		struct weft_task *t = weft__lq_pop(q);
		cr_assert_eq(t, &tasks[i], "pop %u: got task %td, expected %u", i - from,
		             t ? t - tasks : -1, i);
	}
}

/* Links tasks[from..to) through qnext into a batch. */
static struct weft__batch chain(struct weft_task *tasks, unsigned from, unsigned to)
{
	struct weft__batch b = {NULL, NULL, 0};
	for (unsigned i = from; i < to; i++) {
		tasks[i].qnext = NULL;
		if (b.last)
			b.last->qnext = &tasks[i];
		else
			b.first = &tasks[i];
		b.last = &tasks[i];
		b.n++;
	}
	return b;
}

/* Checks that a batch is exactly the given tasks, in order, NULL-terminated. */
static void batch_expect(const struct weft__batch *b, struct weft_task **want, unsigned n)
{
	cr_assert_eq(b->n, n, "batch has %u tasks, expected %u", b->n, n);
	struct weft_task *t = b->first;
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(t, want[i], "batch element %u is wrong", i);
		if (i + 1 < n)
			t = t->qnext;
	}
	cr_assert_eq(b->last, t, "batch->last is not the last element of the chain");
	cr_assert_null(b->last->qnext, "batch is not NULL-terminated");
}

/* Fills q with tasks[from..to), pushes t, and checks that the overflow batch
   is the older half and that the newer half stays, in order, followed by t. */
static void check_overflow(struct weft__lqueue *q, struct weft_task *tasks, unsigned from,
                           struct weft_task *extra)
{
	for (unsigned i = 0; i < CAP; i++)
		push_ok(q, &tasks[from + i]);
	cr_assert_eq(weft__lq_len(q), CAP);
	cr_assert_eq(weft__lq_free_slots(q), 0);

	struct weft__batch ov = {0};
	extra->qnext = &tasks[from]; /* garbage the push must overwrite */
	cr_assert(weft__lq_push(q, extra, &ov), "the 257th push did not overflow");

	struct weft_task *want[CAP / 2];
	for (unsigned i = 0; i < CAP / 2; i++)
		want[i] = &tasks[from + i];
	batch_expect(&ov, want, CAP / 2);

	cr_assert_eq(weft__lq_len(q), CAP / 2 + 1);
	cr_assert_eq(weft__lq_free_slots(q), CAP / 2 - 1);
	pop_expect(q, tasks, from + CAP / 2, from + CAP);
	cr_assert_eq(weft__lq_pop(q), extra, "the new task did not stay queued last");
	cr_assert_null(weft__lq_pop(q));
}

/* ---------------------------------------------------------------- local */

Test(queue, empty_pop_returns_null)
{
	struct weft__lqueue q;
	weft__lq_init(&q);
	cr_assert_null(weft__lq_pop(&q));
	cr_assert(weft__lq_is_empty(&q));
	cr_assert_eq(weft__lq_len(&q), 0);
	cr_assert_eq(weft__lq_free_slots(&q), CAP);
	cr_assert_null(weft__lq_pop(&q), "a second pop of an empty queue");
}

Test(queue, fifo_order)
{
	DECLARE_TASKS(tasks, 100);
	struct weft__lqueue q;
	weft__lq_init(&q);
	for (unsigned i = 0; i < 100; i++) {
		push_ok(&q, &tasks[i]);
		cr_assert_eq(weft__lq_len(&q), i + 1);
	}
	pop_expect(&q, tasks, 0, 100);
	cr_assert_null(weft__lq_pop(&q));
	cr_assert(weft__lq_is_empty(&q));
}

Test(queue, interleaved_push_pop_keeps_fifo)
{
	DECLARE_TASKS(tasks, 1000);
	struct weft__lqueue q;
	weft__lq_init(&q);
	unsigned pushed = 0, popped = 0;
	/* Pushes 3, pops 2, and drains down to 50 whenever 200 are queued: the
	   ring goes round several times, never full. */
	while (pushed + 3 <= 1000) {
		for (int k = 0; k < 3; k++)
			push_ok(&q, &tasks[pushed++]);
		unsigned pops = pushed - popped > 200 ? pushed - popped - 50 : 2;
		for (unsigned k = 0; k < pops; k++, popped++)
			cr_assert_eq(weft__lq_pop(&q), &tasks[popped], "pop %u", popped);
		cr_assert_eq(weft__lq_len(&q), pushed - popped);
	}
	pop_expect(&q, tasks, popped, pushed);
	cr_assert_null(weft__lq_pop(&q));
}

Test(queue, full_queue_accepts_exactly_capacity)
{
	DECLARE_TASKS(tasks, CAP);
	struct weft__lqueue q;
	weft__lq_init(&q);
	for (unsigned i = 0; i < CAP; i++) {
		cr_assert_eq(weft__lq_free_slots(&q), CAP - i);
		push_ok(&q, &tasks[i]);
	}
	cr_assert_eq(weft__lq_len(&q), CAP);
	pop_expect(&q, tasks, 0, CAP);
	cr_assert_null(weft__lq_pop(&q));
}

Test(queue, overflow_moves_the_older_half_and_keeps_the_new_task)
{
	DECLARE_TASKS(tasks, CAP + 1);
	struct weft__lqueue q;
	weft__lq_init(&q);
	check_overflow(&q, tasks, 0, &tasks[CAP]);
}

Test(queue, overflow_after_partial_use)
{
	/* The ring's start is not slot 0 when it overflows. */
	DECLARE_TASKS(tasks, 100 + CAP + 1);
	struct weft__lqueue q;
	weft__lq_init(&q);
	for (unsigned i = 0; i < 100; i++)
		push_ok(&q, &tasks[i]);
	pop_expect(&q, tasks, 0, 100);
	check_overflow(&q, tasks, 100, &tasks[100 + CAP]);
}

Test(queue, push_after_overflow_refills)
{
	DECLARE_TASKS(tasks, 2 * CAP + 2);
	struct weft__lqueue q;
	weft__lq_init(&q);
	for (unsigned i = 0; i < CAP; i++)
		push_ok(&q, &tasks[i]);
	struct weft__batch ov;
	cr_assert(weft__lq_push(&q, &tasks[CAP], &ov));
	cr_assert_eq(ov.n, CAP / 2);
	/* 129 queued: 127 more fit, then the next overflows again, taking
	   the 128 that stayed the first time. */
	for (unsigned i = 0; i < CAP / 2 - 1; i++)
		push_ok(&q, &tasks[CAP + 1 + i]);
	cr_assert_eq(weft__lq_len(&q), CAP);
	struct weft_task *extra = &tasks[CAP + CAP / 2];
	cr_assert(weft__lq_push(&q, extra, &ov));
	struct weft_task *want[CAP / 2];
	for (unsigned i = 0; i < CAP / 2; i++)
		want[i] = &tasks[CAP / 2 + i];
	batch_expect(&ov, want, CAP / 2);
	pop_expect(&q, tasks, CAP, CAP + CAP / 2 + 1);
	cr_assert_null(weft__lq_pop(&q));
}

Test(queue, overflow_while_thief_active_hands_over_only_the_new_task)
{
	/* A thief holds a claimed range (steal != real) of a full ring: the
	   owner must not take half, and hands only t to the injector. */
	DECLARE_TASKS(tasks, CAP + 1);
	struct weft__lqueue q;
	weft__lq_init(&q);
	for (unsigned i = 0; i < CAP; i++)
		push_ok(&q, &tasks[i]);
	atomic_store(&q.head, weft__lq_pack(0, 10)); /* a thief copies [0, 10) */
	struct weft__batch ov = {0};
	struct weft_task *want[1] = {&tasks[CAP]};
	tasks[CAP].qnext = &tasks[0];
	cr_assert(weft__lq_push(&q, &tasks[CAP], &ov));
	batch_expect(&ov, want, 1);
	cr_assert_eq(atomic_load(&q.head), weft__lq_pack(0, 10), "head changed");
	cr_assert_eq(atomic_load(&q.tail), CAP, "tail changed");
	/* The owner still pops what the thief did not claim. */
	pop_expect(&q, tasks, 10, 20);
	cr_assert_eq(atomic_load(&q.head), weft__lq_pack(0, 20),
	             "pop moved steal while a thief held it");
}

Test(queue, push_batch_appends_in_order)
{
	DECLARE_TASKS(tasks, 3 + 50 + 2);
	struct weft__lqueue q;
	weft__lq_init(&q);
	for (unsigned i = 0; i < 3; i++)
		push_ok(&q, &tasks[i]);
	struct weft__batch b = chain(tasks, 3, 53);
	cr_assert_eq(weft__lq_free_slots(&q), CAP - 3);
	weft__lq_push_batch(&q, b.first, b.n);
	cr_assert_eq(weft__lq_len(&q), 53);
	cr_assert_eq(weft__lq_free_slots(&q), CAP - 53);
	push_ok(&q, &tasks[53]);
	push_ok(&q, &tasks[54]);
	pop_expect(&q, tasks, 0, 55);
	cr_assert_null(weft__lq_pop(&q));
}

Test(queue, push_batch_fills_to_capacity_across_the_ring_end)
{
	DECLARE_TASKS(tasks, 200 + CAP + 1);
	struct weft__lqueue q;
	weft__lq_init(&q);
	for (unsigned i = 0; i < 200; i++)
		push_ok(&q, &tasks[i]);
	pop_expect(&q, tasks, 0, 200);
	struct weft__batch b = chain(tasks, 200, 200 + CAP);
	weft__lq_push_batch(&q, b.first, weft__lq_free_slots(&q));
	cr_assert_eq(weft__lq_len(&q), CAP);
	cr_assert_eq(weft__lq_free_slots(&q), 0);
	struct weft__batch ov;
	cr_assert(weft__lq_push(&q, &tasks[200 + CAP], &ov), "full after push_batch");
	cr_assert_eq(ov.n, CAP / 2);
	cr_assert_eq(ov.first, &tasks[200]);
	pop_expect(&q, tasks, 200 + CAP / 2, 200 + CAP + 1);
}

Test(queue, push_batch_of_zero_is_a_no_op)
{
	DECLARE_TASKS(tasks, 2);
	struct weft__lqueue q;
	weft__lq_init(&q);
	push_ok(&q, &tasks[0]);
	weft__lq_push_batch(&q, &tasks[1], 0);
	cr_assert_eq(weft__lq_len(&q), 1);
	pop_expect(&q, tasks, 0, 1);
	cr_assert_null(weft__lq_pop(&q));
}

/* ---------------------------------------------------------------- steal */

/* Victim holds tasks[0..n), thief's queue `have` others; checks one steal. */
static void check_steal(uint32_t victim_base, uint32_t dst_base, unsigned n, unsigned have)
{
	DECLARE_TASKS(tasks, CAP);
	DECLARE_TASKS(own, CAP);
	struct weft__lqueue victim, dst;
	lq_init_at(&victim, victim_base);
	lq_init_at(&dst, dst_base);
	for (unsigned i = 0; i < n; i++)
		push_ok(&victim, &tasks[i]);
	for (unsigned i = 0; i < have; i++)
		push_ok(&dst, &own[i]);

	unsigned want = n - n / 2, stolen = 12345;
	struct weft_task *got = weft__lq_steal(&victim, &dst, &stolen);
	cr_assert_not_null(got, "steal of %u tasks returned NULL", n);
	cr_assert_eq(stolen, want, "stole %u of %u, expected %u", stolen, n, want);
	cr_assert_eq(weft__lq_len(&victim), n - want);
	cr_assert_eq(weft__lq_len(&dst), have + want - 1,
	             "the thief's queue should hold the stolen tasks but the returned one");

	/* The returned task and the ones now in dst are exactly the oldest
	   `want` of the victim, each once; those in dst keep their order
	   behind what dst already had. */
	bool seen[CAP] = {false};
	cr_assert(got >= tasks && got < tasks + want, "returned task %td was not stolen",
	          got - tasks);
	seen[got - tasks] = true;
	pop_expect(&dst, own, 0, have);
	struct weft_task *prev = NULL;
	for (unsigned i = 0; i + 1 < want; i++) {
		struct weft_task *t = weft__lq_pop(&dst);
		cr_assert(t >= tasks && t < tasks + want, "dst holds task %td, not stolen",
		          t ? t - tasks : -1);
		cr_assert(!seen[t - tasks], "task %td taken twice", t - tasks);
		seen[t - tasks] = true;
		cr_assert(!prev || t > prev, "stolen tasks are out of order in dst");
		prev = t;
	}
	cr_assert_null(weft__lq_pop(&dst));

	/* The victim keeps the newer half, in order, and its full capacity is
	   available again (the thief released its claim). */
	cr_assert_eq(weft__lq_free_slots(&victim), CAP - (n - want));
	uint64_t h = atomic_load(&victim.head);
	cr_assert_eq(weft__lq_steal_idx(h), weft__lq_real_idx(h), "thief left a claim behind");
	pop_expect(&victim, tasks, want, n);
	cr_assert_null(weft__lq_pop(&victim));
}

Test(queue, steal_takes_half_rounded_up)
{
	static const unsigned sizes[] = {1, 2, 3, 4, 7, 64, 127, 128, 129, 200, 255, 256};
	for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		check_steal(0, 0, sizes[i], 0);
}

Test(queue, steal_appends_behind_the_thieves_own_tasks)
{
	check_steal(0, 0, 10, 5);
	check_steal(0, 0, 256, CAP / 2); /* exactly half full: still steals */
	check_steal(37, 250, 100, 60);   /* both rings start mid-way */
}

Test(queue, steal_from_empty_returns_null)
{
	DECLARE_TASKS(own, 3);
	struct weft__lqueue victim, dst;
	weft__lq_init(&victim);
	weft__lq_init(&dst);
	for (unsigned i = 0; i < 3; i++)
		push_ok(&dst, &own[i]);
	unsigned stolen = 99;
	cr_assert_null(weft__lq_steal(&victim, &dst, &stolen));
	cr_assert_eq(stolen, 0);
	cr_assert_eq(weft__lq_len(&dst), 3, "a failed steal changed the thief's queue");
	cr_assert_eq(weft__lq_len(&victim), 0);
	pop_expect(&dst, own, 0, 3);

	/* Emptied by pops after pushes: still nothing to steal. */
	push_ok(&victim, &own[0]);
	cr_assert_eq(weft__lq_pop(&victim), &own[0]);
	cr_assert_null(weft__lq_steal(&victim, &dst, &stolen));
	cr_assert_eq(stolen, 0);
}

Test(queue, thief_more_than_half_full_does_not_steal)
{
	DECLARE_TASKS(tasks, 50);
	DECLARE_TASKS(own, CAP);
	struct weft__lqueue victim, dst;
	weft__lq_init(&victim);
	weft__lq_init(&dst);
	for (unsigned i = 0; i < 50; i++)
		push_ok(&victim, &tasks[i]);
	for (unsigned i = 0; i < CAP / 2 + 1; i++)
		push_ok(&dst, &own[i]);
	unsigned stolen = 0;
	cr_assert_null(weft__lq_steal(&victim, &dst, &stolen), "a thief with %u queued tasks stole",
	               CAP / 2 + 1);
	cr_assert_eq(weft__lq_len(&victim), 50);
	cr_assert_eq(weft__lq_len(&dst), CAP / 2 + 1);

	/* Once it has drained to half, it steals again. */
	cr_assert_eq(weft__lq_pop(&dst), &own[0]);
	struct weft_task *t = weft__lq_steal(&victim, &dst, &stolen);
	cr_assert_not_null(t);
	cr_assert_eq(stolen, 25);
	pop_expect(&victim, tasks, 25, 50);
}

Test(queue, steal_while_another_thief_holds_a_claim_backs_off)
{
	DECLARE_TASKS(tasks, 20);
	struct weft__lqueue victim, dst;
	weft__lq_init(&victim);
	weft__lq_init(&dst);
	for (unsigned i = 0; i < 20; i++)
		push_ok(&victim, &tasks[i]);
	atomic_store(&victim.head, weft__lq_pack(0, 10)); /* claim on [0, 10) */
	unsigned stolen = 7;
	cr_assert_null(weft__lq_steal(&victim, &dst, &stolen));
	cr_assert_eq(stolen, 0);
	cr_assert_eq(atomic_load(&victim.head), weft__lq_pack(0, 10));
	cr_assert(weft__lq_is_empty(&dst));
}

Test(queue, repeated_steals_drain_the_victim)
{
	DECLARE_TASKS(tasks, CAP);
	struct weft__lqueue victim, dst;
	weft__lq_init(&victim);
	weft__lq_init(&dst);
	for (unsigned i = 0; i < CAP; i++)
		push_ok(&victim, &tasks[i]);
	unsigned total = 0, rounds = 0, stolen;
	bool seen[CAP] = {false};
	struct weft_task *t;
	while ((t = weft__lq_steal(&victim, &dst, &stolen))) {
		total += stolen;
		rounds++;
		do {
			cr_assert(t >= tasks && t < tasks + CAP);
			cr_assert(!seen[t - tasks], "task %td taken twice", t - tasks);
			seen[t - tasks] = true;
		} while ((t = weft__lq_pop(&dst)));
	}
	cr_assert_eq(total, CAP);
	cr_assert_eq(rounds, 9, "256 -> 128 -> ... -> 1 takes 9 steals, took %u", rounds);
	for (unsigned i = 0; i < CAP; i++)
		cr_assert(seen[i], "task %u lost", i);
}

/* ------------------------------------------------------------- wrapping */

Test(queue, indices_wrap_past_u32_max)
{
	DECLARE_TASKS(tasks, CAP + 1);
	struct weft__lqueue q;
	lq_init_at(&q, UINT32_MAX - 10);
	cr_assert_null(weft__lq_pop(&q));
	cr_assert_eq(weft__lq_len(&q), 0);
	cr_assert_eq(weft__lq_free_slots(&q), CAP);
	/* FIFO across the wrap, a few times round. */
	unsigned next = 0, popped = 0;
	for (unsigned round = 0; round < 40; round++) {
		for (unsigned k = 0; k < 7; k++)
			push_ok(&q, &tasks[next++ % CAP]);
		for (unsigned k = 0; k < 7; k++, popped++)
			cr_assert_eq(weft__lq_pop(&q), &tasks[popped % CAP], "pop %u", popped);
		cr_assert_eq(weft__lq_len(&q), 0);
	}
	cr_assert_lt(atomic_load(&q.tail), 1000u, "the test did not cross the wrap");
}

Test(queue, overflow_across_the_wrap)
{
	for (uint32_t off = 1; off <= CAP + 1; off += 51) {
		DECLARE_TASKS(tasks, CAP + 1);
		struct weft__lqueue q;
		lq_init_at(&q, UINT32_MAX - off + 1);
		check_overflow(&q, tasks, 0, &tasks[CAP]);
	}
}

Test(queue, steal_across_the_wrap)
{
	check_steal(UINT32_MAX - 5, 0, 100, 0);
	check_steal(UINT32_MAX - 60, UINT32_MAX - 3, 256, 20);
	check_steal(UINT32_MAX, UINT32_MAX, 3, 1);
}

Test(queue, push_batch_across_the_wrap)
{
	DECLARE_TASKS(tasks, 60);
	struct weft__lqueue q;
	lq_init_at(&q, UINT32_MAX - 20);
	struct weft__batch b = chain(tasks, 0, 60);
	weft__lq_push_batch(&q, b.first, b.n);
	cr_assert_eq(weft__lq_len(&q), 60);
	cr_assert_eq(weft__lq_free_slots(&q), CAP - 60);
	pop_expect(&q, tasks, 0, 60);
	cr_assert_null(weft__lq_pop(&q));
}

/* ------------------------------------------------------------- injector */

Test(inject, empty)
{
	struct weft__inject q;
	weft__inject_init(&q);
	struct weft__batch b = {(struct weft_task *)1, (struct weft_task *)1, 5};
	cr_assert_eq(weft__inject_len(&q), 0);
	weft__inject_pop_batch(&q, 10, &b);
	cr_assert_eq(b.n, 0);
	cr_assert_null(b.first);
	cr_assert_null(b.last);
	weft__inject_destroy(&q);
}

Test(inject, push_and_pop_batches_in_fifo_order)
{
	DECLARE_TASKS(tasks, 20);
	struct weft__inject q;
	weft__inject_init(&q);
	for (unsigned i = 0; i < 5; i++) {
		tasks[i].qnext = &tasks[19]; /* push must reset the link */
		weft__inject_push(&q, &tasks[i]);
		cr_assert_eq(weft__inject_len(&q), i + 1);
	}
	struct weft__batch b = chain(tasks, 5, 12);
	weft__inject_push_batch(&q, &b);
	cr_assert_eq(weft__inject_len(&q), 12);
	weft__inject_push(&q, &tasks[12]);
	cr_assert_eq(weft__inject_len(&q), 13);

	struct weft__batch out;
	struct weft_task *want[13];
	for (unsigned i = 0; i < 13; i++)
		want[i] = &tasks[i];

	weft__inject_pop_batch(&q, 3, &out);
	batch_expect(&out, want, 3);
	cr_assert_eq(weft__inject_len(&q), 10);

	weft__inject_pop_batch(&q, 1, &out);
	batch_expect(&out, want + 3, 1);
	cr_assert_eq(weft__inject_len(&q), 9);

	/* max larger than what is there: everything, ending NULL. */
	weft__inject_pop_batch(&q, 100, &out);
	batch_expect(&out, want + 4, 9);
	cr_assert_eq(weft__inject_len(&q), 0);

	weft__inject_pop_batch(&q, 100, &out);
	cr_assert_eq(out.n, 0);

	/* Usable again once drained (head and tail were reset). */
	weft__inject_push(&q, &tasks[13]);
	b = chain(tasks, 14, 16);
	weft__inject_push_batch(&q, &b);
	cr_assert_eq(weft__inject_len(&q), 3);
	weft__inject_pop_batch(&q, 3, &out);
	struct weft_task *want2[3] = {&tasks[13], &tasks[14], &tasks[15]};
	batch_expect(&out, want2, 3);
	cr_assert_eq(weft__inject_len(&q), 0);
	weft__inject_destroy(&q);
}

Test(inject, pop_exactly_all)
{
	DECLARE_TASKS(tasks, 8);
	struct weft__inject q;
	weft__inject_init(&q);
	struct weft__batch b = chain(tasks, 0, 8);
	weft__inject_push_batch(&q, &b);
	struct weft__batch out;
	weft__inject_pop_batch(&q, 8, &out);
	struct weft_task *want[8];
	for (unsigned i = 0; i < 8; i++)
		want[i] = &tasks[i];
	batch_expect(&out, want, 8);
	cr_assert_eq(weft__inject_len(&q), 0);
	/* The queue must not still point at the popped tasks. */
	weft__inject_push(&q, &tasks[0]);
	weft__inject_pop_batch(&q, 8, &out);
	batch_expect(&out, want, 1);
	weft__inject_destroy(&q);
}

Test(inject, overflow_batch_round_trip)
{
	/* The path the scheduler uses: an overflow batch from a full local
	   queue goes to the injector and comes back into another local queue
	   in the same order. */
	DECLARE_TASKS(tasks, CAP + 1);
	struct weft__lqueue q, other;
	weft__lq_init(&q);
	weft__lq_init(&other);
	struct weft__inject inj;
	weft__inject_init(&inj);
	for (unsigned i = 0; i < CAP; i++)
		push_ok(&q, &tasks[i]);
	struct weft__batch ov;
	cr_assert(weft__lq_push(&q, &tasks[CAP], &ov));
	weft__inject_push_batch(&inj, &ov);
	cr_assert_eq(weft__inject_len(&inj), CAP / 2);
	struct weft__batch got;
	weft__inject_pop_batch(&inj, weft__lq_free_slots(&other), &got);
	cr_assert_eq(got.n, CAP / 2);
	weft__lq_push_batch(&other, got.first, got.n);
	pop_expect(&other, tasks, 0, CAP / 2);
	cr_assert_null(weft__lq_pop(&other));
	pop_expect(&q, tasks, CAP / 2, CAP + 1);
	weft__inject_destroy(&inj);
}
