/*
 * The hierarchical timing wheel; design and invariants in wheel.h.
 *
 * Why a timer is never early: a timer is filed at the level of the highest
 * 6-bit digit in which its deadline differs from `elapsed`, in the slot of
 * its own digit there. That slot's start (the deadline computed by
 * level_next) is <= the timer's deadline, so the slot is processed no later
 * than the deadline; processing re-files every timer against the slot's
 * start, which fires only those whose deadline is not after it. Deadlines
 * beyond the top level's span (2^36 ticks) are filed in the top level by
 * their (wrapped) digit and simply re-filed each time that slot comes round,
 * until they are within reach.
 *
 * All the timers of a level-0 slot share one deadline (the slot is a single
 * tick), which is what lets an expiring level-0 slot join the due list whole.
 */
#include "wheel.h"

#define LEVEL_BITS 6u
#define SLOT_MASK (WEFT__WHEEL_SLOTS - 1u)
#define MAX_SPAN (1ull << (LEVEL_BITS * WEFT__WHEEL_LEVELS))

static unsigned level_for(uint64_t elapsed, uint64_t when)
{
	uint64_t masked = (elapsed ^ when) | SLOT_MASK;
	if (masked >= MAX_SPAN)
		masked = MAX_SPAN - 1;
	unsigned significant = 63u - (unsigned)__builtin_clzll(masked);
	return significant / LEVEL_BITS;
}

static unsigned slot_for(uint64_t when, unsigned level)
{
	return (unsigned)(when >> (level * LEVEL_BITS)) & SLOT_MASK;
}

static struct weft__wheel_entry *entry_of(struct weft__dlink *l)
{
	return weft__container_of(l, struct weft__wheel_entry, link);
}

void weft__wheel_init(struct weft__wheel *w, uint64_t now)
{
	w->elapsed = now;
	w->count = 0;
	weft__dlist_init(&w->due);
	for (unsigned l = 0; l < WEFT__WHEEL_LEVELS; l++) {
		w->occupied[l] = 0;
		for (unsigned s = 0; s < WEFT__WHEEL_SLOTS; s++)
			weft__dlist_init(&w->slots[l][s]);
	}
}

/* Files e (e->when > w->elapsed) in its slot; the count is the caller's. */
static void file(struct weft__wheel *w, struct weft__wheel_entry *e)
{
	unsigned level = level_for(w->elapsed, e->when);
	unsigned slot = slot_for(e->when, level);
	e->level = (uint8_t)level;
	e->slot = (uint8_t)slot;
	weft__dlist_push_head(&w->slots[level][slot], &e->link);
	w->occupied[level] |= 1ull << slot;
}

bool weft__wheel_insert(struct weft__wheel *w, struct weft__wheel_entry *e)
{
	if (e->when <= w->elapsed)
		return false;
	file(w, e);
	w->count++;
	return true;
}

void weft__wheel_remove(struct weft__wheel *w, struct weft__wheel_entry *e)
{
	if (e->when <= w->elapsed) {
		weft__dlist_unlink(&w->due, &e->link);
	} else {
		struct weft__dlist *l = &w->slots[e->level][e->slot];
		weft__dlist_unlink(l, &e->link);
		if (!l->head)
			w->occupied[e->level] &= ~(1ull << e->slot);
	}
	w->count--;
}

/* The first occupied slot of a level, at or after the current one in
   rotation order, and the tick at which it starts. */
static bool level_next(const struct weft__wheel *w, unsigned level, unsigned *slot,
                       uint64_t *deadline)
{
	uint64_t occ = w->occupied[level];
	if (!occ)
		return false;
	unsigned shift = level * LEVEL_BITS;
	uint64_t slot_range = 1ull << shift, level_range = slot_range << LEVEL_BITS;
	unsigned now_slot = (unsigned)(w->elapsed >> shift) & SLOT_MASK;
	uint64_t rotated = now_slot ? (occ >> now_slot) | (occ << (64 - now_slot)) : occ;
	unsigned s = ((unsigned)__builtin_ctzll(rotated) + now_slot) & SLOT_MASK;
	uint64_t d = (w->elapsed & ~(level_range - 1)) + s * slot_range;
	if (d <= w->elapsed)
		d += level_range; /* a wrapped far deadline, in the top level */
	*slot = s;
	*deadline = d;
	return true;
}

/* Lower levels always hold earlier deadlines, so the first occupied level
   has the next expiration. */
static bool next_expiration(const struct weft__wheel *w, unsigned *level, unsigned *slot,
                            uint64_t *deadline)
{
	for (unsigned l = 0; l < WEFT__WHEEL_LEVELS; l++) {
		if (level_next(w, l, slot, deadline)) {
			*level = l;
			return true;
		}
	}
	return false;
}

static void visit_list(struct weft__dlink *l, void (*fn)(struct weft__wheel_entry *, void *),
                       void *arg)
{
	while (l) {
		struct weft__dlink *next = l->next;
		fn(entry_of(l), arg);
		l = next;
	}
}

void weft__wheel_visit(struct weft__wheel *w, void (*fn)(struct weft__wheel_entry *, void *),
                       void *arg)
{
	for (unsigned l = 0; l < WEFT__WHEEL_LEVELS; l++)
		for (unsigned s = 0; s < WEFT__WHEEL_SLOTS; s++)
			visit_list(w->slots[l][s].head, fn, arg);
	visit_list(w->due.head, fn, arg);
}

uint64_t weft__wheel_next(const struct weft__wheel *w)
{
	if (w->due.head)
		return w->elapsed;
	unsigned level, slot;
	uint64_t d;
	return next_expiration(w, &level, &slot, &d) ? d : WEFT__WHEEL_NEVER;
}

void weft__wheel_advance(struct weft__wheel *w, uint64_t now)
{
	unsigned level, slot;
	uint64_t d;
	while (next_expiration(w, &level, &slot, &d) && d <= now) {
		struct weft__dlist l = w->slots[level][slot];
		weft__dlist_init(&w->slots[level][slot]);
		w->occupied[level] &= ~(1ull << slot);
		w->elapsed = d;
		if (level == 0) {
			weft__dlist_splice_tail(&w->due, &l); /* all due at d */
			continue;
		}
		for (struct weft__dlink *n = l.head, *next; n; n = next) {
			next = n->next;
			struct weft__wheel_entry *e = entry_of(n);
			if (e->when <= d)
				weft__dlist_push_tail(&w->due, &e->link);
			else
				file(w, e);
		}
	}
	if (now > w->elapsed)
		w->elapsed = now;
}

struct weft__wheel_entry *weft__wheel_pop_due(struct weft__wheel *w)
{
	struct weft__dlink *n = w->due.head;
	if (!n)
		return NULL;
	weft__dlist_unlink(&w->due, n);
	w->count--;
	return entry_of(n);
}
