/*
 * The sync primitives under load on two workers and from plain threads:
 * a mutex-protected counter with expiring deadline scopes and cancelled
 * lockers (the count equals the successful locks, the mutex ends unlocked),
 * a semaphore whose permits are taken n at a time under expiring scopes
 * (every permit comes back: the full count can be taken at the end, and
 * never more are out than exist), oneshot replies raced against a noise
 * channel in selects with random timeouts (each reply exactly once),
 * channels freed by their consumer the moment it sees them closed, and
 * notify ping-pong between tasks and
 * threads, where a lost wake-up hangs (the alarm fails the test). A plain
 * main() program (it runs under TSan too).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <weft.h>

#include "tests/common.h"

static _Atomic long failures;

static void fail(const char *what, long v)
{
	if (atomic_fetch_add(&failures, 1) < 5)
		fprintf(stderr, "stress_sync: %s (%ld)\n", what, v);
}

static uint64_t next(uint64_t *r)
{
	*r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
	return *r;
}

/* ------------------------------------------------------------------ mutex */

static weft_mutex mtx = WEFT_MUTEX_INIT;
static uint64_t counter;
static _Atomic long locked_ok;
static long per_locker;

static void *locker(void *arg)
{
	uint64_t r = (uintptr_t)arg * 2654435761u + 1;
	for (long i = 0; i < per_locker; i++) {
		weft_deadline d;
		weft_deadline_push(&d, next(&r) % 2);
		int rc = weft_mutex_lock(&mtx);
		weft_deadline_pop(&d);
		if (rc == -ECANCELED)
			return NULL;
		if (rc == -ETIMEDOUT)
			continue;
		if (rc) {
			fail("lock", rc);
			return NULL;
		}
		counter++;
		if (next(&r) % 16 == 0)
			weft_yield(); /* parked while holding it */
		weft_mutex_unlock(&mtx);
		atomic_fetch_add(&locked_ok, 1);
	}
	return NULL;
}

/* -------------------------------------------------------------- semaphore */

#define PERMITS 5
static weft_sem sem;
static _Atomic long out_now;

static void *permit_user(void *arg)
{
	uint64_t r = (uintptr_t)arg * 40503u + 7;
	for (long i = 0; i < per_locker; i++) {
		uint64_t n = 1 + next(&r) % 3;
		weft_deadline d;
		weft_deadline_push(&d, next(&r) % 2);
		int rc = weft_sem_acquire(&sem, n);
		weft_deadline_pop(&d);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc) {
			fail("acquire", rc);
			return NULL;
		}
		if (atomic_fetch_add(&out_now, (long)n) + (long)n > PERMITS)
			fail("more permits out than exist", atomic_load(&out_now));
		if (next(&r) % 4 == 0)
			weft_yield();
		atomic_fetch_sub(&out_now, (long)n);
		weft_sem_release(&sem, n);
	}
	return NULL;
}

/* ----------------------------------------------------------------- rwlock */

static weft_rwlock rwl;
static uint64_t shared_value;
static _Atomic long reads_ok, writes_ok;

static void *rw_user(void *arg)
{
	uint64_t r = (uintptr_t)arg * 69069u + 3;
	for (long i = 0; i < per_locker / 4; i++) {
		bool write = next(&r) % 4 == 0;
		weft_deadline d;
		weft_deadline_push(&d, next(&r) % 2);
		int rc = write ? weft_rwlock_wrlock(&rwl) : weft_rwlock_rdlock(&rwl);
		weft_deadline_pop(&d);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc) {
			fail("rwlock", rc);
			return NULL;
		}
		uint64_t v = shared_value;
		if (next(&r) % 8 == 0)
			weft_yield();
		if (write) {
			shared_value = v + 1;
			atomic_fetch_add(&writes_ok, 1);
		} else {
			if (shared_value != v)
				fail("a writer ran beside a reader", (long)v);
			atomic_fetch_add(&reads_ok, 1);
		}
		weft_rwlock_unlock(&rwl);
	}
	return NULL;
}

