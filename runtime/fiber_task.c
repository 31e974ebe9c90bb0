/*
 * The fiber task kind: how tasks start, switch, park and finish on stacks.
 *
 * Direct switching. A task that yields or parks does not return to a
 * scheduler loop: on its own stack it picks the next runnable task of its
 * worker (weft__next_runnable: LIFO slot, inbox, local queue, injector) and
 * switches straight into it -- one context switch, not two. Only when nothing
 * is runnable does it switch to the worker's scheduler context (the thread's
 * own stack), which searches other workers and sleeps.
 *
 * Pending work. What happens to the task we switch away from -- re-queue it
 * (yield), commit its park, or release the stack it finished on -- must wait
 * until its context is completely saved: before that, another worker could
 * take it from a queue and run it on a stack still in use. So the switching
 * side records it in its thread (th->pend*) and the side that resumes runs
 * weft__finish_pending() first thing, on the same thread, after the switch.
 * Every resume point does: a resumed task (in weft__task_switch_out), a new
 * fiber (fiber_main), and the scheduler loop.
 *
 * Stacks run tasks, in a loop. fiber_main() runs a task's function on a
 * pooled stack; when the function returns and the next runnable task has
 * never run, that task's function is simply called next on the same stack
 * -- no switch, no new stack. So a chain of tasks that never park costs no
 * context switch at all, and touches one stack. A stack is kept by a task
 * only while the task is parked or runnable mid-function.
 *
 * errno is saved when a task switches out and restored when it resumes, on
 * whatever thread that is; the runtime's thread-locals are re-read after
 * every switch (tls.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"
#include "stack.h"
#include "task.h"
#include "tls.h"
#include "wait.h"
#include "worker.h"

static void fiber_main(void *arg);

static void misuse_abort(struct weft_task *t, const char *what)
{
	fprintf(stderr, "weft: task %llu '%s' (spawned at %s:%d) returned with %s still open\n",
	        (unsigned long long)t->id, t->name ? t->name : "", t->file, t->line, what);
	abort();
}

/* The task stops running: one run more, and if the monitor sampled this
   worker while it ran, the period is charged to it (task.h). Counted here
   rather than at every resume: a task that runs to completion in one go
   -- most -- pays nothing, and the dump adds the run in progress. */
static void account_run(struct weft__thread *th, struct weft_task *t)
{
	__atomic_store_n(&t->runs, t->runs + 1, __ATOMIC_RELAXED);
	if (atomic_load_explicit(&th->sampled, memory_order_relaxed)) {
		atomic_store_explicit(&th->sampled, 0, memory_order_relaxed);
		__atomic_store_n(&t->run_periods, t->run_periods + 1, __ATOMIC_RELAXED);
	}
}

/* The task now runs on this thread: the bookkeeping every resume does. */
static void begin_running(struct weft__tls *tls, struct weft_task *t)
{
	weft__set_running(tls, t);      /* the monitor reads t */
	t->budget = WEFT__BUDGET_CHUNK; /* the first chunk (wait.c) */
}

/* fn returned: publish COMPLETE, wake the joiner, drop the task's own
   reference. The stack is the caller's business. */
static void complete(struct weft__thread *th, struct weft_task *t)
{
	weft__task_finish(t);
	if (atomic_load_explicit(&t->registered, memory_order_relaxed))
		weft__registry_remove(&th->rt->reg, t);
	struct weft__worker *w = th->worker;
	atomic_store_explicit(&w->completed, w->completed + 1, memory_order_release);
	weft__task_unref(t);
}

/* The task parked: it sleeps unless a wake arrived while it was running, in
   which case it is queued again. */
static void park_commit(struct weft__thread *th, struct weft_task *t)
{
	uint64_t prev = atomic_load_explicit(&t->state, memory_order_relaxed), next;
	do {
		next = (prev & WEFT__T_NOTIFIED) ? (prev & ~WEFT__T_NOTIFIED)
		                                 : (prev & ~WEFT__T_SCHEDULED);
	} while (!atomic_compare_exchange_weak_explicit(
	        &t->state, &prev, next, memory_order_acq_rel, memory_order_relaxed));
	if (prev & WEFT__T_NOTIFIED)
		weft__requeue(th, t);
}

void weft__finish_pending(struct weft__thread *th)
{
	/* Tested in order of frequency: a jump table costs a yield more. */
	enum weft__pending p = th->pend;
	if (p == WEFT__PEND_NONE)
		return;
	if (p == WEFT__PEND_YIELD)
		weft__requeue_yielded(th, th->pend_task);
	else if (p == WEFT__PEND_PARK)
		park_commit(th, th->pend_task);
	else if (p == WEFT__PEND_DEMOTE)
		weft__requeue_demoted(th, th->pend_task);
	else {
		weft__fiber_destroy(&th->pend_fiber);
		weft__stack_put(&th->worker->stacks, th->pend_stack);
	}
	th->pend = WEFT__PEND_NONE;
}

