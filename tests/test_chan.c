/*
 * weft_chan: FIFO order, bounded and unbounded capacity, try_ variants,
 * close (waiting senders get -EPIPE having sent nothing, receivers drain
 * then get -EPIPE), cancelled and timed-out sends and receives that take
 * no effect, plain threads on either side, a storm of expiring sends and
 * receives whose sums agree, FIFO per producer, and bad arguments; select
 * over channels and oneshot receives.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "tests/common.h"

#define MS 1000000ull
#define HANG_NS (10000 * MS)

TestSuite(chan, .timeout = 120);

static void wait_flag_thread(_Atomic int *flag)
{
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (!atomic_load(flag)) {
		cr_assert_lt(test_now_ns(), give_up, "hang");
		test_sleep_ms(1);
	}
}

Test(chan, bounded_try_send_and_try_recv_in_order_and_bad_arguments)
{
	cr_assert_null(weft_chan_new(4, 0));
	weft_chan *c = weft_chan_new(2, sizeof(int));
	cr_assert_not_null(c);
	int v = 1;
	cr_assert_eq(weft_chan_try_send(c, &v), 0);
	v = 2;
	cr_assert_eq(weft_chan_try_send(c, &v), 0);
	v = 3;
	cr_assert_eq(weft_chan_try_send(c, &v), -EAGAIN);
	cr_assert_eq(weft_chan_try_recv(c, &v), 0);
	cr_assert_eq(v, 1);
	cr_assert_eq(weft_chan_recv(c, &v), 0); /* a plain thread; does not wait */
	cr_assert_eq(v, 2);
	cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN);
	cr_assert_eq(weft_chan_send(NULL, &v), -EINVAL);
	cr_assert_eq(weft_chan_recv(c, NULL), -EINVAL);
	cr_assert_eq(weft_chan_try_send(c, NULL), -EINVAL);
	weft_chan_close(c);
	cr_assert_eq(weft_chan_try_send(c, &v), -EPIPE);
	cr_assert_eq(weft_chan_try_recv(c, &v), -EPIPE);
	weft_chan_free(c);
}

Test(chan, unbounded_grows_and_keeps_order)
{
	weft_chan *c = weft_chan_new(0, sizeof(long));
	long n = test_scale(100000);
	for (long i = 0; i < n; i++)
		cr_assert_eq(weft_chan_send(c, &i), 0);
	for (long i = 0; i < n; i++) {
		long v;
		cr_assert_eq(weft_chan_try_recv(c, &v), 0);
		cr_assert_eq(v, i);
	}
	weft_chan_free(c);
}

struct party {
	weft_chan *c;
	long v;
	int rc;
	_Atomic int waiting;
};

static void *send_one(void *arg)
{
	struct party *p = arg;
	atomic_store(&p->waiting, 1);
	p->rc = weft_chan_send(p->c, &p->v);
	return NULL;
}

static void *recv_one(void *arg)
{
	struct party *p = arg;
	atomic_store(&p->waiting, 1);
	p->rc = weft_chan_recv(p->c, &p->v);
	return NULL;
}

static void *recv_in_scope(void *arg)
{
	struct party *p = arg;
	weft_deadline d;
	weft_deadline_push(&d, 20);
	p->rc = weft_chan_recv(p->c, &p->v);
	weft_deadline_pop(&d);
	return NULL;
}

