/*
 * The runtime's lifecycle: weft_config_init defaults and WEFT_WORKERS,
 * weft_runtime_new with NULL, bad and zeroed configs, weft_block_on (from a
 * thread and from a task of the same runtime), weft_run, shutdown (cancelling
 * live tasks, refusing spawns, -EDEADLK from inside, the same result twice,
 * -ETIMEDOUT naming a task that ignores cancellation, in a forked child),
 * weft_runtime_free without shutdown, and many runtimes in a row (the ASan
 * build's LeakSanitizer checks that nothing leaks).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

TestSuite(runtime, .timeout = 120);

/* ---------------------------------------------------------------- helpers */

static void *add_one(void *arg)
{
	return (void *)((intptr_t)arg + 1);
}

static unsigned cpus(void)
{
	cpu_set_t set;
	cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
	return (unsigned)CPU_COUNT(&set);
}

/* ----------------------------------------------------------------- config */

Test(runtime, config_init_gives_the_documented_defaults)
{
	unsetenv("WEFT_WORKERS");
	unsetenv("WEFT_IO");
	weft_config cfg;
	memset(&cfg, 0xab, sizeof cfg);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.workers, cpus());
	cr_assert_eq(cfg.stack_size, 64 * 1024);
	cr_assert_eq(cfg.global_queue_interval, 61);
	cr_assert_eq(cfg.shutdown_grace_ms, 5000);
	cr_assert_eq(cfg.max_blocking_threads, 512);
	cr_assert_eq(cfg.blocking_keepalive_ms, 10000);
	cr_assert_eq(cfg.stall_threshold_ms, 100);
	cr_assert_eq(cfg.handoff_ms, 10);
	cr_assert_eq(cfg.io_backend, WEFT_IO_AUTO);
	cr_assert_eq(cfg.spin_us, 50);
	setenv("WEFT_IO", "epoll", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.io_backend, WEFT_IO_EPOLL);
	setenv("WEFT_IO", "uring", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.io_backend, WEFT_IO_URING);
	setenv("WEFT_IO", "bogus", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.io_backend, WEFT_IO_AUTO);
	unsetenv("WEFT_IO");
}

Test(runtime, config_init_honours_weft_workers)
{
	cr_assert_eq(setenv("WEFT_WORKERS", "3", 1), 0);
	weft_config cfg;
	weft_config_init(&cfg);
	cr_assert_eq(cfg.workers, 3);
	weft_runtime *rt = weft_runtime_new(&cfg);
	cr_assert_not_null(rt);
	void *res = NULL;
	cr_assert_eq(weft_block_on(rt, add_one, (void *)1, &res), 0);
	cr_assert_eq((intptr_t)res, 2);
	weft_runtime_free(rt);
	unsetenv("WEFT_WORKERS");
	assert_no_leaks();
}

/* ------------------------------------------------------------- runtime_new */

Test(runtime, runtime_new_with_null_config)
{
	weft_runtime *rt = weft_runtime_new(NULL);
	cr_assert_not_null(rt);
	void *res = NULL;
	cr_assert_eq(weft_block_on(rt, add_one, (void *)41, &res), 0);
	cr_assert_eq((intptr_t)res, 42);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(runtime, runtime_new_rejects_bad_configs)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = WEFT_MAX_WORKERS + 1;
	cr_assert_null(weft_runtime_new(&cfg));

	weft_config_init(&cfg);
	cfg.stack_size = WEFT_MIN_STACK_SIZE - 1;
	cr_assert_null(weft_runtime_new(&cfg));

	weft_config_init(&cfg);
	cfg.stack_size = (size_t)WEFT_MAX_STACK_SIZE + 1;
	cr_assert_null(weft_runtime_new(&cfg));
	assert_no_leaks();
}

#define STACK_USE (48 * 1024)

/* Uses most of the default 64 KiB stack; returns arg + 95. */
static void *use_48k_of_stack(void *arg)
{
	volatile unsigned char buf[STACK_USE];
	for (size_t i = 0; i < sizeof buf; i += 512)
		buf[i] = (unsigned char)(i / 512);
	weft_yield();
	return (void *)((intptr_t)arg + buf[sizeof buf - 512]);
}

