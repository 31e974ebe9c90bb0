/*
 * Allocation failure, injected (runtime/fault.h): every allocation site must
 * fail cleanly and leave the runtime fully usable.
 *
 *  - WEFT__FAULT_TASK_ALLOC: spawn (from a plain thread and from a task, with
 *    and without the worker's task cache) returns NULL, block_on -ENOMEM;
 *    afterwards many tasks spawn and join normally.
 *  - WEFT__FAULT_STACK_ALLOC: the first stack mapping for a task's first run
 *    fails; the worker retries and the task still runs and joins with 0.
 *  - WEFT__FAULT_ONESHOT_ALLOC: weft_oneshot_new returns NULL, then works.
 *  - WEFT__FAULT_MONITOR: the stall monitor cannot start: weft_runtime_new
 *    returns NULL with its workers stopped and nothing leaked; then works.
 *
 * Each test checks that the armed fault was really consumed, so a test cannot
 * pass without going through the failure path.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>

#include <weft.h>

#include "runtime/fault.h"
#include "tests/common.h"

static int countdown(enum weft__fault_site site)
{
	return atomic_load(&weft__fault_countdown[site]);
}

static void *add_one(void *arg)
{
	return (void *)((uintptr_t)arg + 1);
}

/* Spawns and joins n tasks (some nested) on rt and checks their results. */
static void *nested(void *arg)
{
	weft_task *t = weft_spawn(add_one, arg);
	if (!t)
		return NULL;
	void *res = NULL;
	return weft_join(t, &res) == 0 ? res : NULL;
}

static void check_usable(weft_runtime *rt, unsigned n)
{
	weft_task **ts = calloc(n, sizeof *ts);
	cr_assert_not_null(ts);
	for (unsigned i = 0; i < n; i++) {
		ts[i] = weft_spawn_on(rt, i % 2 ? add_one : nested, (void *)(uintptr_t)i);
		cr_assert_not_null(ts[i], "spawn %u failed after the injected fault", i);
	}
	for (unsigned i = 0; i < n; i++) {
		void *res = NULL;
		cr_assert_eq(weft_join(ts[i], &res), 0);
		cr_assert_eq((uintptr_t)res, i + 1, "task %u returned %lu", i,
		             (unsigned long)(uintptr_t)res);
	}
	free(ts);
}

static void finish(weft_runtime *rt)
{
	for (int s = 0; s < WEFT__FAULT_SITES; s++)
		weft__fault_arm(s, 0);
	cr_assert_eq(weft_runtime_shutdown(rt, -1), 0);
	weft_runtime_free(rt);
}

/* ------------------------------------------------------------ task alloc */

Test(fault, task_alloc_from_a_plain_thread, .timeout = 300)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);

	weft__fault_arm(WEFT__FAULT_TASK_ALLOC, 1);
	cr_assert_null(weft_spawn_on(rt, add_one, NULL), "spawn succeeded with a failing alloc");
	cr_assert_eq(countdown(WEFT__FAULT_TASK_ALLOC), 0);

	weft_spawn_opts opts = {.name = "faulty", .stack_size = 128 * 1024};
	weft__fault_arm(WEFT__FAULT_TASK_ALLOC, 1);
	cr_assert_null(weft_spawn_ex(rt, add_one, NULL, &opts));
	cr_assert_eq(countdown(WEFT__FAULT_TASK_ALLOC), 0);

	/* The n-th allocation fails, not the ones before it. */
	weft__fault_arm(WEFT__FAULT_TASK_ALLOC, 3);
	weft_task *a = weft_spawn_on(rt, add_one, (void *)1);
	weft_task *b = weft_spawn_on(rt, add_one, (void *)2);
	weft_task *c = weft_spawn_on(rt, add_one, (void *)3);
	weft_task *d = weft_spawn_on(rt, add_one, (void *)4);
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_null(c, "the third spawn should have failed");
	cr_assert_not_null(d);
	void *res;
	cr_assert_eq(weft_join(a, &res), 0);
	cr_assert_eq(res, (void *)2);
	cr_assert_eq(weft_join(b, &res), 0);
	cr_assert_eq(res, (void *)3);
	cr_assert_eq(weft_join(d, &res), 0);
	cr_assert_eq(res, (void *)5);

	check_usable(rt, 2000);
	finish(rt);
}

