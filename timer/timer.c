/*
 * Per-worker timers: a wheel of pooled nodes behind a lock, armed by tasks,
 * fired by the worker. Protocol and time rounding in timer.h.
 *
 * The one race: a task whose timer is firing may be woken for another
 * reason (a cancellation, the event it waited for) and cancel the timer at
 * the same moment, on another worker. Both sides take the wheel's lock; the
 * firer marks the node FIRED and wakes the waker while holding it, so the
 * canceller either removes a PENDING node (and drops the waker itself) or
 * finds it FIRED with the firer done with it; either way the canceller
 * frees the node.
 */
#include "timer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "../runtime/fault.h"
#include "../runtime/lock.h"
#include "../runtime/wait.h"

#define NS_PER_TICK 1000000ull
#define CHUNK_NODES 256

struct weft__timer_chunk {
	struct weft__timer_chunk *next;
	struct weft__timer_node nodes[CHUNK_NODES];
};

static uint64_t tick_ceil(const struct weft__timers *tm, uint64_t ns)
{
	return ns <= tm->base_ns ? 0 : (ns - tm->base_ns + NS_PER_TICK - 1) / NS_PER_TICK;
}

static uint64_t tick_floor(const struct weft__timers *tm, uint64_t ns)
{
	return ns <= tm->base_ns ? 0 : (ns - tm->base_ns) / NS_PER_TICK;
}

static void publish_next(struct weft__timers *tm)
{
	atomic_store_explicit(&tm->next, weft__wheel_next(&tm->wheel), memory_order_relaxed);
}

void weft__timers_init(struct weft__timers *tm, uint64_t base_ns)
{
	weft__lock_init(&tm->lock);
	tm->base_ns = base_ns;
	weft__wheel_init(&tm->wheel, 0);
	atomic_init(&tm->next, WEFT__WHEEL_NEVER);
	tm->free = NULL;
	tm->chunks = NULL;
}

void weft__timers_destroy(struct weft__timers *tm)
{
	while (tm->chunks) {
		struct weft__timer_chunk *c = tm->chunks;
		tm->chunks = c->next;
		free(c);
	}
	pthread_mutex_destroy(&tm->lock);
}

/* Under the lock. */
static struct weft__timer_node *node_alloc(struct weft__timers *tm)
{
	if (!tm->free) {
		struct weft__timer_chunk *c =
		        weft__fault(WEFT__FAULT_TIMER_ALLOC) ? NULL : malloc(sizeof *c);
		if (!c)
			return NULL;
		c->next = tm->chunks;
		tm->chunks = c;
		for (unsigned i = 0; i < CHUNK_NODES; i++) {
			c->nodes[i].free_next = tm->free;
			tm->free = &c->nodes[i];
		}
	}
	struct weft__timer_node *n = tm->free;
	tm->free = n->free_next;
	/* Nodes come back in wake order, scattered over the pool: fetch the
	   next one now rather than miss on it at the next arm. */
	__builtin_prefetch(tm->free, 1);
	return n;
}

/* Under the lock. */
static void node_free(struct weft__timers *tm, struct weft__timer_node *n)
{
	n->free_next = tm->free;
	tm->free = n;
}