Test(runtime, zero_config_fields_mean_defaults)
{
	weft_config cfg;
	memset(&cfg, 0, sizeof cfg);
	weft_runtime *rt = weft_runtime_new(&cfg);
	cr_assert_not_null(rt, "an all-zero config is all defaults");
	weft_task *ts[8];
	for (intptr_t i = 0; i < 8; i++)
		cr_assert_not_null(ts[i] = weft_spawn_on(rt, use_48k_of_stack, (void *)i));
	for (intptr_t i = 0; i < 8; i++) {
		void *res = NULL;
		cr_assert_eq(weft_join(ts[i], &res), 0);
		cr_assert_eq((intptr_t)res, i + STACK_USE / 512 - 1);
	}
	weft_runtime_free(rt);
	void *res = NULL;
	cr_assert_eq(weft_run(add_one, (void *)6, &cfg, &res), 0);
	cr_assert_eq((intptr_t)res, 7);
	assert_no_leaks();
}

/* ---------------------------------------------------------------- block_on */

Test(runtime, block_on_returns_the_result)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	void *res = NULL;
	cr_assert_eq(weft_block_on(rt, add_one, (void *)9, &res), 0);
	cr_assert_eq((intptr_t)res, 10);
	cr_assert_eq(weft_block_on(rt, add_one, (void *)9, NULL), 0);
	weft_runtime_free(rt);
	assert_no_leaks();
}

static void *block_on_inner(void *arg)
{
	(void)arg;
	void *res = NULL;
	int rc = weft_block_on(weft_runtime_current(), add_one, (void *)99, &res);
	return (void *)(intptr_t)(rc == 0 ? (intptr_t)res : rc);
}

/* One worker: block_on from a task must park it, or the inner task could
   never run. */
Test(runtime, block_on_from_a_task_of_the_same_runtime)
{
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	void *res = NULL;
	cr_assert_eq(weft_block_on(rt, block_on_inner, NULL, &res), 0);
	cr_assert_eq((intptr_t)res, 100);
	weft_runtime_free(rt);
	assert_no_leaks();
}

static void *cancel_self(void *arg)
{
	weft_cancel(weft_current());
	return arg;
}

