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

#define FREE_TAG 1u

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
		r->shards[i].slots = NULL;
		r->shards[i].cap = 0;
		r->shards[i].free = 0;
		r->shards[i].swept = false;
	}
	r->mask = n - 1;
	return 0;
}

void weft__registry_destroy(struct weft__registry *r)
{
	if (!r->shards)
		return;
	for (unsigned i = 0; i <= r->mask; i++) {
		pthread_mutex_destroy(&r->shards[i].lock);
		free(r->shards[i].slots);
	}
	free(r->shards);
	r->shards = NULL;
}

/* Doubles the shard's array, chaining the new slots into the free list. */
static bool grow(struct weft__registry_shard *s)
{
	uint32_t cap = s->cap ? s->cap * 2 : 256;
	uintptr_t *slots = realloc(s->slots, cap * sizeof *slots);
	if (!slots)
		return false;
	for (uint32_t i = s->cap; i < cap; i++)
		slots[i] = ((uintptr_t)(i + 1) << 1) | FREE_TAG;
	s->slots = slots;
	s->free = s->cap;
	s->cap = cap;
	return true;
}

bool weft__registry_insert(struct weft__registry *r, struct weft_task *t, unsigned hint)
{
	struct weft__registry_shard *s = &r->shards[hint & r->mask];
	pthread_mutex_lock(&s->lock);
	bool ok = s->free < s->cap || grow(s);
	if (ok) {
		uint32_t i = s->free;
		s->free = (uint32_t)(s->slots[i] >> 1);
		s->slots[i] = (uintptr_t)t;
		t->reg_shard = hint & r->mask;
		t->reg_slot = i;
	}
	bool swept = s->swept;
	pthread_mutex_unlock(&s->lock);
	if (!ok)
		atomic_store_explicit(&t->registered, false, memory_order_relaxed);
	return ok && !swept;
}

void weft__registry_remove(struct weft__registry *r, struct weft_task *t)
{
	struct weft__registry_shard *s = &r->shards[t->reg_shard];
	pthread_mutex_lock(&s->lock);
	s->slots[t->reg_slot] = ((uintptr_t)s->free << 1) | FREE_TAG;
	s->free = t->reg_slot;
	pthread_mutex_unlock(&s->lock);
}

void weft__registry_sweep(struct weft__registry *r)
{
	for (unsigned i = 0; i <= r->mask; i++) {
		struct weft__registry_shard *s = &r->shards[i];
		pthread_mutex_lock(&s->lock);
		s->swept = true;
		for (uint32_t k = 0; k < s->cap; k++)
			if (!(s->slots[k] & FREE_TAG))
				weft_cancel((struct weft_task *)s->slots[k]);
		pthread_mutex_unlock(&s->lock);
	}
}

void weft__registry_visit(struct weft__registry *r, void (*fn)(struct weft_task *t, void *arg),
                          void *arg)
{
	for (unsigned i = 0; i <= r->mask; i++) {
		struct weft__registry_shard *s = &r->shards[i];
		pthread_mutex_lock(&s->lock);
		for (uint32_t k = 0; k < s->cap; k++)
			if (!(s->slots[k] & FREE_TAG))
				fn((struct weft_task *)s->slots[k], arg);
		pthread_mutex_unlock(&s->lock);
	}
}
