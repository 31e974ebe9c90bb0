/*
 * The registry of suspended tasks: every task that has yielded or parked at
 * least once sits in one shard's list until it completes, so that shutdown
 * can wake the parked ones and name the ones that never finish.
 *
 * Registration is lazy -- at a task's first switch away, not at spawn --
 * because a task that runs to completion in one go (most short tasks) needs
 * no waking: it sees the runtime's closed flag at its next wait. So the common
 * spawn-run-finish path takes no lock here at all. The price: shutdown's
 * report can only count, not name, tasks that never started. A task parked
 * on nothing but a sleep is not registered either: its timer in its
 * worker's wheel is how shutdown finds and names it (timer.h), which spares
 * 100,000 sleepers two locked updates each.
 *
 * Shutdown sweeps shard by shard under each shard's lock, marking it swept. A
 * task registering into a swept shard is told so and must not park that time
 * (nobody would wake it); it sees the runtime closed instead.
 */
#ifndef WEFT_RUNTIME_REGISTRY_H
#define WEFT_RUNTIME_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct weft_task;

/* A shard is an array of task pointers with its free slots chained through
   the array itself (a free slot holds the next free index, tagged in the low
   bit, which a task pointer never has): adding and removing a task touch
   only the array, not the neighbouring tasks' headers as a linked list
   would -- with 100,000 tasks parked that is a cache miss or two saved on
   every park and every exit. */
struct weft__registry_shard {
	_Alignas(64) pthread_mutex_t lock;
	uintptr_t *slots;
	uint32_t cap;
	uint32_t free; /* first free slot; cap when none */
	bool swept;
};

struct weft__registry {
	struct weft__registry_shard *shards;
	unsigned mask;
};

int weft__registry_init(struct weft__registry *r, unsigned nshards);
void weft__registry_destroy(struct weft__registry *r);

/* Adds t to shard (hint & mask). False if shutdown already swept the shard,
   or if memory ran out: then t is not registered (it is still counted alive,
   and it is woken at shutdown only if the wait it parks in sees the closed
   runtime on its own). */
bool weft__registry_insert(struct weft__registry *r, struct weft_task *t, unsigned hint);
void weft__registry_remove(struct weft__registry *r, struct weft_task *t);

/* Marks every shard swept and requests cancellation of every registered task
   (which wakes it). */
void weft__registry_sweep(struct weft__registry *r);

/* Calls fn for every registered task, under its shard's lock (so the task
   is not freed meanwhile; fn must not block or touch the registry). */
void weft__registry_visit(struct weft__registry *r, void (*fn)(struct weft_task *t, void *arg),
                          void *arg);

#endif