int weft__timer_arm(struct weft__timers *tm, struct weft__timer *t, uint64_t deadline_ns,
                    struct weft__waker w)
{
	t->owner = tm;
	t->node = NULL;
	uint64_t when = tick_ceil(tm, deadline_ns);
	pthread_mutex_lock(&tm->lock);
	if (when <= tm->wheel.elapsed) {
		pthread_mutex_unlock(&tm->lock);
		return 0;
	}
	struct weft__timer_node *n = node_alloc(tm);
	if (!n) {
		pthread_mutex_unlock(&tm->lock);
		return -ENOMEM;
	}
	n->e.when = when;
	n->waker = w;
	atomic_store_explicit(&n->state, WEFT__TIMER_PENDING, memory_order_relaxed);
	weft__wheel_insert(&tm->wheel, &n->e);
	atomic_store_explicit(&tm->armed, atomic_load_explicit(&tm->armed, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	if (when < atomic_load_explicit(&tm->next, memory_order_relaxed))
		atomic_store_explicit(&tm->next, when, memory_order_relaxed);
	pthread_mutex_unlock(&tm->lock);
	t->node = n;
	return 1;
}

bool weft__timer_cancel(struct weft__timer *t)
{
	struct weft__timer_node *n = t->node;
	if (!n)
		return false;
	struct weft__timers *tm = t->owner;
	pthread_mutex_lock(&tm->lock);
	bool pending = atomic_load_explicit(&n->state, memory_order_relaxed) == WEFT__TIMER_PENDING;
	struct weft__waker w = n->waker;
	if (pending) {
		weft__wheel_remove(&tm->wheel, &n->e);
		publish_next(tm);
	}
	node_free(tm, n);
	pthread_mutex_unlock(&tm->lock);
	t->node = NULL;
	if (pending)
		weft__waker_drop(w);
	return pending;
}

unsigned weft__timers_fire(struct weft__timers *tm, uint64_t now_ns, unsigned max)
{
	unsigned n = 0;
	pthread_mutex_lock(&tm->lock);
	weft__wheel_advance(&tm->wheel, tick_floor(tm, now_ns));
	struct weft__wheel_entry *e;
	while (n < max && (e = weft__wheel_pop_due(&tm->wheel))) {
		struct weft__timer_node *t = (struct weft__timer_node *)e;
		atomic_store_explicit(&t->state, WEFT__TIMER_FIRED, memory_order_relaxed);
		weft__waker_wake(t->waker);
		n++;
		atomic_store_explicit(&tm->fired, atomic_load_explicit(&tm->fired, memory_order_relaxed) + 1, memory_order_relaxed);
	}
	publish_next(tm);
	pthread_mutex_unlock(&tm->lock);
	return n;
}

static void wake_task(struct weft__wheel_entry *e, void *arg)
{
	(void)arg;
	struct weft__timer_node *n = (struct weft__timer_node *)e;
	if (n->waker.task)
		weft__task_wake(n->waker.task); /* the node keeps its reference */
}

void weft__timers_wake_all(struct weft__timers *tm)
{
	pthread_mutex_lock(&tm->lock);
	weft__wheel_visit(&tm->wheel, wake_task, NULL);
	pthread_mutex_unlock(&tm->lock);
}

struct sleepers {
	struct weft__timers *tm;
	void (*fn)(struct weft_task *t, uint64_t due_ns, void *arg);
	void *arg;
};

static void visit_sleeper(struct weft__wheel_entry *e, void *arg)
{
	struct sleepers *v = arg;
	struct weft_task *t = ((struct weft__timer_node *)e)->waker.task;
	if (t && !atomic_load_explicit(&t->registered, memory_order_relaxed))
		v->fn(t, v->tm->base_ns + e->when * NS_PER_TICK, v->arg);
}

void weft__timers_visit_sleepers(struct weft__timers *tm,
                                 void (*fn)(struct weft_task *t, uint64_t due_ns, void *arg),
                                 void *arg)
{
	struct sleepers v = {tm, fn, arg};
	pthread_mutex_lock(&tm->lock);
	weft__wheel_visit(&tm->wheel, visit_sleeper, &v);
	pthread_mutex_unlock(&tm->lock);
}

uint64_t weft__timers_wait_ns(struct weft__timers *tm, uint64_t now_ns)
{
	uint64_t next = atomic_load_explicit(&tm->next, memory_order_relaxed);
	if (next == WEFT__WHEEL_NEVER)
		return WEFT__NO_DEADLINE;
	uint64_t at = tm->base_ns + next * NS_PER_TICK;
	return at <= now_ns ? 0 : at - now_ns;
}
