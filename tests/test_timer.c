/*
 * Timers on a running runtime: sleeps never wake early and wake in deadline
 * order; a cancel wakes a long sleep (from a plain thread, and from a task on
 * the other worker) and the cancelled timer never fires; a timer armed in
 * one worker's wheel is cancelled from the other worker; every kind of wait
 * times out inside a deadline scope, also when the scope expired before the
 * wait; nested scopes, shields, scopes on plain threads; misuse aborts (death
 * tests); a million timers armed and cancelled through the internal API;
 * timers fire while every worker is busy; weft_now_ns is monotonic across
 * threads.
 *
 * Timing: "never early" is checked strictly (the runtime guarantees it);
 * lateness only against generous hang guards, so that a slow or loaded
 * machine cannot fail a test. Checks made inside tasks are recorded (CHECK)
 * and asserted by the test's own thread.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/common.h"
#include "runtime/rt.h"
#include "runtime/tls.h"
#include "runtime/wait.h"
#include "runtime/worker.h"
#include "timer/timer.h"

#define MS 1000000ull
#define HANG_NS (5000 * MS) /* a wait this late is a hang, not a slow machine */

TestSuite(timer, .timeout = 60);

/* ------------------------------------------------------------------ checks */

/* Criterion's asserts must not run on worker threads: tasks record failed
   checks, and the test asserts there were none once the tasks are done. */
static _Atomic long failures;
static char first_failure[512];

__attribute__((format(printf, 3, 4))) static void fail_at(int line, const char *cond,
                                                          const char *fmt, ...)
{
	if (atomic_fetch_add(&failures, 1) != 0)
		return;
	int n = snprintf(first_failure, sizeof first_failure, "line %d: %s: ", line, cond);
	if (n < 0 || (size_t)n >= sizeof first_failure)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(first_failure + n, sizeof first_failure - (size_t)n, fmt, ap);
	va_end(ap);
}

#define CHECK(cond, ...) ((cond) ? (void)0 : fail_at(__LINE__, #cond, __VA_ARGS__))

static void assert_no_failures(void)
{
	long n = atomic_load(&failures);
	cr_assert_eq(n, 0, "%ld failed checks; the first: %s", n, first_failure);
}

/* ----------------------------------------------------------------- helpers */

static long long ms_of(uint64_t ns)
{
	return (long long)(ns / MS);
}

/* Runs fn as the main task of a fresh runtime of the given size; returns
   what fn returned. */
static void *run_task(unsigned workers, weft_fn fn, void *arg)
{
	weft_runtime *rt = test_runtime(workers);
	cr_assert_not_null(rt);
	void *res = NULL;
	int rc = weft_block_on(rt, fn, arg, &res);
	weft_runtime_free(rt);
	cr_assert_eq(rc, 0, "weft_block_on: %d", rc);
	return res;
}

/* Whether no worker of rt has a timer armed. */
static bool wheels_empty(weft_runtime *rt)
{
	for (unsigned i = 0; i < rt->nworkers; i++)
		if (weft__timers_armed(&rt->workers[i].timers))
			return false;
	return true;
}

/* From a plain thread: waits until *flag is set and some worker has a timer
   armed (a task reached its sleep), then a little more so that the task has
   most likely parked (correct either way). */
static void wait_sleeping(weft_runtime *rt, _Atomic int *flag)
{
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (!atomic_load(flag) || wheels_empty(rt)) {
		cr_assert(test_now_ns() < give_up, "the task never armed its timer");
		test_sleep_ms(1);
	}
	test_sleep_ms(5);
}

static void *set_flag(void *arg)
{
	atomic_store((_Atomic int *)arg, 1);
	return NULL;
}

/* Receives a long from the oneshot arg and returns it (-1 on failure). */
static void *recv_long(void *arg)
{
	long v = -1;
	int rc = weft_oneshot_recv(arg, &v);
	if (rc != 0)
		weft_oneshot_drop_receiver(arg);
	return (void *)(intptr_t)(rc == 0 ? v : -1);
}

/* Overwrites a good part of the caller's stack below its frame: the memory
   where the frames of earlier, returned waits (and their timer handles)
   were. */
__attribute__((noinline)) static void scribble_stack(void)
{
	volatile unsigned char buf[8192];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = 0xA5;
}

/* Two pinned tasks started together: each spins (no waits) until both have
   started, so they run at the same time -- on the two worker threads of a
   2-worker runtime -- and stay there. Each then runs its fn. */
struct pair {
	_Atomic int started;
	struct weft__worker *worker[2];
	pthread_t thread[2];
	struct pair_member {
		struct pair *p;
		int k;
		weft_fn fn;
		void *arg;
	} m[2];
	weft_task *task[2];
};

static void *pair_entry(void *arg)
{
	struct pair_member *m = arg;
	struct pair *p = m->p;
	p->worker[m->k] = weft__tls()->thread->worker;
	p->thread[m->k] = pthread_self();
	atomic_fetch_add(&p->started, 1);
	uint64_t give_up = weft_now_ns() + HANG_NS;
	while (atomic_load(&p->started) < 2) {
		if (weft_now_ns() > give_up) {
			CHECK(false, "the other member of the pair never started");
			return NULL;
		}
	}
	return m->fn(m->arg);
}

/* Starts fn0(arg0) and fn1(arg1) as a pair on rt (2 workers) and waits until
   both run, on different threads. */
static void start_pair(weft_runtime *rt, struct pair *p, weft_fn fn0, void *arg0, weft_fn fn1,
                       void *arg1)
{
	weft_spawn_opts pinned = {.name = "pair", .pinned = true};
	p->m[0] = (struct pair_member){p, 0, fn0, arg0};
	p->m[1] = (struct pair_member){p, 1, fn1, arg1};
	for (int k = 0; k < 2; k++) {
		p->task[k] = weft_spawn_ex(rt, pair_entry, &p->m[k], &pinned);
		cr_assert_not_null(p->task[k]);
	}
	uint64_t give_up = test_now_ns() + 2 * HANG_NS;
	while (atomic_load(&p->started) < 2) {
		cr_assert(test_now_ns() < give_up, "the pair never ran at the same time");
		test_sleep_ms(1);
	}
	cr_assert(!pthread_equal(p->thread[0], p->thread[1]));
	cr_assert_neq(p->worker[0], p->worker[1]);
}

/* ------------------------------------------------- ordering and precision */

#define ORDER_TASKS 100
#define ORDER_GAP_NS (2 * MS)
#define ORDER_ROUNDS 10

struct sleeper {
	uint64_t ms;
	uint64_t start, woke;
	long seq;
	int rc;
};

static _Atomic long wake_seq;

static void *sleep_and_record(void *arg)
{
	struct sleeper *s = arg;
	s->start = weft_now_ns();
	s->rc = weft_sleep_ms(s->ms);
	s->seq = atomic_fetch_add(&wake_seq, 1);
	s->woke = weft_now_ns();
	return NULL;
}

