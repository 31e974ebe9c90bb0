/*
 * Notify: a permit and a FIFO of waiters (waitq.h).
 *
 * notify_one dequeues the first waiter as GRANTED, or sets the permit when
 * nobody waits; a wait takes the permit if set. notify_all grants every
 * waiter queued before it began: each waiter carries its queueing number,
 * so waiters arriving while it wakes a long queue in batches are left for
 * the next notification. A cancelled waiter still queued leaves with
 * nothing; one already GRANTED returns 0 (the notification was delivered
 * to it, not lost).
 */
#include <errno.h>

#include <weft/sync.h>

#include "waitq.h"

#define WAKE_BATCH 64

void weft_notify_init(weft_notify *n)
{
	if (!n)
		return;
	n->permit = 0;
	n->seq = 0;
	n->q = (struct weft_waitq_){0, NULL, NULL};
}

void weft_notify_destroy(weft_notify *n)
{
	(void)n;
}

int weft_notify_wait(weft_notify *n)
{
	if (!n)
		return -EINVAL;
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	weft__wq_lock(&n->q);
	if (n->permit) {
		n->permit = 0;
		weft__wq_unlock(&n->q);
		return 0;
	}
	struct weft__waiter w;
	w.n = ++n->seq;
	weft__wq_enqueue(&n->q, &w, false);
	int r = weft__wq_wait(&n->q, &w, WEFT__WAIT_NOTIFY, n, 0);
	return r == WEFT__W_GRANTED ? 0 : r;
}

void weft_notify_one(weft_notify *n)
{
	if (!n)
		return;
	struct weft__waker k;
	bool wake = false;
	weft__wq_lock(&n->q);
	if (!weft__wq_empty(&n->q)) {
		k = weft__wq_release(&n->q, weft__wq_head(&n->q), WEFT__W_GRANTED);
		wake = true;
	} else {
		n->permit = 1;
	}
	weft__wq_unlock(&n->q);
	if (wake)
		weft__waker_wake(k);
}

void weft_notify_all(weft_notify *n)
{
	if (!n)
		return;
	struct weft__waker k[WAKE_BATCH];
	weft__wq_lock(&n->q);
	uint64_t last = n->seq;
	for (;;) {
		size_t got = 0;
		struct weft__waiter *h;
		while (got < WAKE_BATCH && (h = weft__wq_head(&n->q)) && h->n <= last)
			k[got++] = weft__wq_release(&n->q, h, WEFT__W_GRANTED);
		weft__wq_unlock(&n->q);
		for (size_t i = 0; i < got; i++)
			weft__waker_wake(k[i]);
		if (got < WAKE_BATCH)
			return;
		weft__wq_lock(&n->q);
	}
}
