/*
 * The worker-local run queue; protocol and invariants in queue.h.
 *
 * Memory orderings, in one place:
 *  - The owner stores a slot (relaxed) and then publishes it with a release
 *    store of tail; a thief's acquire load of tail makes the slot visible.
 *  - Every change of head is a CAS with acquire-release: the owner's pop and
 *    a thief's claim serialize on it, and a thief's final CAS (steal = real)
 *    releases the slots it copied back to the owner for reuse.
 * The owner pays no fence on push and one CAS on pop; contention is paid by
 * thieves.
 */
#include "queue.h"

#include <stddef.h>

#include "task.h"

void weft__lq_init(struct weft__lqueue *q)
{
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	for (unsigned i = 0; i < WEFT__LQ_CAP; i++)
		atomic_init(&q->buf[i], NULL);
}

static inline struct weft_task *slot_load(struct weft__lqueue *q, uint32_t idx)
{
	return atomic_load_explicit(&q->buf[idx & WEFT__LQ_MASK], memory_order_relaxed);
}

static inline void slot_store(struct weft__lqueue *q, uint32_t idx, struct weft_task *t)
{
	atomic_store_explicit(&q->buf[idx & WEFT__LQ_MASK], t, memory_order_relaxed);
}

/* The ring is full and no thief is active: claim its older half with one CAS
   and chain it into a batch for the injector. False when a thief raced us
   (the caller retries the push, which will then find room). */
static bool take_half(struct weft__lqueue *q, uint32_t real, struct weft__batch *out)
{
	const uint32_t n = WEFT__LQ_CAP / 2;
	uint64_t prev = weft__lq_pack(real, real);
	if (!atomic_compare_exchange_strong_explicit(&q->head, &prev,
	                                             weft__lq_pack(real + n, real + n),
	                                             memory_order_acq_rel, memory_order_acquire))
		return false;
	struct weft_task *first = slot_load(q, real), *last = first;
	for (uint32_t i = 1; i < n; i++) {
		struct weft_task *x = slot_load(q, real + i);
		last->qnext = x;
		last = x;
	}
	last->qnext = NULL;
	out->first = first;
	out->last = last;
	out->n = n;
	return true;
}

bool weft__lq_push_overflow(struct weft__lqueue *q, struct weft_task *t,
                            struct weft__batch *overflow)
{
	for (;;) {
		uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
		uint32_t steal = weft__lq_steal_idx(head), real = weft__lq_real_idx(head);
		uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
		if (tail - steal < WEFT__LQ_CAP) {
			slot_store(q, tail, t);
			atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
			return false;
		}
		if (steal != real) {
			/* A thief is about to free half the ring; t alone goes to
			   the injector rather than waiting for it. */
			t->qnext = NULL;
			overflow->first = overflow->last = t;
			overflow->n = 1;
			return true;
		}
		if (take_half(q, real, overflow)) {
			/* t stays: the tasks that waited least go to the back of
			   the injector, not the one that just became runnable. */
			slot_store(q, tail, t);
			atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
			return true;
		}
	}
}

void weft__lq_push_batch(struct weft__lqueue *q, struct weft_task *first, unsigned n)
{
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	for (unsigned i = 0; i < n; i++) {
		struct weft_task *next = first->qnext;
		slot_store(q, tail + i, first);
		first = next;
	}
	atomic_store_explicit(&q->tail, tail + n, memory_order_release);
}

/* Claims half of victim's tasks, copies them into dst's free slots starting
   at dst_tail, then releases the claim. Returns how many were copied. */
static uint32_t steal_into(struct weft__lqueue *victim, struct weft__lqueue *dst, uint32_t dst_tail)
{
	uint64_t prev = atomic_load_explicit(&victim->head, memory_order_acquire), next;
	uint32_t n;
	for (;;) {
		uint32_t steal = weft__lq_steal_idx(prev), real = weft__lq_real_idx(prev);
		uint32_t tail = atomic_load_explicit(&victim->tail, memory_order_acquire);
		if (steal != real)
			return 0; /* another thief holds a range */
		n = tail - real;
		n -= n / 2;
		if (n == 0 || n > WEFT__LQ_CAP / 2)
			return 0; /* empty, or a stale snapshot of a moving queue */
		next = weft__lq_pack(steal, real + n);
		if (atomic_compare_exchange_weak_explicit(
		            &victim->head, &prev, next, memory_order_acq_rel, memory_order_acquire))
			break;
	}
	uint32_t first = weft__lq_steal_idx(next);
	for (uint32_t i = 0; i < n; i++)
		slot_store(dst, dst_tail + i, slot_load(victim, first + i));

	/* Hand the copied slots back: steal catches up with real, which the
	   owner may have moved on meanwhile by popping. */
	prev = next;
	for (;;) {
		uint32_t real = weft__lq_real_idx(prev);
		if (atomic_compare_exchange_weak_explicit(
		            &victim->head, &prev, weft__lq_pack(real, real), memory_order_acq_rel,
		            memory_order_acquire))
			return n;
	}
}

struct weft_task *weft__lq_steal(struct weft__lqueue *victim, struct weft__lqueue *dst,
                                 unsigned *stolen)
{
	uint32_t dst_tail = atomic_load_explicit(&dst->tail, memory_order_relaxed);
	uint64_t dst_head = atomic_load_explicit(&dst->head, memory_order_acquire);
	if (dst_tail - weft__lq_steal_idx(dst_head) > WEFT__LQ_CAP / 2)
		return NULL; /* our own queue is busy enough */
	uint32_t n = steal_into(victim, dst, dst_tail);
	*stolen = n;
	if (n == 0)
		return NULL;
	n--;
	struct weft_task *ret = slot_load(dst, dst_tail + n);
	if (n)
		atomic_store_explicit(&dst->tail, dst_tail + n, memory_order_release);
	return ret;
}
