/*
 * weft_mutex, weft_notify, weft_sem: exclusion (exact counts from tasks on
 * two workers and plain threads), bounded unfairness (a waiter gets the
 * lock from a task that relocks at once), cancellation and deadlines that
 * leave each primitive consistent (nothing taken, nobody stranded),
 * notify's stored permit, notify_all, the semaphore's FIFO order, and bad
 * arguments. Events decide; sleeps only give the other side a chance.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "tests/common.h"

#define MS 1000000ull
#define HANG_NS (10000 * MS)

TestSuite(sync, .timeout = 120);

static void wait_flag_thread(_Atomic int *flag)
{
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (!atomic_load(flag)) {
		cr_assert_lt(test_now_ns(), give_up, "hang");
		test_sleep_ms(1);
	}
}

/* ------------------------------------------------------------------ mutex */

Test(sync, mutex_lock_trylock_unlock_and_bad_arguments)
{
	weft_mutex m;
	weft_mutex_init(&m);
	cr_assert_eq(weft_mutex_lock(&m), 0); /* a plain thread */
	cr_assert_eq(weft_mutex_trylock(&m), -EBUSY);
	weft_mutex_unlock(&m);
	cr_assert_eq(weft_mutex_trylock(&m), 0);
	weft_mutex_unlock(&m);
	weft_mutex m2 = WEFT_MUTEX_INIT;
	cr_assert_eq(weft_mutex_trylock(&m2), 0);
	weft_mutex_unlock(&m2);
	cr_assert_eq(weft_mutex_lock(NULL), -EINVAL);
	cr_assert_eq(weft_mutex_trylock(NULL), -EINVAL);
	weft_mutex_destroy(&m);
}

struct counter {
	weft_mutex m;
	long per;
	uint64_t value;
	_Atomic long errors;
};

static void *add_many(void *arg)
{
	struct counter *c = arg;
	for (long i = 0; i < c->per; i++) {
		if (weft_mutex_lock(&c->m) != 0) {
			atomic_fetch_add(&c->errors, 1);
			continue;
		}
		uint64_t v = c->value; /* a torn increment shows as a lost one */
		if ((i & 63) == 0)
			weft_yield(); /* sometimes park while holding it */
		c->value = v + 1;
		weft_mutex_unlock(&c->m);
	}
	return NULL;
}

Test(sync, mutex_excludes_tasks_on_two_workers_and_plain_threads)
{
	weft_runtime *rt = test_runtime(2);
	struct counter c = {.per = test_scale(20000)};
	weft_mutex_init(&c.m);
	weft_task *t[8];
	for (int i = 0; i < 8; i++)
		t[i] = weft_spawn_on(rt, add_many, &c);
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, add_many, &c);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(weft_join(t[i], NULL), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&c.errors), 0);
	cr_assert_eq(c.value, (uint64_t)(10 * c.per));
	cr_assert_eq(weft_mutex_trylock(&c.m), 0, "left locked");
	weft_mutex_unlock(&c.m);
	weft_runtime_free(rt);
	assert_no_leaks();
}

struct greedy {
	weft_mutex m;
	_Atomic int waiter_got_it, greedy_running, waiter_waiting;
	long overtaken; /* greedy acquisitions while the waiter waited */
};

static void spin_us(uint64_t us)
{
	uint64_t until = weft_now_ns() + us * 1000;
	while (weft_now_ns() < until)
		;
}

/* Holds the lock almost all the time and takes it back at once: a plain
   thread, which no coop budget ever makes yield. */
static void *greedy_thread(void *arg)
{
	struct greedy *g = arg;
	uint64_t give_up = weft_now_ns() + HANG_NS;
	while (!atomic_load(&g->waiter_got_it) && weft_now_ns() < give_up) {
		weft_mutex_lock(&g->m);
		atomic_store(&g->greedy_running, 1);
		if (atomic_load(&g->waiter_waiting) && !atomic_load(&g->waiter_got_it))
			g->overtaken++;
		spin_us(20);
		weft_mutex_unlock(&g->m);
	}
	return NULL;
}

