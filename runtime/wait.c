/*
 * Waiting: wakers, blocking, cancellation checks, the cooperative budget,
 * yield, shields and pins. See wait.h for the protocol every wait follows.
 *
 * Budget: each task gets WEFT__BUDGET units whenever it is switched in;
 * every wait and every weft_yield_maybe() spends one. A task that keeps
 * finding its waits already satisfied (a channel that is never empty) would
 * otherwise never give its worker back; when the budget is spent the next
 * wait yields first. A task that parks starts afresh on resume.
 *
 * Time slice: a count alone lets a task that works between its waits keep
 * its worker for 128 x that work (64 tasks holding a mutex 20 us at a time
 * ran 2.56 ms per turn). The budget is handed out in chunks of
 * WEFT__BUDGET_CHUNK; at a chunk's end (never on a run of fewer waits, so
 * never on most runs) the clock is read: the first end of a run notes the
 * time, a later one past WEFT__SLICE_NS preempts the task to the slow lane
 * (worker.c: run when nothing else is, or after as long as it ran) --
 * Go's sysmon preempts after 10 ms to its global queue, Seastar's reactor
 * gives a task 500 us.
 */
#include "wait.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "futex.h"
#include "../timer/timer.h"
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

void weft__task_park_timed(void)
{
	weft__task_switch_out(WEFT__SW_PARK_TIMED);
}

/* A task parks, with a timer at the deadline in force if there is one. */
static void block_task(struct weft__tls *tls, struct weft_task *t)
{
	uint64_t dl = weft__deadline_in_force(t->scope, t->shield_depth);
	if (dl == UINT64_MAX) {
		weft__task_park();
		return;
	}
	if (weft__mono_ns() >= dl)
		return; /* past: the caller's check reports it */
	struct weft__timer tm = WEFT__TIMER_INIT;
	struct weft__waker self = weft__waker_self(NULL);
	int armed = weft__timer_arm(&tls->thread->worker->timers, &tm, dl, self);
	if (armed <= 0) {
		weft__waker_drop(self);
		/* Past (the caller's check reports it), or no memory for a
		   timer: then poll the deadline by yielding instead of parking. */
		if (armed < 0)
			weft__task_switch_out(WEFT__SW_YIELD);
		return;
	}
	weft__task_park();
	weft__timer_cancel(&tm);
}

/* A plain thread polls its word for a while -- with sched_yield rather than
   pause: a thread waiting on the runtime from outside must not hold a core
   that a worker, the one that will finish what it waits for, needs -- then
   sleeps on it until woken or until its scope's deadline. */
static void block_thread(struct weft__tls *tls, _Atomic uint32_t *word)
{
	uint64_t dl = weft__deadline_in_force(tls->scope, 0);
	uint64_t spin_until = weft__mono_ns() + THREAD_SPIN_NS;
	for (;;) {
		uint32_t s = atomic_load_explicit(word, memory_order_acquire);
		if (s == WORD_WOKEN)
			return;
		uint64_t now = weft__mono_ns();
		if (now >= dl)
			return;
		if (now < spin_until) {
			sched_yield();
			continue;
		}
		if (s == WORD_WAITING &&
		    !atomic_compare_exchange_strong_explicit(
		            word, &s, WORD_SLEEPING, memory_order_acq_rel, memory_order_acquire))
			continue;
		struct timespec ts, *timeout = NULL;
		if (dl != UINT64_MAX) {
			ts.tv_sec = (time_t)((dl - now) / 1000000000ull);
			ts.tv_nsec = (long)((dl - now) % 1000000000ull);
			timeout = &ts;
		}
		weft__futex_wait(word, WORD_SLEEPING, timeout);
	}
}

void weft__block(_Atomic uint32_t *word, unsigned kind, const void *obj, uint32_t arg)
{
	struct weft__tls *tls = weft__tls();
	struct weft_task *t = tls->task;
	if (!t) {
		block_thread(tls, word);
		return;
	}
	/* What the task dump shows (task.h). */
	__atomic_store_n(&t->wait_obj, obj, __ATOMIC_RELAXED);
	__atomic_store_n(&t->wait_since_ms, weft__coarse_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&t->wait, kind | (arg < 0xffffff ? arg : 0xffffff) << 8, __ATOMIC_RELAXED);
	block_task(tls, t);
}

