/*
 * The reader-writer lock: a reader count, a writer flag and a FIFO of
 * waiters (waitq.h, n = READ or WRITE), all under the queue's lock.
 *
 * A lock is taken at once only when nobody waits (readers: and no writer
 * holds it; a writer: and nobody holds it), so a reader never overtakes a
 * queued writer. Each unlock grants from the head: a writer once the lock
 * is free, or the run of readers at the head while no writer holds it. A
 * waiter that leaves (cancelled, timed out) takes nothing and runs the
 * grant again, since it may have been the writer the readers behind it
 * waited for.
 */
#include <errno.h>

#include <weft/sync.h>

#include "waitq.h"

#define READ 1
#define WRITE 2
#define WAKE_BATCH 64

void weft_rwlock_init(weft_rwlock *l)
{
	if (!l)
		return;
	l->readers = 0;
	l->writer = 0;
	l->q = (struct weft_waitq_){0, NULL, NULL};
}

void weft_rwlock_destroy(weft_rwlock *l)
{
	(void)l;
}

static bool can_take(const weft_rwlock *l, int kind)
{
	if (!weft__wq_empty(&l->q) || l->writer)
		return false;
	return kind == READ || l->readers == 0;
}

static void take(weft_rwlock *l, int kind)
{
	if (kind == READ)
		l->readers++;
	else
		l->writer = 1;
}

/* Called with the lock held; grants from the head and returns with the lock
   released. */
static void grant_and_unlock(weft_rwlock *l)
{
	struct weft__waker k[WAKE_BATCH];
	for (;;) {
		size_t got = 0;
		struct weft__waiter *h;
		while (got < WAKE_BATCH && (h = weft__wq_head(&l->q)) && !l->writer &&
		       (h->n == READ || l->readers == 0)) {
			take(l, (int)h->n);
			k[got++] = weft__wq_release(&l->q, h, WEFT__W_GRANTED);
		}
		weft__wq_unlock(&l->q);
		for (size_t i = 0; i < got; i++)
			weft__waker_wake(k[i]);
		if (got < WAKE_BATCH)
			return;
		weft__wq_lock(&l->q);
	}
}

static int try_lock(weft_rwlock *l, int kind)
{
	if (!l)
		return -EINVAL;
	weft__wq_lock(&l->q);
	bool ok = can_take(l, kind);
	if (ok)
		take(l, kind);
	weft__wq_unlock(&l->q);
	return ok ? 0 : -EBUSY;
}

static int lock(weft_rwlock *l, int kind)
{
	if (!l)
		return -EINVAL;
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	weft__wq_lock(&l->q);
	if (can_take(l, kind)) {
		take(l, kind);
		weft__wq_unlock(&l->q);
		return 0;
	}
	struct weft__waiter w;
	w.n = (uint64_t)kind;
	weft__wq_enqueue(&l->q, &w, false);
	int r = weft__wq_wait(
	        &l->q, &w, kind == READ ? WEFT__WAIT_RWLOCK_READ : WEFT__WAIT_RWLOCK_WRITE, l, 0);
	if (r == WEFT__W_GRANTED)
		return 0;
	weft__wq_lock(&l->q);
	grant_and_unlock(l);
	return r;
}

int weft_rwlock_rdlock(weft_rwlock *l)
{
	return lock(l, READ);
}

int weft_rwlock_wrlock(weft_rwlock *l)
{
	return lock(l, WRITE);
}

int weft_rwlock_tryrdlock(weft_rwlock *l)
{
	return try_lock(l, READ);
}

int weft_rwlock_trywrlock(weft_rwlock *l)
{
	return try_lock(l, WRITE);
}

void weft_rwlock_unlock(weft_rwlock *l)
{
	if (!l)
		return;
	weft__wq_lock(&l->q);
	if (l->writer)
		l->writer = 0;
	else if (l->readers)
		l->readers--;
	grant_and_unlock(l);
}
