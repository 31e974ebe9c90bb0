/*
 * The blocking pool: jobs joined from tasks and from plain threads, more
 * jobs than threads, keep-alive expiry and restart, cancellation before and
 * after a job started, a job spawning a task back into its runtime, a
 * deadline scope around the join of a long job, getaddrinfo on the pool,
 * shutdown with queued and running jobs (and one that outlives the grace
 * period), bad arguments, a failed thread start, and misuse.
 *
 * Timing: events (flags a job or task sets) decide everything; sleeps only
 * give the other side a chance, and hang guards are generous.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "tests/common.h"
#include "runtime/fault.h"
#include "runtime/rt.h"

#define HANG_NS (10ull * 1000 * 1000 * 1000)

TestSuite(blocking, .timeout = 120);

static weft_runtime *pool_runtime(unsigned workers, unsigned max_threads, unsigned keepalive_ms)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = workers;
	cfg.max_blocking_threads = max_threads;
	cfg.blocking_keepalive_ms = keepalive_ms;
	return weft_runtime_new(&cfg);
}

static unsigned pool_threads(weft_runtime *rt)
{
	pthread_mutex_lock(&rt->blocking.lock);
	unsigned n = rt->blocking.threads;
	pthread_mutex_unlock(&rt->blocking.lock);
	return n;
}

/* Waits (from a plain thread) until *flag is set; false after the hang guard. */
static bool wait_flag_thread(_Atomic int *flag)
{
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (!atomic_load(flag)) {
		if (test_now_ns() > give_up)
			return false;
		test_sleep_ms(1);
	}
	return true;
}

static void *square(void *arg)
{
	intptr_t i = (intptr_t)arg;
	return (void *)(i * i);
}

/* ------------------------------------------------- many jobs, many joiners */

struct many {
	long n;
	_Atomic long bad;
};

static void *spawn_and_join_many(void *arg)
{
	struct many *m = arg;
	weft_task **t = calloc((size_t)m->n, sizeof *t);
	for (long i = 0; i < m->n; i++)
		if (!(t[i] = weft_spawn_blocking(square, (void *)(intptr_t)(i % 1000))))
			atomic_fetch_add(&m->bad, 1);
	for (long i = 0; i < m->n; i++) {
		void *r;
		if (!t[i] || weft_join(t[i], &r) != 0 || (intptr_t)r != (i % 1000) * (i % 1000))
			atomic_fetch_add(&m->bad, 1);
	}
	free(t);
	return NULL;
}

Test(blocking, ten_thousand_jobs_joined_from_tasks)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct many m = {.n = test_scale(10000) / 4};
	weft_task *t[4];
	for (int i = 0; i < 4; i++)
		cr_assert_not_null(t[i] = weft_spawn_on(rt, spawn_and_join_many, &m));
	for (int i = 0; i < 4; i++)
		cr_assert_eq(weft_join(t[i], NULL), 0);
	cr_assert_eq(atomic_load(&m.bad), 0, "%ld jobs failed or returned a wrong result",
	             atomic_load(&m.bad));
	cr_assert_eq(atomic_load(&rt->blocking.alive), 0);
	weft_runtime_free(rt);
	assert_no_leaks();
}

struct thread_arg {
	weft_runtime *rt;
	struct many *m;
};

static void *thread_spawns_and_joins(void *arg)
{
	struct thread_arg *a = arg;
	for (long i = 0; i < a->m->n; i++) {
		void *r;
		weft_task *t = weft_spawn_blocking_on(a->rt, square, (void *)(intptr_t)(i % 1000));
		if (!t || weft_join(t, &r) != 0 || (intptr_t)r != (i % 1000) * (i % 1000))
			atomic_fetch_add(&a->m->bad, 1);
	}
	return NULL;
}

Test(blocking, ten_thousand_jobs_joined_from_plain_threads)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct many m = {.n = test_scale(10000) / 4};
	struct thread_arg a = {rt, &m};
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, thread_spawns_and_joins, &a), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&m.bad), 0, "%ld jobs failed or returned a wrong result",
	             atomic_load(&m.bad));
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ---------------------------------------------------- more jobs than threads */

struct crowd {
	_Atomic int running, most, done;
	_Atomic int pair_a, pair_b;
};

/* The first two jobs wait for each other: that proves two threads run at
   once. Every job records how many run concurrently. */