/* One round of ORDER_TASKS sleeps of 1-50 ms, spawned in an order unrelated
   to their durations. Early wakes are failures; returns how many pairs whose
   deadlines differ by more than ORDER_GAP_NS woke in the wrong order. */
static long order_round(weft_runtime *rt)
{
	static struct sleeper s[ORDER_TASKS];
	weft_task *t[ORDER_TASKS];
	for (int i = 0; i < ORDER_TASKS; i++) {
		s[i] = (struct sleeper){.ms = 1 + (uint64_t)(i * 37) % 50, .rc = 1};
		t[i] = weft_spawn_on(rt, sleep_and_record, &s[i]);
		cr_assert_not_null(t[i]);
	}
	for (int i = 0; i < ORDER_TASKS; i++)
		cr_assert_eq(weft_join(t[i], NULL), 0);
	for (int i = 0; i < ORDER_TASKS; i++) {
		cr_assert_eq(s[i].rc, 0, "sleep_ms(%llu) returned %d", (unsigned long long)s[i].ms,
		             s[i].rc);
		/* The sleep's deadline is at least start + ms. */
		uint64_t dl = s[i].start + s[i].ms * MS;
		cr_assert_geq(s[i].woke, dl, "sleep_ms(%llu) woke %llu ns early",
		              (unsigned long long)s[i].ms, (unsigned long long)(dl - s[i].woke));
	}
	long wrong = 0;
	for (int i = 0; i < ORDER_TASKS; i++)
		for (int j = 0; j < ORDER_TASKS; j++)
			if (s[i].start + s[i].ms * MS + ORDER_GAP_NS < s[j].start + s[j].ms * MS &&
			    s[i].seq > s[j].seq)
				wrong++;
	return wrong;
}

/* Wake order is checked in rounds: on a loaded machine a worker thread may
   be descheduled for a few ms and fire several deadlines in one batch, so
   one clean round out of ORDER_ROUNDS is required (a real ordering bug
   fails them all); an early wake fails at once, in any round. */
Test(timer, sleeps_never_wake_early_and_wake_in_deadline_order)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	long wrong[ORDER_ROUNDS];
	int rounds = 0;
	bool clean = false;
	while (!clean && rounds < ORDER_ROUNDS) {
		wrong[rounds] = order_round(rt);
		clean = wrong[rounds++] == 0;
	}
	weft_runtime_free(rt);
	char seen[256] = "";
	for (int r = 0, n = 0; r < rounds && n >= 0 && (size_t)n < sizeof seen; r++)
		n += snprintf(seen + n, sizeof seen - (size_t)n, " %ld", wrong[r]);
	cr_assert(clean, "no round woke in deadline order; pairs out of order per round:%s", seen);
}

/* A sleep until a past deadline returns 0 without parking: on one worker,
   a task spawned just before has not run when it returns. (A park until a
   timer already due may go unseen -- the woken sleeper runs first -- so the
   just-past deadline is tried several times.) */
static void *past_deadlines(void *arg)
{
	(void)arg;
	_Atomic int ran = 0;
	weft_task *other = weft_spawn(set_flag, (void *)&ran);
	CHECK(other != NULL, "spawn failed");
	uint64_t now = weft_now_ns();
	int rc1 = 0;
	for (int i = 0; i < 5 && rc1 == 0; i++)
		rc1 = weft_sleep_until_ns(weft_now_ns() - 1);
	int rc2 = weft_sleep_until_ns(now - 1000 * MS);
	int rc3 = weft_sleep_until_ns(0);
	bool parked = atomic_load(&ran);
	uint64_t took = weft_now_ns() - now;
	CHECK(rc1 == 0 && rc2 == 0 && rc3 == 0, "rc %d %d %d", rc1, rc2, rc3);
	CHECK(took < HANG_NS, "took %lld ms", ms_of(took));
	CHECK(!parked, "a sleep until a past deadline parked the task (another task ran)");
	int rc4 = weft_sleep_ms(0);
	CHECK(rc4 == 0, "sleep_ms(0) in a task returned %d", rc4);
	if (other)
		CHECK(weft_join(other, NULL) == 0, "join");
	return NULL;
}

Test(timer, sleep_until_a_past_deadline_returns_zero_at_once)
{
	run_task(1, past_deadlines, NULL);
	/* And on a plain thread. */
	uint64_t now = weft_now_ns();
	cr_assert_eq(weft_sleep_until_ns(now - 1), 0);
	cr_assert_eq(weft_sleep_until_ns(0), 0);
	cr_assert_eq(weft_sleep_ms(0), 0);
	cr_assert_lt(weft_now_ns() - now, HANG_NS);
	assert_no_failures();
}

/* ------------------------------------------------------ cancel and sleep */

struct long_sleep {
	_Atomic int sleeping;
	uint64_t start, end;
	int rc;
	weft_task *_Atomic target; /* for a cancelling task */
	struct weft__worker *_Atomic sleeper_worker;
};

static void *sleep_10s(void *arg)
{
	struct long_sleep *s = arg;
	s->start = weft_now_ns();
	atomic_store(&s->sleeping, 1);
	s->rc = weft_sleep_ms(10000);
	s->end = weft_now_ns();
	return NULL;
}

static void check_cancelled_sleep(struct long_sleep *s)
{
	cr_assert_eq(s->rc, -ECANCELED, "the cancelled sleep returned %d", s->rc);
	cr_assert_lt(s->end - s->start, HANG_NS, "the cancelled sleep was not woken (%lld ms)",
	             ms_of(s->end - s->start));
}

Test(timer, cancel_wakes_a_long_sleep_from_a_plain_thread)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct long_sleep s = {.rc = 1};
	weft_task *t = weft_spawn_on(rt, sleep_10s, &s);
	cr_assert_not_null(t);
	wait_sleeping(rt, &s.sleeping);
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	check_cancelled_sleep(&s);
	cr_assert(wheels_empty(rt), "the cancelled sleep left its timer armed");
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* The canceller runs pinned on the other worker: it waits until the sleeper
   has a timer in its own worker's wheel, then cancels it. */
static void *cancel_target(void *arg)
{
	struct long_sleep *s = arg;
	weft_task *target;
	struct weft__worker *w;
	uint64_t give_up = weft_now_ns() + HANG_NS;
	while (!(target = atomic_load(&s->target)) || !(w = atomic_load(&s->sleeper_worker)) ||
	       !atomic_load(&s->sleeping) || !weft__timers_armed(&w->timers)) {
		if (weft_now_ns() > give_up) {
			CHECK(false, "the sleeper never armed its timer");
			return NULL;
		}
		weft_sleep_ms(1);
	}
	weft_sleep_ms(5); /* most likely parked by now; correct either way */
	weft_cancel(target);
	return NULL;
}

