/*
 * The oneshot: one value from one sender to one receiver, in every order
 * (sent before the receiver waits, receiver parked first), between tasks on
 * different workers and plain threads; -EPIPE when a side leaves without
 * sending or receiving; every way of leaving frees the object exactly once
 * (the ASan build's LeakSanitizer checks it); a cancelled recv consumes
 * nothing, also when the cancel races the send; bad arguments.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

TestSuite(oneshot, .timeout = 120);

struct block64 {
	unsigned char bytes[64];
};

static void fill_block(struct block64 *b, unsigned seed)
{
	for (unsigned i = 0; i < sizeof b->bytes; i++)
		b->bytes[i] = (unsigned char)(seed * 31 + i * 7 + 1);
}

static void yield_n(int n)
{
	for (int i = 0; i < n; i++)
		weft_yield();
}

/* A receiver task: flags that it is about to wait, then receives a long. */
struct rx_arg {
	weft_oneshot *o;
	_Atomic int waiting;
	int rc;
	long value;
};

static void *recv_long(void *arg)
{
	struct rx_arg *a = arg;
	atomic_store(&a->waiting, 1);
	a->rc = weft_oneshot_recv(a->o, &a->value);
	return NULL;
}

static void *send_long(void *arg)
{
	struct rx_arg *a = arg;
	long v = a->value;
	return (void *)(intptr_t)weft_oneshot_send(a->o, &v);
}

static int join_rc(weft_task *t)
{
	return weft_join(t, NULL);
}

Test(oneshot, send_then_recv_on_a_plain_thread)
{
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	cr_assert_not_null(o);
	long v = 42, got = 0;
	cr_assert_eq(weft_oneshot_send(o, &v), 0);
	cr_assert_eq(weft_oneshot_recv(o, &got), 0);
	cr_assert_eq(got, 42);
	assert_no_leaks();
}

static void *send_then_recv_in_task(void *arg)
{
	(void)arg;
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	long v = 7, got = 0;
	if (!o || weft_oneshot_send(o, &v) != 0 || weft_oneshot_recv(o, &got) != 0)
		return (void *)-1;
	return (void *)(intptr_t)got;
}

Test(oneshot, send_then_recv_in_a_task)
{
	void *res = NULL;
	cr_assert_eq(weft_run(send_then_recv_in_task, NULL, NULL, &res), 0);
	cr_assert_eq((intptr_t)res, 7);
	assert_no_leaks();
}

/* On one worker: the receiver runs and parks before the parent sends. */
static void *receiver_parked_first(void *arg)
{
	(void)arg;
	struct rx_arg a = {.o = weft_oneshot_new(sizeof(long)), .rc = 1};
	if (!a.o)
		return (void *)-1;
	weft_task *r = weft_spawn(recv_long, &a);
	while (!atomic_load(&a.waiting))
		weft_yield();
	yield_n(3);
	long v = 99;
	int src = weft_oneshot_send(a.o, &v);
	int jrc = join_rc(r);
	return (void *)(intptr_t)(src == 0 && jrc == 0 && a.rc == 0 && a.value == 99);
}

