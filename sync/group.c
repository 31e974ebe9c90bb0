/*
 * Task groups: the children a group owns, in two lists under the group's
 * lock (its wait queue's): running, and done-but-not-joined in the order
 * they finished.
 *
 * A child is a small record and a task running child_main, which runs the
 * user's function and then, under the lock, moves its record to the done
 * list and wakes the first waiting joiner. The spawner stores the task
 * handle in the record after weft_spawn returns, so a child may finish
 * before its handle is known: join_next takes only done children whose
 * handle is set, and the spawner wakes a joiner itself if its child
 * finished first. join_next joins the child's task (it has returned from
 * child_main, so that join is immediate, and shielded so that it cannot be
 * interrupted halfway) to report its status and result.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include <weft/sync.h>
#include <weft/task.h>

#include "waitq.h"

struct child {
	struct child *prev, *next;
	weft_group *g;
	weft_fn fn;
	void *arg;
	weft_task *task; /* set by the spawner, under the lock */
	bool finished;
};

int weft_group_init(weft_group *g, weft_runtime *rt)
{
	if (!g)
		return -EINVAL;
	g->q = (struct weft_waitq_){0, NULL, NULL};
	g->rt = rt;
	g->running = g->done = g->done_tail = NULL;
	g->nrunning = 0;
	g->cancelled = 0;
	return 0;
}

static void unlink_running(weft_group *g, struct child *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		g->running = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

static void push_done(weft_group *g, struct child *c)
{
	c->next = NULL;
	c->prev = g->done_tail;
	if (g->done_tail)
		((struct child *)g->done_tail)->next = c;
	else
		g->done = c;
	g->done_tail = c;
}

/* The first done child whose handle is known, taken off the list. */
static struct child *take_done(weft_group *g)
{
	for (struct child *c = g->done; c; c = c->next) {
		if (!c->task)
			continue;
		if (c->prev)
			c->prev->next = c->next;
		else
			g->done = c->next;
		if (c->next)
			c->next->prev = c->prev;
		else
			g->done_tail = c->prev;
		return c;
	}
	return NULL;
}

/* Under the lock: wakes the first joiner (it looks again). */
static bool wake_joiner(weft_group *g, struct weft__waker *k)
{
	struct weft__waiter *w = weft__wq_head(&g->q);
	if (!w)
		return false;
	*k = weft__wq_release(&g->q, w, WEFT__W_WOKEN);
	return true;
}

static void *child_main(void *arg)
{
	struct child *c = arg;
	weft_group *g = c->g;
	void *r = c->fn(c->arg);
	struct weft__waker k;
	bool wake = false;
	weft__wq_lock(&g->q);
	unlink_running(g, c);
	g->nrunning--;
	c->finished = true;
	push_done(g, c);
	if (c->task)
		wake = wake_joiner(g, &k);
	weft__wq_unlock(&g->q);
	if (wake)
		weft__waker_wake(k);
	return r;
}

int weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
	if (!g || !fn)
		return -EINVAL;
	struct child *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->g = g;
	c->fn = fn;
	c->arg = arg;
	weft__wq_lock(&g->q);
	c->next = g->running;
	if (c->next)
		c->next->prev = c;
	g->running = c;
	g->nrunning++;
	weft__wq_unlock(&g->q);
	weft_task *t = weft_spawn_on(g->rt, child_main, c);
	struct weft__waker k;
	bool wake = false;
	weft__wq_lock(&g->q);
	if (!t) {
		unlink_running(g, c);
		g->nrunning--;
		weft__wq_unlock(&g->q);
		free(c);
		return g->rt || weft_runtime_current() ? -ENOMEM : -EINVAL;
	}
	c->task = t;
	if (g->cancelled)
		weft_cancel(t);
	if (c->finished)
		wake = wake_joiner(g, &k); /* it finished before we knew its handle */
	weft__wq_unlock(&g->q);
	if (wake)
		weft__waker_wake(k);
	return 0;
}

/* join_next's body; `checked`: a wait that reports cancellation and
   deadlines, else one that only ends with a child (destroy's: a thread
   whose deadline passed then polls until its children are done). */
static int join_next(weft_group *g, void **result, bool checked)
{
	struct weft__waiter w;
	for (;;) {
		weft__wq_lock(&g->q);
		struct child *c = take_done(g);
		if (c) {
			weft__wq_unlock(&g->q);
			weft_shield_push();
			int st = weft_join(c->task, result);
			weft_shield_pop();
			free(c);
			return st;
		}
		if (!g->nrunning && !g->done) {
			weft__wq_unlock(&g->q);
			return -ECHILD;
		}
		weft__wq_enqueue(&g->q, &w, false);
		int r = weft__wq_wait(&g->q, &w, WEFT__WAIT_GROUP, g, 0);
		if (r < 0 && checked)
			return r;
	}
}

int weft_group_join_next(weft_group *g, void **result)
{
	if (!g)
		return -EINVAL;
	int rc = weft__wait_enter();
	return rc ? rc : join_next(g, result, true);
}

void weft_group_cancel_all(weft_group *g)
{
	if (!g)
		return;
	weft__wq_lock(&g->q);
	g->cancelled = 1;
	for (struct child *c = g->running; c; c = c->next)
		if (c->task)
			weft_cancel(c->task);
	weft__wq_unlock(&g->q);
}

void weft_group_destroy(weft_group *g)
{
	if (!g)
		return;
	weft_group_cancel_all(g);
	weft_shield_push();
	while (join_next(g, NULL, false) != -ECHILD)
		;
	weft_shield_pop();
}
