/*
 * The counting semaphore: a permit count and a FIFO of waiters, each
 * asking for n permits (waitq.h), all under the queue's lock.
 *
 * Permits go to waiters strictly in queue order: a release grants the
 * head while the permits cover its request, so a large request is never
 * overtaken by smaller ones arriving later, and an acquire or try_acquire
 * never takes permits past a waiter. A waiter that leaves (cancelled, timed
 * out) takes nothing; since it may have been the head holding others back,
 * its leaving runs the grant loop again.
 */
#include <errno.h>

#include <weft/sync.h>

#include "waitq.h"

#define WAKE_BATCH 64

int weft_sem_init(weft_sem *s, uint64_t permits)
{
	if (!s)
		return -EINVAL;
	s->permits = permits;
	s->q = (struct weft_waitq_){0, NULL, NULL};
	return 0;
}

void weft_sem_destroy(weft_sem *s)
{
	(void)s;
}

/* Called with the lock held; grants waiters from the head while the
   permits last, and returns with the lock released. */
static void grant_and_unlock(weft_sem *s)
{
	struct weft__waker k[WAKE_BATCH];
	for (;;) {
		size_t got = 0;
		struct weft__waiter *h;
		while (got < WAKE_BATCH && (h = weft__wq_head(&s->q)) && h->n <= s->permits) {
			s->permits -= h->n;
			k[got++] = weft__wq_release(&s->q, h, WEFT__W_GRANTED);
		}
		weft__wq_unlock(&s->q);
		for (size_t i = 0; i < got; i++)
			weft__waker_wake(k[i]);
		if (got < WAKE_BATCH)
			return;
		weft__wq_lock(&s->q);
	}
}

int weft_sem_try_acquire(weft_sem *s, uint64_t n)
{
	if (!s || n == 0)
		return -EINVAL;
	weft__wq_lock(&s->q);
	int rc = -EAGAIN;
	if (weft__wq_empty(&s->q) && s->permits >= n) {
		s->permits -= n;
		rc = 0;
	}
	weft__wq_unlock(&s->q);
	return rc;
}

int weft_sem_acquire(weft_sem *s, uint64_t n)
{
	if (!s || n == 0)
		return -EINVAL;
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	weft__wq_lock(&s->q);
	if (weft__wq_empty(&s->q) && s->permits >= n) {
		s->permits -= n;
		weft__wq_unlock(&s->q);
		return 0;
	}
	struct weft__waiter w;
	w.n = n;
	weft__wq_enqueue(&s->q, &w, false);
	int r = weft__wq_wait(&s->q, &w, WEFT__WAIT_SEM, s,
	                      (uint32_t)(n < 0xffffff ? n : 0xffffff));
	if (r == WEFT__W_GRANTED)
		return 0;
	/* Left: those behind us may fit now. */
	weft__wq_lock(&s->q);
	grant_and_unlock(s);
	return r;
}

void weft_sem_release(weft_sem *s, uint64_t n)
{
	if (!s || n == 0)
		return;
	weft__wq_lock(&s->q);
	s->permits += n;
	grant_and_unlock(s);
}
