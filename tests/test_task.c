/*
 * Tasks: spawn and join (many, nested, deep chains, from plain threads),
 * cancellation (before start, while yielding, after completion, of a joiner),
 * shields, pinning, the cooperative budget, errno saved per task,
 * weft_current(), bad arguments and misuse (death tests in a forked child),
 * many workers on few cores, and large task stacks.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

TestSuite(task, .timeout = 120);

#define SPIN_NS 30000

/* ---------------------------------------------------------------- helpers */

static void *double_it(void *arg)
{
	return (void *)((intptr_t)arg * 2);
}

static void *spinner(void *arg)
{
	(void)arg;
	uint64_t start = test_now_ns();
	while (test_now_ns() - start < SPIN_NS)
		;
	return NULL;
}

static void yield_n(int n)
{
	for (int i = 0; i < n; i++)
		weft_yield();
}

/* Yields until *flag is set, then a few more times: on a one-worker runtime
   the task that set it has then reached its wait and parked. */
static void yield_until_parked(_Atomic int *flag)
{
	test_wait_flag(flag);
	yield_n(3);
}

/* Receives a long from the oneshot arg and returns it; -1 on failure (the
   receiver then leaves). */
static void *recv_task(void *arg)
{
	long v = -1;
	int rc = weft_oneshot_recv(arg, &v);
	if (rc == -ECANCELED)
		weft_oneshot_drop_receiver(arg);
	return (void *)(intptr_t)(rc == 0 ? v : -1);
}

static void send_long(weft_oneshot *o, long v)
{
	cr_assert_eq(weft_oneshot_send(o, &v), 0);
}

/* errno and the thread through calls the optimizer cannot see into. */
__attribute__((noinline, noipa)) static int *errno_addr(void)
{
	return &errno;
}

__attribute__((noinline, noipa)) static pthread_t self_thread(void)
{
	return pthread_self();
}

/* Runs a task fn on a fresh runtime of the given size; returns what fn
   returned, after checking block_on's status. */
static intptr_t block_on_new(unsigned workers, weft_fn fn, void *arg)
{
	weft_runtime *rt = test_runtime(workers);
	cr_assert_not_null(rt);
	void *res = NULL;
	int rc = weft_block_on(rt, fn, arg, &res);
	weft_runtime_free(rt);
	cr_assert_eq(rc, 0, "block_on: %d", rc);
	return (intptr_t)res;
}

/* Checks that fn, run in a child, died of SIGABRT after writing needle. */
static void expect_abort(int (*fn)(void), const char *needle)
{
	char buf[4096];
	int status = test_run_in_child(fn, buf, sizeof buf);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
	          "child did not die of SIGABRT (status 0x%x); stderr: %s", status, buf);
	cr_assert_not_null(strstr(buf, needle), "stderr lacks \"%s\": %s", needle, buf);
}

/* Runs fn as the main task of a one-worker runtime (in a death-test child). */
static void run_one_worker(weft_fn fn)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 1;
	weft_run(fn, NULL, &cfg, NULL);
}

/* ------------------------------------------------------------ spawn, join */

#define BATCH 10000

/* Spawns n tasks in batches -- on rt from a plain thread, or with weft_spawn
   from a task when rt is NULL -- and joins them; returns how many gave a
   wrong answer. */
static long spawn_join_batches(weft_runtime *rt, long n)
{
	static weft_task *batch[BATCH];
	long wrong = 0;
	for (long base = 0; base < n; base += BATCH) {
		long k = n - base < BATCH ? n - base : BATCH;
		for (long i = 0; i < k; i++) {
			void *arg = (void *)(intptr_t)(base + i);
			batch[i] =
			        rt ? weft_spawn_on(rt, double_it, arg) : weft_spawn(double_it, arg);
		}
		for (long i = 0; i < k; i++) {
			void *res = NULL;
			if (!batch[i] || weft_join(batch[i], &res) != 0 ||
			    (intptr_t)res != 2 * (base + i))
				wrong++;
		}
	}
	return wrong;
}

static void *spawn_join_many(void *arg)
{
	return (void *)spawn_join_batches(NULL, (long)(intptr_t)arg);
}

Test(task, spawn_join_a_million_from_a_task)
{
	long n = test_scale(1000000);
	cr_assert_eq(block_on_new(2, spawn_join_many, (void *)(intptr_t)n), 0);
	assert_no_leaks();
}

Test(task, spawn_on_from_a_plain_thread_joined_there)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	cr_assert_eq(spawn_join_batches(rt, test_scale(100000)), 0);
	weft_runtime_free(rt);
	assert_no_leaks();
}

