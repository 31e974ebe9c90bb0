/*
 * Idle coordination; the protocol and why no wake-up is lost are in idle.h.
 */
#include "lock.h"
#include "idle.h"

#include <errno.h>
#include <stdlib.h>

#define UNPARKED_ONE (1u << 16)
#define SEARCHING_ONE 1u

int weft__idle_init(struct weft__idle *idle, unsigned nworkers)
{
	atomic_init(&idle->state, nworkers * UNPARKED_ONE);
	weft__lock_init(&idle->lock);
	idle->nworkers = nworkers;
	idle->nsleepers = 0;
	idle->sleepers = calloc(nworkers, sizeof *idle->sleepers);
	idle->woke_searching = calloc(nworkers, sizeof *idle->woke_searching);
	if (!idle->sleepers || !idle->woke_searching) {
		weft__idle_destroy(idle);
		return -ENOMEM;
	}
	return 0;
}

void weft__idle_destroy(struct weft__idle *idle)
{
	free(idle->sleepers);
	free(idle->woke_searching);
	idle->sleepers = NULL;
	idle->woke_searching = NULL;
	pthread_mutex_destroy(&idle->lock);
}

bool weft__idle_try_search(struct weft__idle *idle)
{
	uint32_t s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
	if (2 * weft__idle_searching(s) >= idle->nworkers)
		return false;
	atomic_fetch_add_explicit(&idle->state, SEARCHING_ONE, memory_order_seq_cst);
	return true;
}

bool weft__idle_leave_search(struct weft__idle *idle)
{
	uint32_t prev =
	        atomic_fetch_sub_explicit(&idle->state, SEARCHING_ONE, memory_order_seq_cst);
	return weft__idle_searching(prev) == 1;
}

int weft__idle_pick_sleeper_locked(struct weft__idle *idle)
{
	pthread_mutex_lock(&idle->lock);
	int idx = -1;
	uint32_t s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
	if (weft__idle_should_wake(s, idle->nworkers) && idle->nsleepers > 0) {
		atomic_fetch_add_explicit(&idle->state, UNPARKED_ONE + SEARCHING_ONE,
		                          memory_order_seq_cst);
		idx = (int)idle->sleepers[--idle->nsleepers];
		idle->woke_searching[idx] = true;
	}
	pthread_mutex_unlock(&idle->lock);
	return idx;
}

bool weft__idle_to_sleeping(struct weft__idle *idle, unsigned idx, bool searching)
{
	pthread_mutex_lock(&idle->lock);
	uint32_t dec = UNPARKED_ONE + (searching ? SEARCHING_ONE : 0);
	uint32_t prev = atomic_fetch_sub_explicit(&idle->state, dec, memory_order_seq_cst);
	idle->sleepers[idle->nsleepers++] = idx;
	idle->woke_searching[idx] = false;
	pthread_mutex_unlock(&idle->lock);
	return searching && weft__idle_searching(prev) == 1;
}

static bool remove_sleeper(struct weft__idle *idle, unsigned idx)
{
	for (unsigned i = 0; i < idle->nsleepers; i++) {
		if (idle->sleepers[i] == idx) {
			idle->sleepers[i] = idle->sleepers[--idle->nsleepers];
			return true;
		}
	}
	return false;
}

bool weft__idle_from_sleeping(struct weft__idle *idle, unsigned idx, bool *searching)
{
	pthread_mutex_lock(&idle->lock);
	bool still = false;
	for (unsigned i = 0; i < idle->nsleepers; i++)
		still |= idle->sleepers[i] == idx;
	*searching = idle->woke_searching[idx];
	idle->woke_searching[idx] = false;
	pthread_mutex_unlock(&idle->lock);
	return !still;
}

bool weft__idle_take_sleeper(struct weft__idle *idle, unsigned idx)
{
	pthread_mutex_lock(&idle->lock);
	bool was = remove_sleeper(idle, idx);
	if (was)
		atomic_fetch_add_explicit(&idle->state, UNPARKED_ONE, memory_order_seq_cst);
	pthread_mutex_unlock(&idle->lock);
	return was;
}