void weft__waker_settle(struct weft__waker w)
{
	if (w.task)
		return;
	uint32_t s;
	while ((s = atomic_load_explicit(w.word, memory_order_acquire)) != WORD_WOKEN) {
		if (s == WORD_WAITING &&
		    !atomic_compare_exchange_strong_explicit(
		            w.word, &s, WORD_SLEEPING, memory_order_acq_rel, memory_order_acquire))
			continue;
		weft__futex_wait(w.word, WORD_SLEEPING, NULL);
	}
}

bool weft__cancel_requested(struct weft_task *t)
{
	return (weft__task_state(t) & WEFT__T_CANCELLED) ||
	       atomic_load_explicit(&t->rt->closed, memory_order_acquire);
}

static int check_deadline(const struct weft_deadline *scope, unsigned shield_depth)
{
	uint64_t dl = weft__deadline_in_force(scope, shield_depth);
	return dl != UINT64_MAX && weft__mono_ns() >= dl ? -ETIMEDOUT : 0;
}

/* The check for a known current task t (the task pointer, unlike the
   thread-locals, stays right across a switch). */
static inline int check_task(struct weft_task *t)
{
	if (t->shield_depth == 0 && weft__cancel_requested(t))
		return -ECANCELED;
	return t->scope ? check_deadline(t->scope, t->shield_depth) : 0;
}

int weft__wait_check(void)
{
	struct weft__tls *tls = weft__tls();
	if (tls->task)
		return check_task(tls->task);
	return tls->scope ? check_deadline(tls->scope, 0) : 0;
}

static void yield_now(struct weft_task *t)
{
	t->budget = WEFT__BUDGET_CHUNK;
	weft__task_switch_out(WEFT__SW_YIELD);
}

/* A chunk of the budget is spent (the top of this file). The first chunk's
   end notes the time; the next chunk is as long again, which tells how
   long a wait takes; from then on a chunk lasts until the slice would end
   (or the budget), so that a task whose waits come fast reads the clock
   three times per budget, not once per chunk. */
static __attribute__((noinline)) void chunk_spent(struct weft_task *t)
{
	struct weft__thread *th = weft__tls()->thread;
	uint32_t tick = atomic_load_explicit(&th->worker->tick, memory_order_relaxed);
	uint64_t now = weft__mono_ns();
	uint32_t next = WEFT__BUDGET_CHUNK;
	if (th->slice_tick != tick) { /* the first chunk of this run */
		th->slice_tick = tick;
		th->slice_start_ns = now;
		th->slice_waits = 0;
	} else {
		uint64_t ran = now - th->slice_start_ns;
		if (ran >= WEFT__SLICE_NS && !t->pinned_to) {
			t->budget = WEFT__BUDGET_CHUNK;
			weft__task_demote(th, ran);
			return;
		}
		th->slice_waits += th->slice_chunk;
		uint32_t left = WEFT__BUDGET - WEFT__BUDGET_CHUNK - th->slice_waits;
		if ((int32_t)left <= 0) {
			yield_now(t);
			return;
		}
		uint64_t per_wait = ran / th->slice_waits + 1;
		uint64_t to_slice = (WEFT__SLICE_NS - ran) / per_wait + 1;
		next = to_slice < left ? (uint32_t)to_slice : left;
	}
	th->slice_chunk = next;
	t->budget = (int32_t)next;
}

int weft__wait_enter(void)
{
	struct weft_task *t = weft__tls()->task;
	if (!t)
		return weft__wait_check(); /* a plain thread: its deadline scope */
	int rc = check_task(t);
	if (rc)
		return rc;
	if (--t->budget <= 0) {
		chunk_spent(t);
		return check_task(t);
	}
	return 0;
}

bool weft__spin_may_pay(void)
{
	struct weft__thread *th = weft__tls()->thread;
	return !th || th->rt->nworkers > 1;
}

int weft_yield(void)
{
	struct weft_task *t = weft__tls()->task;
	if (!t) {
		sched_yield();
		return weft__wait_check();
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
		chunk_spent(t);
	return check_task(t);
}

weft_task *weft_current(void)
{
	return weft__tls()->task;
}

bool weft_is_cancelled(void)
{
	struct weft__tls *tls = weft__tls();
	struct weft_task *t = tls->task ? tls->task : tls->job;
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
