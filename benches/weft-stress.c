/*
 * weft-stress: how well the runtime contains a task that misbehaves.
 *
 *   weft-stress SCENARIO|all [--workers N] [--seconds S]
 *
 * Each run lasts S seconds (default 3); from S/3 to 2S/3 the scenario's
 * offender runs:
 *   idle          nothing (the baseline)
 *   hog           a task spins without a weft call
 *   blocking      a task calls usleep() for the whole window
 *   lifo          two tasks wake each other through the LIFO slot, forever
 *   spawn_flood   a plain thread floods the injector with tiny tasks
 *   yield_storm   2,000 tasks call weft_yield() in a loop
 *   mutex_convoy  64 tasks take turns on one weft_mutex, holding it briefly
 * All the while 1,000 probe tasks loop sleep-until(now + 1 ms) and record
 * how late they wake (benches/lateness.h). One JSON line per scenario on
 * stdout (lateness p50/p99/max overall and inside the window, a histogram
 * of the window's lateness, the stall reports the monitor made); a readable
 * summary and the stall reports themselves on stderr.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft.h>

#include "benches/lateness.h"

#define PROBES 1000
#define INTERVAL_NS 1000000ull

struct window {
	uint64_t start_ns, end_ns;
};

static _Atomic long stalls;

static void on_stall(const weft_stall_report *r, void *arg)
{
	(void)arg;
	atomic_fetch_add(&stalls, 1);
	weft_stall_report_print(r, STDERR_FILENO);
}

/* ----------------------------------------------------------- offenders */

static void *hog(void *arg)
{
	struct window *w = arg;
	weft_sleep_until_ns(w->start_ns);
	while (weft_now_ns() < w->end_ns)
		; /* no weft call */
	return NULL;
}

static void *blocking(void *arg)
{
	struct window *w = arg;
	weft_sleep_until_ns(w->start_ns);
	usleep((useconds_t)((w->end_ns - w->start_ns) / 1000));
	return NULL;
}

struct pingpong {
	struct window *w;
	weft_notify a, b;
	_Atomic bool done;
};

static void *ping(void *arg)
{
	struct pingpong *p = arg;
	weft_sleep_until_ns(p->w->start_ns);
	while (weft_now_ns() < p->w->end_ns) {
		weft_notify_one(&p->b);
		weft_notify_wait(&p->a);
	}
	atomic_store(&p->done, true);
	weft_notify_one(&p->b);
	return NULL;
}

static void *pong(void *arg)
{
	struct pingpong *p = arg;
	while (!atomic_load(&p->done)) {
		weft_notify_wait(&p->b);
		weft_notify_one(&p->a);
	}
	return NULL;
}

static void *tiny(void *arg)
{
	return arg;
}

struct flood {
	weft_runtime *rt;
	struct window *w;
};

static void *flood_thread(void *arg)
{
	struct flood *f = arg;
	while (weft_now_ns() < f->w->start_ns)
		usleep(1000);
	while (weft_now_ns() < f->w->end_ns) {
		weft_task *t = weft_spawn_on(f->rt, tiny, NULL);
		if (t)
			weft_detach(t);
	}
	return NULL;
}

static void *yielder(void *arg)
{
	struct window *w = arg;
	weft_sleep_until_ns(w->start_ns);
	while (weft_now_ns() < w->end_ns)
		weft_yield();
	return NULL;
}

static weft_mutex convoy_lock = WEFT_MUTEX_INIT;

static void *convoy(void *arg)
{
	struct window *w = arg;
	weft_sleep_until_ns(w->start_ns);
	while (weft_now_ns() < w->end_ns) {
		if (weft_mutex_lock(&convoy_lock) != 0)
			break;
		uint64_t until = weft_now_ns() + 20000; /* 20 us inside */
		while (weft_now_ns() < until)
			;
		weft_mutex_unlock(&convoy_lock);
	}
	return NULL;
}

/* ---------------------------------------------------------------- runs */

static const char *const scenarios[] = {"idle",        "hog",         "blocking",    "lifo",
                                        "spawn_flood", "yield_storm", "mutex_convoy"};
#define NSCENARIOS (sizeof scenarios / sizeof scenarios[0])

/* Starts the scenario's offenders; their tasks go to t (at most cap). */
static size_t start_offenders(const char *s, weft_runtime *rt, struct window *w,
                              struct pingpong *pp, struct flood *fl, pthread_t *th,
                              bool *thread_started, weft_task **t, size_t cap)
{
	size_t n = 0;
	weft_spawn_opts named = {.name = s};
	if (!strcmp(s, "hog")) {
		t[n++] = weft_spawn_ex(rt, hog, w, &named);
	} else if (!strcmp(s, "blocking")) {
		t[n++] = weft_spawn_ex(rt, blocking, w, &named);
	} else if (!strcmp(s, "lifo")) {
		pp->w = w;
		weft_notify_init(&pp->a);
		weft_notify_init(&pp->b);
		t[n++] = weft_spawn_ex(rt, ping, pp, &named);
		t[n++] = weft_spawn_ex(rt, pong, pp, &named);
	} else if (!strcmp(s, "spawn_flood")) {
		*fl = (struct flood){rt, w};
		*thread_started = pthread_create(th, NULL, flood_thread, fl) == 0;
	} else if (!strcmp(s, "yield_storm")) {
		while (n < cap && n < 2000)
			t[n++] = weft_spawn_ex(rt, yielder, w, &named);
	} else if (!strcmp(s, "mutex_convoy")) {
		while (n < cap && n < 64)
			t[n++] = weft_spawn_ex(rt, convoy, w, &named);
	}
	return n;
}

