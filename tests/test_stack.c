/*
 * Task stacks (runtime/stack.c, runtime/overflow.c): guards, scale, pooling.
 *
 *  - A task that overflows its stack must hit the guard and die with a
 *    message naming the task and its spawn site, not corrupt memory or die
 *    of a bare SIGSEGV: checked in a forked child whose stderr we read.
 *  - 100,000 tasks parked at once must fit (one VMA per stack with
 *    MADV_GUARD_INSTALL, under the default vm.max_map_count of 65530).
 *  - Which guard mode is in use is logged (the death test checks that the
 *    guard works whichever it is).
 *  - A finished task's stack is reused by the next task on that worker.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <weft.h>

#include "runtime/stack.h"
#include "runtime/task.h"
#include "tests/common.h"

#define HANG_GUARD_NS (120ull * 1000 * 1000 * 1000)

/* ------------------------------------------------------- overflow death */

#define OVERFLOW_TASK_NAME "unbounded-recursion"

static volatile unsigned long depth_limit; /* 0: recurse until the guard */

static __attribute__((noinline)) unsigned long recurse(unsigned long depth)
{
	volatile char frame[512];
	frame[0] = (char)depth;
	frame[sizeof frame - 1] = (char)(depth >> 8);
	if (depth_limit && depth >= depth_limit)
		return frame[0];
	return recurse(depth + 1) + (unsigned char)frame[sizeof frame - 1];
}

static void *overflow_task(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)recurse(0);
}

/* Child: runs the overflowing task; it must never get past the join. It
   first tells the parent the line of the spawn (the report must name it). */
static int overflow_child(void)
{
	alarm(60); /* hang guard: SIGALRM fails the test */
	weft_runtime *rt = test_runtime(1);
	if (!rt)
		return 10;
	weft_spawn_opts opts = {.name = OVERFLOW_TASK_NAME};
	int line = __LINE__ + 2; /* keep next to the spawn */
	dprintf(STDERR_FILENO, "spawn line: %d\n", line);
	weft_task *t = weft_spawn_ex(rt, overflow_task, NULL, &opts);
	if (!t)
		return 11;
	weft_join(t, NULL);
	return 12; /* the overflow went unnoticed */
}

Test(stack, overflow_is_caught_and_names_the_task, .timeout = 300)
{
	char buf[8192];
	int status = test_run_in_child(overflow_child, buf, sizeof buf);
	cr_assert_neq(status, -1, "cannot run the child");
	cr_log_info("child's stderr: %s", buf);

	cr_assert(!WIFEXITED(status),
	          "the child exited with %d: the overflow went unnoticed "
	          "(10/11: setup failed, 12: join returned); stderr: %s",
	          WEXITSTATUS(status), buf);
	cr_assert(WIFSIGNALED(status));
	cr_assert_eq(WTERMSIG(status), SIGABRT,
	             "the child died of signal %d (%s), not SIGABRT; "
	             "stderr: %s",
	             WTERMSIG(status), strsignal(WTERMSIG(status)), buf);
	cr_assert_not_null(strstr(buf, "stack overflow in task"), "no overflow report: %s", buf);
	cr_assert_not_null(strstr(buf, "'" OVERFLOW_TASK_NAME "'"), "the task is not named: %s",
	                   buf);
	int spawn_line = 0;
	const char *l = strstr(buf, "spawn line: ");
	cr_assert(l && sscanf(l, "spawn line: %d", &spawn_line) == 1);
	char site[64];
	snprintf(site, sizeof site, "test_stack.c:%d", spawn_line);
	cr_assert_not_null(strstr(buf, site), "the spawn site %s is not named: %s", site, buf);
}

Test(stack, bounded_recursion_fits, .timeout = 300)
{
	/* The same recursion, bounded well inside the default 64 KiB stack,
	   completes: the death above is the guard, not the code. */
	depth_limit = 40; /* about 20 KiB of frames */
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	weft_task *t = weft_spawn_on(rt, overflow_task, NULL);
	cr_assert_not_null(t);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(weft_runtime_shutdown(rt, -1), 0);
	weft_runtime_free(rt);
	depth_limit = 0;
}

/* ---------------------------------------------------- many parked tasks */

static _Atomic long parked_started;

