/*
 * A hierarchical timing wheel (internal): 6 levels of 64 slots, one tick per
 * millisecond, so level L slots are 64^L ticks wide and the wheel spans 2^36
 * ticks (about 2.2 years); deadlines further out are parked in the top level
 * and re-filed as time passes, so they too fire on time, never early.
 *
 * This is the shape Tokio uses (runtime/time/wheel), after Varghese and
 * Lauck. A timer lives at the level where its deadline first differs from
 * the wheel's current time (`elapsed`) in the 6-bit digit of that level, so
 * lower levels always hold earlier deadlines than higher ones. Each level
 * keeps a 64-bit occupancy mask; the next slot to expire is found with one
 * rotate and one count-trailing-zeros. When a slot of level L > 0 expires
 * its timers are re-filed at lower levels (cascading); at level 0 they fire.
 *
 * The wheel is a plain data structure with an explicit clock: callers pass
 * the current tick, which makes it testable with a manual clock. It does no
 * locking; the per-worker timer driver (timer.c) owns that.
 *
 * Expired timers are not handed out all at once: advancing moves them to the
 * wheel's due list, oldest deadline first, and the caller takes them one at
 * a time (weft__wheel_pop_due), so a worker can wake a few per scheduler
 * tick and run each soon after waking it, while its stack is still in the
 * cache, instead of queueing a whole slot's thousand at once. A level-0 slot
 * -- the common case -- is spliced onto the due list whole, without
 * touching its timers.
 *
 * Invariants: a timer fires only when the wheel is advanced to a tick >= its
 * deadline tick. A filed timer's deadline is after `elapsed`, a due one's is
 * not: that is how removal tells which list a timer is on.
 */
#ifndef WEFT_TIMER_WHEEL_H
#define WEFT_TIMER_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/list.h"

#define WEFT__WHEEL_LEVELS 6
#define WEFT__WHEEL_SLOTS 64
#define WEFT__WHEEL_NEVER UINT64_MAX

struct weft__wheel_entry {
	uint64_t when;           /* deadline tick */
	struct weft__dlink link; /* in its slot's list, or the due list */
	uint8_t level, slot;
};

struct weft__wheel {
	uint64_t elapsed; /* every tick before this has been processed */
	uint64_t occupied[WEFT__WHEEL_LEVELS];
	struct weft__dlist slots[WEFT__WHEEL_LEVELS][WEFT__WHEEL_SLOTS];
	struct weft__dlist due; /* expired, not yet taken */
	size_t count;           /* filed and due */
};

void weft__wheel_init(struct weft__wheel *w, uint64_t now);

/* Files e (e->when set). Returns false, filing nothing, when e->when is not
   after the wheel's current time: the caller fires it at once. */
bool weft__wheel_insert(struct weft__wheel *w, struct weft__wheel_entry *e);

void weft__wheel_remove(struct weft__wheel *w, struct weft__wheel_entry *e);

/* The tick by which the wheel must be advanced for its next timer to fire
   on time (a lower bound on the earliest deadline); `elapsed` while timers
   are due; WEFT__WHEEL_NEVER when empty. */
uint64_t weft__wheel_next(const struct weft__wheel *w);

/* Calls fn on every filed timer. */
void weft__wheel_visit(struct weft__wheel *w, void (*fn)(struct weft__wheel_entry *, void *),
                       void *arg);

/* Advances the wheel to tick now, moving the timers whose deadline is <= now
   to the due list. */
void weft__wheel_advance(struct weft__wheel *w, uint64_t now);

/* Takes the due timer with the oldest deadline off the wheel; NULL if none
   is due. */
struct weft__wheel_entry *weft__wheel_pop_due(struct weft__wheel *w);

#endif
