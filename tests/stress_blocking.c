/*
 * The blocking pool under load: plain threads and tasks spawn jobs at once
 * into a pool of at most 4 threads whose keep-alive is 1 ms, so threads keep
 * exiting and being started (and joined) while jobs are handed over and
 * queued. Each spawner joins, detaches, or cancels-then-joins its jobs at
 * random. Every job must run exactly once, every join must give the job's
 * own result (0 or WEFT_CANCELED), and no job may be left alive. Then a
 * second round shuts the runtime down while spawners are still at it.
 * A plain main() program (it runs under TSan too).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <weft.h>

#include "runtime/rt.h"
#include "tests/common.h"

#define THREADS 3
#define TASKS 4

static _Atomic uint8_t *ran;
static _Atomic long failures;
static long per_spawner;

static void fail(const char *what, long i)
{
	if (atomic_fetch_add(&failures, 1) < 5)
		fprintf(stderr, "stress_blocking: %s (job %ld)\n", what, i);
}

static void *job(void *arg)
{
	long i = (long)(intptr_t)arg;
	if (atomic_fetch_add(&ran[i], 1) != 0)
		fail("a job ran twice", i);
	if (i % 97 == 0)
		usleep(200); /* now and then a job that blocks a while */
	return arg;
}

static void check_join(weft_task *t, long i, bool may_be_cancelled)
{
	void *r;
	int rc = weft_join(t, &r);
	if (rc != 0 && !(may_be_cancelled && rc == WEFT_CANCELED))
		fail("a join failed", i);
	else if ((long)(intptr_t)r != i)
		fail("a join returned another job's result", i);
}

/* Spawns jobs first .. first + per_spawner - 1; rt NULL: the caller's. */
static void spawn_jobs(weft_runtime *rt, long first, uint64_t seed)
{
	weft_task *later[16];
	long later_i[16];
	int nlater = 0;
	for (long i = first; i < first + per_spawner; i++) {
		weft_task *t =
		        weft_spawn_blocking_at(rt, job, (void *)(intptr_t)i, __FILE__, __LINE__);
		if (!t) {
			fail("a spawn failed", i);
			atomic_store(&ran[i], 1);
			continue;
		}
		uint64_t r = test_rng_next(&seed);
		switch (r % 4) {
		case 0:
			check_join(t, i, false);
			break;
		case 1:
			weft_detach(t);
			break;
		case 2:
			weft_cancel(t);
			check_join(t, i, true);
			break;
		default:
			later[nlater] = t;
			later_i[nlater++] = i;
			if (nlater == 16) {
				for (int k = 0; k < nlater; k++)
					check_join(later[k], later_i[k], false);
				nlater = 0;
			}
		}
		if (r % 64 == 0)
			usleep((useconds_t)(r % 3000)); /* let idle threads expire */
	}
	for (int k = 0; k < nlater; k++)
		check_join(later[k], later_i[k], false);
}

struct spawner {
	weft_runtime *rt;
	long first;
};

static void *thread_spawner(void *arg)
{
	struct spawner *s = arg;
	spawn_jobs(s->rt, s->first, 0x9E3779B97F4A7C15ull ^ (uint64_t)s->first);
	return NULL;
}

static void *task_spawner(void *arg)
{
	struct spawner *s = arg;
	spawn_jobs(NULL, s->first, 0x2545F4914F6CDD1Dull ^ (uint64_t)s->first);
	return NULL;
}

static weft_runtime *churning_runtime(void)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	cfg.max_blocking_threads = 4;
	cfg.blocking_keepalive_ms = 1;
	return weft_runtime_new(&cfg);
}

static int load_round(void)
{
	weft_runtime *rt = churning_runtime();
	if (!rt)
		return 1;
	long total = per_spawner * (THREADS + TASKS);
	ran = calloc((size_t)total, sizeof *ran);
	struct spawner sp[THREADS + TASKS];
	pthread_t th[THREADS];
	weft_task *tk[TASKS];
	for (int i = 0; i < THREADS + TASKS; i++)
		sp[i] = (struct spawner){rt, i * per_spawner};
	for (int i = 0; i < TASKS; i++)
		tk[i] = weft_spawn_on(rt, task_spawner, &sp[THREADS + i]);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, thread_spawner, &sp[i]);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < TASKS; i++)
		if (!tk[i] || weft_join(tk[i], NULL) != 0)
			fail("a spawning task failed", -1);
	/* Detached jobs may still run: shutdown waits for them. */
	if (weft_runtime_shutdown(rt, 10000) != 0)
		fail("shutdown timed out", -1);
	for (long i = 0; i < total; i++)
		if (atomic_load(&ran[i]) != 1)
			fail("a job never ran", i);
	if (atomic_load(&rt->blocking.alive) != 0)
		fail("jobs left alive", -1);
	weft_runtime_free(rt);
	free(ran);
	return 0;
}

/* Spawners keep going while the runtime shuts down: every spawn either
   fails or gives a job that runs (with the cancellation flag set if it had
   not started), and shutdown returns 0. */
static _Atomic int refused;
static _Atomic long racing_ran;

static void *count_job(void *arg)
{
	atomic_fetch_add((_Atomic long *)arg, 1);
	return NULL;
}

static void *spawn_until_refused(void *arg)
{
	weft_runtime *rt = arg;
	for (long i = 0; i < 100000; i++) {
		weft_task *t = weft_spawn_blocking_on(rt, count_job, (void *)&racing_ran);
		if (!t) {
			atomic_store(&refused, 1);
			return NULL;
		}
		weft_detach(t);
	}
	return NULL;
}

static int shutdown_round(void)
{
	weft_runtime *rt = churning_runtime();
	if (!rt)
		return 1;
	static _Atomic long counted;
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, spawn_until_refused, rt);
	long before = 0;
	for (int i = 0; i < 200; i++) {
		weft_task *t = weft_spawn_blocking_on(rt, count_job, (void *)&counted);
		if (t) {
			before++;
			weft_detach(t);
		}
	}
	if (weft_runtime_shutdown(rt, 10000) != 0)
		fail("shutdown with spawners running timed out", -1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	if (atomic_load(&counted) != before)
		fail("accepted jobs were lost at shutdown", before - atomic_load(&counted));
	if (!atomic_load(&refused))
		fail("no spawn was refused after shutdown", -1);
	weft_runtime_free(rt);
	return 0;
}

int main(void)
{
	alarm(300);
	per_spawner = test_scale(4000);
	if (load_round() != 0 || shutdown_round() != 0)
		return 1;
	long f = atomic_load(&failures);
	if (f) {
		fprintf(stderr, "stress_blocking: %ld failures\n", f);
		return 1;
	}
	printf("stress_blocking: ok\n");
	return 0;
}