Test(runtime, block_on_reports_a_cancelled_task)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	void *res = NULL;
	cr_assert_eq(weft_block_on(rt, cancel_self, (void *)5, &res), WEFT_CANCELED);
	cr_assert_eq((intptr_t)res, 5);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(runtime, block_on_bad_arguments_and_after_shutdown)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	cr_assert_eq(weft_block_on(NULL, add_one, NULL, NULL), -EINVAL);
	cr_assert_eq(weft_block_on(rt, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(weft_runtime_shutdown(rt, -1), 0);
	cr_assert_eq(weft_block_on(rt, add_one, NULL, NULL), -ESHUTDOWN);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* -------------------------------------------------------------------- run */

Test(runtime, run_returns_the_main_result)
{
	void *res = NULL;
	cr_assert_eq(weft_run(add_one, (void *)1, NULL, &res), 0);
	cr_assert_eq((intptr_t)res, 2);
	cr_assert_eq(weft_run(NULL, NULL, NULL, &res), -EINVAL);
	weft_config bad;
	weft_config_init(&bad);
	bad.workers = WEFT_MAX_WORKERS + 1;
	cr_assert_eq(weft_run(add_one, NULL, &bad, &res), -EINVAL);
	assert_no_leaks();
}

/* --------------------------------------------------------------- shutdown */

/* What a task left running at shutdown saw. */
struct victim {
	weft_oneshot *o;
	weft_task *target;
	_Atomic int started, finished;
	int rc;
};

static void *victim_recv(void *arg)
{
	struct victim *v = arg;
	long x;
	atomic_store(&v->started, 1);
	v->rc = weft_oneshot_recv(v->o, &x);
	if (v->rc == -ECANCELED)
		weft_oneshot_drop_receiver(v->o);
	atomic_store(&v->finished, 1);
	return NULL;
}

static void *victim_join(void *arg)
{
	struct victim *v = arg;
	atomic_store(&v->started, 1);
	v->rc = weft_join(v->target, NULL);
	if (v->rc < 0)
		weft_detach(v->target);
	atomic_store(&v->finished, 1);
	return NULL;
}

static void *victim_yield(void *arg)
{
	struct victim *v = arg;
	atomic_store(&v->started, 1);
	while ((v->rc = weft_yield()) == 0)
		;
	atomic_store(&v->finished, 1);
	return NULL;
}

/* Parked on nothing but its timer: shutdown finds it through the wheel. */
static void *victim_sleep(void *arg)
{
	struct victim *v = arg;
	atomic_store(&v->started, 1);
	v->rc = weft_sleep_ms(60 * 1000);
	atomic_store(&v->finished, 1);
	return NULL;
}

enum { V_RECV, V_JOIN, V_JOINED, V_YIELD, V_SLEEP, NVICTIMS };

/* Spawns one detached task parked in each kind of wait, and waits until all
   have started. */
static void spawn_victims(weft_runtime *rt, struct victim *v)
{
	memset(v, 0, NVICTIMS * sizeof *v);
	for (int i = 0; i < NVICTIMS; i++)
		v[i].rc = 1;
	v[V_RECV].o = weft_oneshot_new(sizeof(long));
	v[V_JOINED].o = weft_oneshot_new(sizeof(long));
	cr_assert(v[V_RECV].o && v[V_JOINED].o);
	v[V_JOIN].target = weft_spawn_on(rt, victim_recv, &v[V_JOINED]);
	cr_assert_not_null(v[V_JOIN].target);
	weft_detach(weft_spawn_on(rt, victim_recv, &v[V_RECV]));
	weft_detach(weft_spawn_on(rt, victim_join, &v[V_JOIN]));
	weft_detach(weft_spawn_on(rt, victim_yield, &v[V_YIELD]));
	weft_detach(weft_spawn_on(rt, victim_sleep, &v[V_SLEEP]));
	for (int i = 0; i < NVICTIMS; i++)
		test_wait_flag(&v[i].started);
	test_sleep_ms(20); /* let them reach their waits; correct either way */
}

/* Every victim finished, its wait cancelled; the senders are released. */
static void check_victims(struct victim *v)
{
	for (int i = 0; i < NVICTIMS; i++)
		cr_assert(atomic_load(&v[i].finished), "task %d did not finish", i);
	cr_assert_eq(v[V_RECV].rc, -ECANCELED);
	cr_assert_eq(v[V_JOINED].rc, -ECANCELED);
	cr_assert_eq(v[V_YIELD].rc, -ECANCELED);
	cr_assert_eq(v[V_SLEEP].rc, -ECANCELED);
	/* The joined task may finish before the joiner's wait notices its own
	   cancellation: then the join took effect and reports WEFT_CANCELED. */
	cr_assert(v[V_JOIN].rc == -ECANCELED || v[V_JOIN].rc == WEFT_CANCELED, "join: %d",
	          v[V_JOIN].rc);
	weft_oneshot_drop_sender(v[V_RECV].o);
	weft_oneshot_drop_sender(v[V_JOINED].o);
}

Test(runtime, shutdown_cancels_live_tasks)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct victim v[NVICTIMS];
	spawn_victims(rt, v);
	cr_assert_eq(weft_runtime_shutdown(rt, -1), 0);
	check_victims(v);
	cr_assert_null(weft_spawn_on(rt, add_one, NULL), "spawn after shutdown");
	cr_assert_eq(weft_runtime_shutdown(rt, -1), 0, "a second shutdown gives the same result");
	weft_runtime_free(rt);
	cr_assert_eq(weft_runtime_shutdown(NULL, -1), -EINVAL);
	assert_no_leaks();
}

Test(runtime, free_without_shutdown_shuts_down_first)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct victim v[NVICTIMS];
	spawn_victims(rt, v);
	weft_runtime_free(rt);
	check_victims(v);
	assert_no_leaks();
}

