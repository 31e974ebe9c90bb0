/*
 * Waiting: wakers, blocking, cancellation checks, the cooperative budget,
 * yield, shields and pins. See wait.h for the protocol every wait follows.
 *
 * Budget: each task gets WEFT__BUDGET units whenever it is switched in;
 * every wait and every weft_yield_maybe() spends one. A task that keeps
 * finding its waits already satisfied (a channel that is never empty) would
 * otherwise never give its worker back; when the budget is spent the next
 * wait yields first. A task that parks starts afresh on resume.
 */
#include "wait.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "futex.h"
#include "spin.h"
#include "rt.h"
#include "tls.h"
#include "worker.h"

/* A plain thread's wait word: it polls a while in WAITING, then announces
   SLEEPING and sleeps on the futex; the waker sets WOKEN. Polling first
   saves both sides the ~6 us sleep/wake round trip when the wait is short. */
enum { WORD_WAITING, WORD_WOKEN, WORD_SLEEPING };
#define THREAD_SPIN_NS 20000

struct weft__waker weft__waker_self(_Atomic uint32_t *word)
{
	struct weft_task *t = weft__tls()->task;
	if (t) {
		weft__task_ref(t);
		return (struct weft__waker){t, NULL};
	}
	atomic_store_explicit(word, WORD_WAITING, memory_order_relaxed);
	return (struct weft__waker){NULL, word};
}

void weft__waker_wake(struct weft__waker w)
{
	if (w.task) {
		weft__task_wake_by_val(w.task);
		return;
	}
	/* The exchange is our last access to the waiting thread's stack: the
	   futex call only hashes the address. A thread still spinning needs no
	   system call. */
	if (atomic_exchange_explicit(w.word, WORD_WOKEN, memory_order_acq_rel) == WORD_SLEEPING)
		weft__futex_wake(w.word, 1);
}

void weft__waker_drop(struct weft__waker w)
{
	if (w.task)
		weft__task_unref(w.task);
}

void weft__task_park(void)
{
	weft__task_switch_out(WEFT__SW_PARK);
}

void weft__block(_Atomic uint32_t *word)
{
	if (weft__tls()->task) {
		weft__task_park();
		return;
	}
	/* Spin with sched_yield rather than pause: a thread waiting on the
	   runtime from outside must not hold a core that a worker -- the one
	   that will finish what we wait for -- needs. */
	uint64_t until = weft__mono_ns() + THREAD_SPIN_NS;
	while (atomic_load_explicit(word, memory_order_acquire) != WORD_WOKEN) {
		if (weft__mono_ns() >= until)
			break;
		sched_yield();
	}
	if (atomic_load_explicit(word, memory_order_acquire) == WORD_WOKEN)
		return;
	uint32_t w = WORD_WAITING;
	if (atomic_compare_exchange_strong_explicit(word, &w, WORD_SLEEPING, memory_order_acq_rel,
	                                            memory_order_acquire))
		while (atomic_load_explicit(word, memory_order_acquire) == WORD_SLEEPING)
			weft__futex_wait(word, WORD_SLEEPING, NULL);
}

bool weft__cancel_requested(struct weft_task *t)
{
	return (weft__task_state(t) & WEFT__T_CANCELLED) ||
	       atomic_load_explicit(&t->rt->closed, memory_order_acquire);
}

/* The check for a known current task t (the task pointer, unlike the
   thread-locals, stays right across a switch). */
static inline int check_task(struct weft_task *t)
{
	return t->shield_depth == 0 && weft__cancel_requested(t) ? -ECANCELED : 0;
}

int weft__wait_check(void)
{
	struct weft_task *t = weft__tls()->task;
	return t ? check_task(t) : 0;
}

static void yield_now(struct weft_task *t)
{
	t->budget = WEFT__BUDGET;
	weft__task_switch_out(WEFT__SW_YIELD);
}

int weft__wait_enter(void)
{
	struct weft_task *t = weft__tls()->task;
	if (!t)
		return 0;
	int rc = check_task(t);
	if (rc)
		return rc;
	if (--t->budget <= 0) {
		yield_now(t);
		return check_task(t);
	}
	return 0;
}

int weft_yield(void)
{
	struct weft_task *t = weft__tls()->task;
	if (!t) {
		sched_yield();
		return 0;
	}
	/* Yields even when cancelled: a cancelled task spinning on yield must
	   still let the others run. */
	yield_now(t);
	return check_task(t);
}

int weft_yield_maybe(void)
{
	struct weft_task *t = weft__tls()->task;
	if (!t)
		return 0;
	if (--t->budget <= 0)
		yield_now(t);
	return check_task(t);
}

weft_task *weft_current(void)
{
	return weft__tls()->task;
}

bool weft_is_cancelled(void)
{
	struct weft_task *t = weft__tls()->task;
	return t && weft__cancel_requested(t);
}

weft_runtime *weft_runtime_current(void)
{
	return weft__tls()->rt;
}

static void scope_misuse(const char *call)
{
	struct weft_task *t = weft__tls()->task;
	fprintf(stderr, "weft: %s without a matching push in task %llu '%s' (spawned at %s:%d)\n",
	        call, (unsigned long long)t->id, t->name ? t->name : "", t->file, t->line);
	abort();
}

int weft_shield_push(void)
{
	struct weft_task *t = weft__tls()->task;
	if (!t)
		return 0;
	if (t->shield_depth == UINT16_MAX)
		return -EOVERFLOW;
	t->shield_depth++;
	return 0;
}

void weft_shield_pop(void)
{
	struct weft_task *t = weft__tls()->task;
	if (!t)
		return;
	if (t->shield_depth == 0)
		scope_misuse("weft_shield_pop");
	t->shield_depth--;
}

int weft_pin_push(void)
{
	struct weft__tls *tls = weft__tls();
	struct weft_task *t = tls->task;
	if (!t)
		return 0;
	if (t->pin_depth == UINT16_MAX)
		return -EOVERFLOW;
	t->pin_depth++;
	t->pinned_to = tls->thread;
	return 0;
}

void weft_pin_pop(void)
{
	struct weft_task *t = weft__tls()->task;
	if (!t)
		return;
	unsigned floor = t->pinned_spawn ? 1 : 0;
	if (t->pin_depth <= floor)
		scope_misuse("weft_pin_pop");
	if (--t->pin_depth == 0)
		t->pinned_to = NULL;
}