Test(oneshot, recv_then_send_receiver_parked_first)
{
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	void *ok = NULL;
	cr_assert_eq(weft_block_on(rt, receiver_parked_first, NULL, &ok), 0);
	cr_assert_eq((intptr_t)ok, 1);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* Pairs of tasks spawned from a plain thread land on either worker. */
Test(oneshot, task_to_task_across_workers)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	long n = test_scale(20000);
	struct rx_arg *rx = calloc((size_t)n, sizeof *rx);
	struct rx_arg *tx = calloc((size_t)n, sizeof *tx);
	weft_task **rtasks = calloc((size_t)n, sizeof *rtasks),
	          **stasks = calloc((size_t)n, sizeof *stasks);
	cr_assert(rx && tx && rtasks && stasks);
	for (long i = 0; i < n; i++) {
		rx[i].o = tx[i].o = weft_oneshot_new(sizeof(long));
		cr_assert_not_null(rx[i].o);
		rx[i].rc = 1;
		tx[i].value = i * 3 + 1;
		/* Alternating the spawn order mixes "sent first" and "parked first". */
		if (i % 2) {
			rtasks[i] = weft_spawn_on(rt, recv_long, &rx[i]);
			stasks[i] = weft_spawn_on(rt, send_long, &tx[i]);
		} else {
			stasks[i] = weft_spawn_on(rt, send_long, &tx[i]);
			rtasks[i] = weft_spawn_on(rt, recv_long, &rx[i]);
		}
		cr_assert(rtasks[i] && stasks[i]);
	}
	for (long i = 0; i < n; i++) {
		void *src = (void *)-1;
		cr_assert_eq(weft_join(stasks[i], &src), 0);
		cr_assert_eq((intptr_t)src, 0, "send %ld returned %d", i, (int)(intptr_t)src);
		cr_assert_eq(join_rc(rtasks[i]), 0);
		cr_assert_eq(rx[i].rc, 0);
		cr_assert_eq(rx[i].value, i * 3 + 1);
	}
	free(rx);
	free(tx);
	free(rtasks);
	free(stasks);
	weft_runtime_free(rt);
	assert_no_leaks();
}

static void *yield_then_send(void *arg)
{
	struct rx_arg *a = arg;
	yield_n(100);
	return send_long(a);
}

Test(oneshot, task_to_plain_thread)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct rx_arg a = {.o = weft_oneshot_new(sizeof(long)), .value = 1234};
	cr_assert_not_null(a.o);
	weft_task *t = weft_spawn_on(rt, yield_then_send, &a);
	cr_assert_not_null(t);
	long got = 0;
	cr_assert_eq(weft_oneshot_recv(a.o, &got), 0);
	cr_assert_eq(got, 1234);
	void *src = (void *)-1;
	cr_assert_eq(weft_join(t, &src), 0);
	cr_assert_eq((intptr_t)src, 0);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(oneshot, plain_thread_to_task)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct rx_arg a = {.o = weft_oneshot_new(sizeof(long)), .rc = 1};
	cr_assert_not_null(a.o);
	weft_task *t = weft_spawn_on(rt, recv_long, &a);
	cr_assert_not_null(t);
	test_wait_flag(&a.waiting);
	test_sleep_ms(10); /* most likely parked by now; correct either way */
	long v = 5678;
	cr_assert_eq(weft_oneshot_send(a.o, &v), 0);
	cr_assert_eq(join_rc(t), 0);
	cr_assert_eq(a.rc, 0);
	cr_assert_eq(a.value, 5678);
	weft_runtime_free(rt);
	assert_no_leaks();
}

struct block_arg {
	weft_oneshot *o;
	struct block64 got;
	int rc;
};

static void *recv_block(void *arg)
{
	struct block_arg *a = arg;
	a->rc = weft_oneshot_recv(a->o, &a->got);
	return NULL;
}

Test(oneshot, copies_a_64_byte_struct_by_value)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct block_arg a = {.o = weft_oneshot_new(sizeof(struct block64)), .rc = 1};
	cr_assert_not_null(a.o);
	weft_task *t = weft_spawn_on(rt, recv_block, &a);
	cr_assert_not_null(t);
	struct block64 sent, expect;
	fill_block(&sent, 3);
	expect = sent;
	cr_assert_eq(weft_oneshot_send(a.o, &sent), 0);
	memset(&sent, 0, sizeof sent); /* the oneshot holds its own copy */
	cr_assert_eq(join_rc(t), 0);
	cr_assert_eq(a.rc, 0);
	cr_assert_eq(memcmp(&a.got, &expect, sizeof expect), 0);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(oneshot, drop_sender_gives_epipe)
{
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	cr_assert_not_null(o);
	weft_oneshot_drop_sender(o);
	long got = 17;
	cr_assert_eq(weft_oneshot_recv(o, &got), -EPIPE);
	cr_assert_eq(got, 17);
	assert_no_leaks();
}

