/*
 * Lateness probes, shared by weft-bench's starvation workload and
 * weft-stress: n tasks loop sleep-until(now + interval) until `end`,
 * recording for each wake-up when it was due (us from t0) and how late it
 * came (ns). Then percentiles over all wake-ups, or those due in a window.
 */
#ifndef WEFT_BENCHES_LATENESS_H
#define WEFT_BENCHES_LATENESS_H

#include <stdint.h>
#include <stdlib.h>

#include <weft.h>

struct probe_arg {
	struct probes *p;
	long i;
};

struct probes {
	uint64_t t0, end, interval_ns;
	long n, cap;
	uint64_t *at_us, *lat_ns; /* cap samples per probe */
	long *count;
	weft_task **tasks;
	struct probe_arg *args;
};

static void *probe_loop(void *arg)
{
	struct probe_arg *a = arg;
	struct probes *p = a->p;
	long i = a->i;
	for (;;) {
		uint64_t deadline = weft_now_ns() + p->interval_ns;
		if (deadline > p->end || p->count[i] == p->cap)
			break;
		weft_sleep_until_ns(deadline);
		uint64_t now = weft_now_ns();
		long k = p->count[i]++;
		p->at_us[i * p->cap + k] = (deadline - p->t0) / 1000;
		p->lat_ns[i * p->cap + k] = now > deadline ? now - deadline : 0;
	}
	return NULL;
}

/* Spawns n probes on rt from t0 until t0 + duration_ns; 0, or -1 when
   out of memory. */
static int probes_start(struct probes *p, weft_runtime *rt, long n, uint64_t interval_ns,
                        uint64_t t0, uint64_t duration_ns)
{
	p->t0 = t0;
	p->end = t0 + duration_ns;
	p->interval_ns = interval_ns;
	p->n = n;
	p->cap = (long)(duration_ns / (interval_ns ? interval_ns : 1)) + 2;
	p->at_us = calloc((size_t)(n * p->cap), sizeof *p->at_us);
	p->lat_ns = calloc((size_t)(n * p->cap), sizeof *p->lat_ns);
	p->count = calloc((size_t)n, sizeof *p->count);
	p->tasks = calloc((size_t)n, sizeof *p->tasks);
	p->args = calloc((size_t)n, sizeof *p->args);
	if (!p->at_us || !p->lat_ns || !p->count || !p->tasks || !p->args)
		return -1;
	for (long i = 0; i < n; i++) {
		p->args[i] = (struct probe_arg){p, i};
		p->tasks[i] = weft_spawn_on(rt, probe_loop, &p->args[i]);
	}
	return 0;
}

static void probes_join(struct probes *p)
{
	for (long i = 0; i < p->n; i++)
		weft_join(p->tasks[i], NULL);
}

static void probes_free(struct probes *p)
{
	free(p->at_us);
	free(p->lat_ns);
	free(p->count);
	free(p->tasks);
	free(p->args);
}

static int lateness_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct lateness {
	size_t samples;
	uint64_t p50_us, p99_us, max_us;
};

/* Percentiles of the wake-ups due in [from_us, to_us) (all: 0, UINT64_MAX). */
static struct lateness probes_stats(const struct probes *p, uint64_t from_us, uint64_t to_us)
{
	size_t total = 0;
	for (long i = 0; i < p->n; i++)
		total += (size_t)p->count[i];
	uint64_t *v = calloc(total + 1, sizeof *v);
	size_t n = 0;
	for (long i = 0; i < p->n; i++)
		for (long k = 0; k < p->count[i]; k++) {
			uint64_t at = p->at_us[i * p->cap + k];
			if (at >= from_us && at < to_us)
				v[n++] = p->lat_ns[i * p->cap + k];
		}
	qsort(v, n, sizeof *v, lateness_cmp);
	struct lateness l = {n, 0, 0, 0};
	if (n) {
		l.p50_us = v[(size_t)(0.50 * (double)(n - 1) + 0.5)] / 1000;
		l.p99_us = v[(size_t)(0.99 * (double)(n - 1) + 0.5)] / 1000;
		l.max_us = v[n - 1] / 1000;
	}
	free(v);
	return l;
}

#endif