static void *park_fn(void *arg)
{
	weft_oneshot *o = arg;
	atomic_fetch_add(&parked_started, 1);
	uint64_t v = 0;
	int rc = weft_oneshot_recv(o, &v);
	return rc == 0 ? (void *)(uintptr_t)v : (void *)(intptr_t)rc;
}

Test(stack, hundred_thousand_parked_tasks, .timeout = 300)
{
	const long n = test_scale(100000);
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	weft_oneshot **os = calloc((size_t)n, sizeof *os);
	weft_task **ts = calloc((size_t)n, sizeof *ts);
	cr_assert(os && ts);
	for (long i = 0; i < n; i++) {
		os[i] = weft_oneshot_new(sizeof(uint64_t));
		cr_assert_not_null(os[i]);
		ts[i] = weft_spawn_on(rt, park_fn, os[i]);
		cr_assert_not_null(ts[i], "spawn %ld of %ld failed", i, n);
	}

	/* Wait until every task has really parked: run, and committed its
	   park (SCHEDULED cleared). None can finish before we send. */
	uint64_t deadline = test_now_ns() + HANG_GUARD_NS;
	long parked = 0;
	while (parked < n) {
		parked = 0;
		for (long i = 0; i < n; i++)
			parked += !(weft__task_state(ts[i]) & WEFT__T_SCHEDULED);
		if (parked == n)
			break;
		cr_assert_lt(test_now_ns(), deadline,
		             "only %ld of %ld tasks parked (%ld started) after 120 s", parked, n,
		             atomic_load(&parked_started));
		test_sleep_ms(10);
	}
	cr_assert_eq(atomic_load(&parked_started), n);
	for (long i = 0; i < n; i++)
		cr_assert(!(weft__task_state(ts[i]) & WEFT__T_COMPLETE), "task %ld finished early",
		          i);
	cr_log_info("%ld tasks parked at once (guards by %s)", n,
	            weft__stack_guard_is_madvise() ? "MADV_GUARD_INSTALL" : "mprotect");

	for (long i = 0; i < n; i++) {
		uint64_t v = (uint64_t)i;
		cr_assert_eq(weft_oneshot_send(os[i], &v), 0);
	}
	for (long i = 0; i < n; i++) {
		void *res = NULL;
		cr_assert_eq(weft_join(ts[i], &res), 0, "join of task %ld", i);
		cr_assert_eq((uintptr_t)res, (uintptr_t)i, "task %ld received %ld", i,
		             (long)(intptr_t)res);
	}
	cr_assert_eq(weft_runtime_shutdown(rt, -1), 0);
	weft_runtime_free(rt);
	free(os);
	free(ts);
}

/* ------------------------------------------------------ guard mode probe */

static void *noop(void *arg)
{
	return arg;
}

static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;
	if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

Test(stack, guard_mode_is_logged, .timeout = 300)
{
	/* Informative: the mode is probed on the first stack mapping. The
	   death test checks that the guard works in either mode. */
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	weft_task *t = weft_spawn_on(rt, noop, (void *)7);
	cr_assert_not_null(t);
	void *res = NULL;
	cr_assert_eq(weft_join(t, &res), 0);
	cr_assert_eq(res, (void *)7);
	bool madv = weft__stack_guard_is_madvise();
	struct utsname u;
	uname(&u);
	cr_log_info("stack guards: %s (kernel %s)",
	            madv ? "MADV_GUARD_INSTALL, inside the stack's mapping"
	                 : "mprotect()ed guard page, a second VMA per stack",
	            u.release);
	if (!madv && kernel_at_least(6, 13))
		cr_log_warn("kernel %s should support MADV_GUARD_INSTALL, but the mprotect "
		            "fallback is in use",
		            u.release);
	cr_assert_eq(weft_runtime_shutdown(rt, -1), 0);
	weft_runtime_free(rt);
}

/* ------------------------------------------------------------- pooling */

struct where {
	uintptr_t local;
	weft_oneshot *wait; /* if set, park on it first */
	_Atomic int running;
};

static void *where_fn(void *arg)
{
	struct where *w = arg;
	volatile char local = 0;
	w->local = (uintptr_t)&local;
	atomic_store(&w->running, 1);
	if (w->wait) {
		uint64_t v;
		weft_oneshot_recv(w->wait, &v);
	}
	return (void *)(uintptr_t)local;
}

