/*
 * The LIFO slot's slow paths: the owner settling with a monitor that froze
 * its slot, and the monitor's take. lifo.h explains the handshake.
 */
#include "lifo.h"

#include <sched.h>

/* The owner changed its slot and found it frozen: waits for the monitor
   to be done. False if the monitor let the slot be (open again: the change
   stands); true once the monitor took the slot's task, which is in *took
   (NULL if there was none) -- reported once: later uses of the still
   frozen slot see NULL -- and the slot is then the owner's alone until it
   reopens it. */
static bool settle(struct weft__lifo *l, struct weft_task **took)
{
	uint32_t s;
	while ((s = atomic_load_explicit(&l->state, memory_order_acquire)) == WEFT__LIFO_TAKING)
		sched_yield(); /* the monitor is in membarrier(): microseconds */
	if (s == WEFT__LIFO_OPEN)
		return false;
	*took = atomic_load_explicit(&l->taken, memory_order_relaxed);
	atomic_store_explicit(&l->taken, NULL, memory_order_relaxed);
	return true;
}

/* The put moved t in and prev out; the monitor's exchange came before the
   put (it took an older task, or nothing), between its load and its store
   (it took prev, and t is in the slot), or after (it took t). */
unsigned weft__lifo_put_frozen(struct weft__lifo *l, struct weft_task *prev,
                               struct weft_task *out[2])
{
	unsigned n = 0;
	struct weft_task *took = NULL;
	if (settle(l, &took)) {
		struct weft_task *cur = atomic_load_explicit(&l->task, memory_order_relaxed);
		atomic_store_explicit(&l->task, NULL, memory_order_relaxed);
		if (cur)
			out[n++] = cur;
		if (prev == took)
			prev = NULL;
	}
	if (prev)
		out[n++] = prev;
	return n;
}

struct weft_task *weft__lifo_take_frozen(struct weft__lifo *l, struct weft_task *t)
{
	struct weft_task *took;
	if (settle(l, &took) && took == t)
		return NULL; /* the monitor's now */
	return t;
}

bool weft__lifo_freeze(struct weft__lifo *l, struct weft_task **t)
{
	uint32_t open = WEFT__LIFO_OPEN;
	if (!atomic_compare_exchange_strong_explicit(&l->state, &open, WEFT__LIFO_TAKEN,
	                                             memory_order_acq_rel, memory_order_relaxed))
		return false;
	*t = atomic_load_explicit(&l->task, memory_order_relaxed);
	atomic_store_explicit(&l->task, NULL, memory_order_relaxed);
	return true;
}

bool weft__lifo_steal(struct weft__lifo *l, struct weft_task **t)
{
	uint32_t open = WEFT__LIFO_OPEN;
	if (!atomic_compare_exchange_strong_explicit(&l->state, &open, WEFT__LIFO_TAKING,
	                                             memory_order_seq_cst, memory_order_relaxed))
		return false;
	if (!weft__asym_heavy_fence()) {
		/* The slot was not touched: let it be. */
		atomic_store_explicit(&l->state, WEFT__LIFO_OPEN, memory_order_release);
		return false;
	}
	*t = atomic_exchange_explicit(&l->task, NULL, WEFT__ASYM_ACQUIRE);
	atomic_store_explicit(&l->taken, *t, memory_order_relaxed);
	atomic_store_explicit(&l->state, WEFT__LIFO_TAKEN, memory_order_release);
	return true;
}