Test(oneshot, drop_sender_wakes_a_parked_receiver_with_epipe)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct rx_arg a = {.o = weft_oneshot_new(sizeof(long)), .rc = 1};
	cr_assert_not_null(a.o);
	weft_task *t = weft_spawn_on(rt, recv_long, &a);
	cr_assert_not_null(t);
	test_wait_flag(&a.waiting);
	test_sleep_ms(10);
	weft_oneshot_drop_sender(a.o);
	cr_assert_eq(join_rc(t), 0);
	cr_assert_eq(a.rc, -EPIPE);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(oneshot, drop_receiver_gives_epipe)
{
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	cr_assert_not_null(o);
	weft_oneshot_drop_receiver(o);
	long v = 1;
	cr_assert_eq(weft_oneshot_send(o, &v), -EPIPE);
	assert_no_leaks();
}

/* Each order in which the two sides can leave; the object must be freed once
   both have left, whatever the order (LeakSanitizer / ASan double-free). */
Test(oneshot, every_order_of_leaving_frees_the_object)
{
	long v = 3, got;
	weft_oneshot *o;

	o = weft_oneshot_new(sizeof v); /* send, then recv */
	cr_assert_eq(weft_oneshot_send(o, &v), 0);
	cr_assert_eq(weft_oneshot_recv(o, &got), 0);

	o = weft_oneshot_new(sizeof v); /* send, then drop the receiver */
	cr_assert_eq(weft_oneshot_send(o, &v), 0);
	weft_oneshot_drop_receiver(o);

	o = weft_oneshot_new(sizeof v); /* drop the receiver, then send */
	weft_oneshot_drop_receiver(o);
	cr_assert_eq(weft_oneshot_send(o, &v), -EPIPE);

	o = weft_oneshot_new(sizeof v); /* drop the sender, then recv */
	weft_oneshot_drop_sender(o);
	cr_assert_eq(weft_oneshot_recv(o, &got), -EPIPE);

	o = weft_oneshot_new(sizeof v); /* drop the sender, then the receiver */
	weft_oneshot_drop_sender(o);
	weft_oneshot_drop_receiver(o);

	o = weft_oneshot_new(sizeof v); /* drop the receiver, then the sender */
	weft_oneshot_drop_receiver(o);
	weft_oneshot_drop_sender(o);
	assert_no_leaks();
}

/* Both sides leave concurrently, on different workers. */
static void *drop_rx(void *arg)
{
	weft_oneshot_drop_receiver(arg);
	return NULL;
}

static void *drop_tx(void *arg)
{
	weft_oneshot_drop_sender(arg);
	return (void *)1;
}

static void *send_one(void *arg)
{
	long v = 1;
	int rc = weft_oneshot_send(arg, &v);
	return (void *)(intptr_t)(rc == 0 || rc == -EPIPE);
}

Test(oneshot, concurrent_leaving_frees_the_object_once)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	long n = test_scale(20000);
	for (long i = 0; i < n; i++) {
		weft_oneshot *o = weft_oneshot_new(sizeof(long));
		cr_assert_not_null(o);
		weft_task *a = weft_spawn_on(rt, drop_rx, o);
		weft_task *b = weft_spawn_on(rt, i % 2 ? drop_tx : send_one, o);
		cr_assert(a && b);
		void *ok = (void *)1;
		cr_assert_eq(weft_join(b, &ok), 0);
		cr_assert(ok, "round %ld: send returned neither 0 nor -EPIPE", i);
		cr_assert_eq(join_rc(a), 0);
	}
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* Receives once; on -ECANCELED receives again inside a shield. */
struct retry_arg {
	weft_oneshot *o;
	_Atomic int waiting;
	int first_rc, second_rc;
	long value;
};

static void *recv_retry_in_shield(void *arg)
{
	struct retry_arg *a = arg;
	atomic_store(&a->waiting, 1);
	a->first_rc = weft_oneshot_recv(a->o, &a->value);
	if (a->first_rc == -ECANCELED) {
		weft_shield_push();
		a->second_rc = weft_oneshot_recv(a->o, &a->value);
		weft_shield_pop();
	}
	return NULL;
}

static void *cancel_parked_receiver(void *arg)
{
	struct retry_arg *a = arg;
	weft_task *r = weft_spawn(recv_retry_in_shield, a);
	while (!atomic_load(&a->waiting))
		weft_yield();
	yield_n(3);
	weft_cancel(r);
	yield_n(3);
	long v = 314;
	int src = weft_oneshot_send(a->o, &v);
	return (void *)(intptr_t)(src == 0 && join_rc(r) == WEFT_CANCELED);
}