/* ---------------------------------------------------------------- channel */

static weft_chan *chan;
static _Atomic long sent_sum, recv_sum, producers_left;

static void *chan_producer(void *arg)
{
	uint64_t r = (uintptr_t)arg * 2246822519u + 11;
	for (long i = 1; i <= per_locker / 2; i++) {
		weft_deadline d;
		weft_deadline_push(&d, next(&r) % 2);
		int rc = weft_chan_send(chan, &i);
		weft_deadline_pop(&d);
		if (rc == 0)
			atomic_fetch_add(&sent_sum, i);
		else if (rc != -ETIMEDOUT)
			fail("chan send", rc);
	}
	if (atomic_fetch_sub(&producers_left, 1) == 1)
		weft_chan_close(chan);
	return NULL;
}

static void *chan_consumer(void *arg)
{
	uint64_t r = (uintptr_t)arg * 3266489917u + 5;
	for (;;) {
		long v;
		weft_deadline d;
		weft_deadline_push(&d, next(&r) % 2);
		int rc = weft_chan_recv(chan, &v);
		weft_deadline_pop(&d);
		if (rc == -EPIPE)
			return NULL;
		if (rc == 0)
			atomic_fetch_add(&recv_sum, v);
		else if (rc != -ETIMEDOUT)
			fail("chan recv", rc);
	}
}

/* ----------------------------------------------------------------- select */

#define SEL_CHANS 3
static weft_chan *sel_chans[SEL_CHANS];
static _Atomic long sel_sent, sel_recv, sel_producers;

static void *select_producer(void *arg)
{
	uint64_t r = (uintptr_t)arg * 1103515245u + 17;
	for (long v = 1; v <= per_locker / 4; v++) {
		weft_select_case cs[SEL_CHANS];
		for (int i = 0; i < SEL_CHANS; i++)
			cs[i] = (weft_select_case){.kind = WEFT_SELECT_SEND,
			                           .chan = sel_chans[i],
			                           .elem = &v,
			                           .result = 1};
		int k;
		while ((k = weft_select(cs, SEL_CHANS, (int64_t)(next(&r) % 3) - 1)) == -ETIMEDOUT)
			;
		if (k < 0 || cs[k].result != 0) {
			fail("select send", k);
			break;
		}
		atomic_fetch_add(&sel_sent, v);
	}
	if (atomic_fetch_sub(&sel_producers, 1) == 1)
		for (int i = 0; i < SEL_CHANS; i++)
			weft_chan_close(sel_chans[i]);
	return NULL;
}

static void *select_consumer(void *arg)
{
	uint64_t r = (uintptr_t)arg * 1664525u + 3;
	long v[SEL_CHANS];
	weft_select_case cs[SEL_CHANS];
	size_t n = SEL_CHANS;
	for (int i = 0; i < SEL_CHANS; i++)
		cs[i] = (weft_select_case){
		        .kind = WEFT_SELECT_RECV, .chan = sel_chans[i], .elem = &v[i], .result = 1};
	while (n) {
		int k = weft_select(cs, n, (int64_t)(next(&r) % 3) - 1);
		if (k == -ETIMEDOUT)
			continue;
		if (k < 0) {
			fail("select recv", k);
			return NULL;
		}
		if (cs[k].result == -EPIPE) {
			cs[k] = cs[--n]; /* closed and drained: drop the case */
			continue;
		}
		atomic_fetch_add(&sel_recv, *(long *)cs[k].elem);
	}
	return NULL;
}

/* ------------------------------------------------- oneshot replies in select */

/* Requesters send (oneshot, v) to servers and select over the reply and a
   noise channel with random timeouts; servers reply v, or drop the sender
   for odd v. Every reply arrives exactly once with the right outcome, and
   every noise message is received exactly once (the rest drained at the
   end). */