static void *polite_task(void *arg)
{
	struct greedy *g = arg;
	while (!atomic_load(&g->greedy_running))
		weft_yield();
	atomic_store(&g->waiter_waiting, 1);
	if (weft_mutex_lock(&g->m) == 0) {
		atomic_store(&g->waiter_got_it, 1);
		weft_mutex_unlock(&g->m);
	}
	return NULL;
}

Test(sync, a_waiter_gets_the_lock_from_a_thread_that_relocks_at_once)
{
	weft_runtime *rt = test_runtime(2);
	struct greedy g = {0};
	weft_mutex_init(&g.m);
	pthread_t th;
	pthread_create(&th, NULL, greedy_thread, &g);
	weft_task *b = weft_spawn_on(rt, polite_task, &g);
	cr_assert_eq(weft_join(b, NULL), 0);
	pthread_join(th, NULL);
	cr_assert(atomic_load(&g.waiter_got_it), "the waiter starved for 10 s");
	/* The hand-off bound is 1 ms, about 50 of the thread's 20 us critical
	   sections; barging without it lets the thread in for seconds. */
	cr_assert_lt(g.overtaken, 2000, "the thread overtook the waiter %ld times", g.overtaken);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* One woken waiter at a time (Go's mutexWoken): an owner that unlocks and
   relocks at once wakes the first waiter, and then nobody else until that
   one has tried. On one worker the owner never switches here, so whoever
   it woke is still queued: the LIFO slot holds one, the local queue the
   rest. */
#define RELOCK_WAITERS 8

struct relock {
	weft_mutex m;
	_Atomic int parked, got;
	uint64_t queued_after; /* tasks in the local queue after the relocks */
};

static void *relock_waiter(void *arg)
{
	struct relock *r = arg;
	atomic_fetch_add(&r->parked, 1);
	if (weft_mutex_lock(&r->m) == 0) {
		atomic_fetch_add(&r->got, 1);
		weft_mutex_unlock(&r->m);
	}
	return NULL;
}

static void *relocking_owner(void *arg)
{
	struct relock *r = arg;
	weft_task *w[RELOCK_WAITERS];
	weft_mutex_lock(&r->m);
	for (int i = 0; i < RELOCK_WAITERS; i++)
		w[i] = weft_spawn(relock_waiter, r);
	while (atomic_load(&r->parked) < RELOCK_WAITERS)
		weft_yield(); /* they queue on the lock */
	weft_yield();
	for (int i = 0; i < RELOCK_WAITERS; i++) {
		weft_mutex_unlock(&r->m);
		weft_mutex_lock(&r->m);
	}
	weft_worker_metrics wm;
	weft_metrics_worker(weft_runtime_current(), 0, &wm);
	r->queued_after = wm.local_queue_depth;
	weft_mutex_unlock(&r->m);
	for (int i = 0; i < RELOCK_WAITERS; i++)
		weft_join(w[i], NULL);
	return NULL;
}

Test(sync, an_owner_relocking_at_once_wakes_one_waiter_at_a_time)
{
	weft_runtime *rt = test_runtime(1);
	struct relock r = {0};
	weft_mutex_init(&r.m);
	weft_task *o = weft_spawn_on(rt, relocking_owner, &r);
	cr_assert_eq(weft_join(o, NULL), 0);
	cr_assert_eq(r.queued_after, 0, "%llu woken waiters queued besides the first",
	             (unsigned long long)r.queued_after);
	cr_assert_eq(atomic_load(&r.got), RELOCK_WAITERS, "a waiter was stranded");
	weft_runtime_free(rt);
	assert_no_leaks();
}

struct held {
	weft_mutex *m;
	int rc;
	_Atomic int waiting;
};

static void *lock_blocked(void *arg)
{
	struct held *h = arg;
	atomic_store(&h->waiting, 1);
	h->rc = weft_mutex_lock(h->m);
	if (h->rc == 0)
		weft_mutex_unlock(h->m);
	return NULL;
}

static void *lock_in_scope(void *arg)
{
	struct held *h = arg;
	weft_deadline d;
	weft_deadline_push(&d, 20);
	h->rc = weft_mutex_lock(h->m);
	weft_deadline_pop(&d);
	if (h->rc == 0)
		weft_mutex_unlock(h->m);
	return NULL;
}

Test(sync, a_cancelled_or_timed_out_lock_takes_nothing_and_strands_nobody)
{
	weft_runtime *rt = test_runtime(2);
	weft_mutex m;
	weft_mutex_init(&m);
	struct held a = {.m = &m, .rc = 1}, b = {.m = &m, .rc = 1};
	cr_assert_eq(weft_mutex_lock(&m), 0); /* held by this thread */
	weft_task *ta = weft_spawn_on(rt, lock_blocked, &a);
	wait_flag_thread(&a.waiting);
	test_sleep_ms(20);
	weft_task *tb = weft_spawn_on(rt, lock_blocked, &b); /* queued behind a */
	wait_flag_thread(&b.waiting);
	test_sleep_ms(20);
	weft_cancel(ta);
	cr_assert_eq(weft_join(ta, NULL), WEFT_CANCELED);
	cr_assert_eq(a.rc, -ECANCELED);
	/* A deadline scope around a lock: -ETIMEDOUT. */
	struct held c = {.m = &m, .rc = 1};
	cr_assert_eq(weft_block_on(rt, lock_in_scope, &c, NULL), 0);
	cr_assert_eq(c.rc, -ETIMEDOUT);
	weft_mutex_unlock(&m); /* b, still queued, must get it */
	cr_assert_eq(weft_join(tb, NULL), 0);
	cr_assert_eq(b.rc, 0, "the waiter behind the cancelled one was stranded");
	cr_assert_eq(weft_mutex_trylock(&m), 0, "left locked");
	weft_mutex_unlock(&m);
	weft_runtime_free(rt);
	assert_no_leaks();
}

struct storm {
	weft_mutex m;
	uint64_t value;
	_Atomic long ok, timed_out, cancelled;
	long per;
};

static void *storm_task(void *arg)
{
	struct storm *s = arg;
	uint64_t rng = (uintptr_t)&rng;
	for (long i = 0; i < s->per; i++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		weft_deadline d;
		weft_deadline_push(&d, rng % 2); /* 0 or 1 ms: many expire */
		int rc = weft_mutex_lock(&s->m);
		weft_deadline_pop(&d);
		if (rc == 0) {
			s->value++;
			if (rng % 8 == 0)
				weft_sleep_ms(1); /* hold it across a park */
			weft_mutex_unlock(&s->m);
			atomic_fetch_add(&s->ok, 1);
		} else if (rc == -ETIMEDOUT) {
			atomic_fetch_add(&s->timed_out, 1);
		} else if (rc == -ECANCELED) {
			atomic_fetch_add(&s->cancelled, 1);
			return NULL;
		}
	}
	return NULL;
}

Test(sync, a_storm_of_expiring_and_cancelled_locks_keeps_the_count_exact)
{
	weft_runtime *rt = test_runtime(2);
	struct storm s = {.per = test_scale(2000)};
	weft_mutex_init(&s.m);
	weft_task *t[16];
	for (int i = 0; i < 16; i++)
		t[i] = weft_spawn_on(rt, storm_task, &s);
	test_sleep_ms(30);
	for (int i = 0; i < 16; i += 3)
		weft_cancel(t[i]);
	for (int i = 0; i < 16; i++)
		weft_join(t[i], NULL);
	cr_assert_eq(s.value, (uint64_t)atomic_load(&s.ok), "a lock that failed took effect");
	cr_assert_gt(atomic_load(&s.timed_out), 0, "no deadline expired: the test tested nothing");
	cr_assert_eq(weft_mutex_trylock(&s.m), 0, "left locked");
	weft_mutex_unlock(&s.m);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ----------------------------------------------------------------- notify */

struct waiting {
	weft_notify *n;
	int rc;
	_Atomic int waiting, done;
};

static void *notify_waiter(void *arg)
{
	struct waiting *w = arg;
	atomic_store(&w->waiting, 1);
	w->rc = weft_notify_wait(w->n);
	atomic_store(&w->done, 1);
	return NULL;
}

static void *notify_wait_in_scope(void *arg)
{
	struct waiting *w = arg;
	weft_deadline d;
	weft_deadline_push(&d, 20);
	w->rc = weft_notify_wait(w->n);
	weft_deadline_pop(&d);
	return NULL;
}

Test(sync, notify_one_before_the_wait_is_kept_once)
{
	weft_runtime *rt = test_runtime(2);
	weft_notify n;
	weft_notify_init(&n);
	weft_notify_one(&n);
	weft_notify_one(&n); /* at most one permit */
	struct waiting w = {.n = &n, .rc = 1};
	cr_assert_eq(weft_block_on(rt, notify_waiter, &w, NULL), 0);
	cr_assert_eq(w.rc, 0);
	w.rc = 1;
	cr_assert_eq(weft_block_on(rt, notify_wait_in_scope, &w, NULL), 0);
	cr_assert_eq(w.rc, -ETIMEDOUT, "a second permit was stored");
	cr_assert_eq(weft_notify_wait(NULL), -EINVAL);
	weft_notify_destroy(&n);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(sync, notify_all_wakes_every_waiter_and_stores_nothing)
{
	weft_runtime *rt = test_runtime(2);
	weft_notify n;
	weft_notify_init(&n);
	enum { N = 100 };
	struct waiting w[N];
	weft_task *t[N];
	for (int i = 0; i < N; i++) {
		w[i] = (struct waiting){.n = &n, .rc = 1};
		t[i] = weft_spawn_on(rt, notify_waiter, &w[i]);
	}
	for (int i = 0; i < N; i++)
		wait_flag_thread(&w[i].waiting);
	test_sleep_ms(20);
	weft_notify_all(&n);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(weft_join(t[i], NULL), 0);
		cr_assert_eq(w[i].rc, 0);
	}
	struct waiting late = {.n = &n, .rc = 1};
	cr_assert_eq(weft_block_on(rt, notify_wait_in_scope, &late, NULL), 0);
	cr_assert_eq(late.rc, -ETIMEDOUT, "notify_all stored a permit");
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(sync, a_cancelled_notify_wait_consumes_no_notification)
{
	weft_runtime *rt = test_runtime(2);
	weft_notify n;
	weft_notify_init(&n);
	struct waiting a = {.n = &n, .rc = 1}, b = {.n = &n, .rc = 1};
	weft_task *ta = weft_spawn_on(rt, notify_waiter, &a);
	wait_flag_thread(&a.waiting);
	test_sleep_ms(20);
	weft_cancel(ta);
	cr_assert_eq(weft_join(ta, NULL), WEFT_CANCELED);
	cr_assert_eq(a.rc, -ECANCELED);
	weft_notify_one(&n); /* nobody waits now: kept as the permit */
	cr_assert_eq(weft_block_on(rt, notify_waiter, &b, NULL), 0);
	cr_assert_eq(b.rc, 0);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* -------------------------------------------------------------- semaphore */

struct acquirer {
	weft_sem *s;
	uint64_t n;
	int rc;
	_Atomic int waiting, done;
};

static void *acquire_task(void *arg)
{
	struct acquirer *a = arg;
	atomic_store(&a->waiting, 1);
	a->rc = weft_sem_acquire(a->s, a->n);
	atomic_store(&a->done, 1);
	return NULL;
}

Test(sync, sem_counts_and_rejects_bad_arguments)
{
	weft_sem s;
	cr_assert_eq(weft_sem_init(&s, 3), 0);
	cr_assert_eq(weft_sem_acquire(&s, 2), 0); /* a plain thread */
	cr_assert_eq(weft_sem_try_acquire(&s, 2), -EAGAIN);
	weft_sem_release(&s, 1);
	cr_assert_eq(weft_sem_try_acquire(&s, 2), 0);
	cr_assert_eq(weft_sem_try_acquire(&s, 1), -EAGAIN);
	cr_assert_eq(weft_sem_acquire(&s, 0), -EINVAL);
	cr_assert_eq(weft_sem_try_acquire(NULL, 1), -EINVAL);
	cr_assert_eq(weft_sem_init(NULL, 1), -EINVAL);
	weft_sem_destroy(&s);
}

Test(sync, sem_grants_in_queue_order_and_a_cancelled_head_lets_the_next_through)
{
	weft_runtime *rt = test_runtime(2);
	weft_sem s;
	weft_sem_init(&s, 0);
	struct acquirer big = {.s = &s, .n = 5, .rc = 1}, small = {.s = &s, .n = 1, .rc = 1};
	weft_task *tb = weft_spawn_on(rt, acquire_task, &big);
	wait_flag_thread(&big.waiting);
	test_sleep_ms(20);
	weft_task *ts = weft_spawn_on(rt, acquire_task, &small);
	wait_flag_thread(&small.waiting);
	test_sleep_ms(20);
	weft_sem_release(&s, 1);
	test_sleep_ms(20);
	cr_assert_not(atomic_load(&small.done), "the small request overtook the large one");
	cr_assert_eq(weft_sem_try_acquire(&s, 1), -EAGAIN, "try_acquire overtook the waiters");
	weft_cancel(tb); /* the head leaves: the small one fits now */
	cr_assert_eq(weft_join(tb, NULL), WEFT_CANCELED);
	cr_assert_eq(big.rc, -ECANCELED);
	cr_assert_eq(weft_join(ts, NULL), 0);
	cr_assert_eq(small.rc, 0);
	cr_assert_eq(weft_sem_try_acquire(&s, 1), -EAGAIN, "the cancelled request took permits");
	/* FIFO the other way round: the large one first, once it fits. */
	big = (struct acquirer){.s = &s, .n = 3, .rc = 1};
	small = (struct acquirer){.s = &s, .n = 1, .rc = 1};
	tb = weft_spawn_on(rt, acquire_task, &big);
	wait_flag_thread(&big.waiting);
	test_sleep_ms(20);
	ts = weft_spawn_on(rt, acquire_task, &small);
	wait_flag_thread(&small.waiting);
	test_sleep_ms(20);
	weft_sem_release(&s, 3);
	cr_assert_eq(weft_join(tb, NULL), 0);
	cr_assert_eq(big.rc, 0);
	test_sleep_ms(20);
	cr_assert_not(atomic_load(&small.done));
	weft_sem_release(&s, 1);
	cr_assert_eq(weft_join(ts, NULL), 0);
	cr_assert_eq(small.rc, 0);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ----------------------------------------------------------------- rwlock */

struct rw {
	weft_rwlock *l;
	bool write;
	int rc;
	_Atomic int waiting, done;
};

static void *rw_task(void *arg)
{
	struct rw *r = arg;
	atomic_store(&r->waiting, 1);
	r->rc = r->write ? weft_rwlock_wrlock(r->l) : weft_rwlock_rdlock(r->l);
	atomic_store(&r->done, 1);
	return NULL; /* keeps it: the test unlocks on its behalf */
}

Test(sync, rwlock_shares_readers_and_excludes_writers)
{
	weft_rwlock l;
	weft_rwlock_init(&l);
	cr_assert_eq(weft_rwlock_rdlock(&l), 0);
	cr_assert_eq(weft_rwlock_tryrdlock(&l), 0);
	cr_assert_eq(weft_rwlock_trywrlock(&l), -EBUSY);
	weft_rwlock_unlock(&l);
	weft_rwlock_unlock(&l);
	cr_assert_eq(weft_rwlock_trywrlock(&l), 0);
	cr_assert_eq(weft_rwlock_tryrdlock(&l), -EBUSY);
	cr_assert_eq(weft_rwlock_trywrlock(&l), -EBUSY);
	weft_rwlock_unlock(&l);
	cr_assert_eq(weft_rwlock_rdlock(NULL), -EINVAL);
	cr_assert_eq(weft_rwlock_trywrlock(NULL), -EINVAL);
	weft_rwlock_destroy(&l);
}

Test(sync, a_waiting_writer_holds_back_new_readers_and_its_cancellation_lets_them_in)
{
	weft_runtime *rt = test_runtime(2);
	weft_rwlock l;
	weft_rwlock_init(&l);
	cr_assert_eq(weft_rwlock_rdlock(&l), 0); /* reader 1: this thread */
	struct rw w = {.l = &l, .write = true, .rc = 1}, r2 = {.l = &l, .rc = 1};
	weft_task *tw = weft_spawn_on(rt, rw_task, &w);
	wait_flag_thread(&w.waiting);
	test_sleep_ms(20);
	cr_assert_eq(weft_rwlock_tryrdlock(&l), -EBUSY, "a reader overtook the waiting writer");
	weft_task *tr = weft_spawn_on(rt, rw_task, &r2);
	wait_flag_thread(&r2.waiting);
	test_sleep_ms(20);
	cr_assert_not(atomic_load(&r2.done), "a reader overtook the waiting writer");
	weft_rwlock_unlock(&l); /* reader 1 leaves: the writer, then reader 2 */
	cr_assert_eq(weft_join(tw, NULL), 0);
	cr_assert_eq(w.rc, 0);
	test_sleep_ms(20);
	cr_assert_not(atomic_load(&r2.done), "a reader got in beside the writer");
	weft_rwlock_unlock(&l); /* the writer's */
	cr_assert_eq(weft_join(tr, NULL), 0);
	cr_assert_eq(r2.rc, 0);
	weft_rwlock_unlock(&l); /* reader 2's */

	/* A cancelled writer at the head lets the readers behind it in. */
	cr_assert_eq(weft_rwlock_rdlock(&l), 0);
	w = (struct rw){.l = &l, .write = true, .rc = 1};
	r2 = (struct rw){.l = &l, .rc = 1};
	tw = weft_spawn_on(rt, rw_task, &w);
	wait_flag_thread(&w.waiting);
	test_sleep_ms(20);
	tr = weft_spawn_on(rt, rw_task, &r2);
	wait_flag_thread(&r2.waiting);
	test_sleep_ms(20);
	weft_cancel(tw);
	cr_assert_eq(weft_join(tw, NULL), WEFT_CANCELED);
	cr_assert_eq(w.rc, -ECANCELED);
	cr_assert_eq(weft_join(tr, NULL), 0);
	cr_assert_eq(r2.rc, 0);
	weft_rwlock_unlock(&l);
	weft_rwlock_unlock(&l);
	cr_assert_eq(weft_rwlock_trywrlock(&l), 0, "left held");
	weft_rwlock_unlock(&l);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------------------------------------------ group */

static void *return_arg(void *arg)
{
	return arg;
}

struct sleeper {
	long ms;
	_Atomic int *finished;
	int rc;
};

static void *sleep_then_mark(void *arg)
{
	struct sleeper *s = arg;
	s->rc = weft_sleep_ms((uint64_t)s->ms);
	atomic_fetch_add(s->finished, 1);
	return NULL;
}

static void *group_sum(void *arg)
{
	long *sum = arg;
	weft_group g;
	weft_group_init(&g, NULL);
	for (long i = 0; i < 100; i++)
		if (weft_group_spawn(&g, return_arg, (void *)(intptr_t)i) != 0)
			return (void *)1;
	void *r;
	int st;
	while ((st = weft_group_join_next(&g, &r)) != -ECHILD) {
		if (st != 0)
			return (void *)2;
		*sum += (long)(intptr_t)r;
	}
	weft_group_destroy(&g);
	return NULL;
}

Test(sync, a_group_joins_every_child_once_then_reports_echild)
{
	weft_runtime *rt = test_runtime(2);
	long sum = 0;
	void *r;
	cr_assert_eq(weft_block_on(rt, group_sum, &sum, &r), 0);
	cr_assert_null(r);
	cr_assert_eq(sum, 4950);
	/* From a plain thread, with the runtime named. */
	weft_group g;
	cr_assert_eq(weft_group_init(&g, rt), 0);
	for (long i = 1; i <= 10; i++)
		cr_assert_eq(weft_group_spawn(&g, return_arg, (void *)(intptr_t)i), 0);
	sum = 0;
	while (weft_group_join_next(&g, &r) == 0)
		sum += (long)(intptr_t)r;
	cr_assert_eq(sum, 55);
	cr_assert_eq(weft_group_join_next(&g, NULL), -ECHILD);
	weft_group_destroy(&g);
	cr_assert_eq(weft_group_init(NULL, rt), -EINVAL);
	/* A plain thread with no runtime named has nowhere to spawn. */
	weft_group orphan;
	weft_group_init(&orphan, NULL);
	cr_assert_eq(weft_group_spawn(&orphan, return_arg, NULL), -EINVAL);
	cr_assert_eq(weft_group_spawn(&orphan, NULL, NULL), -EINVAL);
	cr_assert_eq(weft_group_join_next(&orphan, NULL), -ECHILD);
	weft_group_destroy(&orphan);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(sync, cancel_all_and_destroy_end_every_child_before_returning)
{
	weft_runtime *rt = test_runtime(2);
	_Atomic int finished = 0;
	enum { N = 20 };
	struct sleeper s[N];
	weft_group g;
	weft_group_init(&g, rt);
	for (int i = 0; i < N; i++) {
		s[i] = (struct sleeper){.ms = 10000, .finished = &finished, .rc = 1};
		cr_assert_eq(weft_group_spawn(&g, sleep_then_mark, &s[i]), 0);
	}
	weft_group_cancel_all(&g);
	for (int i = 0; i < N; i++)
		cr_assert_eq(weft_group_join_next(&g, NULL), WEFT_CANCELED);
	cr_assert_eq(atomic_load(&finished), N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(s[i].rc, -ECANCELED);
	/* Spawned after cancel_all: cancelled at once. */
	s[0] = (struct sleeper){.ms = 10000, .finished = &finished, .rc = 1};
	cr_assert_eq(weft_group_spawn(&g, sleep_then_mark, &s[0]), 0);
	cr_assert_eq(weft_group_join_next(&g, NULL), WEFT_CANCELED);
	weft_group_destroy(&g);

	/* destroy with children running: they are cancelled and all done. */
	atomic_store(&finished, 0);
	weft_group_init(&g, rt);
	for (int i = 0; i < N; i++) {
		s[i] = (struct sleeper){.ms = 10000, .finished = &finished, .rc = 1};
		weft_group_spawn(&g, sleep_then_mark, &s[i]);
	}
	weft_group_destroy(&g);
	cr_assert_eq(atomic_load(&finished), N, "a child outlived its group");
	weft_runtime_free(rt);
	assert_no_leaks();
}

struct joiner {
	weft_group *g;
	int rc;
	_Atomic int waiting;
};

static void *join_one(void *arg)
{
	struct joiner *j = arg;
	atomic_store(&j->waiting, 1);
	j->rc = weft_group_join_next(j->g, NULL);
	return NULL;
}

Test(sync, a_cancelled_join_next_loses_no_child)
{
	weft_runtime *rt = test_runtime(2);
	_Atomic int finished = 0;
	struct sleeper s = {.ms = 100, .finished = &finished, .rc = 1};
	weft_group g;
	weft_group_init(&g, rt);
	cr_assert_eq(weft_group_spawn(&g, sleep_then_mark, &s), 0);
	struct joiner j = {.g = &g, .rc = 1};
	weft_task *t = weft_spawn_on(rt, join_one, &j);
	wait_flag_thread(&j.waiting);
	test_sleep_ms(10);
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(j.rc, -ECANCELED);
	cr_assert_eq(weft_group_join_next(&g, NULL), 0, "the child was lost");
	cr_assert_eq(s.rc, 0);
	cr_assert_eq(weft_group_join_next(&g, NULL), -ECHILD);
	weft_group_destroy(&g);
	weft_runtime_free(rt);
	assert_no_leaks();
}
