/*
 * Idle coordination: which workers are searching for work, which sleep, and
 * whom to wake when work appears.
 *
 * The protocol is Tokio's (idle.rs), itself Go's spinning-M rule:
 *  - state packs (unparked << 16 | searching) in one atomic word.
 *  - At most half the workers search (steal) at once.
 *  - Work made available by a push wakes a sleeper only when nobody is
 *    searching and somebody sleeps; the woken worker starts out searching.
 *  - A searcher that finds work and was the last searcher wakes another
 *    (so a burst of work spreads one wake at a time, no thundering herd).
 *  - A worker that goes to sleep as the last searcher re-checks every queue
 *    after announcing it: a push that saw "one searcher" and skipped the
 *    wake is then found by this re-check, so no wake-up is lost. The pusher
 *    publishes its task before reading state and the sleeper publishes state
 *    before re-reading the queues (both seq_cst), so at least one of the two
 *    sees the other (weft__idle_state_after_push).
 */
#ifndef WEFT_RUNTIME_IDLE_H
#define WEFT_RUNTIME_IDLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sanitize.h"

struct weft__idle {
	_Alignas(64) _Atomic uint32_t state;
	pthread_mutex_t lock;
	unsigned nworkers;
	unsigned nsleepers;
	unsigned *sleepers;   /* indices of sleeping workers, under lock */
	bool *woke_searching; /* per worker: woken by a notify (counted as searching) */
};

int weft__idle_init(struct weft__idle *idle, unsigned nworkers);
void weft__idle_destroy(struct weft__idle *idle);

/* Becomes a searcher if fewer than half the workers search. */
bool weft__idle_try_search(struct weft__idle *idle);

/* Stops searching; true if it was the last searcher (then wake another). */
bool weft__idle_leave_search(struct weft__idle *idle);

int weft__idle_pick_sleeper_locked(struct weft__idle *idle);

static inline unsigned weft__idle_searching(uint32_t state)
{
	return state & 0xffff;
}

static inline unsigned weft__idle_unparked(uint32_t state)
{
	return state >> 16;
}

static inline bool weft__idle_should_wake(uint32_t s, unsigned nworkers)
{
	return weft__idle_searching(s) == 0 && weft__idle_unparked(s) < nworkers;
}

/* The state, read after the caller's push with a full barrier between them
   (the store-load order the protocol needs, see the top of this file). A
   fence keeps this word's cache line shared among the cores; under
   ThreadSanitizer, which does not model fences, a read-modify-write of the
   word does the same job where TSan can see it. */
static inline uint32_t weft__idle_state_after_push(struct weft__idle *idle)
{
#ifdef WEFT__TSAN
	return atomic_fetch_add_explicit(&idle->state, 0, memory_order_seq_cst);
#else
	atomic_thread_fence(memory_order_seq_cst);
	return atomic_load_explicit(&idle->state, memory_order_seq_cst);
#endif
}

/* Picks a sleeper to wake for new work, counting it unparked and searching;
   -1 when nobody should be woken. ordered: the caller's push must be seen
   by a worker that is going to sleep (see weft__notify_one). */
static inline int weft__idle_pick_sleeper(struct weft__idle *idle, bool ordered)
{
	uint32_t s = ordered ? weft__idle_state_after_push(idle)
	                     : atomic_load_explicit(&idle->state, memory_order_relaxed);
	if (!weft__idle_should_wake(s, idle->nworkers))
		return -1;
	return weft__idle_pick_sleeper_locked(idle);
}

/* Announces that worker idx goes to sleep; true if it was the last searcher
   (then re-check the queues before sleeping). */
bool weft__idle_to_sleeping(struct weft__idle *idle, unsigned idx, bool searching);

/* After waking: false if idx is still registered as sleeping (a spurious
   wake-up: sleep again). *searching tells whether the waker counted it as a
   searcher. */
bool weft__idle_from_sleeping(struct weft__idle *idle, unsigned idx, bool *searching);

/* Takes idx off the sleepers (counted unparked, not searching) so that a
   targeted wake-up is not undone; false if it was not sleeping. */
bool weft__idle_take_sleeper(struct weft__idle *idle, unsigned idx);

#endif