#define TREE_FANOUT 4
#define TREE_DEPTH 7

/* Returns the number of tasks in the subtree rooted here. */
static void *tree_node(void *arg)
{
	intptr_t depth = (intptr_t)arg, total = 1;
	if (depth == 0)
		return (void *)total;
	weft_task *kids[TREE_FANOUT];
	for (int i = 0; i < TREE_FANOUT; i++)
		kids[i] = weft_spawn(tree_node, (void *)(depth - 1));
	for (int i = 0; i < TREE_FANOUT; i++) {
		void *n = NULL;
		if (!kids[i] || weft_join(kids[i], &n) != 0)
			return (void *)-1;
		if ((intptr_t)n < 0)
			return n;
		total += (intptr_t)n;
	}
	return (void *)total;
}

Test(task, nested_spawn_tree_of_joins)
{
	intptr_t expect = 0, level = 1;
	for (int d = 0; d <= TREE_DEPTH; d++, level *= TREE_FANOUT)
		expect += level;
	cr_assert_eq(block_on_new(2, tree_node, (void *)(intptr_t)TREE_DEPTH), expect);
	assert_no_leaks();
}

/* Each link spawns the next and joins it: depth tasks alive at once. */
static void *chain_link(void *arg)
{
	intptr_t left = (intptr_t)arg;
	if (left == 0)
		return (void *)0;
	weft_task *t = weft_spawn(chain_link, (void *)(left - 1));
	void *below = (void *)-1;
	if (!t || weft_join(t, &below) != 0 || (intptr_t)below < 0)
		return (void *)-1;
	return (void *)((intptr_t)below + 1);
}

Test(task, chained_spawn_each_joins_its_child)
{
	intptr_t depth = test_scale(10000);
	cr_assert_eq(block_on_new(2, chain_link, (void *)depth), depth);
	assert_no_leaks();
}

/* Parks on a oneshot, then yields a while, then returns what it got + 1. */
static void *park_then_yield(void *arg)
{
	intptr_t v = (intptr_t)recv_task(arg);
	yield_n(1000);
	return (void *)(v + 1);
}

static void *send_later(void *arg)
{
	test_sleep_ms(20);
	long v = 41;
	weft_oneshot_send(arg, &v);
	return NULL;
}

Test(task, join_from_a_plain_thread_while_the_task_runs)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	cr_assert_not_null(o);
	weft_task *t = weft_spawn_on(rt, park_then_yield, o);
	cr_assert_not_null(t);
	pthread_t sender;
	cr_assert_eq(pthread_create(&sender, NULL, send_later, o), 0);
	void *res = NULL;
	cr_assert_eq(weft_join(t, &res), 0);
	cr_assert_eq((intptr_t)res, 42);
	pthread_join(sender, NULL);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ----------------------------------------------------------- cancellation */

enum first_wait { WAIT_YIELD, WAIT_JOIN, WAIT_RECV };

struct cancel_probe {
	enum first_wait how;
	weft_oneshot *o;
	bool ran, cancelled_seen;
	int rc;       /* the first wait */
	int retry_rc; /* WAIT_JOIN: the same join again inside a shield */
	void *retry_result;
	int join_rc; /* the parent's join of the probe */
	void *result;
};

static void *probe(void *arg)
{
	struct cancel_probe *p = arg;
	p->ran = true;
	p->cancelled_seen = weft_is_cancelled();
	long v;
	weft_task *q;
	switch (p->how) {
	case WAIT_YIELD:
		p->rc = weft_yield();
		break;
	case WAIT_JOIN:
		q = weft_spawn(double_it, (void *)21);
		p->rc = weft_join(q, NULL);
		weft_shield_push();
		p->retry_rc = weft_join(q, &p->retry_result);
		weft_shield_pop();
		break;
	case WAIT_RECV:
		p->rc = weft_oneshot_recv(p->o, &v);
		weft_oneshot_drop_receiver(p->o);
		break;
	}
	return (void *)123;
}

/* On one worker: the probe cannot start before the parent waits. */
static void *spawn_cancel_join(void *arg)
{
	struct cancel_probe *p = arg;
	weft_task *t = weft_spawn(probe, p);
	weft_cancel(t);
	p->join_rc = weft_join(t, &p->result);
	return NULL;
}

static void check_cancel_before_start(struct cancel_probe *p)
{
	block_on_new(1, spawn_cancel_join, p);
	cr_assert(p->ran, "a task cancelled before it started must still run");
	cr_assert(p->cancelled_seen);
	cr_assert_eq(p->rc, -ECANCELED);
	cr_assert_eq(p->join_rc, WEFT_CANCELED);
	cr_assert_eq((intptr_t)p->result, 123);
}

