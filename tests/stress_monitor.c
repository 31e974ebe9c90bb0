/*
 * The stall monitor under load (a plain main() program, for TSan): hogs
 * that spin until the monitor reported them, a task blocked in a read,
 * and a churn of short tasks whose headers are recycled while the monitor
 * samples the workers. Every report must name a hog (spinning) or the
 * reader (blocked in read); the monitor's reads of running task headers
 * must not race with their reuse.
 */
#include <pthread.h>
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
	bool hog = !strcmp(r->name, "hog") && !r->blocked;
	bool reader = !strcmp(r->name, "reader") && r->blocked && !strcmp(r->syscall_name, "read");
	if (!hog && !reader && atomic_fetch_add(&bad_reports, 1) < 5)
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

static void *reader(void *arg)
{
	char c;
	return (void *)(intptr_t)read(*(int *)arg, &c, 1);
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
	/* At most 10 reports a minute get through: 8 hogs and the reader. */
	int rounds = 8;
	weft_spawn_opts hog_opts = {.name = "hog"}, reader_opts = {.name = "reader"};
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
	return 0;
}
