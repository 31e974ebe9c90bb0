/*
 * Metrics: counts stay consistent while tasks run and park (spawned =
 * completed + alive), the per-worker numbers add up to the runtime's, the
 * timer, I/O and blocking pool counters move with the work that should
 * move them, bad arguments get -EINVAL, and the Prometheus output parses
 * (a small parser below: HELP and TYPE before each family's samples, one
 * sample per worker for per-worker families, values equal to the API's).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/common.h"

TestSuite(metrics, .timeout = 60);

static weft_notify gate;
static _Atomic int parked;

static void *child(void *arg)
{
	(void)arg;
	return NULL;
}

static void *parent(void *arg)
{
	(void)arg;
	weft_task *a = weft_spawn(child, NULL), *b = weft_spawn(child, NULL);
	weft_join(a, NULL);
	weft_join(b, NULL);
	return NULL;
}

static void *waiter(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parked, 1);
	weft_notify_wait(&gate);
	return NULL;
}

Test(metrics, spawned_equals_completed_plus_alive_and_workers_add_up)
{
	weft_runtime *rt = test_runtime(2);
	weft_notify_init(&gate);
	weft_task *w[10];
	for (int i = 0; i < 10; i++)
		w[i] = weft_spawn_on(rt, waiter, NULL);
	weft_task *p[50];
	for (int i = 0; i < 50; i++)
		p[i] = weft_spawn_on(rt, parent, NULL);
	for (int i = 0; i < 50; i++)
		weft_join(p[i], NULL);
	while (atomic_load(&parked) < 10)
		test_sleep_ms(1);
	weft_metrics m;
	cr_assert_eq(weft_metrics_get(rt, &m), 0);
	cr_assert_eq(m.workers, 2);
	cr_assert_eq(m.tasks_spawned, m.tasks_completed + m.tasks_alive);
	cr_assert_geq(m.tasks_spawned, 160);
	cr_assert_geq(m.tasks_alive, 10, "the 10 parked waiters are alive");
	uint64_t runs = 0, spawned = 0;
	for (unsigned i = 0; i < m.workers + m.spares; i++) {
		weft_worker_metrics wm;
		cr_assert_eq(weft_metrics_worker(rt, i, &wm), 0);
		cr_assert_leq(wm.lifo_hits, wm.runs);
		cr_assert_leq(wm.steals, wm.stolen_tasks);
		runs += wm.runs;
		spawned += wm.spawned;
	}
	cr_assert_geq(runs, 160);
	cr_assert_geq(spawned, 100, "the children were spawned from tasks");
	weft_notify_all(&gate);
	for (int i = 0; i < 10; i++)
		weft_join(w[i], NULL);
	cr_assert_eq(weft_metrics_get(rt, &m), 0);
	cr_assert_eq(m.tasks_alive, 0);
	cr_assert_eq(m.tasks_spawned, m.tasks_completed);
	weft_runtime_free(rt);
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (int i = 0; i < 20; i++)
		weft_sleep_ms(1);
	return NULL;
}

static void *reader(void *arg)
{
	int fd = *(int *)arg;
	char buf[8];
	long total = 0;
	for (int i = 0; i < 10; i++)
		total += weft_recv(fd, buf, 1, 0);
	return (void *)(intptr_t)total;
}

static _Atomic int job_go, job_running;

static void *job(void *arg)
{
	(void)arg;
	atomic_store(&job_running, 1);
	while (!atomic_load(&job_go))
		test_sleep_ms(1);
	return NULL;
}

static uint64_t worker_sum(weft_runtime *rt, size_t offset)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < 2; i++) {
		weft_worker_metrics wm;
		weft_metrics_worker(rt, i, &wm);
		uint64_t v;
		memcpy(&v, (char *)&wm + offset, sizeof v);
		sum += v;
	}
	return sum;
}

Test(metrics, timers_io_and_the_blocking_pool_are_counted)
{
	weft_runtime *rt = test_runtime(2);
	cr_assert_eq(weft_block_on(rt, sleeper, NULL, NULL), 0);
	cr_assert_geq(worker_sum(rt, offsetof(weft_worker_metrics, timers_armed)), 20);
	cr_assert_geq(worker_sum(rt, offsetof(weft_worker_metrics, timers_fired)), 20);

	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint64_t before = worker_sum(rt, offsetof(weft_worker_metrics, io_completed));
	weft_task *r = weft_spawn_on(rt, reader, &sv[0]);
	for (int i = 0; i < 10; i++) {
		test_sleep_ms(2); /* the reader waits before each byte arrives */
		cr_assert_eq(write(sv[1], "x", 1), 1);
	}
	void *got;
	cr_assert_eq(weft_join(r, &got), 0);
	cr_assert_eq((intptr_t)got, 10);
	cr_assert_geq(worker_sum(rt, offsetof(weft_worker_metrics, io_completed)), before + 1,
	              "waiting receives completed without a count");
	close(sv[0]);
	close(sv[1]);

	weft_task *j = weft_spawn_blocking_on(rt, job, NULL);
	while (!atomic_load(&job_running))
		test_sleep_ms(1);
	weft_metrics m;
	weft_metrics_get(rt, &m);
	cr_assert_geq(m.blocking_threads, 1);
	cr_assert_geq(m.blocking_busy, 1);
	atomic_store(&job_go, 1);
	cr_assert_eq(weft_join(j, NULL), 0);
	weft_runtime_free(rt);
}

/* A plain thread that spawns while the injector is deep yields its CPU to
   the workers every 64 spawns past 1,024 queued. The only worker spins in
   a task meanwhile (hand-offs off, so no spare takes the queue), so every
   spawn stays queued and the count is exact. */
#define DEEP_SPAWNS 5000

