/*
 * Channels: a ring buffer and two FIFOs of waiters, senders and receivers,
 * under one spinlock (the senders queue's; waitq.h).
 *
 * Invariants, under the lock: receivers wait only while the buffer is
 * empty, senders only while it is full (bounded channels), and never both.
 * So a send first hands its element to the longest-waiting receiver --
 * copied into the receiver's own buffer, then GRANTED -- else appends to
 * the buffer, else waits with its element; a receive takes the buffer's
 * head and, if a sender waits, moves that sender's element in behind and
 * GRANTs it, else waits. An element copied for a waiter is its call's
 * effect: a GRANTED wait returns 0 whatever else happened. A waiter still
 * queued when cancelled leaves with nothing sent or received.
 *
 * Close marks the channel and wakes every waiter (WOKEN): they look again,
 * senders find it closed (-EPIPE, nothing sent), receivers drain the buffer
 * and then find it closed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <weft/sync.h>

#include "../runtime/fault.h"
#include "waitq.h"

#define WAKE_BATCH 64
#define UNBOUNDED_START 16

struct weft_chan {
	struct weft_waitq_ senders; /* its lock guards everything below */
	struct weft_waitq_ receivers;
	size_t cap; /* 0: unbounded */
	size_t elem_size;
	unsigned char *buf;
	size_t slots, head, len;
	bool closed;
};

weft_chan *weft_chan_new(size_t capacity, size_t elem_size)
{
	if (elem_size == 0 || elem_size > SIZE_MAX / 4)
		return NULL;
	size_t slots = capacity ? capacity : UNBOUNDED_START;
	if (slots > SIZE_MAX / elem_size)
		return NULL;
	weft_chan *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->buf = malloc(slots * elem_size);
	if (!c->buf) {
		free(c);
		return NULL;
	}
	c->cap = capacity;
	c->elem_size = elem_size;
	c->slots = slots;
	return c;
}

void weft_chan_free(weft_chan *c)
{
	if (!c)
		return;
	free(c->buf);
	free(c);
}

static unsigned char *slot(weft_chan *c, size_t i)
{
	return c->buf + ((c->head + i) % c->slots) * c->elem_size;
}

/* Doubles an unbounded channel's buffer; false when out of memory. */
static bool grow(weft_chan *c)
{
	if (c->slots > SIZE_MAX / 2 / c->elem_size)
		return false;
	unsigned char *nb = malloc(2 * c->slots * c->elem_size);
	if (!nb)
		return false;
	for (size_t i = 0; i < c->len; i++)
		memcpy(nb + i * c->elem_size, slot(c, i), c->elem_size);
	free(c->buf);
	c->buf = nb;
	c->slots *= 2;
	c->head = 0;
	return true;
}

static void push(weft_chan *c, const void *elem)
{
	memcpy(slot(c, c->len), elem, c->elem_size);
	c->len++;
}

static void pop(weft_chan *c, void *elem)
{
	memcpy(elem, slot(c, 0), c->elem_size);
	c->head = (c->head + 1) % c->slots;
	c->len--;
}

/* Under the lock: sends without waiting if it can. 0, -EPIPE, -EAGAIN
   (bounded and full), -ENOMEM; *k is set when a receiver must be woken. */
static int send_now(weft_chan *c, const void *elem, struct weft__waker *k, bool *wake)
{
	if (c->closed)
		return -EPIPE;
	struct weft__waiter *r = weft__wq_head(&c->receivers);
	if (r) {
		memcpy(r->data, elem, c->elem_size);
		*k = weft__wq_release(&c->receivers, r, WEFT__W_GRANTED);
		*wake = true;
		return 0;
	}
	if (c->len == c->slots) {
		if (c->cap)
			return -EAGAIN;
		if (!grow(c))
			return -ENOMEM;
	}
	push(c, elem);
	return 0;
}

/* Under the lock: receives without waiting if it can. 0, -EPIPE (closed and
   drained), -EAGAIN; *k is set when a sender must be woken. */
static int recv_now(weft_chan *c, void *elem, struct weft__waker *k, bool *wake)
{
	if (c->len) {
		pop(c, elem);
		struct weft__waiter *s = weft__wq_head(&c->senders);
		if (s) {
			push(c, s->data);
			*k = weft__wq_release(&c->senders, s, WEFT__W_GRANTED);
			*wake = true;
		}
		return 0;
	}
	return c->closed ? -EPIPE : -EAGAIN;
}

static int finish(weft_chan *c, int rc, struct weft__waker k, bool wake)
{
	weft__wq_unlock(&c->senders);
	if (wake)
		weft__waker_wake(k);
	return rc;
}

int weft_chan_try_send(weft_chan *c, const void *elem)
{
	if (!c || !elem)
		return -EINVAL;
	struct weft__waker k;
	bool wake = false;
	weft__wq_lock(&c->senders);
	return finish(c, send_now(c, elem, &k, &wake), k, wake);
}

int weft_chan_try_recv(weft_chan *c, void *elem)
{
	if (!c || !elem)
		return -EINVAL;
	struct weft__waker k;
	bool wake = false;
	weft__wq_lock(&c->senders);
	return finish(c, recv_now(c, elem, &k, &wake), k, wake);
}

int weft_chan_send(weft_chan *c, const void *elem)
{
	if (!c || !elem)
		return -EINVAL;
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	struct weft__waker k;
	bool wake = false;
	struct weft__waiter w;
	w.data = (void *)elem;
	for (;;) {
		weft__wq_lock(&c->senders);
		rc = send_now(c, elem, &k, &wake);
		if (rc != -EAGAIN)
			return finish(c, rc, k, wake);
		weft__wq_enqueue(&c->senders, &w, false);
		int r = weft__wq_wait_in(&c->senders, &c->senders, &w);
		if (r == WEFT__W_GRANTED)
			return 0; /* a receiver moved our element in */
		if (r < 0)
			return r;
		/* WOKEN: closed; look again */
	}
}

int weft_chan_recv(weft_chan *c, void *elem)
{
	if (!c || !elem)
		return -EINVAL;
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	struct weft__waker k;
	bool wake = false;
	struct weft__waiter w;
	w.data = elem;
	for (;;) {
		weft__wq_lock(&c->senders);
		rc = recv_now(c, elem, &k, &wake);
		if (rc != -EAGAIN)
			return finish(c, rc, k, wake);
		weft__wq_enqueue(&c->receivers, &w, false);
		int r = weft__wq_wait_in(&c->senders, &c->receivers, &w);
		if (r == WEFT__W_GRANTED)
			return 0; /* a sender copied its element into ours */
		if (r < 0)
			return r;
	}
}

/* Under the lock: wakes every waiter of q as WOKEN, in batches. */
static void wake_all(weft_chan *c, struct weft_waitq_ *q)
{
	struct weft__waker k[WAKE_BATCH];
	for (;;) {
		size_t got = 0;
		struct weft__waiter *h;
		while (got < WAKE_BATCH && (h = weft__wq_head(q)))
			k[got++] = weft__wq_release(q, h, WEFT__W_WOKEN);
		weft__wq_unlock(&c->senders);
		for (size_t i = 0; i < got; i++)
			weft__waker_wake(k[i]);
		weft__wq_lock(&c->senders);
		if (got < WAKE_BATCH)
			return;
	}
}

void weft_chan_close(weft_chan *c)
{
	if (!c)
		return;
	weft__wq_lock(&c->senders);
	c->closed = true;
	wake_all(c, &c->receivers);
	wake_all(c, &c->senders);
	weft__wq_unlock(&c->senders);
}
