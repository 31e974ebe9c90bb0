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
	q->started.head = q->started.tail = NULL;
	q->fresh.head = q->fresh.tail = NULL;
	q->closed = false;
	atomic_init(&q->spawned, 0);
}

void weft__inject_destroy(struct weft__inject *q)
{
	pthread_mutex_destroy(&q->lock);
}

static void fifo_append(struct weft__task_fifo *f, struct weft_task *first, struct weft_task *last)
{
	if (f->tail)
		f->tail->qnext = first;
	else
		f->head = first;
	f->tail = last;
	last->qnext = NULL;
}

static void add_len(struct weft__inject *q, size_t n)
{
	atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) + n,
	                      memory_order_release);
}

static struct weft__task_fifo *fifo_for(struct weft__inject *q, struct weft_task *t)
{
	return t->stack ? &q->started : &q->fresh;
}

void weft__inject_push(struct weft__inject *q, struct weft_task *t)
{
	pthread_mutex_lock(&q->lock);
	fifo_append(fifo_for(q, t), t, t);
	add_len(q, 1);
	pthread_mutex_unlock(&q->lock);
}

void weft__inject_push_last(struct weft__inject *q, struct weft_task *t)
{
	pthread_mutex_lock(&q->lock);
	fifo_append(&q->fresh, t, t);
	add_len(q, 1);
	pthread_mutex_unlock(&q->lock);
}

void weft__inject_push_batch(struct weft__inject *q, const struct weft__batch *b)
{
	/* Split the batch by kind, keeping each kind's order, before locking. */
	struct weft_task *heads[2] = {NULL, NULL}, *tails[2] = {NULL, NULL};
	for (struct weft_task *t = b->first, *next; t; t = next) {
		next = t->qnext;
		int k = t->stack != NULL;
		if (tails[k])
			tails[k]->qnext = t;
		else
			heads[k] = t;
		tails[k] = t;
	}
	pthread_mutex_lock(&q->lock);
	if (heads[1])
		fifo_append(&q->started, heads[1], tails[1]);
	if (heads[0])
		fifo_append(&q->fresh, heads[0], tails[0]);
	add_len(q, b->n);
	pthread_mutex_unlock(&q->lock);
}

long weft__inject_push_spawn(struct weft__inject *q, struct weft_task *t)
{
	pthread_mutex_lock(&q->lock);
	if (q->closed) {
		pthread_mutex_unlock(&q->lock);
		return -ESHUTDOWN;
	}
	atomic_store_explicit(&q->spawned,
	                      atomic_load_explicit(&q->spawned, memory_order_relaxed) + 1,
	                      memory_order_release);
	fifo_append(&q->fresh, t, t);
	add_len(q, 1);
	long len = (long)atomic_load_explicit(&q->len, memory_order_relaxed);
	pthread_mutex_unlock(&q->lock);
	return len;
}

void weft__inject_close(struct weft__inject *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_mutex_unlock(&q->lock);
}

/* Moves up to max tasks from the front of f to the end of batch b. */
static void take_from(struct weft__task_fifo *f, unsigned max, struct weft__batch *b)
{
	struct weft_task *t = f->head;
	if (!t || !max)
		return;
	unsigned n = 1;
	while (n < max && t->qnext) {
		t = t->qnext;
		n++;
	}
	if (b->last)
		b->last->qnext = f->head;
	else
		b->first = f->head;
	b->last = t;
	b->n += n;
	f->head = t->qnext;
	if (!f->head)
		f->tail = NULL;
	t->qnext = NULL;
}

void weft__inject_pop_batch(struct weft__inject *q, unsigned max, struct weft__batch *b)
{
	b->n = 0;
	b->first = b->last = NULL;
	if (weft__inject_len(q) == 0)
		return;
	pthread_mutex_lock(&q->lock);
	take_from(&q->started, max, b);
	take_from(&q->fresh, max - b->n, b);
	if (b->n)
		atomic_store_explicit(&q->len,
		                      atomic_load_explicit(&q->len, memory_order_relaxed) - b->n,
		                      memory_order_release);
	pthread_mutex_unlock(&q->lock);
}
