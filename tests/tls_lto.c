/*
 * Thread-locals and errno across migrations, with the whole runtime compiled
 * into this program at -O3 -flto (see tests/CMakeLists.txt), so the compiler
 * is free to inline weft into the task code and to cache thread-local
 * addresses across calls that switch fibers -- exactly what must not break.
 *
 * Migration is forced, not hoped for: two pinned helper tasks sit on the two
 * worker threads, and the task under test asks them in turn to wake it. A
 * wake from a worker puts the woken task in that worker's LIFO slot, which
 * no one steals, so the task resumes on the waking helper's thread and
 * changes threads nearly every round (not all: when the helper answers
 * before the task has finished parking, the task is re-queued on its own
 * worker). After every wait it checks that:
 *   - weft_current() is still the task itself and weft_runtime_current() the
 *     runtime (the runtime's own thread-locals, read after a migration);
 *   - errno, set to a task-specific value before the wait, is that value
 *     after it (weft saves and restores errno per task);
 *   - it really migrated, in at least a fifth of the rounds (typically 95%).
 * A plain main() program.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft.h>

#include "tests/common.h"

struct helper {
	weft_oneshot *_Atomic request; /* where the next wake-up request goes */
	pthread_t thread;
	_Atomic int ready;
};

static weft_runtime *rt;
static struct helper helpers[2];
static _Atomic int holding; /* helper 0 occupies its worker: see start_helpers */
static _Atomic long failures, migrations;

/* errno and the thread through calls the optimizer cannot see into: the
   runtime restores the variable; whether user code caches its address across
   a wait is the user's affair (docs/guide.md). */
__attribute__((noinline, noipa)) static int *errno_addr(void)
{
	return &errno;
}

__attribute__((noinline, noipa)) static pthread_t self_thread(void)
{
	return pthread_self();
}

static void fail(const char *what, long round)
{
	if (atomic_fetch_add(&failures, 1) < 5)
		fprintf(stderr, "tls_lto: round %ld: %s\n", round, what);
}

/* Pinned: each request carries a oneshot to answer, from this thread. */
static void *helper_task(void *arg)
{
	struct helper *h = arg;
	h->thread = self_thread();
	if (h == &helpers[0]) {
		/* Keep this worker busy until helper 1 has started, so that it
		   can only start on the other one. */
		atomic_store(&holding, 1);
		uint64_t give_up = test_now_ns() + 10ull * 1000 * 1000 * 1000;
		while (!atomic_load(&helpers[1].ready) && test_now_ns() < give_up)
			;
		atomic_store(&holding, 0);
	}
	for (;;) {
		weft_oneshot *req = weft_oneshot_new(sizeof(weft_oneshot *));
		if (!req)
			abort();
		atomic_store(&h->request, req);
		atomic_store(&h->ready, 1);
		weft_oneshot *reply;
		if (weft_oneshot_recv(req, &reply) != 0)
			abort();
		if (!reply)
			return NULL; /* asked to stop */
		char v = 1;
		weft_oneshot_send(reply, &v);
	}
}

/* Asks helper h to wake us, and waits for it. */
static int woken_by(struct helper *h)
{
	weft_oneshot *req;
	while (!(req = atomic_exchange(&h->request, NULL)))
		weft_yield();
	weft_oneshot *reply = weft_oneshot_new(1);
	if (!reply)
		return -ENOMEM;
	weft_oneshot_send(req, &reply);
	char v;
	return weft_oneshot_recv(reply, &v);
}

static void *task(void *arg)
{
	long rounds = (long)(intptr_t)arg;
	weft_task *me = weft_current();
	pthread_t last = self_thread();
	for (long i = 0; i < rounds; i++) {
		struct helper *h = &helpers[i % 2];
		int mine = (int)(i % 100000 + 1);
		*errno_addr() = mine;
		if (woken_by(h) != 0)
			fail("wait failed", i);
		if (*errno_addr() != mine)
			fail("errno not restored", i);
		if (weft_current() != me || weft_runtime_current() != rt)
			fail("wrong current task or runtime", i);
		pthread_t now = self_thread();
		if (!pthread_equal(now, last))
			atomic_fetch_add(&migrations, 1);
		last = now;
	}
	return NULL;
}

/* Starts the two pinned helpers on different worker threads: helper 1 is
   spawned while helper 0 holds its worker without yielding, so only the
   other worker can run it (and a pinned task stays where it first ran).
   Leaving it to which sleeping worker a spawn wakes failed now and then:
   the idle list hands out the last worker to sleep, often helper 0's. */
static int start_helpers(weft_task **ts)
{
	weft_spawn_opts pinned = {.name = "helper", .pinned = true};
	if (!(ts[0] = weft_spawn_ex(rt, helper_task, &helpers[0], &pinned)))
		return -1;
	while (!atomic_load(&holding))
		test_sleep_ms(1);
	if (!(ts[1] = weft_spawn_ex(rt, helper_task, &helpers[1], &pinned)))
		return -1;
	for (int k = 0; k < 2; k++)
		while (!atomic_load(&helpers[k].ready))
			test_sleep_ms(1);
	return pthread_equal(helpers[0].thread, helpers[1].thread) ? -1 : 0;
}

static void stop_helper(struct helper *h, weft_task *t)
{
	weft_oneshot *req, *stop = NULL;
	while (!(req = atomic_exchange(&h->request, NULL)))
		test_sleep_ms(1);
	weft_oneshot_send(req, &stop);
	weft_join(t, NULL);
}

int main(void)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	rt = weft_runtime_new(&cfg);
	weft_task *ht[2];
	if (!rt || start_helpers(ht) != 0) {
		fprintf(stderr, "tls_lto: could not place helpers on two threads\n");
		return 1;
	}
	long rounds = test_scale(5000);
	weft_task *t = weft_spawn_on(rt, task, (void *)(intptr_t)rounds);
	if (!t || weft_join(t, NULL) != 0)
		return 1;
	stop_helper(&helpers[0], ht[0]);
	stop_helper(&helpers[1], ht[1]);
	weft_runtime_free(rt);
	long f = atomic_load(&failures), m = atomic_load(&migrations);
	printf("tls_lto: %ld rounds, %ld migrations, %ld failures\n", rounds, m, f);
	if (m < rounds / 5)
		fprintf(stderr, "tls_lto: too few migrations to prove anything\n");
	return f == 0 && m >= rounds / 5 ? 0 : 1;
}