Test(oneshot, cancelled_recv_consumes_nothing_retry_in_shield)
{
	weft_runtime *rt = test_runtime(1);
	cr_assert_not_null(rt);
	struct retry_arg a = {.o = weft_oneshot_new(sizeof(long)), .second_rc = 1};
	cr_assert_not_null(a.o);
	void *ok = NULL;
	cr_assert_eq(weft_block_on(rt, cancel_parked_receiver, &a, &ok), 0);
	cr_assert_eq((intptr_t)ok, 1);
	cr_assert_eq(a.first_rc, -ECANCELED);
	cr_assert_eq(a.second_rc, 0);
	cr_assert_eq(a.value, 314);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* The cancelled task gives up; the receiver role passes to a plain thread,
   which still finds the value. */
Test(oneshot, cancelled_recv_consumes_nothing_later_recv_elsewhere)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	struct rx_arg a = {.o = weft_oneshot_new(sizeof(long)), .rc = 1};
	cr_assert_not_null(a.o);
	weft_task *t = weft_spawn_on(rt, recv_long, &a);
	cr_assert_not_null(t);
	test_wait_flag(&a.waiting);
	test_sleep_ms(10);
	weft_cancel(t);
	cr_assert_eq(join_rc(t), WEFT_CANCELED);
	cr_assert_eq(a.rc, -ECANCELED);
	long v = 2718, got = 0;
	cr_assert_eq(weft_oneshot_send(a.o, &v), 0);
	cr_assert_eq(weft_oneshot_recv(a.o, &got), 0);
	cr_assert_eq(got, 2718);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* A cancel racing a send: the value is received at the first try or, after
   -ECANCELED, by the retry -- never lost. */
Test(oneshot, cancel_racing_send_never_loses_the_value)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_not_null(rt);
	long n = test_scale(20000), first_ok = 0, retried = 0;
	for (long i = 0; i < n; i++) {
		struct retry_arg a = {.o = weft_oneshot_new(sizeof(long)), .second_rc = 1};
		struct rx_arg s = {.o = a.o, .value = i + 1};
		cr_assert_not_null(a.o);
		weft_task *r = weft_spawn_on(rt, recv_retry_in_shield, &a);
		weft_task *w = weft_spawn_on(rt, send_long, &s);
		cr_assert(r && w);
		if (i % 2)
			test_wait_flag(&a.waiting);
		weft_cancel(r);
		void *src = (void *)-1;
		cr_assert_eq(weft_join(w, &src), 0);
		cr_assert_eq((intptr_t)src, 0);
		int jrc = join_rc(r);
		cr_assert(jrc == 0 || jrc == WEFT_CANCELED, "join: %d", jrc);
		if (a.first_rc == 0) {
			first_ok++;
		} else {
			cr_assert_eq(a.first_rc, -ECANCELED, "round %ld: recv %d", i, a.first_rc);
			cr_assert_eq(a.second_rc, 0, "round %ld: retry %d", i, a.second_rc);
			retried++;
		}
		cr_assert_eq(a.value, i + 1, "round %ld: value lost", i);
	}
	cr_log_info("cancel vs send: %ld received first, %ld after a retry", first_ok, retried);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(oneshot, bad_arguments)
{
	cr_assert_null(weft_oneshot_new(0));
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	cr_assert_not_null(o);
	long v = 8, got = 0;
	cr_assert_eq(weft_oneshot_send(NULL, &v), -EINVAL);
	cr_assert_eq(weft_oneshot_recv(NULL, &got), -EINVAL);
	cr_assert_eq(weft_oneshot_send(o, NULL), -EINVAL);
	cr_assert_eq(weft_oneshot_recv(o, NULL), -EINVAL);
	/* Neither side has left: the oneshot still works. */
	cr_assert_eq(weft_oneshot_send(o, &v), 0);
	cr_assert_eq(weft_oneshot_recv(o, &got), 0);
	cr_assert_eq(got, 8);
	assert_no_leaks();
}