Test(timer, cancel_wakes_a_long_sleep_from_a_task_on_the_other_worker)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct long_sleep s = {.rc = 1};
	struct pair p = {0};
	start_pair(rt, &p, sleep_10s, &s, cancel_target, &s);
	atomic_store(&s.sleeper_worker, p.worker[0]);
	atomic_store(&s.target, p.task[0]);
	cr_assert_eq(weft_join(p.task[0], NULL), WEFT_CANCELED);
	cr_assert_eq(weft_join(p.task[1], NULL), 0);
	check_cancelled_sleep(&s);
	cr_assert(wheels_empty(rt), "the cancelled sleep left its timer armed");
	weft_runtime_free(rt);
	assert_no_failures();
	assert_no_leaks();
}

/* Sleeps briefly, then waits on a oneshot that never gets a value until the
   cancel that comes after the sleep returned. */
struct sleep_then_wait {
	_Atomic int slept;
	int sleep_rc, wait_rc;
	uint64_t start, end;
	weft_oneshot *never;
};

static void *sleep_then_wait(void *arg)
{
	struct sleep_then_wait *a = arg;
	a->start = weft_now_ns();
	a->sleep_rc = weft_sleep_ms(5);
	a->end = weft_now_ns();
	atomic_store(&a->slept, 1);
	long v;
	a->wait_rc = weft_oneshot_recv(a->never, &v);
	if (a->wait_rc == -ECANCELED)
		weft_oneshot_drop_receiver(a->never); /* else it has left already */
	return NULL;
}

Test(timer, cancel_after_the_sleep_completed_leaves_its_zero)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct sleep_then_wait a = {
	        .sleep_rc = 1, .wait_rc = 1, .never = weft_oneshot_new(sizeof(long))};
	cr_assert_not_null(a.never);
	weft_task *t = weft_spawn_on(rt, sleep_then_wait, &a);
	cr_assert_not_null(t);
	test_wait_flag(&a.slept);
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(a.sleep_rc, 0);
	cr_assert_geq(a.end - a.start, 5 * MS, "the sleep woke early");
	cr_assert_eq(a.wait_rc, -ECANCELED);
	weft_oneshot_drop_sender(a.never);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* On one worker: the sleeper's deadline passes while the worker runs the
   main task (so its timer has not fired yet), then the main task cancels it.
   The sleep had taken effect -- its time had passed -- before the cancel:
   it returns 0, and the join reports the cancellation. */
struct late_cancel {
	_Atomic int started;
	uint64_t start, end;
	int rc;
};

static void *sleep_5ms(void *arg)
{
	struct late_cancel *a = arg;
	a->start = weft_now_ns();
	atomic_store(&a->started, 1);
	a->rc = weft_sleep_ms(5);
	a->end = weft_now_ns();
	return NULL;
}

static void *cancel_after_deadline(void *arg)
{
	(void)arg;
	struct late_cancel a = {.rc = 1};
	weft_task *t = weft_spawn(sleep_5ms, &a);
	CHECK(t != NULL, "spawn");
	if (!t)
		return NULL;
	test_wait_flag(&a.started); /* it ran and parked in its sleep */
	uint64_t until = weft_now_ns() + 7 * MS;
	while (weft_now_ns() < until)
		; /* no wait: the worker cannot fire the timer meanwhile */
	weft_cancel(t);
	int jrc = weft_join(t, NULL);
	CHECK(jrc == WEFT_CANCELED, "join %d", jrc);
	CHECK(a.rc == 0, "a sleep whose deadline passed before the cancel returned %d", a.rc);
	CHECK(a.end - a.start >= 5 * MS, "woke %llu ns early",
	      (unsigned long long)(5 * MS - (a.end - a.start)));
	return NULL;
}

Test(timer, cancel_arriving_after_the_deadline_passed_leaves_the_sleeps_zero)
{
	run_task(1, cancel_after_deadline, NULL);
	assert_no_failures();
	assert_no_leaks();
}

/* After its sleep is cancelled the task's timer is gone from the wheel; it
   overwrites the stack where the old timer was and sleeps again (in a
   shield: it stays cancelled) several times, each sleep normal. */
struct resleep {
	_Atomic int sleeping;
	int first_rc, after_rc;
	uint64_t first_took;
	bool empty_after_cancel;
	int resleeps;
};

static void *sleep_cancel_sleep_again(void *arg)
{
	struct resleep *a = arg;
	uint64_t t0 = weft_now_ns();
	atomic_store(&a->sleeping, 1);
	a->first_rc = weft_sleep_ms(10000);
	a->first_took = weft_now_ns() - t0;
	a->empty_after_cancel = wheels_empty(weft_runtime_current());
	weft_shield_push();
	for (int i = 0; i < 5; i++) {
		scribble_stack();
		uint64_t s0 = weft_now_ns();
		int rc = weft_sleep_ms(10);
		uint64_t took = weft_now_ns() - s0;
		CHECK(rc == 0, "sleep %d after the cancelled one returned %d", i, rc);
		CHECK(took >= 10 * MS, "sleep %d woke %llu ns early", i,
		      (unsigned long long)(10 * MS - took));
		CHECK(wheels_empty(weft_runtime_current()), "a timer left armed after sleep %d", i);
		a->resleeps++;
	}
	weft_shield_pop();
	a->after_rc = weft_sleep_ms(10); /* still cancelled */
	return NULL;
}

Test(timer, cancelled_sleep_does_not_fire_later)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct resleep a = {.first_rc = 1, .after_rc = 1};
	weft_task *t = weft_spawn_on(rt, sleep_cancel_sleep_again, &a);
	cr_assert_not_null(t);
	wait_sleeping(rt, &a.sleeping);
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(a.first_rc, -ECANCELED);
	cr_assert_lt(a.first_took, HANG_NS);
	cr_assert(a.empty_after_cancel, "the cancelled sleep's timer stayed in the wheel");
	cr_assert_eq(a.resleeps, 5);
	cr_assert_eq(a.after_rc, -ECANCELED);
	cr_assert(wheels_empty(rt));
	weft_runtime_free(rt);
	assert_no_failures();
	assert_no_leaks();
}

/* -------------------------------- a timer cancelled from the other worker */

/* Pinned helpers, one per worker thread: each request carries a oneshot to
   answer, and the answer wakes the requester from the helper's thread. */
struct helper {
	weft_oneshot *_Atomic request;
};

static void *helper_loop(void *arg)
{
	struct helper *h = arg;
	for (;;) {
		weft_oneshot *req = weft_oneshot_new(sizeof(weft_oneshot *));
		CHECK(req != NULL, "out of memory");
		if (!req)
			return NULL;
		atomic_store(&h->request, req);
		weft_oneshot *reply;
		int rc = weft_oneshot_recv(req, &reply);
		CHECK(rc == 0, "helper recv %d", rc);
		if (rc != 0 || !reply)
			return NULL; /* asked to stop */
		char v = 1;
		weft_oneshot_send(reply, &v);
	}
}

static weft_oneshot *take_request(struct helper *h)
{
	weft_oneshot *req;
	while (!(req = atomic_exchange(&h->request, NULL)))
		weft_yield();
	return req;
}