static _Atomic int spinning, release_spinner;

static void *spin_until_released(void *arg)
{
	(void)arg;
	atomic_store(&spinning, 1);
	while (!atomic_load(&release_spinner))
		;
	return NULL;
}

Test(metrics, a_plain_thread_spawning_into_a_deep_injector_backs_off)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 1;
	cfg.handoff_ms = WEFT_DISABLED;
	cfg.stall_threshold_ms = 60000;
	weft_runtime *rt = weft_runtime_new(&cfg);
	cr_assert_not_null(rt);
	weft_task *s = weft_spawn_on(rt, spin_until_released, NULL);
	while (!atomic_load(&spinning))
		test_sleep_ms(1);
	static weft_task *t[DEEP_SPAWNS];
	for (int i = 0; i < DEEP_SPAWNS; i++)
		cr_assert_not_null(t[i] = weft_spawn_on(rt, child, NULL));
	weft_metrics m;
	weft_metrics_get(rt, &m);
	cr_assert_eq(m.injector_depth, DEEP_SPAWNS);
	/* Spawn k leaves k queued: spawns 1,025 .. 5,000 count, one in 64 yields. */
	cr_assert_eq(m.spawn_backoffs, (DEEP_SPAWNS - 1024) / 64, "%llu back-offs",
	             (unsigned long long)m.spawn_backoffs);
	atomic_store(&release_spinner, 1);
	cr_assert_eq(weft_join(s, NULL), 0);
	for (int i = 0; i < DEEP_SPAWNS; i++)
		cr_assert_eq(weft_join(t[i], NULL), 0);
	weft_runtime_free(rt);
}

Test(metrics, bad_arguments)
{
	weft_runtime *rt = test_runtime(1);
	weft_metrics m;
	weft_worker_metrics wm;
	cr_assert_eq(weft_metrics_get(NULL, &m), -EINVAL);
	cr_assert_eq(weft_metrics_get(rt, NULL), -EINVAL);
	cr_assert_eq(weft_metrics_get(rt, &m), 0);
	cr_assert_eq(m.spares, 1, "the monitor is on: one spare");
	cr_assert_eq(weft_metrics_worker(rt, 1, &wm), 0, "the spare's");
	cr_assert_eq(weft_metrics_worker(rt, 2, &wm), -EINVAL);
	cr_assert_eq(weft_metrics_worker(rt, 0, NULL), -EINVAL);
	cr_assert_eq(weft_metrics_prometheus(NULL, 1), -EINVAL);
	cr_assert_eq(weft_metrics_prometheus(rt, -1), -EINVAL);
	weft_runtime_free(rt);
}

/* ------------------------------------------------------ Prometheus parser */

struct family {
	char name[64];
	bool help, type;
	int samples;
};

/* Parses Prometheus text: every sample's family had HELP and TYPE first;
   returns the number of families, fills fams; *value gets the value of the
   unlabelled sample `want` (or stays). Fails the test on a bad line. */
static int parse(char *text, struct family *fams, int cap, const char *want, uint64_t *value)
{
	int n = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char name[64];
		if (!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7)) {
			cr_assert_eq(sscanf(line + 7, "%63s", name), 1, "bad line: %s", line);
			if (n == 0 || strcmp(fams[n - 1].name, name)) {
				cr_assert_lt(n, cap);
				memset(&fams[n], 0, sizeof fams[n]);
				snprintf(fams[n].name, sizeof fams[n].name, "%s", name);
				n++;
			}
			if (line[2] == 'H')
				fams[n - 1].help = true;
			else
				cr_assert(strstr(line, " counter") || strstr(line, " gauge"), "%s",
				          line);
			if (line[2] == 'T')
				fams[n - 1].type = true;
			continue;
		}
		cr_assert_neq(line[0], '#', "unknown comment: %s", line);
		unsigned long long v;
		unsigned worker;
		char tail;
		if (sscanf(line, "%63[a-z_]{worker=\"%u\"} %llu%c", name, &worker, &v, &tail) ==
		    3) {
		} else {
			cr_assert_eq(sscanf(line, "%63[a-z_] %llu%c", name, &v, &tail), 2,
			             "bad sample: %s", line);
			if (!strcmp(name, want))
				*value = v;
		}
		cr_assert_gt(n, 0);
		cr_assert_str_eq(name, fams[n - 1].name, "sample outside its family: %s", line);
		cr_assert(fams[n - 1].help && fams[n - 1].type, "no HELP/TYPE before %s", line);
		fams[n - 1].samples++;
	}
	return n;
}

Test(metrics, prometheus_output_parses_and_agrees_with_the_api)
{
	weft_runtime *rt = test_runtime(2);
	for (int i = 0; i < 5; i++)
		weft_block_on(rt, parent, NULL, NULL);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(weft_metrics_prometheus(rt, p[1]), 0);
	close(p[1]);
	static char text[65536];
	size_t len = 0;
	ssize_t k;
	while ((k = read(p[0], text + len, sizeof text - 1 - len)) > 0)
		len += (size_t)k;
	close(p[0]);
	text[len] = '\0';
	weft_metrics m;
	weft_metrics_get(rt, &m);
	struct family fams[64];
	uint64_t spawned = 0;
	int n = parse(text, fams, 64, "weft_tasks_spawned_total", &spawned);
	cr_assert_geq(n, 20);
	cr_assert_eq(spawned, m.tasks_spawned);
	for (int i = 0; i < n; i++)
		cr_assert_eq(
		        fams[i].samples,
		        strncmp(fams[i].name, "weft_worker_", 12) ? 1 : (int)(m.workers + m.spares),
		        "%s has %d samples", fams[i].name, fams[i].samples);
	weft_runtime_free(rt);
}