static uintptr_t run_where(weft_runtime *rt, struct where *w)
{
	weft_task *t = weft_spawn_on(rt, where_fn, w);
	cr_assert_not_null(t);
	cr_assert_eq(weft_join(t, NULL), 0);
	return w->local;
}

Test(stack, finished_tasks_stack_is_reused, .timeout = 300)
{
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	struct where first = {0};
	uintptr_t a = run_where(rt, &first);
	cr_assert_neq(a, 0);
	/* One after another, none parking: all on the same stack. */
	for (int i = 0; i < 20; i++) {
		struct where w = {0};
		uintptr_t b = run_where(rt, &w);
		cr_assert_eq(b, a, "task %d ran at %#lx, the previous ones at %#lx", i,
		             (unsigned long)b, (unsigned long)a);
	}

	/* A parked task keeps its stack: a task running meanwhile needs
	   another one. */
	struct where parked = {.wait = weft_oneshot_new(sizeof(uint64_t))};
	weft_task *p = weft_spawn_on(rt, where_fn, &parked);
	cr_assert_not_null(p);
	uint64_t deadline = test_now_ns() + HANG_GUARD_NS;
	while (!atomic_load(&parked.running)) {
		cr_assert_lt(test_now_ns(), deadline, "the parking task never ran");
		test_sleep_ms(1);
	}
	cr_assert_eq(parked.local, a, "the parking task did not get the pooled stack");
	struct where other = {0};
	uintptr_t c = run_where(rt, &other);
	cr_assert_neq(c, a, "two live tasks ran on one stack");

	/* Both stacks are in the pool once the parked task is done. */
	uint64_t v = 1;
	cr_assert_eq(weft_oneshot_send(parked.wait, &v), 0);
	cr_assert_eq(weft_join(p, NULL), 0);
	for (int i = 0; i < 5; i++) {
		struct where w = {0};
		uintptr_t d = run_where(rt, &w);
		cr_assert(d == a || d == c, "task ran on a new stack (%#lx) with two pooled",
		          (unsigned long)d);
	}
	cr_assert_eq(weft_runtime_shutdown(rt, -1), 0);
	weft_runtime_free(rt);
}

/* ------------------------------------------- batched mapping, unmapping */

/* Whether reading addr faults (the kernel answers EFAULT copying from it). */
static bool read_faults(const void *addr)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	bool faults = write(fds[1], addr, 1) < 0 && errno == EFAULT;
	close(fds[0]);
	close(fds[1]);
	return faults;
}

/* Whether any page of [addr, addr + len) is still mapped. */
static bool still_mapped(const char *addr, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	for (size_t off = 0; off < len; off += page) {
		unsigned char v;
		if (mincore((void *)(addr + off), 1, &v) == 0 || errno != ENOMEM)
			return true;
	}
	return false;
}

Test(stack, stacks_mapped_together_are_separate_and_all_unmapped, .timeout = 300)
{
	/* More than three of the pool's mapping batches, so stacks of one
	   mmap and of different ones mix. */
	enum { N = 3 * WEFT__STACK_MAP_BATCH + 5 };
	const size_t size = 64 * 1024;
	static struct weft__stack_depot depot;
	static struct weft__stack_pool pool;
	static struct weft__stack *s[N];
	static char *map[N];
	static size_t len[N];
	weft__stack_depot_init(&depot, size);
	weft__stack_pool_init(&pool, &depot);
	for (int i = 0; i < N; i++) {
		s[i] = weft__stack_get(&pool, size);
		cr_assert_not_null(s[i], "stack %d: %s", i, strerror(errno));
		cr_assert_geq(s[i]->size, size);
		char *lo = weft__stack_lo(s[i]);
		lo[0] = (char)i; /* both ends usable */
		lo[s[i]->size - 1] = (char)i;
		cr_assert(read_faults(s[i]->map + s[i]->guard_len - 1),
		          "stack %d has no guard below it", i);
		map[i] = s[i]->map;
		len[i] = s[i]->map_len;
	}
	for (int i = 0; i < N; i++) {
		char *lo = weft__stack_lo(s[i]);
		cr_assert(lo[0] == (char)i && lo[s[i]->size - 1] == (char)i,
		          "stack %d shares memory with another", i);
	}

	/* Back to the pool, the pool to the depot (what does not make a whole
	   batch is unmapped), then trims: the reserve decays by half an
	   interval, and what sat in the depot through an interval beyond it
	   is unmapped, until nothing is left. */
	for (int i = 0; i < N; i++)
		weft__stack_put(&pool, s[i]);
	weft__stack_pool_drain(&pool);
	uint64_t now = test_now_ns();
	for (int k = 1; k <= 64 && weft__stack_depot_held(&depot); k++)
		weft__stack_depot_trim(&depot, now + (uint64_t)k * WEFT__STACK_TRIM_NS);
	cr_assert_eq(weft__stack_depot_held(&depot), 0);
	cr_assert_eq(atomic_load(&depot.mapped), 0, "the depot counts %zu stacks still mapped",
	             atomic_load(&depot.mapped));
	for (int i = 0; i < N; i++)
		cr_assert_not(still_mapped(map[i], len[i]), "stack %d was not unmapped", i);
	weft__stack_depot_destroy(&depot);
}