struct request {
	weft_oneshot *reply;
	long v;
};
static weft_chan *requests, *noise;
static _Atomic long replies_ok, requesters_left, noise_sent, noise_recv;

static void *requester(void *arg)
{
	uint64_t r = (uintptr_t)arg * 2654435761u + 5;
	for (long v = 1; v <= per_locker / 8; v++) {
		struct request q = {weft_oneshot_new(sizeof(long)), v};
		if (weft_chan_send(requests, &q) != 0) {
			fail("request send", v);
			break;
		}
		long got = 0, n = 0;
		weft_select_case cs[2] = {
		        {.kind = WEFT_SELECT_ONESHOT, .oneshot = q.reply, .elem = &got},
		        {.kind = WEFT_SELECT_RECV, .chan = noise, .elem = &n}};
		int k;
		while ((k = weft_select(cs, 2, (int64_t)(next(&r) % 3) - 1)) != 0) {
			if (k == 1 && cs[1].result == 0)
				atomic_fetch_add(&noise_recv, n);
			else if (k != -ETIMEDOUT && !(k == 1 && cs[1].result == -EPIPE)) {
				fail("reply select", k);
				return NULL;
			}
		}
		if (v % 2 ? cs[0].result != -EPIPE : (cs[0].result != 0 || got != v))
			fail("wrong reply", v);
		else
			atomic_fetch_add(&replies_ok, 1);
	}
	if (atomic_fetch_sub(&requesters_left, 1) == 1)
		weft_chan_close(requests);
	return NULL;
}

static void *server(void *arg)
{
	(void)arg;
	struct request q;
	while (weft_chan_recv(requests, &q) == 0) {
		if (q.v % 3 == 0)
			weft_yield();
		if (q.v % 2)
			weft_oneshot_drop_sender(q.reply);
		else if (weft_oneshot_send(q.reply, &q.v) != 0)
			fail("reply send", q.v);
	}
	return NULL;
}

static void *noise_maker(void *arg)
{
	(void)arg;
	/* Finite: after it, a select that waits forever is woken by its
	   reply or never. */
	for (long v = 1; v <= per_locker / 4; v++) {
		if (weft_chan_send(noise, &v) != 0)
			break;
		atomic_fetch_add(&noise_sent, v);
		if (v % 4 == 0)
			weft_yield();
	}
	return NULL;
}

/* ------------------------------------------------- free as soon as closed */

/* The consumer frees the channel the moment it finds it closed and
   drained, while the producer that closed it may still be inside close
   (TSan flags close's late accesses if close is not done by then). */
struct closing_round {
	weft_chan *c;
	_Atomic long producing;
	_Atomic int freed;
};

static void *round_producer(void *arg)
{
	struct closing_round *r = arg;
	for (long v = 0; v < 64; v++)
		if (weft_chan_send(r->c, &v) != 0)
			fail("round send", v);
	if (atomic_fetch_sub(&r->producing, 1) == 1)
		weft_chan_close(r->c);
	return NULL;
}

static void *round_consumer(void *arg)
{
	struct closing_round *r = arg;
	long v, got = 0;
	while (weft_chan_recv(r->c, &v) == 0)
		got++;
	if (got != 128)
		fail("round lost messages", got);
	weft_chan_free(r->c);
	atomic_store(&r->freed, 1);
	return NULL;
}

static void free_on_close_rounds(weft_runtime *rt)
{
	for (int i = 0; i < 1500; i++) {
		struct closing_round r = {.c = weft_chan_new(4, sizeof(long)), .producing = 2};
		weft_task *t[3] = {weft_spawn_on(rt, round_producer, &r),
		                   weft_spawn_on(rt, round_producer, &r),
		                   weft_spawn_on(rt, round_consumer, &r)};
		for (int j = 0; j < 3; j++)
			weft_join(t[j], NULL);
		if (!atomic_load(&r.freed))
			fail("round not finished", i);
	}
}

/* ------------------------------------------------------------------ group */