/* The context to switch to for t: its own if it has run before, else a new
   fiber on a pooled stack. NULL if no stack could be had (t was put back). */
static struct weft__fiber *enter(struct weft__thread *th, struct weft_task *t)
{
	if (t->stack)
		return &t->fiber;
	struct weft__stack *s = weft__stack_get(&th->worker->stacks, t->stack_size);
	if (!s) {
		weft__stack_unavailable(th, t);
		return NULL;
	}
	t->stack = s;
	weft__fiber_make(&t->fiber, weft__stack_lo(s), s->size, fiber_main, t);
	return &t->fiber;
}

/* The scheduler loop's way into a task (the vtable's run). */
static void fiber_task_run(struct weft__thread *th, struct weft_task *t)
{
	struct weft__fiber *to = enter(th, t);
	if (to)
		weft__fiber_switch(&th->sched, to);
}

void weft__task_switch_out(enum weft__switch_reason why)
{
	struct weft__tls *tls = weft__tls();
	struct weft_task *t = tls->task;
	struct weft__thread *th = tls->thread;
	if (why != WEFT__SW_PARK_TIMED &&
	    !atomic_load_explicit(&t->registered, memory_order_relaxed)) {
		atomic_store_explicit(&t->registered, true, memory_order_relaxed);
		if (!weft__registry_insert(&t->rt->reg, t, th->index) && why == WEFT__SW_PARK)
			return; /* shutdown swept past us: see it instead of sleeping */
	}
	if (why == WEFT__SW_YIELD)
		weft__before_yield(th);
	struct weft_task *next = weft__next_runnable(th);
	struct weft__fiber *to = next ? enter(th, next) : NULL;
	if (!to) {
		if (why <= WEFT__SW_DEMOTE)
			return; /* nothing else to run here: carry on */
		to = &th->sched;
	}
	int saved_errno = *weft__errno(); /* on this stack: ours across the switch */
	account_run(th, t);
	th->pend = why == WEFT__SW_PARK_TIMED ? WEFT__PEND_PARK : (enum weft__pending)why;
	th->pend_task = t;
	weft__fiber_switch(&t->fiber, to);

	/* Resumed, possibly on another thread. */
	tls = weft__tls();
	th = tls->thread;
	weft__finish_pending(th);
	begin_running(tls, t);
	*weft__errno() = saved_errno;
}

/* Runs t's function on the current stack (which t owns), then checks what
   the task left open. */
static void run_function(struct weft_task *t)
{
	struct weft__tls *tls = weft__tls();
	struct weft__thread *th = tls->thread;
	if (t->pin_depth && !t->pinned_to)
		t->pinned_to = th; /* spawned pinned: bound where it first runs */
	*weft__errno() = 0;
	begin_running(tls, t);
	t->result = t->fn(t->arg);
	t->cancelled_at_return = weft__cancel_requested(t);
	if (t->shield_depth)
		misuse_abort(t, "a shield scope (weft_shield_push)");
	if (t->pin_depth != (t->pinned_spawn ? 1 : 0))
		misuse_abort(t, "a pin scope (weft_pin_push)");
	if (t->scope)
		misuse_abort(t, "a deadline scope (weft_deadline_push)");
}

/* Whether a task that has never run can start on stack s. */
static bool fits(const struct weft__stack *s, const struct weft_task *t)
{
	return !t->stack && t->vt == &weft__fiber_task_vtable && s->size >= t->stack_size;
}

static void fiber_main(void *arg)
{
	struct weft_task *t = arg;
	weft__fiber_started();
	weft__finish_pending(weft__tls()->thread);
	for (;;) {
		run_function(t);

		/* Possibly on another thread than we started on. */
		struct weft__tls *tls = weft__tls();
		struct weft__thread *th = tls->thread;
		struct weft__stack *s = t->stack;
		struct weft__fiber self = t->fiber;
		t->stack = NULL;
		weft__set_running(tls, NULL);
		complete(th, t); /* t may be freed from here on */

		struct weft_task *next = weft__next_runnable(th);
		if (next && fits(s, next)) {
			/* Start it right here: same stack, same sanitizer fiber. */
			next->stack = s;
			next->fiber = self;
			t = next;
			continue;
		}
		struct weft__fiber *to = next ? enter(th, next) : NULL;
		th->pend = WEFT__PEND_RELEASE;
		th->pend_stack = s;
		th->pend_fiber = self;
		weft__fiber_exit_to(&th->pend_fiber, to ? to : &th->sched);
	}
}

static void fiber_task_release(struct weft_task *t)
{
	if (t->stack) {
		/* Never finished (left behind by a timed-out shutdown). */
		weft__fiber_destroy(&t->fiber);
		weft__stack_put(NULL, t->stack);
	}
	weft__task_free(t);
}

const struct weft__task_vtable weft__fiber_task_vtable = {
        .run = fiber_task_run,
        .release = fiber_task_release,
};