static void *shutdown_own_runtime(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)weft_runtime_shutdown(weft_runtime_current(), 0);
}

Test(runtime, shutdown_from_inside_a_task_is_edeadlk)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	void *res = NULL;
	cr_assert_eq(weft_block_on(rt, shutdown_own_runtime, NULL, &res), 0);
	cr_assert_eq((intptr_t)res, -EDEADLK);
	cr_assert_eq(weft_block_on(rt, add_one, (void *)1, &res), 0, "still running");
	cr_assert_eq((intptr_t)res, 2);
	weft_runtime_free(rt);
	assert_no_leaks();
}

static _Atomic int stubborn_started;

static void *yield_in_shield_forever(void *arg)
{
	(void)arg;
	weft_shield_push();
	atomic_store(&stubborn_started, 1);
	for (;;)
		weft_yield();
	return NULL;
}

static void *spin_forever(void *arg)
{
	(void)arg;
	atomic_store(&stubborn_started, 1);
	for (;;)
		__asm__ volatile("" ::: "memory");
	return NULL;
}

/* In the child: a task named "stubborn" that never finishes; two shutdowns
   with a 200 ms grace must both time out. The runtime is leaked on purpose. */
static int shutdown_times_out(weft_fn fn)
{
	weft_runtime *rt = test_runtime(2);
	if (!rt)
		return 2;
	weft_spawn_opts opts = {.name = "stubborn"};
	weft_task *t = weft_spawn_ex(rt, fn, NULL, &opts);
	if (!t)
		return 3;
	weft_detach(t);
	test_wait_flag(&stubborn_started);
	int rc = weft_runtime_shutdown(rt, 200);
	int again = weft_runtime_shutdown(rt, 200);
	weft_runtime_free(rt);
	return rc == -ETIMEDOUT && again == -ETIMEDOUT ? 0 : 4;
}

static int shutdown_times_out_shielded(void)
{
	return shutdown_times_out(yield_in_shield_forever);
}

static int shutdown_times_out_spinning(void)
{
	return shutdown_times_out(spin_forever);
}

/* Checks that the child saw both shutdowns time out and named on stderr
   each task in needles (NULL-terminated) and the spawn site. */
static void check_timeout_child(int (*fn)(void), const char *const *needles)
{
	char buf[8192];
	int status = test_run_in_child(fn, buf, sizeof buf);
	cr_assert(WIFEXITED(status), "child died (status 0x%x); stderr: %s", status, buf);
	cr_assert_eq(WEXITSTATUS(status), 0, "shutdown did not return -ETIMEDOUT twice; stderr: %s",
	             buf);
	for (const char *const *n = needles; *n; n++)
		cr_assert_not_null(strstr(buf, *n), "task '%s' is not named: %s", *n, buf);
	cr_assert_not_null(strstr(buf, "test_runtime.c"), "the spawn site is missing: %s", buf);
}

static const char *const stubborn[] = {"stubborn", NULL};

Test(runtime, shutdown_timeout_names_a_task_yielding_in_a_shield)
{
	check_timeout_child(shutdown_times_out_shielded, stubborn);
}

Test(runtime, shutdown_timeout_names_a_spinning_task)
{
	check_timeout_child(shutdown_times_out_spinning, stubborn);
}

static void *park_in_shield_forever(void *arg)
{
	weft_shield_push();
	long v;
	weft_oneshot_recv(arg, &v); /* nobody sends */
	weft_shield_pop();
	return NULL;
}

static void *sleep_in_shield_forever(void *arg)
{
	(void)arg;
	weft_shield_push();
	weft_sleep_ms(60 * 1000); /* a sleep is found through its timer, not the registry */
	weft_shield_pop();
	return NULL;
}

/* On one worker: two tasks yielding in shields (one running, one queued at
   any moment), one parked in a shield and one sleeping in a shield; all
   four must be named. */