struct cross {
	struct helper helpers[2];
	weft_runtime *rt;
	long target, rounds, moved;
};

/* Each round: inside a deadline scope, wait for a helper's answer. The wait
   parks with a timer at the scope's deadline in the wheel of the worker it
   parks on; the answer comes from the helper on the other worker, which
   queues the task there, so it resumes on that worker and cancels its timer
   in the first worker's wheel. The wait must return 0 (the deadline is far)
   and no timer may stay behind. */
static void *cross_worker_rounds(void *arg)
{
	struct cross *c = arg;
	long max_rounds = 20 * c->target;
	for (long i = 0; c->moved < c->target && i < max_rounds; i++) {
		struct helper *h = &c->helpers[i % 2];
		weft_oneshot *req = take_request(h);
		weft_oneshot *reply = weft_oneshot_new(1);
		CHECK(reply != NULL, "out of memory");
		if (!reply)
			break;
		weft_oneshot_send(req, &reply);
		weft_deadline d;
		weft_deadline_push(&d, 2000);
		struct weft__worker *before = weft__tls()->thread->worker;
		char v;
		int rc = weft_oneshot_recv(reply, &v);
		struct weft__worker *after = weft__tls()->thread->worker;
		weft_deadline_pop(&d);
		CHECK(rc == 0, "round %ld: the wait in the scope returned %d", i, rc);
		if (rc != 0)
			weft_oneshot_drop_receiver(reply);
		CHECK(wheels_empty(c->rt), "round %ld: a timer stayed armed after the wait", i);
		c->rounds++;
		if (after != before)
			c->moved++;
	}
	/* Nothing fires late: the timers are gone, and waits in a scope of the
	   same length still succeed. */
	weft_deadline d;
	weft_deadline_push(&d, 2000);
	int rc = weft_sleep_ms(20);
	weft_deadline_pop(&d);
	CHECK(rc == 0, "a sleep after the rounds returned %d", rc);
	CHECK(wheels_empty(c->rt), "a timer stayed armed at the end");
	return NULL;
}

static void stop_helper(struct helper *h, weft_task *t)
{
	weft_oneshot *req, *stop = NULL;
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (!(req = atomic_exchange(&h->request, NULL))) {
		cr_assert(test_now_ns() < give_up, "helper does not answer");
		test_sleep_ms(1);
	}
	weft_oneshot_send(req, &stop);
	cr_assert_eq(weft_join(t, NULL), 0);
}

Test(timer, timer_armed_on_one_worker_is_cancelled_from_the_other)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct cross c = {.rt = rt, .target = test_scale(2000)};
	struct pair p = {0};
	start_pair(rt, &p, helper_loop, &c.helpers[0], helper_loop, &c.helpers[1]);
	weft_task *t = weft_spawn_on(rt, cross_worker_rounds, &c);
	cr_assert_not_null(t);
	cr_assert_eq(weft_join(t, NULL), 0);
	stop_helper(&c.helpers[0], p.task[0]);
	stop_helper(&c.helpers[1], p.task[1]);
	weft_runtime_free(rt);
	assert_no_failures();
	cr_assert_geq(c.moved, c.target,
	              "only %ld of %ld rounds resumed on the other worker (cancelled a timer "
	              "there)",
	              c.moved, c.rounds);
	assert_no_leaks();
}

/* ------------------------------------------ waits inside a deadline scope */

static void *scope_times_out_sleep(void *arg)
{
	(void)arg;
	weft_deadline d;
	weft_deadline_push(&d, 20);
	uint64_t t0 = weft_now_ns();
	int rc = weft_sleep_ms(2000);
	uint64_t t1 = weft_now_ns();
	weft_deadline_pop(&d);
	CHECK(rc == -ETIMEDOUT, "sleep_ms(2000) in a 20 ms scope returned %d", rc);
	CHECK(t1 >= d.deadline_ns, "timed out %llu ns before the deadline",
	      (unsigned long long)(d.deadline_ns - t1));
	CHECK(t1 - t0 < HANG_NS, "took %lld ms", ms_of(t1 - t0));
	rc = weft_sleep_ms(1);
	CHECK(rc == 0, "a sleep after the pop returned %d", rc);
	return NULL;
}

Test(timer, scope_times_out_a_longer_sleep)
{
	run_task(2, scope_times_out_sleep, NULL);
	assert_no_failures();
}

static void *scope_times_out_yield(void *arg)
{
	(void)arg;
	weft_deadline d;
	weft_deadline_push(&d, 10000);
	int before = weft_yield();
	weft_deadline_pop(&d);
	CHECK(before == 0, "yield before the deadline returned %d", before);

	weft_deadline_push(&d, 5);
	while (weft_now_ns() < d.deadline_ns)
		; /* past the deadline without waiting */
	int rc = weft_yield();
	int rc_maybe = weft_yield_maybe();
	weft_deadline_pop(&d);
	CHECK(rc == -ETIMEDOUT, "yield after the deadline returned %d", rc);
	CHECK(rc_maybe == -ETIMEDOUT, "yield_maybe after the deadline returned %d", rc_maybe);
	rc = weft_yield();
	CHECK(rc == 0, "yield after the pop returned %d", rc);
	return NULL;
}

Test(timer, scope_times_out_yield_after_the_deadline)
{
	run_task(2, scope_times_out_yield, NULL);
	assert_no_failures();
}

static void *scope_times_out_join(void *arg)
{
	(void)arg;
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	CHECK(o != NULL, "oneshot");
	if (!o)
		return NULL;
	weft_task *t = weft_spawn(recv_long, o); /* finishes only once we send */
	CHECK(t != NULL, "spawn");
	if (!t)
		return NULL;
	weft_deadline d;
	weft_deadline_push(&d, 20);
	void *res = (void *)-2;
	int rc = weft_join(t, &res);
	uint64_t t1 = weft_now_ns();
	weft_deadline_pop(&d);
	CHECK(rc == -ETIMEDOUT, "join in a 20 ms scope returned %d", rc);
	CHECK(t1 >= d.deadline_ns, "timed out %llu ns before the deadline",
	      (unsigned long long)(d.deadline_ns - t1));
	if (rc == 0)
		return NULL; /* the handle is consumed */
	CHECK(res == (void *)-2, "a join that timed out wrote the result");
	/* The handle stays valid. */
	long v = 31;
	CHECK(weft_oneshot_send(o, &v) == 0, "send");
	rc = weft_join(t, &res);
	CHECK(rc == 0, "join again returned %d", rc);
	CHECK((intptr_t)res == 31, "result %ld", (long)(intptr_t)res);
	return NULL;
}

Test(timer, scope_times_out_join_of_a_task_that_does_not_finish_in_time)
{
	run_task(2, scope_times_out_join, NULL);
	assert_no_failures();
	assert_no_leaks();
}

