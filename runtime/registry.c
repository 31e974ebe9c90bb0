/*
 * The registry of suspended tasks; see registry.h.
 *
 * Lifetime: a registered task is removed from its shard before the scheduler
 * drops the task's "alive" reference, so any task reached under a shard lock
 * is still allocated; cancelling it there is safe.
 */
#include "lock.h"
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "task.h"

int weft__registry_init(struct weft__registry *r, unsigned nshards)
{
	unsigned n = 1;
	while (n < nshards)
		n <<= 1;
	r->shards = aligned_alloc(64, n * sizeof *r->shards);
	if (!r->shards)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		weft__lock_init(&r->shards[i].lock);
		r->shards[i].head = NULL;
		r->shards[i].swept = false;
	}
	r->mask = n - 1;
	return 0;
}

void weft__registry_destroy(struct weft__registry *r)
{
	if (!r->shards)
		return;
	for (unsigned i = 0; i <= r->mask; i++)
		pthread_mutex_destroy(&r->shards[i].lock);
	free(r->shards);
	r->shards = NULL;
}

bool weft__registry_insert(struct weft__registry *r, struct weft_task *t, unsigned hint)
{
	struct weft__registry_shard *s = &r->shards[hint & r->mask];
	pthread_mutex_lock(&s->lock);
	t->reg_shard = hint & r->mask;
	t->reg_prev = NULL;
	t->reg_next = s->head;
	if (s->head)
		s->head->reg_prev = t;
	s->head = t;
	bool swept = s->swept;
	pthread_mutex_unlock(&s->lock);
	return !swept;
}

void weft__registry_remove(struct weft__registry *r, struct weft_task *t)
{
	struct weft__registry_shard *s = &r->shards[t->reg_shard];
	pthread_mutex_lock(&s->lock);
	if (t->reg_prev)
		t->reg_prev->reg_next = t->reg_next;
	else
		s->head = t->reg_next;
	if (t->reg_next)
		t->reg_next->reg_prev = t->reg_prev;
	pthread_mutex_unlock(&s->lock);
}

void weft__registry_sweep(struct weft__registry *r)
{
	for (unsigned i = 0; i <= r->mask; i++) {
		struct weft__registry_shard *s = &r->shards[i];
		pthread_mutex_lock(&s->lock);
		s->swept = true;
		for (struct weft_task *t = s->head; t; t = t->reg_next)
			weft_cancel(t);
		pthread_mutex_unlock(&s->lock);
	}
}

size_t weft__registry_report(struct weft__registry *r, int fd)
{
	size_t n = 0;
	for (unsigned i = 0; i <= r->mask; i++) {
		struct weft__registry_shard *s = &r->shards[i];
		pthread_mutex_lock(&s->lock);
		for (struct weft_task *t = s->head; t; t = t->reg_next, n++) {
			uint64_t st = weft__task_state(t);
			dprintf(fd, "weft:   task %llu '%s' spawned at %s:%d is %s\n",
			        (unsigned long long)t->id, t->name ? t->name : "", t->file, t->line,
			        (st & WEFT__T_SCHEDULED) ? "running or ready" : "parked");
		}
		pthread_mutex_unlock(&s->lock);
	}
	return n;
}