static int shutdown_times_out_three(void)
{
	weft_runtime *rt = test_runtime(1);
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	if (!rt || !o)
		return 2;
	static const weft_spawn_opts opts[] = {{.name = "yielder-one"},
	                                       {.name = "yielder-two"},
	                                       {.name = "parker"},
	                                       {.name = "sleeper"}};
	static const weft_fn fns[] = {yield_in_shield_forever, yield_in_shield_forever,
	                              park_in_shield_forever, sleep_in_shield_forever};
	for (int i = 0; i < 4; i++) {
		weft_task *t = weft_spawn_ex(rt, fns[i], o, &opts[i]);
		if (!t)
			return 3;
		weft_detach(t);
	}
	test_wait_flag(&stubborn_started);
	test_sleep_ms(20);
	int rc = weft_runtime_shutdown(rt, 200);
	int again = weft_runtime_shutdown(rt, 200);
	weft_runtime_free(rt);
	return rc == -ETIMEDOUT && again == -ETIMEDOUT ? 0 : 4;
}

Test(runtime, shutdown_timeout_names_every_stuck_task)
{
	static const char *const names[] = {"yielder-one", "yielder-two", "parker", "sleeper",
	                                    NULL};
	check_timeout_child(shutdown_times_out_three, names);
}

/* Tasks still queued when shutdown begins run (their argument may own what
   only they can release) and see -ECANCELED at their first wait. */
struct queued {
	weft_oneshot *o;
	bool ran, cancelled_seen;
	int rc;
};

static void *queued_task(void *arg)
{
	struct queued *q = arg;
	long v;
	q->ran = true;
	q->cancelled_seen = weft_is_cancelled();
	q->rc = weft_oneshot_recv(q->o, &v);
	weft_oneshot_drop_receiver(q->o);
	return NULL;
}

static _Atomic int blocker_started;

/* Holds the only worker, without waiting, until cancellation is requested. */
static void *hold_the_worker(void *arg)
{
	(void)arg;
	atomic_store(&blocker_started, 1);
	while (!weft_is_cancelled())
		__asm__ volatile("" ::: "memory");
	return NULL;
}

#define QUEUED 100

Test(runtime, shutdown_runs_and_cancels_tasks_not_yet_started)
{
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	weft_detach(weft_spawn_on(rt, hold_the_worker, NULL));
	test_wait_flag(&blocker_started);
	static struct queued q[QUEUED];
	for (int i = 0; i < QUEUED; i++) {
		q[i] = (struct queued){.o = weft_oneshot_new(sizeof(long)), .rc = 1};
		cr_assert_not_null(q[i].o);
		weft_task *t = weft_spawn_on(rt, queued_task, &q[i]);
		cr_assert_not_null(t);
		weft_detach(t);
	}
	cr_assert_eq(weft_runtime_shutdown(rt, -1), 0);
	for (int i = 0; i < QUEUED; i++) {
		cr_assert(q[i].ran, "task %d never ran", i);
		cr_assert(q[i].cancelled_seen, "task %d", i);
		cr_assert_eq(q[i].rc, -ECANCELED, "task %d", i);
		weft_oneshot_drop_sender(q[i].o);
	}
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ---------------------------------------------------------- many runtimes */

static void *fan_out(void *arg)
{
	intptr_t n = (intptr_t)arg, sum = 0;
	weft_task *ts[16];
	for (intptr_t i = 0; i < n; i++)
		ts[i] = weft_spawn(add_one, (void *)i);
	for (intptr_t i = 0; i < n; i++) {
		void *r = NULL;
		if (!ts[i] || weft_join(ts[i], &r) != 0)
			return (void *)-1;
		sum += (intptr_t)r;
	}
	return (void *)sum;
}

Test(runtime, many_runtimes_created_and_freed)
{
	for (unsigned i = 0; i < 50; i++) {
		weft_runtime *rt = test_runtime(1 + i % 4);
		cr_assert_not_null(rt, "runtime %u", i);
		void *res = NULL;
		cr_assert_eq(weft_block_on(rt, fan_out, (void *)16, &res), 0);
		cr_assert_eq((intptr_t)res, 16 * 17 / 2);
		if (i % 2)
			cr_assert_eq(weft_runtime_shutdown(rt, -1), 0);
		weft_runtime_free(rt);
	}
	assert_no_leaks();
}