static void *spawn_with_fault(void *arg)
{
	(void)arg;
	/* Warm the worker's task cache first, so that both the cached and the
	   malloc path are behind the fault check. */
	for (int round = 0; round < 2; round++) {
		weft__fault_arm(WEFT__FAULT_TASK_ALLOC, 1);
		if (weft_spawn(add_one, NULL) != NULL)
			return (void *)1;
		if (countdown(WEFT__FAULT_TASK_ALLOC) != 0)
			return (void *)2;
		weft_task *ts[8];
		for (int i = 0; i < 8; i++)
			if (!(ts[i] = weft_spawn(add_one, (void *)(uintptr_t)i)))
				return (void *)3;
		for (int i = 0; i < 8; i++) {
			void *res = NULL;
			if (weft_join(ts[i], &res) != 0 || res != (void *)(uintptr_t)(i + 1))
				return (void *)4;
		}
	}
	return NULL;
}

Test(fault, task_alloc_from_a_task, .timeout = 300)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	void *res = (void *)-1;
	cr_assert_eq(weft_block_on(rt, spawn_with_fault, NULL, &res), 0);
	cr_assert_null(res,
	               "failed at step %lu (1: spawn succeeded, 2: fault not consumed, "
	               "3: later spawn failed, 4: later join failed)",
	               (unsigned long)(uintptr_t)res);
	check_usable(rt, 2000);
	finish(rt);
}

Test(fault, block_on_reports_enomem, .timeout = 300)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	weft__fault_arm(WEFT__FAULT_TASK_ALLOC, 1);
	void *res = (void *)-1;
	cr_assert_eq(weft_block_on(rt, add_one, NULL, &res), -ENOMEM);
	cr_assert_eq(res, (void *)-1, "block_on wrote a result for a task that never was");
	cr_assert_eq(countdown(WEFT__FAULT_TASK_ALLOC), 0);
	cr_assert_eq(weft_block_on(rt, add_one, (void *)41, &res), 0);
	cr_assert_eq(res, (void *)42);
	check_usable(rt, 500);
	finish(rt);
}

/* ----------------------------------------------------------- stack alloc */

static void *touch_stack(void *arg)
{
	/* Use a good part of the stack, so that a wrong mapping would show. */
	volatile char buf[96 * 1024];
	buf[0] = 1;
	buf[sizeof buf - 1] = 2;
	return (void *)((uintptr_t)arg + (uintptr_t)buf[0] + (uintptr_t)buf[sizeof buf - 1]);
}

static _Atomic int waiting;

static void *big_waiter(void *arg)
{
	atomic_fetch_add(&waiting, 1);
	uint64_t v = 0;
	if (weft_oneshot_recv(arg, &v) != 0)
		return NULL;
	return touch_stack((void *)(uintptr_t)v);
}

Test(fault, stack_alloc_fails_then_the_task_runs, .timeout = 300)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	/* Not the runtime's default size: the pool cannot serve it, and it
	   cannot start on a default stack either, so a mapping is needed. */
	weft_spawn_opts opts = {.name = "big", .stack_size = 256 * 1024};
	weft__fault_arm(WEFT__FAULT_STACK_ALLOC, 1);
	weft_task *t = weft_spawn_ex(rt, touch_stack, (void *)10, &opts);
	cr_assert_not_null(t, "spawn must not map the stack");
	void *res = NULL;
	cr_assert_eq(weft_join(t, &res), 0);
	cr_assert_eq(res, (void *)13);
	cr_assert_eq(countdown(WEFT__FAULT_STACK_ALLOC), 0,
	             "the fault was not consumed: no stack was mapped for the task");

	/* Fails the second of several mappings: big tasks that are all alive
	   at once (each waits on a oneshot) need one stack each. */
	weft__fault_arm(WEFT__FAULT_STACK_ALLOC, 2);
	enum { N = 6 };
	weft_oneshot *os[N];
	weft_task *ts[N];
	for (int i = 0; i < N; i++) {
		os[i] = weft_oneshot_new(sizeof(uint64_t));
		cr_assert_not_null(os[i]);
		ts[i] = weft_spawn_ex(rt, big_waiter, os[i], &opts);
		cr_assert_not_null(ts[i]);
	}
	uint64_t deadline = test_now_ns() + 120ull * 1000 * 1000 * 1000;
	while (atomic_load(&waiting) < N) {
		cr_assert_lt(test_now_ns(), deadline, "only %d of %d big tasks started",
		             atomic_load(&waiting), N);
		test_sleep_ms(1);
	}
	cr_assert_eq(countdown(WEFT__FAULT_STACK_ALLOC), 0);
	for (int i = 0; i < N; i++) {
		uint64_t v = (uint64_t)i;
		cr_assert_eq(weft_oneshot_send(os[i], &v), 0);
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(weft_join(ts[i], &res), 0);
		cr_assert_eq(res, (void *)(uintptr_t)(i + 3));
	}
	check_usable(rt, 2000);
	finish(rt);
}