Test(chan, close_fails_waiting_senders_and_lets_receivers_drain)
{
	weft_runtime *rt = test_runtime(2);
	weft_chan *c = weft_chan_new(1, sizeof(long));
	long v = 10;
	cr_assert_eq(weft_chan_send(c, &v), 0);
	struct party s = {.c = c, .v = 11, .rc = 1};
	weft_task *ts = weft_spawn_on(rt, send_one, &s); /* full: waits */
	wait_flag_thread(&s.waiting);
	test_sleep_ms(20);
	weft_chan_close(c);
	cr_assert_eq(weft_join(ts, NULL), 0);
	cr_assert_eq(s.rc, -EPIPE);
	cr_assert_eq(weft_chan_recv(c, &v), 0);
	cr_assert_eq(v, 10, "the waiting sender's element got in after the close");
	cr_assert_eq(weft_chan_recv(c, &v), -EPIPE);
	weft_chan_free(c);

	/* Receivers waiting on an empty channel get -EPIPE at close. */
	c = weft_chan_new(4, sizeof(long));
	struct party r[3];
	weft_task *tr[3];
	for (int i = 0; i < 3; i++) {
		r[i] = (struct party){.c = c, .rc = 1};
		tr[i] = weft_spawn_on(rt, recv_one, &r[i]);
		wait_flag_thread(&r[i].waiting);
	}
	test_sleep_ms(20);
	weft_chan_close(c);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(weft_join(tr[i], NULL), 0);
		cr_assert_eq(r[i].rc, -EPIPE);
	}
	weft_chan_free(c);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(chan, a_cancelled_receive_consumes_nothing_and_a_cancelled_send_sends_nothing)
{
	weft_runtime *rt = test_runtime(2);
	weft_chan *c = weft_chan_new(2, sizeof(long));
	struct party r = {.c = c, .rc = 1};
	weft_task *tr = weft_spawn_on(rt, recv_one, &r);
	wait_flag_thread(&r.waiting);
	test_sleep_ms(20);
	weft_cancel(tr);
	cr_assert_eq(weft_join(tr, NULL), WEFT_CANCELED);
	cr_assert_eq(r.rc, -ECANCELED);
	long v = 42;
	cr_assert_eq(weft_chan_send(c, &v), 0);
	v = 0;
	cr_assert_eq(weft_chan_try_recv(c, &v), 0, "the cancelled receiver took the message");
	cr_assert_eq(v, 42);
	/* A deadline scope around a receive: -ETIMEDOUT, nothing taken. */
	r = (struct party){.c = c, .rc = 1};
	cr_assert_eq(weft_block_on(rt, recv_in_scope, &r, NULL), 0);
	cr_assert_eq(r.rc, -ETIMEDOUT);
	/* Full: a waiting sender cancelled has sent nothing. */
	v = 1;
	cr_assert_eq(weft_chan_send(c, &v), 0);
	v = 2;
	cr_assert_eq(weft_chan_send(c, &v), 0);
	struct party s = {.c = c, .v = 3, .rc = 1};
	weft_task *ts = weft_spawn_on(rt, send_one, &s);
	wait_flag_thread(&s.waiting);
	test_sleep_ms(20);
	weft_cancel(ts);
	cr_assert_eq(weft_join(ts, NULL), WEFT_CANCELED);
	cr_assert_eq(s.rc, -ECANCELED);
	cr_assert_eq(weft_chan_try_recv(c, &v), 0);
	cr_assert_eq(v, 1);
	cr_assert_eq(weft_chan_try_recv(c, &v), 0);
	cr_assert_eq(v, 2);
	cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN, "the cancelled sender's element got in");
	weft_chan_free(c);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ---------------------------------------- a storm of expiring operations */

#define PRODUCERS 4

struct storm {
	weft_chan *c;
	long per;
	_Atomic long sent_sum, sent_n, recv_sum, recv_n, order_errors;
	_Atomic int producing;
};

static void *storm_producer(void *arg)
{
	struct storm *s = arg;
	static _Atomic long ids;
	long id = atomic_fetch_add(&ids, 1) % PRODUCERS;
	uint64_t r = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
	for (long i = 0; i < s->per; i++) {
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		long v = id << 40 | i; /* producer and sequence number */
		weft_deadline d;
		weft_deadline_push(&d, r % 2);
		int rc = weft_chan_send(s->c, &v);
		weft_deadline_pop(&d);
		if (rc == 0) {
			atomic_fetch_add(&s->sent_sum, v);
			atomic_fetch_add(&s->sent_n, 1);
		}
	}
	if (atomic_fetch_sub(&s->producing, 1) == 1)
		weft_chan_close(s->c);
	return NULL;
}

