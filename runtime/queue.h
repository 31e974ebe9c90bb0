/*
 * The worker-local run queue: a fixed 256-slot ring, one producer (the
 * owning worker) and many consumers (the owner pops, thieves steal half).
 *
 * Protocol (the shape of Tokio's queue.rs and Go's runq):
 *   head = (steal << 32) | real, both u32 indices that only grow (wrapping);
 *   tail = u32, written only by the owner.
 *   Slots [real, tail) hold tasks the owner may pop. While a thief copies
 *   slots [steal, real') out, steal lags behind real; then it moves steal up
 *   to real. Only one thief at a time may hold a range (steal != real means
 *   one does, and other thieves back off).
 *   The owner writes a slot only when tail - steal < CAP, so a slot being
 *   copied by a thief is never overwritten under it.
 * Indices are 32-bit, wider than the 8 bits the capacity needs, so a thief
 * delayed for a long time cannot be fooled by wrapped indices (ABA).
 */
#ifndef WEFT_RUNTIME_QUEUE_H
#define WEFT_RUNTIME_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT__LQ_CAP 256u
#define WEFT__LQ_MASK (WEFT__LQ_CAP - 1)

struct weft_task;

struct weft__lqueue {
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic uint32_t tail;
	struct weft_task *_Atomic buf[WEFT__LQ_CAP];
};

/* A linked batch of tasks (through task->qnext), for the injector. */
struct weft__batch {
	struct weft_task *first, *last;
	unsigned n;
};

static inline uint32_t weft__lq_steal_idx(uint64_t head)
{
	return (uint32_t)(head >> 32);
}

static inline uint32_t weft__lq_real_idx(uint64_t head)
{
	return (uint32_t)head;
}

static inline uint64_t weft__lq_pack(uint32_t steal, uint32_t real)
{
	return ((uint64_t)steal << 32) | real;
}

void weft__lq_init(struct weft__lqueue *q);

/* The full-ring path of weft__lq_push (queue.c). */
bool weft__lq_push_overflow(struct weft__lqueue *q, struct weft_task *t,
                            struct weft__batch *overflow);

/* Owner only. Appends the tasks of a batch taken from the injector; the
   caller guarantees they fit (weft__lq_free_slots). */
void weft__lq_push_batch(struct weft__lqueue *q, struct weft_task *first, unsigned n);

/* Thief: moves half of victim's tasks into dst (the thief's own queue) and
   returns one of them to run now; NULL if there was nothing to take. */
struct weft_task *weft__lq_steal(struct weft__lqueue *victim, struct weft__lqueue *dst,
                                 unsigned *stolen);

/* Owner only. Appends t. When the ring is full, its older half is moved into
   *overflow (which the caller hands to the injector), t is appended, and
   true is returned; otherwise false. The owner stores the slot, then publishes it
   with a release store of tail (a thief's acquire load of tail sees it). */
static inline bool weft__lq_push(struct weft__lqueue *q, struct weft_task *t,
                                 struct weft__batch *overflow)
{
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	if (tail - weft__lq_steal_idx(head) < WEFT__LQ_CAP) {
		atomic_store_explicit(&q->buf[tail & WEFT__LQ_MASK], t, memory_order_relaxed);
		atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
		return false;
	}
	return weft__lq_push_overflow(q, t, overflow);
}

/* Owner only. Removes the oldest task, or returns NULL when empty. With no
   thief active both indices move together; otherwise only real does and the
   thief moves steal up when it is done. */
static inline struct weft_task *weft__lq_pop(struct weft__lqueue *q)
{
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	for (;;) {
		uint32_t steal = weft__lq_steal_idx(head), real = weft__lq_real_idx(head);
		uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
		if (real == tail)
			return NULL;
		uint64_t next = steal == real ? weft__lq_pack(real + 1, real + 1)
		                              : weft__lq_pack(steal, real + 1);
		if (atomic_compare_exchange_weak_explicit(
		            &q->head, &head, next, memory_order_acq_rel, memory_order_acquire))
			return atomic_load_explicit(&q->buf[real & WEFT__LQ_MASK],
			                            memory_order_relaxed);
	}
}

/* Number of queued tasks (a snapshot, exact only for the owner). */
static inline unsigned weft__lq_len(struct weft__lqueue *q)
{
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
	return tail - weft__lq_real_idx(head);
}

/* Owner only: how many tasks can be pushed without overflow. */
static inline unsigned weft__lq_free_slots(struct weft__lqueue *q)
{
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	return WEFT__LQ_CAP - (tail - weft__lq_steal_idx(head));
}

static inline bool weft__lq_is_empty(struct weft__lqueue *q)
{
	return weft__lq_len(q) == 0;
}

#endif
