/*
 * The stall monitor under load (a plain main() program, for TSan): hogs
 * that spin until the monitor reported them, a task blocked in a read,
 * and a churn of short tasks whose headers are recycled while the monitor
 * samples the workers. Every report of a spinning task must name a hog,
 * of a blocked one the reader in its read (or a task held on a lock); the monitor's reads of
 * running task headers must not race with their reuse; a plain thread writes task dumps and reads
 * the metrics all the while.
 *
 * Then the hand-off, on one worker: a hog that never switches spawns tasks
 * one after another (each into its LIFO slot, displacing the one before
 * into its local queue) while the monitor freezes and empties the slot and
 * the spare steals the queue. Every task must run exactly once, and the
 * hog spins until all of its tasks ran -- possible only on the spare.
 * Repeated, so that hand-offs start and end many times.
 */
#include <pthread.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <weft.h>

#include "tests/common.h"

#define ESCAPE_NS (10000ull * 1000000ull)

static _Atomic long reports, bad_reports, escapes;

static void on_stall(const weft_stall_report *r, void *arg)
{
	(void)arg;
	/* Spinning: only hogs spin. Blocked: the reader in its read, or any
	   task but a hog held on a lock longer than the threshold -- which
	   happens under TSan's slowdown, and is a stall too. */
	bool hog = !strcmp(r->name, "hog") && !r->blocked;
	/* (The call's name is test_monitor's business: under qemu-user, the
	   cross build's CI, /proc shows the emulator's host call numbers.) */
	bool reader = !strcmp(r->name, "reader") && r->blocked;
	bool held = r->blocked && strcmp(r->name, "hog");
	if (!hog && !reader && !held && atomic_fetch_add(&bad_reports, 1) < 5)
		fprintf(stderr, "stress_monitor: unexpected report: \"%s\" blocked=%d in %s\n",
		        r->name, r->blocked, r->syscall_name);
	atomic_fetch_add(&reports, 1);
}

static void *hog(void *arg)
{
	(void)arg;
	long seen = atomic_load(&reports);
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	while (atomic_load(&reports) == seen)
		if (test_now_ns() > give_up) {
			atomic_fetch_add(&escapes, 1);
			break;
		}
	return NULL;
}

static void *short_task(void *arg)
{
	for (uintptr_t i = 0; i < (uintptr_t)arg % 4; i++)
		weft_yield();
	return NULL;
}

static void *churn(void *arg)
{
	(void)arg;
	weft_task *t[32];
	for (int round = 0; round < (int)test_scale(40); round++) {
		for (int i = 0; i < 32; i++)
			t[i] = weft_spawn(short_task, (void *)(uintptr_t)i);
		for (int i = 0; i < 32; i++)
			weft_join(t[i], NULL);
	}
	return NULL;
}

static _Atomic int dumping = 1;

static void *dumper(void *arg)
{
	weft_runtime *rt = arg;
	int fd = open("/dev/null", O_WRONLY);
	while (atomic_load(&dumping)) {
		weft_dump_tasks(rt, fd);
		weft_metrics m;
		weft_metrics_get(rt, &m);
		if (m.tasks_spawned < m.tasks_completed)
			atomic_fetch_add(&bad_reports, 1);
		test_sleep_ms(1);
	}
	close(fd);
	return NULL;
}

static void *reader(void *arg)
{
	char c;
	return (void *)(intptr_t)read(*(int *)arg, &c, 1);
}

#define HANDOFF_TASKS 1000

static _Atomic int ran_count[HANDOFF_TASKS];
static _Atomic long ran_total, double_runs;

static void *counted(void *arg)
{
	if (atomic_fetch_add(&ran_count[(uintptr_t)arg], 1) != 0)
		atomic_fetch_add(&double_runs, 1);
	atomic_fetch_add(&ran_total, 1);
	return NULL;
}

static void *spawning_hog(void *arg)
{
	(void)arg;
	long want = atomic_load(&ran_total) + HANDOFF_TASKS;
	for (uintptr_t i = 0; i < HANDOFF_TASKS; i++) {
		weft_detach(weft_spawn(counted, (void *)i));
		uint64_t until = test_now_ns() + 20000; /* 20 us between spawns */
		while (test_now_ns() < until)
			;
	}
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	while (atomic_load(&ran_total) < want)
		if (test_now_ns() > give_up) {
			atomic_fetch_add(&escapes, 1);
			break;
		}
	return NULL;
}

/* 0 if every round's tasks ran exactly once while their spawner spun. */
static int hand_off_rounds(void)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 1;
	cfg.stall_threshold_ms = 60000; /* hand-offs only, no reports */
	weft_runtime *rt = weft_runtime_new(&cfg);
	int rounds = (int)test_scale(8);
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < HANDOFF_TASKS; i++)
			atomic_store(&ran_count[i], 0);
		weft_block_on(rt, spawning_hog, NULL, NULL);
	}
	weft_metrics m;
	weft_metrics_get(rt, &m);
	weft_runtime_free(rt);
	long e = atomic_load(&escapes), d = atomic_load(&double_runs);
	if (e || d || m.handoffs == 0) {
		fprintf(stderr,
		        "stress_monitor: hand-off: %ld hogs escaped, %ld tasks ran twice, "
		        "%llu hand-offs\n",
		        e, d, (unsigned long long)m.handoffs);
		return 1;
	}
	printf("stress_monitor: hand-off: %d rounds of %d tasks, %llu hand-offs\n", rounds,
	       HANDOFF_TASKS, (unsigned long long)m.handoffs);
	return 0;
}

int main(void)
{
	alarm(240);
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	cfg.stall_threshold_ms = 5;
	cfg.stall_handler = on_stall;
	weft_runtime *rt = weft_runtime_new(&cfg);
	/* At most 10 reports a minute get through: 6 hogs and the reader,
	   with room for a few lock-held reports under TSan. */
	int rounds = 6;
	weft_spawn_opts hog_opts = {.name = "hog"}, reader_opts = {.name = "reader"};
	pthread_t dt;
	pthread_create(&dt, NULL, dumper, rt);
	for (int i = 0; i < rounds; i++) {
		weft_task *c = weft_spawn_on(rt, churn, NULL);
		weft_task *h = weft_spawn_ex(rt, hog, NULL, &hog_opts);
		for (int j = 0; j < 16; j++)
			weft_detach(weft_spawn_on(rt, short_task, (void *)(uintptr_t)j));
		weft_join(h, NULL);
		weft_join(c, NULL);
	}
	int p[2];
	if (pipe(p) != 0)
		return 1;
	long before = atomic_load(&reports);
	weft_task *r = weft_spawn_ex(rt, reader, &p[0], &reader_opts);
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	while (atomic_load(&reports) == before && test_now_ns() < give_up)
		test_sleep_ms(1);
	if (write(p[1], "x", 1) != 1)
		return 1;
	void *got;
	weft_join(r, &got);
	atomic_store(&dumping, 0);
	pthread_join(dt, NULL);
	weft_runtime_free(rt);
	close(p[0]);
	close(p[1]);
	long e = atomic_load(&escapes), b = atomic_load(&bad_reports);
	if (e || b || (intptr_t)got != 1 || atomic_load(&reports) == before) {
		fprintf(stderr,
		        "stress_monitor: %ld hogs never reported, %ld bad reports, read %ld\n", e,
		        b, (long)(intptr_t)got);
		return 1;
	}
	printf("stress_monitor: %ld reports, all of hogs or the reader\n", atomic_load(&reports));
	return hand_off_rounds();
}
