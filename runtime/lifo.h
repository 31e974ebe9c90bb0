/*
 * The LIFO slot (internal): the task a worker runs next -- the one it woke
 * or spawned last -- and how the monitor takes it from a stuck worker.
 *
 * Only the owner's thread puts tasks in its slot and runs them from it. The
 * slot is not stealable (a steal would cost every wake a locked
 * instruction, the loss Tokio measured when it made its slot stealable),
 * so a task in it waits for its owner; when the owner is stuck (one task
 * running for handoff_ms without a switch, monitor.c) the monitor takes it
 * with an asymmetric Dekker handshake (asym.h) in which the slot is its
 * own busy mark:
 *
 *   owner (every use)                  monitor (once per stall)
 *   change the slot (plain load and    state OPEN -> TAKING
 *     store)                           membarrier(): a barrier on every
 *   load state (compiler barrier         thread of the process
 *     only): OPEN, the change stands   exchange the slot's task out,
 *   else settle: wait while TAKING,      note it in `taken`
 *     learn what the monitor took      state -> TAKEN
 *
 * After the barrier either the owner's last change is visible to the
 * exchange, or the owner's next load of state sees the freeze. A change
 * made across the barrier (the slot read before it, written after) may
 * have had its old task taken by the monitor as well: `taken` tells the
 * owner which task is no longer its own, so that none runs twice and none
 * is lost. The owner pays one load and branch per use; the monitor a
 * barrier of microseconds per stall.
 *
 * A frozen slot (TAKEN) keeps nothing: whatever a use leaves in it goes to
 * the owner's stealable queue, where the spare can steal it, until the
 * owner, back in its scheduler, reopens the slot. A spare told to shed
 * keeps its slot frozen, so that its wakes go to the injector (worker.h).
 */
#ifndef WEFT_RUNTIME_LIFO_H
#define WEFT_RUNTIME_LIFO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asym.h"

struct weft_task;

/* Between a use's load and store: nothing, except in stress_lifo.c, which
   widens the window there to make the monitor's exchange land in it. */
#ifndef WEFT__LIFO_WINDOW
#define WEFT__LIFO_WINDOW() ((void)0)
#endif

enum { WEFT__LIFO_OPEN, WEFT__LIFO_TAKING, WEFT__LIFO_TAKEN };

struct weft__lifo {
	struct weft_task *_Atomic task;  /* runs next */
	_Atomic uint32_t state;          /* WEFT__LIFO_* */
	struct weft_task *_Atomic taken; /* what the monitor took, until the owner learns it */
};

static inline void weft__lifo_init(struct weft__lifo *l, bool frozen)
{
	atomic_init(&l->task, NULL);
	atomic_init(&l->state, frozen ? WEFT__LIFO_TAKEN : WEFT__LIFO_OPEN);
	atomic_init(&l->taken, NULL);
}

static inline uint32_t weft__lifo_state(struct weft__lifo *l)
{
	return atomic_load_explicit(&l->state, memory_order_relaxed);
}

/* The owner, right after changing the slot: true if it is open, so the
   change stands. */
static inline bool weft__lifo_open(struct weft__lifo *l)
{
	weft__asym_light_fence();
	return __builtin_expect(
	        atomic_load_explicit(&l->state, WEFT__ASYM_ORDER) == WEFT__LIFO_OPEN, 1);
}

/* The owner puts t in its slot; *prev is the task t displaced (NULL if
   none), for the caller to queue. False if the slot turned out frozen:
   then the caller hands prev to weft__lifo_put_frozen instead. */
static inline bool weft__lifo_put(struct weft__lifo *l, struct weft_task *t,
                                  struct weft_task **prev)
{
	*prev = atomic_load_explicit(&l->task, memory_order_relaxed);
	WEFT__LIFO_WINDOW();
	atomic_store_explicit(&l->task, t, WEFT__ASYM_RELEASE);
	return weft__lifo_open(l);
}

/* After a put that found the slot frozen: the tasks the owner must queue
   instead (into out, at most two; the count returned) -- what the slot
   holds, since a frozen slot keeps nothing, and prev, unless the monitor
   took it. If the monitor let the slot be after all, only prev, and the
   put stands. */
unsigned weft__lifo_put_frozen(struct weft__lifo *l, struct weft_task *prev,
                               struct weft_task *out[2]);

/* take found the slot frozen after taking t out: t, or NULL if the
   monitor took it first. */
struct weft_task *weft__lifo_take_frozen(struct weft__lifo *l, struct weft_task *t);

/* The owner takes the task out of its slot; NULL if there is none. Only
   the owner fills the slot, so an empty one stays empty without the
   handshake. */
static inline struct weft_task *weft__lifo_take(struct weft__lifo *l)
{
	struct weft_task *t = atomic_load_explicit(&l->task, memory_order_relaxed);
	if (!t)
		return NULL;
	WEFT__LIFO_WINDOW();
	atomic_store_explicit(&l->task, NULL, WEFT__ASYM_ORDER);
	if (__builtin_expect(weft__lifo_open(l), 1))
		return t;
	return weft__lifo_take_frozen(l, t);
}

/* The owner, back in its scheduler: opens a slot the monitor took (state
   TAKEN). */
static inline void weft__lifo_reopen(struct weft__lifo *l)
{
	atomic_store_explicit(&l->taken, NULL, memory_order_relaxed);
	atomic_store_explicit(&l->state, WEFT__LIFO_OPEN, memory_order_release);
}

/* The owner freezes its own open slot (a spare told to shed that reopened
   it just then): true with the slot's task taken out into *t (NULL if
   none); false if the monitor is freezing it already. */
bool weft__lifo_freeze(struct weft__lifo *l, struct weft_task **t);

/* The monitor freezes an open slot and takes its task out: true with it in
   *t (NULL if the slot was empty); false, having taken nothing, if the
   slot was frozen already or no barrier is to be had (no membarrier). */
bool weft__lifo_steal(struct weft__lifo *l, struct weft_task **t);

#endif