static void *scope_times_out_recv(void *arg)
{
	(void)arg;
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	CHECK(o != NULL, "oneshot");
	if (!o)
		return NULL;
	weft_deadline d;
	weft_deadline_push(&d, 20);
	long v = -2;
	int rc = weft_oneshot_recv(o, &v);
	uint64_t t1 = weft_now_ns();
	weft_deadline_pop(&d);
	CHECK(rc == -ETIMEDOUT, "recv on an empty oneshot in a 20 ms scope returned %d", rc);
	CHECK(t1 >= d.deadline_ns, "timed out %llu ns before the deadline",
	      (unsigned long long)(d.deadline_ns - t1));
	if (rc == 0)
		return NULL; /* impossible: nothing was sent */
	CHECK(v == -2, "a recv that timed out wrote the value");
	/* The receiver is still in place. */
	long sent = 8;
	rc = weft_oneshot_send(o, &sent);
	CHECK(rc == 0, "send after the timeout returned %d", rc);
	rc = weft_oneshot_recv(o, &v);
	CHECK(rc == 0 && v == 8, "recv after the timeout: rc %d, value %ld", rc, v);
	return NULL;
}

Test(timer, scope_times_out_recv_on_an_empty_oneshot)
{
	run_task(2, scope_times_out_recv, NULL);
	assert_no_failures();
	assert_no_leaks();
}

static void *return_42(void *arg)
{
	(void)arg;
	return (void *)42;
}

/* In a scope whose deadline already passed, every wait fails before taking
   effect: a value present stays for a later recv, a finished task stays to
   be joined. */
static void *expired_scope_waits(void *arg)
{
	(void)arg;
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	weft_task *t = weft_spawn(return_42, NULL);
	CHECK(o && t, "setup");
	if (!o || !t)
		return NULL;
	long v = 5, got = -2;
	CHECK(weft_oneshot_send(o, &v) == 0, "send");
	weft_yield(); /* most likely lets the task finish; correct either way */

	weft_deadline d;
	weft_deadline_push_at_ns(&d, weft_now_ns() - 1);
	int recv_rc = weft_oneshot_recv(o, &got);
	void *res = (void *)-2;
	int join_rc = weft_join(t, &res);
	int sleep0_rc = weft_sleep_ms(0);
	int until_rc = weft_sleep_until_ns(0);
	int yield_rc = weft_yield();
	weft_deadline_pop(&d);
	CHECK(recv_rc == -ETIMEDOUT, "recv returned %d", recv_rc);
	CHECK(join_rc == -ETIMEDOUT, "join returned %d", join_rc);
	CHECK(sleep0_rc == -ETIMEDOUT, "sleep_ms(0) returned %d", sleep0_rc);
	CHECK(until_rc == -ETIMEDOUT, "sleep_until_ns(0) returned %d", until_rc);
	CHECK(yield_rc == -ETIMEDOUT, "yield returned %d", yield_rc);

	/* A wait that returned 0 took effect: the oneshot or the handle is gone. */
	if (recv_rc == -ETIMEDOUT) {
		CHECK(got == -2, "a recv that timed out consumed the value");
		/* The same with a 0 ms scope. */
		weft_deadline_push(&d, 0);
		int recv0_rc = weft_oneshot_recv(o, &got);
		weft_deadline_pop(&d);
		CHECK(recv0_rc == -ETIMEDOUT, "recv in a 0 ms scope returned %d", recv0_rc);
		if (recv0_rc == -ETIMEDOUT) {
			int rc = weft_oneshot_recv(o, &got);
			CHECK(rc == 0 && got == 5, "recv outside the scope: rc %d, value %ld", rc,
			      got);
		}
	}
	if (join_rc == -ETIMEDOUT) {
		CHECK(res == (void *)-2, "a join that timed out wrote the result");
		int rc = weft_join(t, &res);
		CHECK(rc == 0 && res == (void *)42, "join outside the scope: rc %d", rc);
	}
	return NULL;
}

Test(timer, expired_scope_fails_waits_before_they_take_effect)
{
	run_task(2, expired_scope_waits, NULL);
	assert_no_failures();
	assert_no_leaks();
}

/* ---------------------------------------------------------- nested scopes */

/* Sleeps far longer than any scope around it; checks it timed out, not
   before `deadline`. */
static void sleep_times_out_at(uint64_t deadline, const char *what)
{
	int rc = weft_sleep_ms(2000);
	uint64_t now = weft_now_ns();
	CHECK(rc == -ETIMEDOUT, "%s: sleep returned %d", what, rc);
	CHECK(now >= deadline, "%s: timed out %llu ns before the deadline", what,
	      (unsigned long long)(deadline - now));
}

static void *inner_earlier(void *arg)
{
	(void)arg;
	weft_deadline outer, inner;
	weft_deadline_push(&outer, 10000);
	weft_deadline_push(&inner, 20);
	CHECK(inner.effective_ns == inner.deadline_ns, "effective deadline");
	uint64_t t0 = weft_now_ns();
	sleep_times_out_at(inner.deadline_ns, "inner earlier");
	CHECK(weft_now_ns() - t0 < HANG_NS, "the inner deadline did not apply");
	weft_deadline_pop(&inner);
	weft_deadline_pop(&outer);
	return NULL;
}

Test(timer, nested_scope_with_an_earlier_deadline_applies)
{
	run_task(2, inner_earlier, NULL);
	assert_no_failures();
}

static void *inner_later(void *arg)
{
	(void)arg;
	weft_deadline outer, inner;
	weft_deadline_push(&outer, 20);
	weft_deadline_push(&inner, 10000);
	CHECK(inner.effective_ns == outer.deadline_ns, "effective deadline");
	sleep_times_out_at(outer.deadline_ns, "inner later");
	weft_deadline_pop(&inner);
	weft_deadline_pop(&outer);
	return NULL;
}

Test(timer, nested_scope_with_a_later_deadline_does_not_extend_the_outer)
{
	run_task(2, inner_later, NULL);
	assert_no_failures();
}

/* After the inner (earlier, expired) scope is popped, the outer one is in
   force again: waits succeed until its deadline, then time out. */
static void *pop_restores_outer(void *arg)
{
	(void)arg;
	weft_deadline outer, inner;
	weft_deadline_push_at_ns(&outer, weft_now_ns() + 300 * MS);
	weft_deadline_push(&inner, 10);
	sleep_times_out_at(inner.deadline_ns, "inner");
	int rc = weft_yield();
	CHECK(rc == -ETIMEDOUT, "yield in the expired inner scope returned %d", rc);
	weft_deadline_pop(&inner);

	/* Before the outer deadline a wait succeeds; a slow machine may already
	   be past it, when it must time out. */
	uint64_t before = weft_now_ns();
	rc = weft_yield();
	uint64_t after = weft_now_ns();
	if (after < outer.deadline_ns)
		CHECK(rc == 0, "yield after popping the inner scope returned %d", rc);
	else if (before >= outer.deadline_ns)
		CHECK(rc == -ETIMEDOUT, "yield past the outer deadline returned %d", rc);
	sleep_times_out_at(outer.deadline_ns, "outer after the pop");
	weft_deadline_pop(&outer);
	rc = weft_sleep_ms(1);
	CHECK(rc == 0, "a sleep outside every scope returned %d", rc);
	return NULL;
}

