/*
 * The clock, sleeping, and deadline scopes (the public side of timers).
 *
 * Scopes form a stack per task (t->scope) or per plain thread (tls->scope).
 * Each scope stores the deadline in force inside it -- the earlier of its
 * own and the enclosing one's -- unless a shield was opened between the two,
 * which cuts the enclosing deadlines off. A wait applies the innermost
 * scope's deadline only while no shield has been opened since that scope
 * was pushed (weft__deadline_in_force).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <weft/time.h>

#include "../runtime/rt.h"
#include "../runtime/task.h"
#include "../runtime/tls.h"
#include "../runtime/wait.h"
#include "timer.h"

uint64_t weft_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX - 1 : a + b;
}

static uint64_t ms_to_ns(uint64_t ms)
{
	return ms > (UINT64_MAX - 1) / 1000000 ? UINT64_MAX - 1 : ms * 1000000;
}

/* The caller's scope stack and shield depth. */
static struct weft_deadline **scope_top(unsigned *shield_depth)
{
	struct weft__tls *tls = weft__tls();
	if (tls->task) {
		*shield_depth = tls->task->shield_depth;
		return &tls->task->scope;
	}
	*shield_depth = 0;
	return &tls->scope;
}

void weft_deadline_push_at_ns(weft_deadline *d, uint64_t deadline_ns)
{
	unsigned shield;
	struct weft_deadline **top = scope_top(&shield);
	uint64_t outer = weft__deadline_in_force(*top, shield);
	d->deadline_ns = deadline_ns;
	d->effective_ns = deadline_ns < outer ? deadline_ns : outer;
	d->shield_depth = shield;
	d->outer = *top;
	*top = d;
}

void weft_deadline_push(weft_deadline *d, uint64_t timeout_ms)
{
	weft_deadline_push_at_ns(d, add_saturating(weft_now_ns(), ms_to_ns(timeout_ms)));
}

void weft_deadline_pop(weft_deadline *d)
{
	unsigned shield;
	struct weft_deadline **top = scope_top(&shield);
	if (*top != d) {
		struct weft_task *t = weft__tls()->task;
		if (t)
			fprintf(stderr,
			        "weft: weft_deadline_pop of a scope that is not the innermost one, "
			        "in "
			        "task %llu '%s' (spawned at %s:%d): pop scopes in reverse order\n",
			        (unsigned long long)t->id, t->name ? t->name : "", t->file,
			        t->line);
		else
			fprintf(stderr, "weft: weft_deadline_pop of a scope that is not the "
			                "innermost one: pop scopes in reverse order\n");
		abort();
	}
	*top = d->outer;
}

/* A plain thread sleeps: until the deadline, or its scope's, whichever
   comes first. */
static int thread_sleep_until(uint64_t deadline_ns)
{
	uint64_t scope = weft__deadline_in_force(weft__tls()->scope, 0);
	uint64_t until = deadline_ns < scope ? deadline_ns : scope;
	struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	return until < deadline_ns ? -ETIMEDOUT : 0;
}

static bool shutting_down(struct weft_task *t)
{
	return atomic_load_explicit(&t->rt->closed, memory_order_acquire);
}

/* Sleeps until deadline_ns; now_ns is a clock reading taken before it, or
   0 when the caller has none (then the clock is read here). */
static int sleep_until(uint64_t deadline_ns, uint64_t now_ns)
{
	struct weft__tls *tls = weft__tls();
	struct weft_task *t = tls->task;
	if (!t) {
		int rc = weft__wait_check();
		return rc ? rc : thread_sleep_until(deadline_ns);
	}
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	/* The wheel's clock is only as fresh as its last advance: a deadline
	   just passed would look ahead of it, and we would park for nothing.
	   A reading the caller took before is as good for this: a deadline
	   after it has not passed by then, and the timer fires only once it
	   has. */
	if ((now_ns ? now_ns : weft_now_ns()) >= deadline_ns)
		return 0;
	struct weft__timer tm = WEFT__TIMER_INIT;
	uint64_t scope = weft__deadline_in_force(t->scope, t->shield_depth);
	uint64_t wake_at = deadline_ns < scope ? deadline_ns : scope;
	struct weft__waker self = weft__waker_self(NULL);
	int armed = weft__timer_arm(&tls->thread->worker->timers, &tm, wake_at, self);
	if (armed <= 0) {
		weft__waker_drop(self);
		/* Already due: 0, or the scope's -ETIMEDOUT; or no memory. */
		return armed < 0 ? armed : weft__wait_check();
	}
	/* Parked on nothing but the timer: shutdown finds the task through
	   its wheel -- or, when it swept that wheel before our arm, we see it
	   has begun (weft__timers_wake_all) and look before parking. */
	bool park = !shutting_down(t);
	for (;;) {
		if (park)
			weft__task_park_timed();
		park = true;
		/* Our own timer fired: the deadline has passed (a timer fires only
		   once the clock reached it), no need to read the clock. */
		if (wake_at == deadline_ns && weft__timer_fired(&tm)) {
			weft__timer_cancel(&tm);
			return 0;
		}
		/* Else the scope's timer fired, or we were woken early (a stale
		   notification, a cancellation): only the clock says which. */
		if (weft_now_ns() >= deadline_ns) {
			weft__timer_cancel(&tm);
			return 0;
		}
		if ((rc = weft__wait_check()) != 0) {
			weft__timer_cancel(&tm);
			return rc;
		}
		/* A timer fires only once the clock passed wake_at, so a fired
		   timer with neither deadline reached cannot happen; re-arm
		   rather than sleep forever if it ever does. */
		if (weft__timer_fired(&tm)) {
			weft__timer_cancel(&tm);
			self = weft__waker_self(NULL);
			if (weft__timer_arm(&weft__tls()->thread->worker->timers, &tm, wake_at,
			                    self) <= 0)
				weft__waker_drop(self);
			park = !shutting_down(t);
		}
	}
}

int weft_sleep_until_ns(uint64_t deadline_ns)
{
	return sleep_until(deadline_ns, 0);
}

int weft_sleep_ms(uint64_t ms)
{
	uint64_t now = weft_now_ns();
	return sleep_until(add_saturating(now, ms_to_ns(ms)), now);
}