static void *storm_consumer(void *arg)
{
	struct storm *s = arg;
	long last[PRODUCERS];
	for (int i = 0; i < PRODUCERS; i++)
		last[i] = -1;
	uint64_t r = 12345;
	for (;;) {
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		long v;
		weft_deadline d;
		weft_deadline_push(&d, r % 2);
		int rc = weft_chan_recv(s->c, &v);
		weft_deadline_pop(&d);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc)
			break; /* -EPIPE: closed and drained */
		long id = v >> 40, seq = v & ((1l << 40) - 1);
		if (id < 0 || id >= PRODUCERS || seq <= last[id])
			atomic_fetch_add(&s->order_errors, 1);
		else
			last[id] = seq;
		atomic_fetch_add(&s->recv_sum, v);
		atomic_fetch_add(&s->recv_n, 1);
	}
	return NULL;
}

Test(chan, expiring_sends_and_receives_lose_and_duplicate_nothing_and_keep_order)
{
	weft_runtime *rt = test_runtime(2);
	struct storm s = {.c = weft_chan_new(8, sizeof(long)), .per = test_scale(20000)};
	atomic_store(&s.producing, PRODUCERS);
	weft_task *t[PRODUCERS + 1];
	for (int i = 0; i < PRODUCERS; i++)
		t[i] = weft_spawn_on(rt, storm_producer, &s);
	t[PRODUCERS] = weft_spawn_on(rt, storm_consumer, &s);
	for (int i = 0; i <= PRODUCERS; i++)
		cr_assert_eq(weft_join(t[i], NULL), 0);
	cr_assert_eq(atomic_load(&s.recv_n), atomic_load(&s.sent_n));
	cr_assert_eq(atomic_load(&s.recv_sum), atomic_load(&s.sent_sum));
	cr_assert_eq(atomic_load(&s.order_errors), 0, "a producer's messages came out of order");
	cr_assert_lt(atomic_load(&s.sent_n), PRODUCERS * s.per, "no send expired: tested nothing");
	weft_chan_free(s.c);
	weft_runtime_free(rt);
	assert_no_leaks();
}

static void *thread_producer(void *arg)
{
	weft_chan *c = arg;
	for (long i = 0; i < 10000; i++)
		if (weft_chan_send(c, &i) != 0)
			return (void *)1;
	weft_chan_close(c);
	return NULL;
}

static void *sum_all(void *arg)
{
	weft_chan *c = arg;
	long v, sum = 0;
	while (weft_chan_recv(c, &v) == 0)
		sum += v;
	return (void *)(intptr_t)sum;
}