Test(timer, popping_the_inner_scope_restores_the_outer)
{
	run_task(2, pop_restores_outer, NULL);
	assert_no_failures();
}

/* ------------------------------------------------------ shields and scopes */

static void *shield_in_scope(void *arg)
{
	(void)arg;
	weft_deadline d, inner;
	weft_deadline_push(&d, 20);
	weft_shield_push();
	uint64_t t0 = weft_now_ns();
	int rc = weft_sleep_ms(50);
	uint64_t t1 = weft_now_ns();
	CHECK(rc == 0, "a shielded sleep past the outer deadline returned %d", rc);
	CHECK(t1 - t0 >= 50 * MS, "the shielded sleep woke %llu ns early",
	      (unsigned long long)(50 * MS - (t1 - t0)));
	rc = weft_yield();
	CHECK(rc == 0, "a shielded yield past the outer deadline returned %d", rc);

	/* A scope pushed inside the shield applies. */
	weft_deadline_push(&inner, 20);
	CHECK(inner.effective_ns == inner.deadline_ns, "effective deadline");
	sleep_times_out_at(inner.deadline_ns, "scope inside the shield");
	weft_deadline_pop(&inner);
	rc = weft_yield();
	CHECK(rc == 0, "a shielded yield after the inner pop returned %d", rc);

	/* Without the shield, the outer deadline applies again. */
	weft_shield_pop();
	rc = weft_yield();
	CHECK(rc == -ETIMEDOUT, "yield after the shield pop returned %d", rc);
	rc = weft_sleep_ms(1);
	CHECK(rc == -ETIMEDOUT, "sleep after the shield pop returned %d", rc);
	weft_deadline_pop(&d);
	rc = weft_yield();
	CHECK(rc == 0, "yield outside every scope returned %d", rc);
	return NULL;
}

Test(timer, shield_holds_off_the_outer_deadline_but_not_scopes_inside_it)
{
	run_task(2, shield_in_scope, NULL);
	assert_no_failures();
}

/* ---------------------------------------------------------- plain threads */

Test(timer, plain_thread_join_in_a_scope_times_out_and_keeps_the_handle)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	cr_assert_not_null(o);
	weft_task *t = weft_spawn_on(rt, recv_long, o);
	cr_assert_not_null(t);
	weft_deadline d;
	weft_deadline_push(&d, 20);
	void *res = (void *)-2;
	uint64_t t0 = weft_now_ns();
	int rc = weft_join(t, &res);
	uint64_t t1 = weft_now_ns();
	weft_deadline_pop(&d);
	cr_assert_eq(rc, -ETIMEDOUT);
	cr_assert_geq(t1, d.deadline_ns, "timed out %llu ns before the deadline",
	              (unsigned long long)(d.deadline_ns - t1));
	cr_assert_lt(t1 - t0, HANG_NS);
	cr_assert_eq(res, (void *)-2);

	long v = 77;
	cr_assert_eq(weft_oneshot_send(o, &v), 0);
	cr_assert_eq(weft_join(t, &res), 0);
	cr_assert_eq((intptr_t)res, 77);

	/* A join that completes within the scope succeeds. */
	t = weft_spawn_on(rt, return_42, NULL);
	cr_assert_not_null(t);
	weft_deadline_push(&d, 10000);
	rc = weft_join(t, &res);
	weft_deadline_pop(&d);
	cr_assert_eq(rc, 0);
	cr_assert_eq(res, (void *)42);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(timer, plain_thread_sleep_lasts_at_least_its_duration)
{
	uint64_t t0 = weft_now_ns();
	cr_assert_eq(weft_sleep_ms(30), 0);
	uint64_t t1 = weft_now_ns();
	cr_assert_geq(t1 - t0, 30 * MS, "woke %llu ns early",
	              (unsigned long long)(30 * MS - (t1 - t0)));
	uint64_t until = weft_now_ns() + 20 * MS;
	cr_assert_eq(weft_sleep_until_ns(until), 0);
	uint64_t t2 = weft_now_ns();
	cr_assert_geq(t2, until, "woke %llu ns early", (unsigned long long)(until - t2));
	cr_assert_lt(t2 - t0, HANG_NS);
}

Test(timer, plain_thread_sleep_in_a_scope_times_out_at_the_deadline)
{
	weft_deadline d, inner;
	weft_deadline_push(&d, 20);
	uint64_t t0 = weft_now_ns();
	int rc = weft_sleep_ms(2000);
	uint64_t t1 = weft_now_ns();
	cr_assert_eq(rc, -ETIMEDOUT);
	cr_assert_geq(t1, d.deadline_ns, "timed out %llu ns before the deadline",
	              (unsigned long long)(d.deadline_ns - t1));
	cr_assert_lt(t1 - t0, HANG_NS);
	/* Expired: sleeps and yields fail at once. */
	cr_assert_eq(weft_sleep_ms(0), -ETIMEDOUT);
	cr_assert_eq(weft_sleep_until_ns(0), -ETIMEDOUT);
	cr_assert_eq(weft_yield(), -ETIMEDOUT);
	weft_deadline_pop(&d);
	cr_assert_eq(weft_yield(), 0);

	/* Nested on a thread: an earlier inner deadline applies, to a recv on an
	   empty oneshot too; popping it restores the (far) outer one. */
	weft_deadline_push(&d, 10000);
	weft_deadline_push(&inner, 20);
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	cr_assert_not_null(o);
	long got = -2;
	rc = weft_oneshot_recv(o, &got);
	t1 = weft_now_ns();
	cr_assert_eq(rc, -ETIMEDOUT);
	cr_assert_geq(t1, inner.deadline_ns, "timed out %llu ns before the deadline",
	              (unsigned long long)(inner.deadline_ns - t1));
	cr_assert_eq(got, -2);
	weft_deadline_pop(&inner);
	cr_assert_eq(weft_yield(), 0);
	weft_deadline_pop(&d);
	long v = 4;
	cr_assert_eq(weft_oneshot_send(o, &v), 0, "the receiver that timed out left");
	cr_assert_eq(weft_oneshot_recv(o, &got), 0);
	cr_assert_eq(got, 4);
	cr_assert_eq(weft_sleep_ms(1), 0);
	assert_no_leaks();
}

static void *return_42_flagged(void *arg)
{
	atomic_store((_Atomic int *)arg, 1);
	return (void *)42;
}

/* As in a task: a plain thread's wait in an expired scope fails before it
   takes effect, even when it could complete at once. */
