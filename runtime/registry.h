/*
 * The registry of live tasks (Tokio's OwnedTasks): every task from spawn to
 * completion sits in one shard's list, so that shutdown can cancel them all
 * and name the ones that never finish.
 *
 * Shards are chosen by the spawning worker, so on a worker the shard lock is
 * normally uncontended; each shard's count says how many tasks are alive.
 * A closed shard refuses new tasks: shutdown closes and cancels shard by
 * shard under each shard's lock, so no spawn can slip past it.
 */
#ifndef WEFT_RUNTIME_REGISTRY_H
#define WEFT_RUNTIME_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct weft_task;

struct weft__registry_shard {
	_Alignas(64) pthread_mutex_t lock;
	struct weft_task *head;
	size_t count;
	bool closed;
};

struct weft__registry {
	struct weft__registry_shard *shards;
	unsigned mask;
};

int weft__registry_init(struct weft__registry *r, unsigned nshards);
void weft__registry_destroy(struct weft__registry *r);

/* -ESHUTDOWN once the registry is closed. */
int weft__registry_insert(struct weft__registry *r, struct weft_task *t, unsigned hint);
void weft__registry_remove(struct weft__registry *r, struct weft_task *t);

/* Refuses new tasks from now on and requests cancellation of every live one. */
void weft__registry_close_and_cancel(struct weft__registry *r);

size_t weft__registry_count(struct weft__registry *r);

/* Writes one line per live task to fd (shutdown's report of stragglers). */
void weft__registry_report(struct weft__registry *r, int fd);

#endif