/* The depot paces itself to the recent peak and a quarter: after a burst
   that had to map its stacks, idle top-ups map up to that reserve and then
   stop; trims keep it while the peak is fresh, and give it back as the
   peak decays. */
Test(stack, the_depot_keeps_a_reserve_above_the_peak_and_lets_it_decay, .timeout = 300)
{
	/* One into a fifth mapping batch: it maps with N in use. */
	enum { N = 4 * WEFT__STACK_MAP_BATCH + 1 };
	const size_t size = 64 * 1024;
	static struct weft__stack_depot depot;
	static struct weft__stack_pool pool;
	static struct weft__stack *s[N];
	weft__stack_depot_init(&depot, size);
	weft__stack_pool_init(&pool, &depot);
	cr_assert_not(weft__stack_depot_top_up(&depot), "a top-up before any demand");
	for (int i = 0; i < N; i++)
		cr_assert_not_null(s[i] = weft__stack_get(&pool, size));
	size_t peak = atomic_load(&depot.peak);
	cr_assert_eq(peak, N, "peak %zu after %d stacks in use", peak, N);
	size_t target = weft__stack_depot_target(&depot);
	cr_assert_eq(target, peak + peak / 4);
	int steps = 0;
	while (weft__stack_depot_top_up(&depot))
		cr_assert_lt(++steps, 1000, "the top-ups never stop");
	size_t mapped = atomic_load(&depot.mapped);
	cr_assert_geq(mapped, target, "topped up to %zu of %zu", mapped, target);
	cr_assert_lt(mapped, target + WEFT__STACK_TOP_UP);
	cr_assert_eq(weft__stack_depot_held(&depot), mapped - 5 * WEFT__STACK_MAP_BATCH,
	             "the top-ups did not go to the depot");
	/* The topped-up stacks are whole: both ends usable. */
	struct weft__stack *extra[2 * WEFT__STACK_BATCH];
	for (int i = 0; i < 2 * WEFT__STACK_BATCH; i++) {
		cr_assert_not_null(extra[i] = weft__stack_get(&pool, size));
		char *lo = weft__stack_lo(extra[i]);
		lo[0] = lo[extra[i]->size - 1] = 1;
	}
	for (int i = 0; i < 2 * WEFT__STACK_BATCH; i++)
		weft__stack_put(&pool, extra[i]);
	for (int i = 0; i < N; i++)
		weft__stack_put(&pool, s[i]);
	weft__stack_pool_drain(&pool);
	/* The first trim after the burst keeps the reserve; later ones give
	   it back as the peak halves. */
	uint64_t now = test_now_ns();
	weft__stack_depot_trim(&depot, now + WEFT__STACK_TRIM_NS);
	weft__stack_depot_trim(&depot, now + 2 * WEFT__STACK_TRIM_NS);
	cr_assert_geq(atomic_load(&depot.mapped), N, "the reserve went at the first trims");
	int k = 3;
	for (; k <= 64 && weft__stack_depot_held(&depot); k++)
		weft__stack_depot_trim(&depot, now + (uint64_t)k * WEFT__STACK_TRIM_NS);
	cr_assert_eq(weft__stack_depot_held(&depot), 0, "still %zu after %d trims",
	             weft__stack_depot_held(&depot), k);
	cr_assert_eq(atomic_load(&depot.peak), 0);
	cr_assert_not(weft__stack_depot_top_up(&depot), "a top-up after the peak decayed");
	weft__stack_depot_destroy(&depot);
}