Test(task, cancel_before_start_first_yield_is_ecanceled)
{
	struct cancel_probe p = {.how = WAIT_YIELD};
	check_cancel_before_start(&p);
	assert_no_leaks();
}

Test(task, cancel_before_start_first_join_is_ecanceled)
{
	struct cancel_probe p = {.how = WAIT_JOIN, .retry_rc = 1};
	check_cancel_before_start(&p);
	cr_assert_eq(p.retry_rc, 0);
	cr_assert_eq((intptr_t)p.retry_result, 42);
	assert_no_leaks();
}

Test(task, cancel_before_start_first_recv_is_ecanceled)
{
	struct cancel_probe p = {.how = WAIT_RECV, .o = weft_oneshot_new(sizeof(long))};
	cr_assert_not_null(p.o);
	check_cancel_before_start(&p);
	long v = 1;
	cr_assert_eq(weft_oneshot_send(p.o, &v), -EPIPE, "the receiver should have left");
	assert_no_leaks();
}

struct yield_loop {
	_Atomic int started;
	int rc;
};

/* Yields until a yield fails; returns how many succeeded. */
static void *yield_until_cancelled(void *arg)
{
	struct yield_loop *l = arg;
	intptr_t n = 0;
	atomic_store(&l->started, 1);
	while ((l->rc = weft_yield()) == 0)
		n++;
	return (void *)n;
}

static void *cancel_a_yielder(void *arg)
{
	struct yield_loop *l = arg;
	weft_task *t = weft_spawn(yield_until_cancelled, l);
	test_wait_flag(&l->started);
	weft_cancel(t);
	return (void *)(intptr_t)weft_join(t, NULL);
}

Test(task, cancel_stops_a_yield_loop)
{
	struct yield_loop l = {.rc = 1};
	cr_assert_eq(block_on_new(2, cancel_a_yielder, &l), WEFT_CANCELED);
	cr_assert_eq(l.rc, -ECANCELED);
	assert_no_leaks();
}

Test(task, cancel_is_idempotent_from_a_plain_thread)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct yield_loop l = {.rc = 1};
	weft_task *t = weft_spawn_on(rt, yield_until_cancelled, &l);
	cr_assert_not_null(t);
	test_wait_flag(&l.started);
	for (int i = 0; i < 3; i++)
		weft_cancel(t);
	void *n = NULL;
	cr_assert_eq(weft_join(t, &n), WEFT_CANCELED);
	cr_assert_eq(l.rc, -ECANCELED);
	cr_assert_geq((intptr_t)n, 0);
	weft_runtime_free(rt);
	assert_no_leaks();
}

static void *report_cancelled(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)(weft_is_cancelled() ? -1 : 5);
}

/* On one worker: the child runs to completion during the parent's yields. */
static void *cancel_after_completion(void *arg)
{
	(void)arg;
	weft_task *t = weft_spawn(report_cancelled, NULL);
	yield_n(3);
	weft_cancel(t);
	weft_cancel(t);
	void *res = NULL;
	int rc = weft_join(t, &res);
	return (void *)(intptr_t)(rc == 0 && (intptr_t)res == 5);
}

Test(task, cancel_after_completion_is_a_no_op)
{
	cr_assert_eq(block_on_new(1, cancel_after_completion, NULL), 1);
	assert_no_leaks();
}

enum after_cancel { REJOIN_IN_SHIELD, DETACH };

struct joiner {
	enum after_cancel then;
	weft_task *target;
	_Atomic int waiting;
	int first_rc, second_rc;
	void *result;
};

static void *join_target(void *arg)
{
	struct joiner *j = arg;
	atomic_store(&j->waiting, 1);
	j->first_rc = weft_join(j->target, &j->result);
	if (j->first_rc != -ECANCELED)
		return NULL;
	if (j->then == DETACH) {
		weft_detach(j->target);
		return NULL;
	}
	weft_shield_push();
	j->second_rc = weft_join(j->target, &j->result);
	weft_shield_pop();
	return NULL;
}

struct target_done {
	weft_oneshot *o;
	_Atomic int done;
};

static void *recv_then_flag(void *arg)
{
	struct target_done *d = arg;
	void *v = recv_task(d->o);
	atomic_store(&d->done, 1);
	return v;
}

/* On one worker: J parks joining T (parked on a oneshot); J is cancelled;
   then T gets its value and finishes. */
