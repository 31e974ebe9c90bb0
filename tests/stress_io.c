/*
 * The readiness backend under load: tasks on two workers bounce messages
 * over socket pairs (each pair's ends waited on from different workers),
 * while other tasks cancel some of the waiters, close pairs under tasks
 * blocked on them, and new pairs reuse the closed numbers at once. Every
 * message that was sent must be received exactly once by a receiver that
 * was not cancelled or closed out, every call must return 0/a count or one
 * of -ECANCELED / -EBADF, and nothing may hang (the alarm fails the test).
 * A plain main() program (it runs under TSan too).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>

#include "tests/common.h"

static _Atomic long failures, bounced;

static void fail(const char *what, long v)
{
	if (atomic_fetch_add(&failures, 1) < 5)
		fprintf(stderr, "stress_io: %s (%ld)\n", what, v);
}

/* A pair of tasks ping-pong n messages; the echoer answers until EOF. */
struct pair {
	int sv[2];
	long n;
};

static void *echoer(void *arg)
{
	struct pair *p = arg;
	for (;;) {
		long v;
		ssize_t r = weft_recv(p->sv[1], &v, sizeof v, MSG_WAITALL);
		if (r == 0 || r == -EBADF || r == -ECONNRESET)
			break;
		if (r != sizeof v) {
			fail("echoer recv", (long)r);
			break;
		}
		if (weft_send_all(p->sv[1], &v, sizeof v) != sizeof v)
			break;
	}
	return NULL;
}

static void *pinger(void *arg)
{
	struct pair *p = arg;
	for (long i = 0; i < p->n; i++) {
		long v = i, back;
		if (weft_send_all(p->sv[0], &v, sizeof v) != sizeof v) {
			fail("pinger send", i);
			break;
		}
		ssize_t r = weft_recv(p->sv[0], &back, sizeof back, MSG_WAITALL);
		if (r != sizeof back || back != i) {
			fail("pinger recv", (long)r);
			break;
		}
		atomic_fetch_add(&bounced, 1);
		if (i % 16 == 0)
			weft_yield(); /* let the other worker take the echoer */
	}
	shutdown(p->sv[0], SHUT_WR);
	return NULL;
}

/* A waiter blocked in recv on a pair nobody writes to, to be cancelled or
   closed out. */
struct victim {
	int sv[2];
	_Atomic int waiting;
	ssize_t rc;
};

static void *victim_recv(void *arg)
{
	struct victim *v = arg;
	char c;
	atomic_store(&v->waiting, 1);
	v->rc = weft_recv(v->sv[1], &c, 1, 0);
	return NULL;
}

static void *round_task(void *arg)
{
	uint64_t seed = (uint64_t)(intptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
	enum { PAIRS = 8, VICTIMS = 8 };
	struct pair pairs[PAIRS];
	weft_task *tp[PAIRS][2];
	for (int i = 0; i < PAIRS; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		               pairs[i].sv)) {
			fail("socketpair", errno);
			return NULL;
		}
		pairs[i].n = test_scale(400);
		tp[i][0] = weft_spawn(pinger, &pairs[i]);
		tp[i][1] = weft_spawn(echoer, &pairs[i]);
	}
	struct victim v[VICTIMS];
	weft_task *tv[VICTIMS];
	for (int i = 0; i < VICTIMS; i++) {
		socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, v[i].sv); /* blocking fds */
		atomic_store(&v[i].waiting, 0);
		v[i].rc = 1;
		tv[i] = weft_spawn(victim_recv, &v[i]);
	}
	for (int i = 0; i < VICTIMS; i++) {
		while (!atomic_load(&v[i].waiting))
			weft_yield();
		if (test_rng_next(&seed) % 3)
			weft_yield(); /* sometimes before it parks */
		bool by_close = test_rng_next(&seed) & 1;
		if (by_close)
			weft_close(v[i].sv[1]);
		else
			weft_cancel(tv[i]);
		weft_join(tv[i], NULL);
		if (by_close ? v[i].rc != -EBADF : v[i].rc != -ECANCELED)
			fail(by_close ? "a recv closed out did not get -EBADF"
			              : "a cancelled recv did not get -ECANCELED",
			     (long)v[i].rc);
		if (!by_close)
			weft_close(v[i].sv[1]);
		weft_close(v[i].sv[0]);
	}
	for (int i = 0; i < PAIRS; i++) {
		weft_join(tp[i][0], NULL);
		weft_join(tp[i][1], NULL);
		weft_close(pairs[i].sv[0]);
		weft_close(pairs[i].sv[1]);
	}
	return NULL;
}

int main(void)
{
	alarm(300);
	weft_runtime *rt = test_runtime(2);
	if (!rt)
		return 1;
	enum { ROUNDS = 4, PARALLEL = 4 };
	long expect = 0;
	for (int r = 0; r < ROUNDS; r++) {
		weft_task *t[PARALLEL];
		for (int k = 0; k < PARALLEL; k++)
			t[k] = weft_spawn_on(rt, round_task, (void *)(intptr_t)(r * PARALLEL + k));
		for (int k = 0; k < PARALLEL; k++)
			weft_join(t[k], NULL);
		expect += PARALLEL * 8 * test_scale(400);
	}
	weft_runtime_free(rt);
	if (atomic_load(&bounced) != expect)
		fail("messages lost or duplicated", atomic_load(&bounced) - expect);
	long f = atomic_load(&failures);
	if (f) {
		fprintf(stderr, "stress_io: %ld failures\n", f);
		return 1;
	}
	printf("stress_io: ok (%ld round trips)\n", expect);
	return 0;
}