static void *child_value(void *arg)
{
	if ((uintptr_t)arg % 3 == 0)
		weft_yield();
	return arg;
}

static void *group_rounds(void *arg)
{
	weft_runtime *rt = arg;
	for (long round = 0; round < test_scale(200); round++) {
		weft_group g;
		weft_group_init(&g, rt);
		long want = 0, got = 0, joined = 0;
		for (long i = 1; i <= 50; i++) {
			if (weft_group_spawn(&g, child_value, (void *)(intptr_t)i) == 0)
				want += i;
		}
		if (round % 2)
			weft_group_cancel_all(&g);
		void *r;
		int st;
		while ((st = weft_group_join_next(&g, &r)) != -ECHILD) {
			if (st != 0 && st != WEFT_CANCELED) {
				fail("group join_next", st);
				break;
			}
			got += (long)(intptr_t)r;
			joined++;
		}
		if (got != want || joined != 50)
			fail("group lost a child", joined);
		weft_group_destroy(&g);
	}
	return NULL;
}

/* ----------------------------------------------------------------- notify */

struct pp {
	weft_notify a, b;
	long rounds;
};

static void *ping(void *arg)
{
	struct pp *p = arg;
	for (long i = 0; i < p->rounds; i++) {
		weft_notify_one(&p->b);
		if (weft_notify_wait(&p->a) != 0)
			fail("ping wait", i);
	}
	return NULL;
}

static void *pong(void *arg)
{
	struct pp *p = arg;
	for (long i = 0; i < p->rounds; i++) {
		if (weft_notify_wait(&p->b) != 0)
			fail("pong wait", i);
		weft_notify_one(&p->a);
	}
	return NULL;
}