static void *cancel_a_joiner(void *arg)
{
	struct joiner *j = arg;
	struct target_done d = {.o = weft_oneshot_new(sizeof(long))};
	if (!d.o)
		return (void *)-1;
	j->target = weft_spawn(recv_then_flag, &d);
	weft_task *jt = weft_spawn(join_target, j);
	yield_until_parked(&j->waiting);
	weft_cancel(jt);
	yield_n(3);
	long v = 41;
	weft_oneshot_send(d.o, &v);
	int rc = weft_join(jt, NULL);
	test_wait_flag(&d.done); /* T finishes also when detached */
	return (void *)(intptr_t)rc;
}

Test(task, cancelled_joiner_keeps_the_handle_and_rejoins_in_a_shield)
{
	struct joiner j = {.then = REJOIN_IN_SHIELD, .second_rc = 1};
	cr_assert_eq(block_on_new(1, cancel_a_joiner, &j), WEFT_CANCELED);
	cr_assert_eq(j.first_rc, -ECANCELED);
	cr_assert_eq(j.second_rc, 0);
	cr_assert_eq((intptr_t)j.result, 41);
	assert_no_leaks();
}

Test(task, cancelled_joiner_keeps_the_handle_and_detaches_it)
{
	struct joiner j = {.then = DETACH};
	cr_assert_eq(block_on_new(1, cancel_a_joiner, &j), WEFT_CANCELED);
	cr_assert_eq(j.first_rc, -ECANCELED);
	assert_no_leaks();
}

/* ---------------------------------------------------------------- shields */

struct shielded {
	weft_oneshot *o;
	_Atomic int waiting, recv_returned;
	int parked_rc, yield_rc, join_rc, nested_rc, after_rc;
	bool cancelled_seen;
	long value;
};

static void *shielded_waits(void *arg)
{
	struct shielded *s = arg;
	weft_shield_push();
	atomic_store(&s->waiting, 1);
	s->parked_rc = weft_oneshot_recv(s->o, &s->value); /* cancelled while parked here */
	atomic_store(&s->recv_returned, 1);
	s->cancelled_seen = weft_is_cancelled();
	s->yield_rc = weft_yield();
	s->join_rc = weft_join(weft_spawn(double_it, (void *)1), NULL);
	weft_shield_push();
	weft_shield_pop();
	s->nested_rc = weft_yield(); /* the outer scope is still open */
	weft_shield_pop();
	s->after_rc = weft_yield();
	return NULL;
}

static void *cancel_shielded(void *arg)
{
	struct shielded *s = arg;
	weft_task *t = weft_spawn(shielded_waits, s);
	yield_until_parked(&s->waiting);
	weft_cancel(t);
	yield_n(3);
	int early = atomic_load(&s->recv_returned);
	long v = 9;
	weft_oneshot_send(s->o, &v);
	int rc = weft_join(t, NULL);
	return (void *)(intptr_t)(early ? -1 : rc);
}

Test(task, shield_hides_cancellation_from_waits_until_popped)
{
	struct shielded s = {.o = weft_oneshot_new(sizeof(long)),
	                     .parked_rc = 1,
	                     .yield_rc = 1,
	                     .join_rc = 1,
	                     .nested_rc = 1};
	cr_assert_not_null(s.o);
	intptr_t rc = block_on_new(1, cancel_shielded, &s);
	cr_assert_neq(rc, -1, "a shielded recv returned on cancellation, before the send");
	cr_assert_eq(rc, WEFT_CANCELED);
	cr_assert_eq(s.parked_rc, 0);
	cr_assert_eq(s.value, 9);
	cr_assert(s.cancelled_seen, "shields do not hide weft_is_cancelled()");
	cr_assert_eq(s.yield_rc, 0);
	cr_assert_eq(s.join_rc, 0);
	cr_assert_eq(s.nested_rc, 0);
	cr_assert_eq(s.after_rc, -ECANCELED);
	assert_no_leaks();
}

static void *pop_shield(void *arg)
{
	(void)arg;
	weft_shield_pop();
	return NULL;
}

static int shield_pop_without_push(void)
{
	run_one_worker(pop_shield);
	return 0;
}

Test(task, shield_pop_without_push_aborts)
{
	expect_abort(shield_pop_without_push, "weft_shield_pop");
}

static void *return_in_shield(void *arg)
{
	(void)arg;
	weft_shield_push();
	return NULL;
}

static int return_with_shield_open(void)
{
	run_one_worker(return_in_shield);
	return 0;
}

Test(task, returning_with_a_shield_open_aborts)
{
	expect_abort(return_with_shield_open, "weft_shield_push");
}