/* Histogram of the window's lateness: [0,1) [1,2) [2,4) ... ms, last >= 256. */
#define BUCKETS 10
static void histogram(const struct probes *p, const struct window *w, long *h)
{
	uint64_t from = (w->start_ns - p->t0) / 1000, to = (w->end_ns - p->t0) / 1000;
	for (long i = 0; i < p->n; i++)
		for (long k = 0; k < p->count[i]; k++) {
			uint64_t at = p->at_us[i * p->cap + k];
			if (at < from || at >= to)
				continue;
			uint64_t ms = p->lat_ns[i * p->cap + k] / 1000000;
			int b = 0;
			while (b < BUCKETS - 1 && ms >= (1ull << b))
				b++;
			h[b]++;
		}
}

static int run(const char *s, unsigned workers, unsigned seconds)
{
	weft_config cfg;
	weft_config_init(&cfg);
	if (workers)
		cfg.workers = workers;
	cfg.stall_handler = on_stall;
	weft_runtime *rt = weft_runtime_new(&cfg);
	if (!rt) {
		fprintf(stderr, "weft-stress: no runtime\n");
		return 1;
	}
	atomic_store(&stalls, 0);
	uint64_t third = (uint64_t)seconds * 1000000000ull / 3, t0 = weft_now_ns();
	struct window w = {t0 + third, t0 + 2 * third};
	struct probes p;
	if (probes_start(&p, rt, PROBES, INTERVAL_NS, t0, 3 * third) < 0) {
		fprintf(stderr, "weft-stress: out of memory\n");
		return 1;
	}
	static weft_task *off[2048];
	struct pingpong pp;
	struct flood fl;
	pthread_t th;
	bool thread_started = false;
	size_t n = start_offenders(s, rt, &w, &pp, &fl, &th, &thread_started, off, 2048);
	probes_join(&p);
	for (size_t i = 0; i < n; i++)
		if (off[i])
			weft_join(off[i], NULL);
	if (thread_started)
		pthread_join(th, NULL);
	weft_runtime_free(rt);

	struct lateness all = probes_stats(&p, 0, UINT64_MAX);
	struct lateness in = probes_stats(&p, third / 1000, 2 * third / 1000);
	long h[BUCKETS] = {0};
	histogram(&p, &w, h);
	probes_free(&p);
	printf("{\"tool\":\"weft-stress\",\"scenario\":\"%s\",\"workers\":%u,\"seconds\":%u,"
	       "\"probes\":%d,\"samples\":%zu,\"lat_p50_us\":%llu,\"lat_p99_us\":%llu,"
	       "\"lat_max_us\":%llu,\"window_samples\":%zu,\"window_p50_us\":%llu,"
	       "\"window_p99_us\":%llu,\"window_max_us\":%llu,\"stall_reports\":%ld,"
	       "\"window_hist_ms\":[",
	       s, cfg.workers, seconds, PROBES, all.samples, (unsigned long long)all.p50_us,
	       (unsigned long long)all.p99_us, (unsigned long long)all.max_us, in.samples,
	       (unsigned long long)in.p50_us, (unsigned long long)in.p99_us,
	       (unsigned long long)in.max_us, atomic_load(&stalls));
	for (int b = 0; b < BUCKETS; b++)
		printf("%s%ld", b ? "," : "", h[b]);
	printf("]}\n");
	fflush(stdout);
	fprintf(stderr,
	        "weft-stress %-12s %u workers: probes late p50 %llu us, p99 %llu us, max %llu us; "
	        "during the offender p99 %llu us, max %llu us; %ld stall reports\n",
	        s, cfg.workers, (unsigned long long)all.p50_us, (unsigned long long)all.p99_us,
	        (unsigned long long)all.max_us, (unsigned long long)in.p99_us,
	        (unsigned long long)in.max_us, atomic_load(&stalls));
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: weft-stress SCENARIO|all [--workers N] [--seconds S]\n  scenarios:");
	for (size_t i = 0; i < NSCENARIOS; i++)
		fprintf(f, " %s", scenarios[i]);
	fprintf(f, "\n");
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	unsigned workers = 0, seconds = 3;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
			workers = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = (unsigned)atoi(argv[++i]);
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (seconds < 1 || seconds > 600) {
		fprintf(stderr, "weft-stress: --seconds must be 1..600\n");
		return 2;
	}
	bool all = !strcmp(argv[1], "all");
	int rc = 0, found = 0;
	for (size_t i = 0; i < NSCENARIOS; i++)
		if (all || !strcmp(argv[1], scenarios[i])) {
			found = 1;
			rc |= run(scenarios[i], workers, seconds);
		}
	if (!found) {
		usage(stderr);
		return 2;
	}
	return rc;
}