Test(chan, a_plain_thread_feeds_a_task)
{
	weft_runtime *rt = test_runtime(2);
	weft_chan *c = weft_chan_new(16, sizeof(long));
	weft_task *t = weft_spawn_on(rt, sum_all, c);
	pthread_t th;
	pthread_create(&th, NULL, thread_producer, c);
	void *prc;
	pthread_join(th, &prc);
	cr_assert_null(prc);
	void *sum;
	cr_assert_eq(weft_join(t, &sum), 0);
	cr_assert_eq((long)(intptr_t)sum, 10000l * 9999 / 2);
	weft_chan_free(c);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ----------------------------------------------------------------- select */

Test(chan, select_polls_takes_the_ready_case_and_times_out_at_once_with_timeout_zero)
{
	weft_chan *a = weft_chan_new(4, sizeof(long)), *b = weft_chan_new(4, sizeof(long));
	long va = 0, vb = 0, x = 7;
	cr_assert_eq(weft_chan_send(b, &x), 0);
	weft_select_case cs[2] = {{.kind = WEFT_SELECT_RECV, .chan = a, .elem = &va, .result = 1},
	                          {.kind = WEFT_SELECT_RECV, .chan = b, .elem = &vb, .result = 1}};
	cr_assert_eq(weft_select(cs, 2, 0), 1);
	cr_assert_eq(cs[1].result, 0);
	cr_assert_eq(vb, 7);
	cr_assert_eq(weft_select(cs, 2, 0), -ETIMEDOUT);
	cr_assert_eq(weft_select(cs, 0, 0), -EINVAL);
	cr_assert_eq(weft_select(NULL, 1, 0), -EINVAL);
	weft_select_case bad = {.kind = 99, .chan = a, .elem = &va, .result = 0};
	cr_assert_eq(weft_select(&bad, 1, 0), -EINVAL);
	weft_chan_free(a);
	weft_chan_free(b);
}

struct selector {
	weft_select_case cs[2];
	long va, vb;
	int64_t timeout_ms;
	int rc;
	_Atomic int waiting;
};

static void *select_task(void *arg)
{
	struct selector *s = arg;
	atomic_store(&s->waiting, 1);
	s->rc = weft_select(s->cs, 2, s->timeout_ms);
	return NULL;
}

static struct selector *two_receives(weft_chan *a, weft_chan *b, int64_t timeout_ms)
{
	struct selector *s = calloc(1, sizeof *s);
	s->cs[0] = (weft_select_case){
	        .kind = WEFT_SELECT_RECV, .chan = a, .elem = &s->va, .result = 1};
	s->cs[1] = (weft_select_case){
	        .kind = WEFT_SELECT_RECV, .chan = b, .elem = &s->vb, .result = 1};
	s->timeout_ms = timeout_ms;
	s->rc = 99;
	return s;
}

Test(chan, a_waiting_select_takes_one_message_and_leaves_the_other_channel_alone)
{
	weft_runtime *rt = test_runtime(2);
	weft_chan *a = weft_chan_new(4, sizeof(long)), *b = weft_chan_new(4, sizeof(long));
	struct selector *s = two_receives(a, b, -1);
	weft_task *t = weft_spawn_on(rt, select_task, s);
	wait_flag_thread(&s->waiting);
	test_sleep_ms(20);
	long x = 5;
	cr_assert_eq(weft_chan_send(b, &x), 0);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(s->rc, 1);
	cr_assert_eq(s->vb, 5);
	x = 6;
	cr_assert_eq(weft_chan_send(a, &x), 0);
	long y = 0;
	cr_assert_eq(weft_chan_try_recv(a, &y), 0, "the select's registration swallowed a message");
	cr_assert_eq(y, 6);
	free(s);
	weft_chan_free(a);
	weft_chan_free(b);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(chan, a_select_send_completes_when_room_is_made)
{
	weft_runtime *rt = test_runtime(2);
	weft_chan *full = weft_chan_new(1, sizeof(long)), *idle = weft_chan_new(1, sizeof(long));
	long first = 1, mine = 2, got = 0;
	cr_assert_eq(weft_chan_send(full, &first), 0);
	struct selector *s = calloc(1, sizeof *s);
	s->cs[0] = (weft_select_case){
	        .kind = WEFT_SELECT_RECV, .chan = idle, .elem = &s->va, .result = 1};
	s->cs[1] = (weft_select_case){
	        .kind = WEFT_SELECT_SEND, .chan = full, .elem = &mine, .result = 1};
	s->timeout_ms = -1;
	weft_task *t = weft_spawn_on(rt, select_task, s);
	wait_flag_thread(&s->waiting);
	test_sleep_ms(20);
	cr_assert_eq(weft_chan_recv(full, &got), 0);
	cr_assert_eq(got, 1);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(s->rc, 1);
	cr_assert_eq(s->cs[1].result, 0);
	cr_assert_eq(weft_chan_try_recv(full, &got), 0);
	cr_assert_eq(got, 2, "the selected send's element was not delivered");
	free(s);
	weft_chan_free(full);
	weft_chan_free(idle);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(chan, a_timed_out_or_cancelled_select_performs_nothing)
{
	weft_runtime *rt = test_runtime(2);
	weft_chan *a = weft_chan_new(4, sizeof(long)), *b = weft_chan_new(4, sizeof(long));
	struct selector *s = two_receives(a, b, 30);
	cr_assert_eq(weft_block_on(rt, select_task, s, NULL), 0);
	cr_assert_eq(s->rc, -ETIMEDOUT);
	free(s);
	s = two_receives(a, b, -1);
	weft_task *t = weft_spawn_on(rt, select_task, s);
	wait_flag_thread(&s->waiting);
	test_sleep_ms(20);
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(s->rc, -ECANCELED);
	long x = 9, y = 0;
	cr_assert_eq(weft_chan_send(a, &x), 0);
	cr_assert_eq(weft_chan_try_recv(a, &y), 0, "a cancelled select took the message");
	cr_assert_eq(y, 9);
	/* A plain thread's select times out too. */
	free(s);
	s = two_receives(a, b, 20);
	select_task(s);
	cr_assert_eq(s->rc, -ETIMEDOUT);
	free(s);
	weft_chan_free(a);
	weft_chan_free(b);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(chan, select_reports_a_closed_channel_and_starves_no_case)
{
	weft_chan *a = weft_chan_new(4, sizeof(long)), *b = weft_chan_new(4, sizeof(long));
	weft_chan_close(a);
	long va, vb;
	weft_select_case cs[2] = {{.kind = WEFT_SELECT_RECV, .chan = a, .elem = &va, .result = 1},
	                          {.kind = WEFT_SELECT_RECV, .chan = b, .elem = &vb, .result = 1}};
	cr_assert_eq(weft_select(cs, 2, -1), 0);
	cr_assert_eq(cs[0].result, -EPIPE);
	weft_chan_free(a);
	weft_chan_free(b);
	/* Both always ready: each is chosen about half the time. */
	a = weft_chan_new(0, sizeof(long));
	b = weft_chan_new(0, sizeof(long));
	long x = 1;
	for (int i = 0; i < 2000; i++) {
		weft_chan_send(a, &x);
		weft_chan_send(b, &x);
	}
	weft_select_case cs2[2] = {{.kind = WEFT_SELECT_RECV, .chan = a, .elem = &va, .result = 1},
	                           {.kind = WEFT_SELECT_RECV, .chan = b, .elem = &vb, .result = 1}};
	int picked[2] = {0, 0};
	for (int i = 0; i < 1000; i++) {
		int r = weft_select(cs2, 2, 0);
		cr_assert(r == 0 || r == 1);
		picked[r]++;
	}
	cr_assert_gt(picked[0], 200, "case 0 chosen %d times in 1000", picked[0]);
	cr_assert_gt(picked[1], 200, "case 1 chosen %d times in 1000", picked[1]);
	weft_chan_free(a);
	weft_chan_free(b);
}

/* ------------------------------------------------------- oneshot in select */

static struct selector *chan_or_oneshot(weft_chan *a, weft_oneshot *o, int64_t timeout_ms)
{
	struct selector *s = two_receives(a, a, timeout_ms);
	s->cs[1] = (weft_select_case){
	        .kind = WEFT_SELECT_ONESHOT, .oneshot = o, .elem = &s->vb, .result = 1};
	return s;
}

/* Spawns a select over (a, o) and returns once it has had time to park. */
static weft_task *parked_select(weft_runtime *rt, struct selector *s)
{
	weft_task *t = weft_spawn_on(rt, select_task, s);
	wait_flag_thread(&s->waiting);
	test_sleep_ms(20);
	return t;
}

Test(chan, select_receives_a_oneshot_value_or_its_close_and_the_receiver_leaves)
{
	weft_runtime *rt = test_runtime(2);
	weft_chan *a = weft_chan_new(4, sizeof(long));
	long x = 41, y = 0;
	/* Already sent: the poll takes it. */
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	cr_assert_eq(weft_oneshot_try_recv(o, &y), -EAGAIN);
	cr_assert_eq(weft_oneshot_send(o, &x), 0);
	struct selector *s = chan_or_oneshot(a, o, 0);
	select_task(s);
	cr_assert_eq(s->rc, 1);
	cr_assert_eq(s->cs[1].result, 0);
	cr_assert_eq(s->vb, 41);
	free(s);
	/* Sent while the select waits. */
	o = weft_oneshot_new(sizeof(long));
	s = chan_or_oneshot(a, o, -1);
	weft_task *t = parked_select(rt, s);
	x = 42;
	cr_assert_eq(weft_oneshot_send(o, &x), 0, "the select's receiver left early");
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(s->rc, 1);
	cr_assert_eq(s->cs[1].result, 0);
	cr_assert_eq(s->vb, 42);
	free(s);
	/* The sender leaves without sending while the select waits; and a
	   plain thread's select. */
	o = weft_oneshot_new(sizeof(long));
	s = chan_or_oneshot(a, o, -1);
	t = parked_select(rt, s);
	weft_oneshot_drop_sender(o);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(s->rc, 1);
	cr_assert_eq(s->cs[1].result, -EPIPE);
	free(s);
	o = weft_oneshot_new(sizeof(long));
	weft_oneshot_drop_sender(o);
	cr_assert_eq(weft_oneshot_try_recv(o, &y), -EPIPE);
	weft_chan_free(a);
	weft_runtime_free(rt);
	assert_no_leaks(); /* and ASan: every oneshot was freed */
}

Test(chan, a_oneshot_case_that_did_not_fire_stays_in_place)
{
	weft_runtime *rt = test_runtime(2);
	weft_chan *a = weft_chan_new(4, sizeof(long));
	long x = 5, y = 0;
	weft_oneshot *o = weft_oneshot_new(sizeof(long));
	/* The channel wins. */
	struct selector *s = chan_or_oneshot(a, o, -1);
	weft_task *t = parked_select(rt, s);
	cr_assert_eq(weft_chan_send(a, &x), 0);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(s->rc, 0);
	cr_assert_eq(s->va, 5);
	free(s);
	/* Timed out, then cancelled. */
	s = chan_or_oneshot(a, o, 20);
	cr_assert_eq(weft_block_on(rt, select_task, s, NULL), 0);
	cr_assert_eq(s->rc, -ETIMEDOUT);
	free(s);
	s = chan_or_oneshot(a, o, -1);
	t = parked_select(rt, s);
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(s->rc, -ECANCELED);
	free(s);
	/* The receiver is still there: the value is sent to it and received. */
	x = 6;
	cr_assert_eq(weft_oneshot_send(o, &x), 0, "a select that lost left the receiver");
	cr_assert_eq(weft_oneshot_recv(o, &y), 0);
	cr_assert_eq(y, 6);
	/* Bad cases: a NULL oneshot, one oneshot twice. */
	o = weft_oneshot_new(sizeof(long));
	weft_select_case bad[2] = {{.kind = WEFT_SELECT_ONESHOT, .oneshot = NULL, .elem = &y},
	                           {.kind = WEFT_SELECT_ONESHOT, .oneshot = o, .elem = &y}};
	cr_assert_eq(weft_select(bad, 2, 0), -EINVAL);
	bad[0].oneshot = o;
	cr_assert_eq(weft_select(bad, 2, 0), -EINVAL);
	cr_assert_eq(weft_select(&bad[1], 1, 0), -ETIMEDOUT);
	cr_assert_eq(weft_oneshot_try_recv(NULL, &y), -EINVAL);
	cr_assert_eq(weft_oneshot_try_recv(o, NULL), -EINVAL);
	weft_oneshot_drop_receiver(o);
	x = 7;
	cr_assert_eq(weft_oneshot_send(o, &x), -EPIPE);
	weft_chan_free(a);
	weft_runtime_free(rt);
	assert_no_leaks();
}

static void *recv_flag(void *arg)
{
	struct party *p = arg;
	atomic_store(&p->waiting, 1);
	p->rc = weft_chan_recv(p->c, &p->v);
	atomic_store(&p->waiting, 2);
	return NULL;
}

Test(chan, try_send_and_try_recv_wake_the_waiter_they_serve)
{
	weft_runtime *rt = test_runtime(2);
	weft_chan *c = weft_chan_new(1, sizeof(long));
	struct party r = {.c = c, .rc = 1};
	weft_task *t = weft_spawn_on(rt, recv_flag, &r);
	wait_flag_thread(&r.waiting);
	test_sleep_ms(20);
	long v = 77;
	cr_assert_eq(weft_chan_try_send(c, &v), 0); /* handed to the waiting receiver */
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (atomic_load(&r.waiting) != 2)
		cr_assert_lt(test_now_ns(), give_up, "try_send did not wake the receiver");
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(r.v, 77);
	/* A sender waiting on a full channel, served by try_recv. */
	cr_assert_eq(weft_chan_send(c, &v), 0);
	struct party s = {.c = c, .v = 78, .rc = 1};
	weft_task *ts = weft_spawn_on(rt, send_one, &s);
	wait_flag_thread(&s.waiting);
	test_sleep_ms(20);
	cr_assert_eq(weft_chan_try_recv(c, &v), 0);
	cr_assert_eq(weft_join(ts, NULL), 0);
	cr_assert_eq(s.rc, 0);
	cr_assert_eq(weft_chan_try_recv(c, &v), 0);
	cr_assert_eq(v, 78);
	weft_chan_free(c);
	weft_runtime_free(rt);
	assert_no_leaks();
}