static void *return_pinned(void *arg)
{
	(void)arg;
	weft_pin_push();
	return NULL;
}

static int return_with_pin_open(void)
{
	run_one_worker(return_pinned);
	return 0;
}

Test(task, returning_with_a_pin_open_aborts)
{
	expect_abort(return_with_pin_open, "weft_pin_push");
}

static void *pop_pin(void *arg)
{
	(void)arg;
	weft_pin_pop();
	return NULL;
}

static int pin_pop_without_push(void)
{
	run_one_worker(pop_pin);
	return 0;
}

Test(task, pin_pop_without_push_aborts)
{
	expect_abort(pin_pop_without_push, "weft_pin_pop");
}

static void *spawn_pinned_popper(void *arg)
{
	(void)arg;
	weft_spawn_opts opts = {.pinned = true};
	weft_join(weft_spawn_ex(NULL, pop_pin, NULL, &opts), NULL);
	return NULL;
}

static int pinned_spawn_pops_its_pin(void)
{
	run_one_worker(spawn_pinned_popper);
	return 0;
}

Test(task, pinned_spawn_cannot_pop_its_own_pin)
{
	expect_abort(pinned_spawn_pops_its_pin, "weft_pin_pop");
}

/* -------------------------------------------------------------------- pin */

#define PIN_ROUNDS 2000

static void *send_41(void *arg)
{
	long v = 41;
	weft_oneshot_send(arg, &v);
	return NULL;
}

/* Each round the calling task yields behind a busy task, and parks on a
   oneshot that a task stolen by the other worker sends to: an unpinned task
   moves between threads often. Returns how many times it was seen on another
   thread than the time before, or -1 on an error. */
static long count_moves(long rounds)
{
	long moves = 0;
	pthread_t last = self_thread();
	for (long i = 0; i < rounds; i++) {
		weft_detach(weft_spawn(spinner, NULL));
		if (weft_yield() != 0)
			return -1;
		moves += !pthread_equal(last, self_thread());
		last = self_thread();
		weft_oneshot *o = weft_oneshot_new(sizeof(long));
		if (!o)
			return -1;
		weft_detach(weft_spawn(send_41, o));
		weft_detach(weft_spawn(spinner, NULL)); /* takes the LIFO slot */
		if ((intptr_t)recv_task(o) != 41)
			return -1;
		moves += !pthread_equal(last, self_thread());
		last = self_thread();
	}
	return moves;
}

struct pin_result {
	long unpinned_moves, pinned_moves, pinned_spawn_moves;
};

static void *moves_task(void *arg)
{
	return (void *)(intptr_t)count_moves((long)(intptr_t)arg);
}

static void *pin_rounds(void *arg)
{
	struct pin_result *r = arg;
	long rounds = test_scale(PIN_ROUNDS);
	r->unpinned_moves = count_moves(rounds);
	if (weft_pin_push() != 0)
		return (void *)-1;
	r->pinned_moves = count_moves(rounds);
	weft_pin_pop();
	weft_spawn_opts opts = {.name = "pinned", .pinned = true};
	void *res = (void *)-1;
	weft_join(weft_spawn_ex(NULL, moves_task, (void *)(intptr_t)rounds, &opts), &res);
	r->pinned_spawn_moves = (intptr_t)res;
	return NULL;
}

Test(task, pin_keeps_the_task_on_its_thread)
{
	struct pin_result r = {-1, -1, -1};
	block_on_new(2, pin_rounds, &r);
	cr_log_info("moves: %ld unpinned, %ld pinned, %ld spawned pinned", r.unpinned_moves,
	            r.pinned_moves, r.pinned_spawn_moves);
	cr_assert_gt(r.unpinned_moves, 0, "the set-up never migrated a task: the test is void");
	cr_assert_eq(r.pinned_moves, 0, "weft_pin_push: moved %ld times", r.pinned_moves);
	cr_assert_eq(r.pinned_spawn_moves, 0, "spawn_opts.pinned: moved %ld times",
	             r.pinned_spawn_moves);
	assert_no_leaks();
}

Test(task, pin_and_shield_outside_a_task_do_nothing)
{
	weft_shield_pop(); /* no abort outside a task */
	weft_pin_pop();
	cr_assert_eq(weft_shield_push(), 0);
	cr_assert_eq(weft_pin_push(), 0);
	weft_pin_pop();
	weft_shield_pop();
}

/* ----------------------------------------------------------------- budget */

struct budget {
	_Atomic int stop;
	_Atomic long progress;
};