int main(void)
{
	alarm(240);
	weft_runtime *rt = test_runtime(2);
	per_locker = test_scale(20000);

	weft_task *t[12];
	for (int i = 0; i < 12; i++)
		t[i] = weft_spawn_on(rt, locker, (void *)(intptr_t)(i + 1));
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, locker, (void *)(intptr_t)(100 + i));
	for (int i = 0; i < 12; i += 4)
		weft_cancel(t[i]);
	for (int i = 0; i < 12; i++)
		weft_join(t[i], NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	if (counter != (uint64_t)atomic_load(&locked_ok))
		fail("counter differs from the successful locks", (long)counter);
	if (weft_mutex_trylock(&mtx) != 0)
		fail("the mutex was left locked", 0);
	else
		weft_mutex_unlock(&mtx);

	weft_sem_init(&sem, PERMITS);
	for (int i = 0; i < 12; i++)
		t[i] = weft_spawn_on(rt, permit_user, (void *)(intptr_t)(i + 1));
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, permit_user, (void *)(intptr_t)(100 + i));
	for (int i = 0; i < 12; i++)
		weft_join(t[i], NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	if (weft_sem_try_acquire(&sem, PERMITS) != 0)
		fail("permits were lost", 0);

	weft_rwlock_init(&rwl);
	for (int i = 0; i < 12; i++)
		t[i] = weft_spawn_on(rt, rw_user, (void *)(intptr_t)(i + 1));
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, rw_user, (void *)(intptr_t)(100 + i));
	for (int i = 0; i < 12; i++)
		weft_join(t[i], NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	if (shared_value != (uint64_t)atomic_load(&writes_ok))
		fail("writes lost", (long)shared_value);
	if (weft_rwlock_trywrlock(&rwl) != 0)
		fail("the rwlock was left held", 0);
	else
		weft_rwlock_unlock(&rwl);

	chan = weft_chan_new(4, sizeof(long));
	atomic_store(&producers_left, 4);
	for (int i = 0; i < 3; i++)
		t[i] = weft_spawn_on(rt, chan_producer, (void *)(intptr_t)(i + 1));
	t[3] = weft_spawn_on(rt, chan_consumer, (void *)(intptr_t)4);
	t[4] = weft_spawn_on(rt, chan_consumer, (void *)(intptr_t)5);
	pthread_create(&th[0], NULL, chan_producer, (void *)(intptr_t)6);
	pthread_create(&th[1], NULL, chan_consumer, (void *)(intptr_t)7);
	for (int i = 0; i < 5; i++)
		weft_join(t[i], NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	if (atomic_load(&sent_sum) != atomic_load(&recv_sum))
		fail("channel sums differ", atomic_load(&sent_sum) - atomic_load(&recv_sum));
	weft_chan_free(chan);

	for (int i = 0; i < SEL_CHANS; i++)
		sel_chans[i] = weft_chan_new(2, sizeof(long));
	atomic_store(&sel_producers, 3);
	for (int i = 0; i < 2; i++)
		t[i] = weft_spawn_on(rt, select_producer, (void *)(intptr_t)(i + 1));
	for (int i = 2; i < 4; i++)
		t[i] = weft_spawn_on(rt, select_consumer, (void *)(intptr_t)(i + 1));
	t[4] = weft_spawn_on(rt, select_producer, (void *)(intptr_t)8);
	t[5] = weft_spawn_on(rt, select_consumer, (void *)(intptr_t)9);
	for (int i = 0; i < 6; i++)
		weft_join(t[i], NULL);
	if (atomic_load(&sel_sent) != atomic_load(&sel_recv))
		fail("select sums differ", atomic_load(&sel_sent) - atomic_load(&sel_recv));
	for (int i = 0; i < SEL_CHANS; i++)
		weft_chan_free(sel_chans[i]);

	requests = weft_chan_new(8, sizeof(struct request));
	noise = weft_chan_new(4, sizeof(long));
	atomic_store(&requesters_left, 4);
	weft_task *nm = weft_spawn_on(rt, noise_maker, NULL);
	for (int i = 0; i < 3; i++)
		t[i] = weft_spawn_on(rt, requester, (void *)(intptr_t)(i + 1));
	for (int i = 3; i < 5; i++)
		t[i] = weft_spawn_on(rt, server, NULL);
	pthread_create(&th[0], NULL, requester, (void *)(intptr_t)9);
	pthread_create(&th[1], NULL, server, NULL);
	for (int i = 0; i < 5; i++)
		weft_join(t[i], NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	weft_chan_close(noise);
	weft_join(nm, NULL);
	for (long n; weft_chan_try_recv(noise, &n) == 0;)
		atomic_fetch_add(&noise_recv, n);
	if (atomic_load(&replies_ok) != 4 * (per_locker / 8))
		fail("replies lost", 4 * (per_locker / 8) - atomic_load(&replies_ok));
	if (atomic_load(&noise_sent) != atomic_load(&noise_recv))
		fail("noise sums differ", atomic_load(&noise_sent) - atomic_load(&noise_recv));
	weft_chan_free(requests);
	weft_chan_free(noise);

	free_on_close_rounds(rt);

	weft_task *gt = weft_spawn_on(rt, group_rounds, rt);
	group_rounds(rt); /* from this plain thread meanwhile */
	weft_join(gt, NULL);

	struct pp p = {.rounds = test_scale(20000)};
	weft_notify_init(&p.a);
	weft_notify_init(&p.b);
	weft_task *a = weft_spawn_on(rt, ping, &p);
	weft_task *b = weft_spawn_on(rt, pong, &p);
	weft_join(a, NULL);
	weft_join(b, NULL);
	/* Again with a plain thread on one side. */
	pthread_t pt;
	pthread_create(&pt, NULL, ping, &p);
	b = weft_spawn_on(rt, pong, &p);
	pthread_join(pt, NULL);
	weft_join(b, NULL);

	weft_runtime_free(rt);
	long f = atomic_load(&failures);
	if (f) {
		fprintf(stderr, "stress_sync: %ld failures\n", f);
		return 1;
	}
	printf("stress_sync: %ld locks, semaphore and notify ping-pong consistent\n",
	       atomic_load(&locked_ok));
	return 0;
}