static void *small(void *arg)
{
	return (void *)((uintptr_t)arg * 2);
}

Test(fault, stack_alloc_fails_for_the_first_task_of_a_runtime, .timeout = 300)
{
	/* A fresh runtime has no pooled stack: even a default-size task needs a
	   mapping on its first run. */
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	weft__fault_arm(WEFT__FAULT_STACK_ALLOC, 1);
	void *res = NULL;
	cr_assert_eq(weft_block_on(rt, small, (void *)21, &res), 0);
	cr_assert_eq(res, (void *)42);
	cr_assert_eq(countdown(WEFT__FAULT_STACK_ALLOC), 0);
	check_usable(rt, 1000);
	finish(rt);
}

/* --------------------------------------------------------- oneshot alloc */

static void *oneshot_in_task(void *arg)
{
	(void)arg;
	weft__fault_arm(WEFT__FAULT_ONESHOT_ALLOC, 1);
	if (weft_oneshot_new(8) != NULL)
		return (void *)1;
	weft_oneshot *o = weft_oneshot_new(sizeof(int));
	if (!o)
		return (void *)2;
	int v = 5, w = 0;
	if (weft_oneshot_send(o, &v) != 0 || weft_oneshot_recv(o, &w) != 0 || w != 5)
		return (void *)3;
	return NULL;
}

Test(fault, oneshot_alloc, .timeout = 300)
{
	weft__fault_arm(WEFT__FAULT_ONESHOT_ALLOC, 1);
	cr_assert_null(weft_oneshot_new(sizeof(int)));
	cr_assert_eq(countdown(WEFT__FAULT_ONESHOT_ALLOC), 0);

	/* Works again, end to end, from a plain thread. */
	weft_oneshot *o = weft_oneshot_new(sizeof(int));
	cr_assert_not_null(o);
	int v = 7, w = 0;
	cr_assert_eq(weft_oneshot_send(o, &v), 0);
	cr_assert_eq(weft_oneshot_recv(o, &w), 0);
	cr_assert_eq(w, 7);

	/* The n-th. */
	weft__fault_arm(WEFT__FAULT_ONESHOT_ALLOC, 3);
	weft_oneshot *a = weft_oneshot_new(4), *b = weft_oneshot_new(4), *c = weft_oneshot_new(4),
	             *d = weft_oneshot_new(4);
	cr_assert(a && b && d);
	cr_assert_null(c);
	weft_oneshot_drop_sender(a);
	weft_oneshot_drop_receiver(a);
	weft_oneshot_drop_receiver(b);
	weft_oneshot_drop_sender(b);
	weft_oneshot_drop_sender(d);
	weft_oneshot_drop_receiver(d);

	/* And from a task. */
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	void *res = (void *)-1;
	cr_assert_eq(weft_block_on(rt, oneshot_in_task, NULL, &res), 0);
	cr_assert_null(res, "failed at step %lu", (unsigned long)(uintptr_t)res);
	cr_assert_eq(countdown(WEFT__FAULT_ONESHOT_ALLOC), 0);
	finish(rt);
}

Test(fault, monitor_start_fails_cleanly, .timeout = 300)
{
	weft__fault_arm(WEFT__FAULT_MONITOR, 1);
	cr_assert_null(test_runtime(2), "a runtime without its monitor was returned");
	cr_assert_eq(countdown(WEFT__FAULT_MONITOR), 0);
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	void *res = NULL;
	cr_assert_eq(weft_block_on(rt, add_one, (void *)41, &res), 0);
	cr_assert_eq((intptr_t)res, 42);
	finish(rt);
}

Test(fault, disarm, .timeout = 300)
{
	/* Arming with 0 disarms: nothing fails afterwards. */
	weft__fault_arm(WEFT__FAULT_ONESHOT_ALLOC, 2);
	weft__fault_arm(WEFT__FAULT_ONESHOT_ALLOC, 0);
	for (int i = 0; i < 4; i++) {
		weft_oneshot *o = weft_oneshot_new(4);
		cr_assert_not_null(o, "allocation %d failed after disarming", i);
		weft_oneshot_drop_sender(o);
		weft_oneshot_drop_receiver(o);
	}
}