static void *make_progress(void *arg)
{
	struct budget *b = arg;
	while (!atomic_load(&b->stop)) {
		atomic_fetch_add(&b->progress, 1);
		weft_yield();
	}
	return NULL;
}

#define BUDGET_ROUNDS 20

/* On one worker, loops on weft_yield_maybe() only: the other task runs
   whenever the budget is spent. Returns its progress over BUDGET_ROUNDS
   budgets' worth of calls, or -1 if it never ran. */
static void *spend_budget(void *arg)
{
	struct budget *b = arg;
	weft_task *t = weft_spawn(make_progress, b);
	for (long i = 0; i < 1000000 && !atomic_load(&b->progress); i++)
		weft_yield_maybe();
	long p0 = atomic_load(&b->progress);
	for (long i = 0; i < 128 * BUDGET_ROUNDS; i++)
		weft_yield_maybe();
	long p1 = atomic_load(&b->progress);
	atomic_store(&b->stop, 1);
	weft_join(t, NULL);
	return (void *)(intptr_t)(p0 ? p1 - p0 : -1);
}

Test(task, yield_maybe_yields_when_the_budget_is_spent)
{
	struct budget b = {0};
	intptr_t progress = block_on_new(1, spend_budget, &b);
	cr_assert_neq(progress, -1, "weft_yield_maybe never let the other task run");
	cr_assert(progress >= BUDGET_ROUNDS / 2 && progress <= BUDGET_ROUNDS * 2,
	          "%ld yields in %d calls, expected about one per 128", (long)progress,
	          128 * BUDGET_ROUNDS);
	assert_no_leaks();
}

/* Time slice (runtime/wait.c): a task whose waits come slowly (100 us of
   work between two) is preempted long before its budget of 128 waits is
   spent -- after two chunks of 8 here, once it has run past the 250 us
   slice -- and goes to the slow lane: while other tasks are ready, its
   next turn comes no sooner than the worker's periodic look at that lane
   (every 61 switches), where the local queue's order would give it one
   after each of the others ran once. It still finishes while they never
   stop being ready. */
#define SLOW_WAITS 200
#define READY_TASKS 4

struct slice {
	_Atomic int done;
	_Atomic long yields; /* by the ready tasks */
	long longest_turn;   /* most waits the slow task made between two switches */
	long fewest_between; /* fewest yields of the others between two of its turns */
	uint64_t preemptions;
};

static void *ready_loop(void *arg)
{
	struct slice *s = arg;
	while (!atomic_load(&s->done)) {
		atomic_fetch_add(&s->yields, 1);
		weft_yield();
	}
	return NULL;
}

static void *slow_waits(void *arg)
{
	struct slice *s = arg;
	weft_task *r[READY_TASKS];
	for (int i = 0; i < READY_TASKS; i++)
		r[i] = weft_spawn(ready_loop, s);
	long turn = 0, seen = atomic_load(&s->yields), turns = 0;
	s->fewest_between = LONG_MAX;
	for (int i = 0; i < SLOW_WAITS; i++) {
		uint64_t until = weft_now_ns() + 100000;
		while (weft_now_ns() < until)
			;
		weft_yield_maybe();
		long now = atomic_load(&s->yields);
		if (now == seen) {
			turn++;
			continue;
		}
		if (turns++ > 0 && now - seen < s->fewest_between) /* not the first: ours */
			s->fewest_between = now - seen;
		if (turn > s->longest_turn)
			s->longest_turn = turn;
		turn = 0;
		seen = now;
	}
	atomic_store(&s->done, 1);
	for (int i = 0; i < READY_TASKS; i++)
		weft_join(r[i], NULL);
	weft_metrics m;
	weft_metrics_get(weft_runtime_current(), &m);
	s->preemptions = m.preemptions;
	return NULL;
}

Test(task, a_task_with_slow_waits_is_preempted_after_its_time_slice_to_the_slow_lane)
{
	struct slice s = {0};
	block_on_new(1, slow_waits, &s);
	cr_assert_gt(s.preemptions, 0, "never preempted");
	cr_assert_lt(s.longest_turn, 64,
	             "%ld waits of 100 us in one turn: the budget's 128, not the slice",
	             s.longest_turn);
	cr_assert_geq(s.fewest_between, 40,
	              "only %ld yields of %d ready tasks between two turns of the preempted one",
	              s.fewest_between, READY_TASKS);
	assert_no_leaks();
}

Test(task, yield_maybe_outside_a_task_returns_zero)
{
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(weft_yield_maybe(), 0);
	cr_assert_eq(weft_yield(), 0);
}

/* ------------------------------------------------------------------ errno */

#define ERRNO_TASKS 8