Test(timer, plain_thread_expired_scope_fails_waits_before_they_take_effect)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	_Atomic int finishing = 0;
	weft_task *t = weft_spawn_on(rt, return_42_flagged, (void *)&finishing);
	cr_assert_not_null(t);
	test_wait_flag(&finishing);
	test_sleep_ms(10); /* most likely finished; correct either way */
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	cr_assert_not_null(o);
	long v = 3, got = -2;
	cr_assert_eq(weft_oneshot_send(o, &v), 0);

	weft_deadline d;
	weft_deadline_push_at_ns(&d, weft_now_ns() - 1);
	int recv_rc = weft_oneshot_recv(o, &got);
	void *res = (void *)-2;
	int join_rc = weft_join(t, &res);
	weft_deadline_pop(&d);
	cr_expect_eq(recv_rc, -ETIMEDOUT, "recv of a present value in an expired scope returned %d",
	             recv_rc);
	cr_expect_eq(join_rc, -ETIMEDOUT, "join of a finished task in an expired scope returned %d",
	             join_rc);
	/* A wait that returned 0 took effect: the oneshot or the handle is gone. */
	if (recv_rc == -ETIMEDOUT) {
		cr_assert_eq(got, -2);
		cr_assert_eq(weft_oneshot_recv(o, &got), 0);
		cr_assert_eq(got, 3);
	}
	if (join_rc == -ETIMEDOUT) {
		cr_assert_eq(res, (void *)-2);
		cr_assert_eq(weft_join(t, &res), 0);
		cr_assert_eq(res, (void *)42);
	}
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------------------------------------ death tests */

static void expect_abort(int (*fn)(void), const char *needle, const char *needle2)
{
	char buf[4096];
	int status = test_run_in_child(fn, buf, sizeof buf);
	cr_assert_neq(status, -1, "could not run the child");
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
	          "child did not die of SIGABRT (status 0x%x); stderr: %s", status, buf);
	cr_assert_not_null(strstr(buf, needle), "stderr lacks \"%s\": %s", needle, buf);
	if (needle2)
		cr_assert_not_null(strstr(buf, needle2), "stderr lacks \"%s\": %s", needle2, buf);
}

/* Runs fn as a task spawned here (so its spawn site is this file), on a
   one-worker runtime, in a death-test child. */
static weft_fn child_fn;

static void *spawn_child_fn(void *arg)
{
	(void)arg;
	weft_task *t = weft_spawn(child_fn, NULL);
	if (t)
		weft_join(t, NULL);
	return NULL;
}

static int run_child_fn(weft_fn fn)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 1;
	child_fn = fn;
	weft_run(spawn_child_fn, NULL, &cfg, NULL);
	return 0;
}

static void *pop_out_of_order(void *arg)
{
	(void)arg;
	weft_deadline a, b;
	weft_deadline_push(&a, 1000);
	weft_deadline_push(&b, 1000);
	weft_deadline_pop(&a); /* aborts */
	weft_deadline_pop(&b);
	weft_deadline_pop(&a);
	return NULL;
}

static int task_pops_out_of_order(void)
{
	return run_child_fn(pop_out_of_order);
}

static int thread_pops_out_of_order(void)
{
	pop_out_of_order(NULL);
	return 0;
}

static void *pop_unpushed(void *arg)
{
	(void)arg;
	weft_deadline a;
	weft_deadline_pop(&a); /* aborts */
	return NULL;
}

static int task_pops_unpushed(void)
{
	return run_child_fn(pop_unpushed);
}

Test(timer, deadline_pop_out_of_order_aborts)
{
	expect_abort(task_pops_out_of_order, "weft_deadline_pop", "test_timer.c");
	expect_abort(thread_pops_out_of_order, "weft_deadline_pop", NULL);
	expect_abort(task_pops_unpushed, "weft_deadline_pop", "test_timer.c");
}

static void *return_in_scope(void *arg)
{
	(void)arg;
	weft_deadline d;
	weft_deadline_push(&d, 1000);
	return NULL;
}

static int task_returns_in_scope(void)
{
	return run_child_fn(return_in_scope);
}

Test(timer, returning_with_a_deadline_scope_open_aborts)
{
	expect_abort(task_returns_in_scope, "deadline scope", "test_timer.c");
}

/* ------------------------------------------------ a million timers, armed */

static long gcd(long a, long b)
{
	while (b) {
		long r = a % b;
		a = b;
		b = r;
	}
	return a;
}

/* Through the internal API, on the current worker's wheel: arms n timers
   1-100 s out (spread over the wheel's levels 1 and 2), checks the wheel
   holds them, then cancels them in a scattered order -- each must still be
   pending -- and checks the wheel is empty. */
/* A worker fires only a few due timers per scheduler tick: the driver hands
   out at most `max` a call, oldest deadline first, keeps the rest due, and
   a due timer can still be cancelled. A standalone driver with plain-thread
   wakers and a manual clock. */
Test(timer, fire_hands_out_at_most_max_due_timers_oldest_first)
{
	enum { N = 10 };
	struct weft__timers tm;
	weft__timers_init(&tm, 0);
	struct weft__timer t[N];
	_Atomic uint32_t word[N];
	for (int i = 0; i < N; i++) {
		t[i] = (struct weft__timer)WEFT__TIMER_INIT;
		cr_assert_eq(weft__timer_arm(&tm, &t[i], (uint64_t)(N - i) * MS,
		                             weft__waker_self(&word[i])),
		             1);
	}
	cr_assert(!weft__timers_due(&tm, MS - 1), "due before the first deadline");
	cr_assert(weft__timer_cancel(&t[N - 1]), "the 1 ms timer was not pending");
	cr_assert_eq(weft__timers_fire(&tm, 20 * MS, 3), 3);
	for (int i = N - 2; i >= N - 4; i--)
		cr_assert(weft__timer_fired(&t[i]), "the timer due at %d ms did not fire first",
		          N - i);
	cr_assert(!weft__timer_fired(&t[0]));
	cr_assert(weft__timers_due(&tm, 20 * MS), "the remaining timers are no longer due");
	cr_assert_eq(weft__timers_wait_ns(&tm, 20 * MS), 0);
	cr_assert(weft__timer_cancel(&t[0]), "a due timer could not be cancelled");
	cr_assert_eq(weft__timers_fire(&tm, 20 * MS, 100), N - 5);
	cr_assert(!weft__timers_armed(&tm));
	for (int i = 0; i < N - 1; i++) {
		bool fired = weft__timer_fired(&t[i]);
		cr_assert_eq(fired, i != 0, "timer %d", i);
		cr_assert_eq(atomic_load(&word[i]), fired ? 1u : 0u, "timer %d's waker", i);
		cr_assert(!weft__timer_cancel(&t[i]) || !fired);
	}
	weft__timers_destroy(&tm);
}

