/*
 * The global injector; see inject.h.
 *
 * len is written only under the lock, and read without it as a hint: a
 * worker that reads 0 while a push is in flight finds the task on its next
 * check, or is woken by the pusher (the pusher notifies after its push, and
 * the idle protocol in idle.c re-checks the injector before sleeping).
 */
#include "inject.h"

#include <errno.h>

#include "lock.h"

#include "task.h"

void weft__inject_init(struct weft__inject *q)
{
	atomic_init(&q->len, 0);
	weft__lock_init(&q->lock);
	q->head = q->tail = NULL;
	q->closed = false;
	atomic_init(&q->spawned, 0);
}

void weft__inject_destroy(struct weft__inject *q)
{
	pthread_mutex_destroy(&q->lock);
}

void weft__inject_push(struct weft__inject *q, struct weft_task *t)
{
	struct weft__batch b = {t, t, 1};
	t->qnext = NULL;
	weft__inject_push_batch(q, &b);
}

static void append(struct weft__inject *q, const struct weft__batch *b)
{
	if (q->tail)
		q->tail->qnext = b->first;
	else
		q->head = b->first;
	q->tail = b->last;
	atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) + b->n,
	                      memory_order_release);
}

void weft__inject_push_batch(struct weft__inject *q, const struct weft__batch *b)
{
	pthread_mutex_lock(&q->lock);
	append(q, b);
	pthread_mutex_unlock(&q->lock);
}

int weft__inject_push_spawn(struct weft__inject *q, struct weft_task *t)
{
	struct weft__batch b = {t, t, 1};
	t->qnext = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->closed) {
		pthread_mutex_unlock(&q->lock);
		return -ESHUTDOWN;
	}
	atomic_store_explicit(&q->spawned,
	                      atomic_load_explicit(&q->spawned, memory_order_relaxed) + 1,
	                      memory_order_release);
	append(q, &b);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

void weft__inject_close(struct weft__inject *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_mutex_unlock(&q->lock);
}

void weft__inject_pop_batch(struct weft__inject *q, unsigned max, struct weft__batch *b)
{
	b->n = 0;
	b->first = b->last = NULL;
	if (weft__inject_len(q) == 0)
		return;
	pthread_mutex_lock(&q->lock);
	struct weft_task *t = q->head;
	if (t) {
		b->first = t;
		unsigned n = 1;
		while (n < max && t->qnext) {
			t = t->qnext;
			n++;
		}
		q->head = t->qnext;
		if (!q->head)
			q->tail = NULL;
		t->qnext = NULL;
		b->last = t;
		b->n = n;
		atomic_store_explicit(&q->len,
		                      atomic_load_explicit(&q->len, memory_order_relaxed) - n,
		                      memory_order_release);
	}
	pthread_mutex_unlock(&q->lock);
}