/* Keepers set errno once and check it after every yield; the others scribble
   over errno before each of theirs. Returns the number of mismatches. */
static void *errno_keeper(void *arg)
{
	int mine = 1000 + (int)(intptr_t)arg;
	long rounds = test_scale(5000), bad = 0;
	*errno_addr() = mine;
	for (long i = 0; i < rounds; i++) {
		if (i % 16 == 0)
			weft_detach(weft_spawn(spinner, NULL)); /* invites a steal */
		weft_yield();
		if (*errno_addr() != mine)
			bad++;
	}
	return (void *)bad;
}

static void *errno_scribbler(void *arg)
{
	long rounds = test_scale(5000);
	for (long i = 0; i < rounds; i++) {
		*errno_addr() = (int)((intptr_t)arg * 7919 + i);
		weft_yield();
	}
	return NULL;
}

Test(task, errno_is_saved_per_task)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	weft_task *keepers[ERRNO_TASKS], *scribblers[ERRNO_TASKS];
	for (intptr_t i = 0; i < ERRNO_TASKS; i++) {
		keepers[i] = weft_spawn_on(rt, errno_keeper, (void *)i);
		scribblers[i] = weft_spawn_on(rt, errno_scribbler, (void *)i);
		cr_assert(keepers[i] && scribblers[i]);
	}
	for (int i = 0; i < ERRNO_TASKS; i++) {
		void *bad = (void *)-1;
		cr_assert_eq(weft_join(keepers[i], &bad), 0);
		cr_assert_eq((intptr_t)bad, 0, "task %d saw another errno %ld times", i,
		             (long)(intptr_t)bad);
		cr_assert_eq(weft_join(scribblers[i], NULL), 0);
	}
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ---------------------------------------------------------------- current */

struct whoami {
	weft_task *before, *after;
	weft_runtime *rt_before, *rt_after;
};

static void *record_current(void *arg)
{
	struct whoami *w = arg;
	w->before = weft_current();
	w->rt_before = weft_runtime_current();
	yield_n(100);
	w->after = weft_current();
	w->rt_after = weft_runtime_current();
	return NULL;
}

Test(task, current_task_and_runtime)
{
	cr_assert_null(weft_current());
	cr_assert_null(weft_runtime_current());
	cr_assert_not(weft_is_cancelled());
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct whoami w = {0};
	weft_task *t = weft_spawn_on(rt, record_current, &w);
	cr_assert_not_null(t);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(w.before, t);
	cr_assert_eq(w.after, t);
	cr_assert_eq(w.rt_before, rt);
	cr_assert_eq(w.rt_after, rt);
	cr_assert_null(weft_current());
	cr_assert_null(weft_runtime_current());
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ---------------------------------------------------------- bad arguments */

Test(task, spawn_with_bad_arguments_returns_null)
{
	cr_assert_null(weft_spawn(double_it, NULL), "weft_spawn outside a runtime");
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	cr_assert_null(weft_spawn_on(rt, NULL, NULL));
	weft_spawn_opts small = {.stack_size = WEFT_MIN_STACK_SIZE - 1};
	cr_assert_null(weft_spawn_ex(rt, double_it, NULL, &small));
	weft_spawn_opts huge = {.stack_size = (size_t)WEFT_MAX_STACK_SIZE + 1};
	cr_assert_null(weft_spawn_ex(rt, double_it, NULL, &huge));
	weft_spawn_opts least = {.stack_size = WEFT_MIN_STACK_SIZE};
	weft_task *t = weft_spawn_ex(rt, double_it, (void *)3, &least);
	cr_assert_not_null(t);
	void *res = NULL;
	cr_assert_eq(weft_join(t, &res), 0);
	cr_assert_eq((intptr_t)res, 6);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(task, join_null_is_einval)
{
	cr_assert_eq(weft_join(NULL, NULL), -EINVAL);
}

Test(task, join_of_a_detached_live_task_is_einval)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct target_done d = {.o = weft_oneshot_new(sizeof(long))};
	cr_assert_not_null(d.o);
	weft_task *t = weft_spawn_on(rt, recv_then_flag, &d);
	cr_assert_not_null(t);
	weft_detach(t);
	cr_assert_eq(weft_join(t, NULL), -EINVAL); /* alive until it gets the value */
	send_long(d.o, 1);
	test_wait_flag(&d.done);
	weft_runtime_free(rt);
	assert_no_leaks();
}

struct second_join {
	struct joiner j;
	int second_rc;
};

/* On one worker: J parks joining T; a second join of T must be refused. */
static void *join_twice_concurrently(void *arg)
{
	struct second_join *s = arg;
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	if (!o)
		return (void *)-1;
	s->j.target = weft_spawn(recv_task, o);
	weft_task *jt = weft_spawn(join_target, &s->j);
	yield_until_parked(&s->j.waiting);
	s->second_rc = weft_join(s->j.target, NULL);
	long v = 77;
	weft_oneshot_send(o, &v);
	return (void *)(intptr_t)weft_join(jt, NULL);
}

Test(task, second_concurrent_join_is_einval)
{
	struct second_join s = {.second_rc = 1};
	cr_assert_eq(block_on_new(1, join_twice_concurrently, &s), 0);
	cr_assert_eq(s.second_rc, -EINVAL);
	cr_assert_eq(s.j.first_rc, 0);
	cr_assert_eq((intptr_t)s.j.result, 77);
	assert_no_leaks();
}

static void *join_self(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)weft_join(weft_current(), NULL);
}