static void *million_timers(void *arg)
{
	long n = *(long *)arg;
	weft_pin_push(); /* one worker, one wheel, throughout */
	struct weft__timers *tm = &weft__tls()->thread->worker->timers;
	struct weft__timer *timers = malloc((size_t)n * sizeof *timers);
	CHECK(timers != NULL, "out of memory");
	if (!timers) {
		weft_pin_pop();
		return NULL;
	}
	CHECK(!weft__timers_armed(tm), "the wheel was not empty at the start");
	uint64_t now = weft_now_ns(), rng = 0x9E3779B97F4A7C15ull;
	for (long i = 0; i < n; i++) {
		rng ^= rng >> 12;
		rng ^= rng << 25;
		rng ^= rng >> 27;
		uint64_t dl = now + 1000 * MS + (rng * 0x2545F4914F6CDD1Dull) % (99000 * MS);
		timers[i] = (struct weft__timer)WEFT__TIMER_INIT;
		struct weft__waker w = weft__waker_self(NULL);
		int armed = weft__timer_arm(tm, &timers[i], dl, w);
		CHECK(armed == 1, "timer %ld: arm returned %d", i, armed);
		if (armed != 1)
			weft__waker_drop(w);
	}
	pthread_mutex_lock(&tm->lock);
	size_t count = tm->wheel.count;
	pthread_mutex_unlock(&tm->lock);
	CHECK(count == (size_t)n, "the wheel holds %zu timers, not %ld", count, n);
	/* The earliest is 1 s after `now`, less a level-1 slot (64 ms) that the
	   wheel cascades at its start: an absolute bound, since arming a
	   million takes a while on a loaded machine. */
	uint64_t checked = weft_now_ns();
	CHECK(checked + weft__timers_wait_ns(tm, checked) >= now + 900 * MS,
	      "next deadline too soon: %.1f ms after the first arm",
	      (double)(checked + weft__timers_wait_ns(tm, checked) - now) / 1e6);

	long stride = 7919;
	while (gcd(stride, n) != 1)
		stride += 2;
	for (long k = 0; k < n; k++) {
		long i = (long)(((unsigned long long)k * (unsigned long long)stride) %
		                (unsigned long long)n);
		bool pending = weft__timer_cancel(&timers[i]);
		CHECK(pending, "timer %ld was not pending at its cancel", i);
		if (k == n / 2)
			CHECK(weft__timers_armed(tm), "the wheel emptied at half the cancels");
	}
	pthread_mutex_lock(&tm->lock);
	count = tm->wheel.count;
	pthread_mutex_unlock(&tm->lock);
	CHECK(count == 0, "%zu timers left in the wheel", count);
	CHECK(atomic_load(&tm->next) == WEFT__WHEEL_NEVER, "the wheel's next expiration is %llu",
	      (unsigned long long)atomic_load(&tm->next));
	CHECK(!weft__timer_cancel(&timers[0]), "a second cancel found the timer pending");
	free(timers);
	weft_pin_pop();
	return NULL;
}

Test(timer, a_million_timers_armed_and_cancelled)
{
	long n = test_scale(1000000);
	run_task(2, million_timers, &n);
	assert_no_failures();
	assert_no_leaks(); /* every cancel dropped its waker's task reference */
}

/* --------------------------------------------- timers while workers busy */

struct busy {
	_Atomic int stop;
	bool use_yield;
	int sleep_rc;
	uint64_t slept;
};

static void *busy_loop(void *arg)
{
	struct busy *b = arg;
	uint64_t give_up = weft_now_ns() + 2 * HANG_NS;
	for (unsigned long n = 1; !atomic_load(&b->stop); n++) {
		int rc = b->use_yield ? weft_yield() : weft_yield_maybe();
		CHECK(rc == 0, "yield returned %d", rc);
		if (n % 1024 == 0 && weft_now_ns() > give_up) {
			CHECK(false, "the sleeper did not wake while the workers were busy");
			atomic_store(&b->stop, 1);
		}
	}
	return NULL;
}

static void *sleep_then_stop(void *arg)
{
	struct busy *b = arg;
	uint64_t t0 = weft_now_ns();
	b->sleep_rc = weft_sleep_ms(20);
	b->slept = weft_now_ns() - t0;
	atomic_store(&b->stop, 1);
	return NULL;
}

static void timers_fire_while_busy(bool use_yield)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct busy b = {.use_yield = use_yield, .sleep_rc = 1};
	weft_task *t[3] = {weft_spawn_on(rt, busy_loop, &b), weft_spawn_on(rt, busy_loop, &b),
	                   weft_spawn_on(rt, sleep_then_stop, &b)};
	for (int i = 0; i < 3; i++)
		cr_assert_not_null(t[i]);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(weft_join(t[i], NULL), 0);
	weft_runtime_free(rt);
	assert_no_failures();
	cr_assert_eq(b.sleep_rc, 0);
	cr_assert_geq(b.slept, 20 * MS, "woke %llu ns early",
	              (unsigned long long)(20 * MS - b.slept));
}

Test(timer, timers_fire_while_every_worker_runs_yield_maybe_loops, .timeout = 30)
{
	timers_fire_while_busy(false);
}

Test(timer, timers_fire_while_every_worker_runs_yield_loops, .timeout = 30)
{
	timers_fire_while_busy(true);
}

/* ------------------------------------------------------------------ clock */

/* Each reader checks its own readings never go back, and that a reading
   taken after seeing another thread's latest is not before it. */
static _Atomic uint64_t latest_reading;

static void read_clock(long n)
{
	uint64_t prev = 0;
	for (long i = 0; i < n; i++) {
		uint64_t seen = atomic_load(&latest_reading);
		uint64_t now = weft_now_ns();
		CHECK(now >= prev, "went back %llu ns on one thread",
		      (unsigned long long)(prev - now));
		CHECK(now >= seen, "%llu ns before another thread's earlier reading",
		      (unsigned long long)(seen - now));
		prev = now;
		uint64_t cur = atomic_load(&latest_reading);
		while (cur < now && !atomic_compare_exchange_weak(&latest_reading, &cur, now))
			;
	}
}

static void *read_clock_task(void *arg)
{
	read_clock(*(long *)arg);
	return NULL;
}

static void *read_clock_thread(void *arg)
{
	read_clock(*(long *)arg);
	return NULL;
}

Test(timer, now_ns_is_monotonic_across_threads)
{
	/* CLOCK_MONOTONIC, read fresh. */
	uint64_t a = test_now_ns(), b = weft_now_ns();
	test_sleep_ms(2);
	uint64_t c = weft_now_ns(), d = test_now_ns();
	cr_assert(a <= b && b + 2 * MS <= c && c <= d, "%llu %llu %llu %llu", (unsigned long long)a,
	          (unsigned long long)b, (unsigned long long)c, (unsigned long long)d);

	long n = test_scale(200000);
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	weft_task *t[2];
	pthread_t th[2];
	for (int i = 0; i < 2; i++) {
		t[i] = weft_spawn_on(rt, read_clock_task, &n);
		cr_assert_not_null(t[i]);
		cr_assert_eq(pthread_create(&th[i], NULL, read_clock_thread, &n), 0);
	}
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(weft_join(t[i], NULL), 0);
		cr_assert_eq(pthread_join(th[i], NULL), 0);
	}
	weft_runtime_free(rt);
	assert_no_failures();
}