static void *crowd_job(void *arg)
{
	struct crowd *c = arg;
	int now = atomic_fetch_add(&c->running, 1) + 1;
	int most = atomic_load(&c->most);
	while (now > most && !atomic_compare_exchange_weak(&c->most, &most, now))
		;
	if (!atomic_exchange(&c->pair_a, 1)) {
		wait_flag_thread(&c->pair_b);
	} else if (!atomic_exchange(&c->pair_b, 1)) {
		/* the second */
	}
	test_sleep_ms(2);
	atomic_fetch_sub(&c->running, 1);
	atomic_fetch_add(&c->done, 1);
	return NULL;
}

Test(blocking, more_jobs_than_threads_queue_and_all_run)
{
	weft_runtime *rt = pool_runtime(2, 2, 0);
	cr_assert_not_null(rt);
	struct crowd c = {0};
	enum { N = 40 };
	weft_task *t[N];
	for (int i = 0; i < N; i++)
		cr_assert_not_null(t[i] = weft_spawn_blocking_on(rt, crowd_job, &c));
	for (int i = 0; i < N; i++)
		cr_assert_eq(weft_join(t[i], NULL), 0);
	cr_assert_eq(atomic_load(&c.done), N);
	cr_assert_eq(atomic_load(&c.most), 2, "%d jobs ran at once with 2 threads",
	             atomic_load(&c.most));
	cr_assert_leq(pool_threads(rt), 2);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ----------------------------------------------------------- keep-alive */

Test(blocking, idle_threads_exit_after_the_keepalive_and_the_pool_restarts)
{
	weft_runtime *rt = pool_runtime(1, 4, 20);
	cr_assert_not_null(rt);
	void *r;
	weft_task *t = weft_spawn_blocking_on(rt, square, (void *)7);
	cr_assert_not_null(t);
	cr_assert_eq(weft_join(t, &r), 0);
	cr_assert_eq((intptr_t)r, 49);
	cr_assert_geq(pool_threads(rt), 1);
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (pool_threads(rt) > 0) {
		cr_assert_lt(test_now_ns(), give_up, "the idle thread never exited");
		test_sleep_ms(5);
	}
	/* Exited threads are joined by the next start. */
	for (int i = 0; i < 3; i++) {
		t = weft_spawn_blocking_on(rt, square, (void *)(intptr_t)i);
		cr_assert_not_null(t, "no job after the pool emptied");
		cr_assert_eq(weft_join(t, &r), 0);
		cr_assert_eq((intptr_t)r, i * i);
	}
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* --------------------------------------------------------- cancellation */

struct gate {
	_Atomic int started, open, cancelled_seen, polled_cancel;
};

static void *wait_at_gate(void *arg)
{
	struct gate *g = arg;
	atomic_store(&g->started, 1);
	wait_flag_thread(&g->open);
	/* Started, then cancelled: it runs on, and may see the request. */
	atomic_store(&g->polled_cancel, weft_is_cancelled());
	return (void *)1;
}

static void *note_cancel(void *arg)
{
	struct gate *g = arg;
	atomic_store(&g->cancelled_seen, weft_is_cancelled() ? 1 : 2);
	return (void *)2;
}

Test(blocking, a_job_cancelled_before_it_starts_runs_with_the_flag_set)
{
	weft_runtime *rt = pool_runtime(2, 1, 0);
	cr_assert_not_null(rt);
	struct gate g = {0};
	weft_task *busy = weft_spawn_blocking_on(rt, wait_at_gate, &g);
	cr_assert_not_null(busy);
	cr_assert(wait_flag_thread(&g.started));
	weft_task *queued = weft_spawn_blocking_on(rt, note_cancel, &g);
	cr_assert_not_null(queued);
	weft_cancel(queued);
	weft_cancel(queued); /* idempotent */
	weft_cancel(busy);   /* started: runs to completion */
	atomic_store(&g.open, 1);
	void *r;
	cr_assert_eq(weft_join(queued, &r), WEFT_CANCELED);
	cr_assert_eq((intptr_t)r, 2);
	cr_assert_eq(atomic_load(&g.cancelled_seen), 1, "the job did not see its cancellation");
	cr_assert_eq(weft_join(busy, &r), WEFT_CANCELED);
	cr_assert_eq((intptr_t)r, 1, "the started job did not run to completion");
	cr_assert(atomic_load(&g.polled_cancel), "a running job could not poll its cancellation");
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(blocking, a_job_not_cancelled_reports_no_cancellation)
{
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	struct gate g = {0};
	weft_task *t = weft_spawn_blocking_on(rt, note_cancel, &g);
	cr_assert_not_null(t);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(atomic_load(&g.cancelled_seen), 2);
	weft_runtime_free(rt);
}

/* ------------------------------------------------ a job spawns into the rt */

static void *add_one(void *arg)
{
	return (void *)((intptr_t)arg + 1);
}

struct inside {
	weft_runtime *expect_rt;
	bool saw_rt, saw_no_task, joined;
};

static void *spawn_back(void *arg)
{
	struct inside *in = arg;
	weft_runtime *rt = weft_runtime_current();
	in->saw_rt = rt == in->expect_rt;
	in->saw_no_task = weft_current() == NULL;
	weft_task *t = weft_spawn_on(rt, add_one, (void *)41);
	void *r = NULL;
	in->joined = t && weft_join(t, &r) == 0 && (intptr_t)r == 42; /* blocks this thread */
	/* A sleep in a job blocks its thread too. */
	return (void *)(intptr_t)weft_sleep_ms(1);
}

static void *job_spawner(void *arg)
{
	weft_task *j = weft_spawn_blocking(spawn_back, arg);
	void *r = (void *)-1;
	if (!j || weft_join(j, &r) != 0)
		return (void *)-2;
	return r;
}

Test(blocking, a_job_spawns_a_task_onto_its_runtime_and_joins_it)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct inside in = {.expect_rt = rt};
	void *r;
	cr_assert_eq(weft_block_on(rt, job_spawner, &in, &r), 0);
	cr_assert_eq((intptr_t)r, 0, "the job's sleep returned %ld", (long)(intptr_t)r);
	cr_assert(in.saw_rt, "weft_runtime_current() is not the runtime inside a job");
	cr_assert(in.saw_no_task, "weft_current() is not NULL inside a job");
	cr_assert(in.joined, "the task spawned from the job did not run or join");
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ----------------------------------------------- a deadline around a join */

static void *long_job(void *arg)
{
	struct gate *g = arg;
	atomic_store(&g->started, 1);
	wait_flag_thread(&g->open);
	return (void *)5;
}

struct scoped {
	struct gate *g;
	int first, second;
	uint64_t waited_ns;
	void *result;
};

static void *join_in_scope(void *arg)
{
	struct scoped *s = arg;
	weft_task *j = weft_spawn_blocking(long_job, s->g);
	if (!j)
		return NULL;
	weft_deadline d;
	uint64_t t0 = weft_now_ns();
	weft_deadline_push(&d, 20);
	s->first = weft_join(j, &s->result);
	s->waited_ns = weft_now_ns() - t0;
	weft_deadline_pop(&d);
	atomic_store(&s->g->open, 1);
	weft_shield_push();
	s->second = weft_join(j, &s->result); /* the handle is still valid */
	weft_shield_pop();
	return NULL;
}

Test(blocking, a_deadline_scope_times_out_the_join_of_a_long_job)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct gate g = {0};
	struct scoped s = {.g = &g};
	cr_assert_eq(weft_block_on(rt, join_in_scope, &s, NULL), 0);
	cr_assert_eq(s.first, -ETIMEDOUT);
	cr_assert_geq(s.waited_ns, 20ull * 1000 * 1000, "the join timed out early");
	cr_assert_lt(s.waited_ns, HANG_NS);
	cr_assert_eq(s.second, 0);
	cr_assert_eq((intptr_t)s.result, 5);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* --------------------------------------------------------- getaddrinfo */

static bool is_loopback(const struct addrinfo *res)
{
	for (const struct addrinfo *a = res; a; a = a->ai_next) {
		if (a->ai_family == AF_INET &&
		    ((const struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr ==
		            htonl(INADDR_LOOPBACK))
			return true;
		if (a->ai_family == AF_INET6 &&
		    IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a->ai_addr)->sin6_addr))
			return true;
	}
	return false;
}

struct lookups {
	int rc_localhost, rc_port, rc_unknown, rc_null, rc_none, rc_cancelled;
	bool loopback, port_ok;
};

static void *resolve_in_task(void *arg)
{
	struct lookups *l = arg;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	l->rc_localhost = weft_getaddrinfo("localhost", NULL, &hints, &res);
	if (l->rc_localhost == 0) {
		l->loopback = is_loopback(res);
		freeaddrinfo(res);
	}
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	l->rc_port = weft_getaddrinfo("127.0.0.1", "8080", &hints, &res);
	if (l->rc_port == 0) {
		l->port_ok = ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port) == 8080;
		freeaddrinfo(res);
	}
	res = NULL;
	l->rc_unknown = weft_getaddrinfo("no-such-host.invalid", NULL, NULL, &res);
	l->rc_null = weft_getaddrinfo("localhost", NULL, NULL, NULL);
	l->rc_none = weft_getaddrinfo(NULL, NULL, NULL, &res);
	weft_cancel(weft_current());
	l->rc_cancelled = weft_getaddrinfo("localhost", NULL, NULL, &res);
	return NULL;
}

Test(blocking, getaddrinfo_runs_on_the_pool)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct lookups l = {0};
	weft_task *t = weft_spawn_on(rt, resolve_in_task, &l);
	cr_assert_not_null(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(l.rc_localhost, 0, "localhost: %s", strerror(-l.rc_localhost));
	cr_assert(l.loopback, "localhost did not resolve to a loopback address");
	cr_assert_eq(l.rc_port, 0);
	cr_assert(l.port_ok);
	cr_assert(l.rc_unknown == -ENOENT || l.rc_unknown == -EAGAIN, "unknown host: %d",
	          l.rc_unknown);
	cr_assert_eq(l.rc_null, -EINVAL);
	cr_assert_eq(l.rc_none, -EINVAL);
	cr_assert_eq(l.rc_cancelled, -ECANCELED);
	/* From a plain thread it is a plain call. */
	struct addrinfo *res = NULL;
	cr_assert_eq(weft_getaddrinfo("localhost", NULL, NULL, &res), 0);
	cr_assert(is_loopback(res));
	freeaddrinfo(res);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* A lookup whose caller's deadline passes while it runs: the caller gets
   -ETIMEDOUT at once and the job frees the result later (LeakSanitizer). */
struct slow_lookup {
	struct gate g;
	int rc;
};

static void *occupy_pool(void *arg)
{
	struct gate *g = arg;
	atomic_store(&g->started, 1);
	wait_flag_thread(&g->open);
	return NULL;
}

static void *lookup_with_deadline(void *arg)
{
	struct slow_lookup *s = arg;
	weft_deadline d;
	struct addrinfo *res = NULL;
	weft_deadline_push(&d, 10);
	s->rc = weft_getaddrinfo("localhost", NULL, NULL, &res); /* queued behind occupy_pool */
	weft_deadline_pop(&d);
	atomic_store(&s->g.open, 1);
	return NULL;
}

Test(blocking, getaddrinfo_whose_caller_left_frees_its_result_on_the_pool)
{
	weft_runtime *rt = pool_runtime(2, 1, 0);
	cr_assert_not_null(rt);
	struct slow_lookup s = {0};
	weft_task *busy = weft_spawn_blocking_on(rt, occupy_pool, &s.g);
	cr_assert_not_null(busy);
	cr_assert(wait_flag_thread(&s.g.started));
	void *r;
	cr_assert_eq(weft_block_on(rt, lookup_with_deadline, &s, &r), 0);
	cr_assert_eq(s.rc, -ETIMEDOUT);
	cr_assert_eq(weft_join(busy, NULL), 0);
	weft_runtime_free(rt); /* the abandoned lookup runs, and frees, before this returns */
	assert_no_leaks();
}

/* ------------------------------------------------------------- shutdown */

struct down {
	struct gate g;
	_Atomic int queued_ran, queued_cancelled;
};

static void *running_at_shutdown(void *arg)
{
	struct down *d = arg;
	atomic_store(&d->g.started, 1);
	wait_flag_thread(&d->g.open);
	return NULL;
}

static void *queued_at_shutdown(void *arg)
{
	struct down *d = arg;
	atomic_fetch_add(&d->queued_ran, 1);
	if (weft_is_cancelled())
		atomic_fetch_add(&d->queued_cancelled, 1);
	return NULL;
}

struct shutter {
	weft_runtime *rt;
	int rc;
	_Atomic int begun;
};

static void *shut_down(void *arg)
{
	struct shutter *s = arg;
	atomic_store(&s->begun, 1);
	s->rc = weft_runtime_shutdown(s->rt, 5000);
	return NULL;
}

Test(blocking, shutdown_runs_queued_jobs_cancelled_and_waits_for_running_ones)
{
	weft_runtime *rt = pool_runtime(2, 1, 0);
	cr_assert_not_null(rt);
	struct down d = {0};
	weft_detach(weft_spawn_blocking_on(rt, running_at_shutdown, &d));
	cr_assert(wait_flag_thread(&d.g.started));
	enum { Q = 5 };
	for (int i = 0; i < Q; i++)
		weft_detach(weft_spawn_blocking_on(rt, queued_at_shutdown, &d));
	struct shutter s = {.rt = rt, .rc = 1};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, shut_down, &s), 0);
	cr_assert(wait_flag_thread(&s.begun));
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (!atomic_load(&rt->closed))
		cr_assert_lt(test_now_ns(), give_up);
	cr_assert_null(weft_spawn_blocking_on(rt, queued_at_shutdown, &d),
	               "a job was accepted after shutdown began");
	test_sleep_ms(20); /* shutdown now waits for the running job */
	cr_assert_eq(atomic_load(&d.queued_ran), 0, "queued jobs ran before the running one ended");
	atomic_store(&d.g.open, 1);
	pthread_join(th, NULL);
	cr_assert_eq(s.rc, 0);
	cr_assert_eq(atomic_load(&d.queued_ran), Q, "queued jobs were dropped at shutdown");
	cr_assert_eq(atomic_load(&d.queued_cancelled), Q,
	             "queued jobs did not see the shutdown's cancellation");
	cr_assert_eq(pool_threads(rt), 0, "pool threads outlived shutdown");
	weft_runtime_free(rt);
	assert_no_leaks();
}

static void *stuck_job(void *arg)
{
	(void)arg;
	test_sleep_ms(3000);
	return NULL;
}

static int shutdown_times_out_on_a_stuck_job(void)
{
	weft_runtime *rt = test_runtime(1);
	if (!rt)
		return 2;
	weft_detach(weft_spawn_blocking_on(rt, stuck_job, NULL));
	test_sleep_ms(20);
	int rc = weft_runtime_shutdown(rt, 100);
	weft_runtime_free(rt);
	return rc == -ETIMEDOUT ? 0 : 3;
}

Test(blocking, shutdown_names_a_job_still_running_after_the_grace_period)
{
	char buf[4096];
	int status = test_run_in_child(shutdown_times_out_on_a_stuck_job, buf, sizeof buf);
	cr_assert(WIFEXITED(status), "child died (status 0x%x): %s", status, buf);
	cr_assert_eq(WEXITSTATUS(status), 0, "shutdown did not time out: %s", buf);
	cr_assert_not_null(strstr(buf, "blocking job"), "the job is not named: %s", buf);
	cr_assert_not_null(strstr(buf, "test_blocking.c"), "no spawn site: %s", buf);
}

/* ------------------------------------------------- bad input, exhaustion */

Test(blocking, bad_arguments_and_no_runtime_give_null)
{
	cr_assert_null(weft_spawn_blocking(square, NULL), "a job without a runtime");
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	cr_assert_null(weft_spawn_blocking_on(rt, NULL, NULL));
	weft_runtime_shutdown(rt, -1);
	cr_assert_null(weft_spawn_blocking_on(rt, square, NULL), "a job after shutdown");
	weft_runtime_free(rt);
}

Test(blocking, a_thread_that_cannot_start_fails_the_spawn_and_loses_nothing)
{
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	weft__fault_arm(WEFT__FAULT_POOL_THREAD, 1);
	cr_assert_null(weft_spawn_blocking_on(rt, square, (void *)3),
	               "a job was accepted with no thread to run it");
	cr_assert_eq(atomic_load(&rt->blocking.alive), 0);
	cr_assert_eq(rt->blocking.queued, 0, "the refused job stayed queued");
	weft_task *t = weft_spawn_blocking_on(rt, square, (void *)3);
	cr_assert_not_null(t, "the pool did not recover");
	void *r;
	cr_assert_eq(weft_join(t, &r), 0);
	cr_assert_eq((intptr_t)r, 9);
	weft_runtime_free(rt);
	assert_no_leaks();
}

static void *returns_in_scope(void *arg)
{
	static weft_deadline d;
	(void)arg;
	weft_deadline_push(&d, 1000);
	return NULL;
}

static int job_returns_in_scope(void)
{
	weft_runtime *rt = test_runtime(1);
	weft_task *t = weft_spawn_blocking_on(rt, returns_in_scope, NULL);
	weft_join(t, NULL);
	return 0;
}

Test(blocking, a_job_returning_with_a_deadline_scope_open_aborts)
{
	char buf[4096];
	int status = test_run_in_child(job_returns_in_scope, buf, sizeof buf);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status 0x%x: %s", status,
	          buf);
	cr_assert_not_null(strstr(buf, "deadline scope"), "%s", buf);
	cr_assert_not_null(strstr(buf, "test_blocking.c"), "%s", buf);
}