Test(task, join_of_itself_is_edeadlk)
{
	cr_assert_eq(block_on_new(2, join_self, NULL), -EDEADLK);
	assert_no_leaks();
}

static void *detach_twice(void *arg)
{
	(void)arg;
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	weft_task *t = weft_spawn(recv_task, o);
	weft_detach(t);
	weft_detach(t); /* t is still alive: parked on o */
	return NULL;
}

static int detach_twice_in_child(void)
{
	run_one_worker(detach_twice);
	return 0;
}

Test(task, detach_of_a_detached_live_task_aborts)
{
	expect_abort(detach_twice_in_child, "weft_detach");
}

/* ---------------------------------------------------------- many workers */

#define BUSY_TASKS 64

struct square_msg {
	weft_oneshot *o;
	long i;
};

static void *send_square(void *arg)
{
	struct square_msg *m = arg;
	long sq = m->i * m->i;
	weft_oneshot_send(m->o, &sq);
	return (void *)(intptr_t)m->i;
}

/* Each round spawns a child that sends i*i on a oneshot, yields, receives the
   square and joins the child. Returns the number of wrong rounds. */
static void *busy_worker(void *arg)
{
	long rounds = test_scale(500), bad = 0;
	for (long i = 0; i < rounds; i++) {
		struct square_msg m = {weft_oneshot_new(sizeof(long)), i + (intptr_t)arg};
		if (!m.o)
			return (void *)-1;
		weft_task *c = weft_spawn(send_square, &m);
		weft_yield();
		long sq = -1;
		void *echo = NULL;
		if (weft_oneshot_recv(m.o, &sq) != 0 || sq != m.i * m.i)
			bad++;
		if (!c || weft_join(c, &echo) != 0 || (intptr_t)echo != m.i)
			bad++;
	}
	return (void *)bad;
}

Test(task, sixteen_workers_on_two_cores)
{
	weft_runtime *rt = test_runtime(16);
	cr_assert_not_null(rt);
	weft_task *ts[BUSY_TASKS];
	for (intptr_t i = 0; i < BUSY_TASKS; i++)
		cr_assert_not_null(ts[i] = weft_spawn_on(rt, busy_worker, (void *)i));
	for (int i = 0; i < BUSY_TASKS; i++) {
		void *bad = (void *)-1;
		cr_assert_eq(weft_join(ts[i], &bad), 0);
		cr_assert_eq((intptr_t)bad, 0, "task %d: %ld wrong rounds", i, (long)(intptr_t)bad);
	}
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------------------------------------ stack size */

#define BIG_LOCALS (900 * 1024)

/* Writes every byte of a 900 KiB local array, yields, and sums it back. */
__attribute__((noinline)) static long use_big_locals(void)
{
	volatile unsigned char buf[BIG_LOCALS];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (unsigned char)i;
	weft_yield();
	long sum = 0;
	for (size_t i = 0; i < sizeof buf; i++)
		sum += buf[i];
	return sum;
}

static void *big_stack_task(void *arg)
{
	(void)arg;
	return (void *)use_big_locals();
}

Test(task, spawn_opts_stack_size_gives_a_large_stack)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	weft_spawn_opts opts = {.name = "big", .stack_size = 1024 * 1024};
	weft_task *t = weft_spawn_ex(rt, big_stack_task, NULL, &opts);
	cr_assert_not_null(t);
	void *sum = NULL;
	cr_assert_eq(weft_join(t, &sum), 0);
	long expect = (long)(BIG_LOCALS / 256) * (255 * 256 / 2);
	cr_assert_eq((long)(intptr_t)sum, expect);
	weft_runtime_free(rt);
	assert_no_leaks();
}
