/*
 * weft-bench: the scheduler workloads of ../shared/peers (Tokio and Go), with
 * the same names, parameters and JSON line, plus weft-only ones.
 *
 *   weft-bench list                      workload names, one a line
 *   weft-bench WORKLOAD [--workers N] [--iters K] [--PARAM V ...]
 *                                        one JSON line on stdout
 *   weft-bench suite [--workers N]       every workload, each in a fresh
 *                                        process; JSON lines to --out FILE (if
 *                                        given) and a table on stdout
 *
 * Timing: one unmeasured warm-up call, then `iters` timed calls; elapsed_ns
 * is the median, ops_per_sec = ops / median (as the peers do).
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <weft.h>

#include "benches/lateness.h"

#include "runtime/fiber.h"
#include "runtime/rt.h"
#include "runtime/futex.h"
#include "runtime/tls.h"
#include "runtime/wait.h"
#include "runtime/worker.h"
#include "timer/timer.h"

/* ---------------------------------------------------------------- options */

#define MAX_OPTS 16
static struct {
	const char *key, *val;
} opts[MAX_OPTS];
static int nopts;

static long opt(const char *key, long dflt)
{
	for (int i = 0; i < nopts; i++)
		if (strcmp(opts[i].key, key) == 0)
			return atol(opts[i].val);
	return dflt;
}

static const char *opt_str(const char *key, const char *dflt)
{
	for (int i = 0; i < nopts; i++)
		if (strcmp(opts[i].key, key) == 0)
			return opts[i].val;
	return dflt;
}

static void die(const char *msg)
{
	fprintf(stderr, "weft-bench: %s\n", msg);
	exit(2);
}

/* ---------------------------------------------------------------- output */

struct out {
	char buf[2048];
	size_t len;
};

static void out_raw(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_raw(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	o->len += (size_t)vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
	va_end(ap);
}

static void out_begin(struct out *o, const char *workload, unsigned workers)
{
	o->len = 0;
	out_raw(o, "{\"peer\":\"weft\",\"workload\":\"%s\",\"workers\":%u", workload, workers);
}

static void out_num(struct out *o, const char *k, long long v)
{
	out_raw(o, ",\"%s\":%lld", k, v);
}

static void out_f(struct out *o, const char *k, double v)
{
	out_raw(o, ",\"%s\":%.1f", k, v);
}

static void out_print(struct out *o)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	out_num(o, "max_rss_kb", ru.ru_maxrss);
	out_num(o, "cpu_user_ms", ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000);
	out_num(o, "cpu_sys_ms", ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000);
	printf("%s}\n", o->buf);
	fflush(stdout);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Runs fn once unmeasured, then iters times; writes the standard fields. */
static void timing(struct out *o, long iters, long ops, void (*fn)(void *), void *ctx)
{
	uint64_t *t = calloc((size_t)iters, sizeof *t);
	fn(ctx);
	for (long i = 0; i < iters; i++) {
		uint64_t s = now_ns();
		fn(ctx);
		t[i] = now_ns() - s;
	}
	qsort(t, (size_t)iters, sizeof *t, cmp_u64);
	uint64_t med = t[(size_t)(0.5 * (double)(iters - 1) + 0.5)]; /* the peers' pct(50) */
	out_num(o, "iters", iters);
	out_num(o, "ops", ops);
	out_num(o, "elapsed_ns", (long long)med);
	out_num(o, "min_ns", (long long)t[0]);
	out_num(o, "max_ns", (long long)t[iters - 1]);
	out_f(o, "ops_per_sec", (double)ops / ((double)med / 1e9));
	free(t);
}

/* A one-shot event a plain thread waits on and a task sets. */
struct event {
	_Atomic uint32_t set;
};

static void event_set(struct event *e)
{
	atomic_store(&e->set, 1);
	weft__futex_wake(&e->set, 1);
}

static void event_wait(struct event *e)
{
	while (!atomic_load(&e->set))
		weft__futex_wait(&e->set, 0, NULL);
	atomic_store(&e->set, 0);
}

static weft_runtime *new_runtime(unsigned workers)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = workers;
	cfg.spin_us = (unsigned)opt("spin_us", cfg.spin_us);
	weft_runtime *rt = weft_runtime_new(&cfg);
	if (!rt)
		die("cannot start the runtime");
	return rt;
}

/* ---------------------------------------------------------------- workloads */

static struct timers_ctx *g_timers;

struct ctx {
	weft_runtime *rt;
	long n;
	_Atomic long rem;
	struct event done;
	weft_task **handles;
};

/* spawn_many_local: a task spawns n tasks that each decrement a counter; the
   last signals the measuring thread. */
static void *sml_leaf(void *arg)
{
	struct ctx *c = arg;
	if (atomic_fetch_sub_explicit(&c->rem, 1, memory_order_relaxed) == 1)
		event_set(&c->done);
	return NULL;
}

static void *sml_root(void *arg)
{
	struct ctx *c = arg;
	for (long i = 0; i < c->n; i++)
		weft_detach(weft_spawn(sml_leaf, c));
	return NULL;
}

static void sml_iter(void *arg)
{
	struct ctx *c = arg;
	atomic_store(&c->rem, c->n);
	weft_detach(weft_spawn_on(c->rt, sml_root, c));
	event_wait(&c->done);
}

static void spawn_many_local(unsigned w, struct out *o)
{
	struct ctx c = {.rt = new_runtime(w), .n = opt("n", 10000)};
	out_begin(o, "spawn_many_local", w);
	out_num(o, "n", c.n);
	timing(o, opt("iters", 50), c.n, sml_iter, &c);
	weft_runtime_free(c.rt);
}

/* spawn_many_remote_*: n empty tasks spawned from this (non-runtime) thread,
   then every handle joined from this thread (Tokio's peer awaits them in
   block_on, which also runs on the calling thread). */
static void *empty(void *arg)
{
	return arg;
}

static void remote_iter(void *arg)
{
	struct ctx *c = arg;
	for (long i = 0; i < c->n; i++)
		if (!(c->handles[i] = weft_spawn_on(c->rt, empty, NULL)))
			die("spawn failed");
	for (long i = 0; i < c->n; i++)
		if (weft_join(c->handles[i], NULL) != 0)
			die("join failed");
}

static _Atomic int busy_on;

static void *busy_task(void *arg)
{
	long stall_ns = (long)(intptr_t)arg * 1000;
	while (atomic_load_explicit(&busy_on, memory_order_relaxed)) {
		weft_yield();
		uint64_t s = now_ns();
		while ((long)(now_ns() - s) < stall_ns)
			sched_yield();
	}
	return NULL;
}

static void spawn_many_remote(unsigned w, struct out *o, int busy)
{
	struct ctx c = {.rt = new_runtime(w), .n = opt("n", 10000)};
	c.handles = calloc((size_t)c.n, sizeof *c.handles);
	long stall_us = opt("stall_us", 10), nbusy = busy ? 2 * (long)w : 0;
	weft_task **bt = calloc((size_t)nbusy + 1, sizeof *bt);
	atomic_store(&busy_on, 1);
	for (long i = 0; i < nbusy; i++)
		bt[i] = weft_spawn_on(c.rt, busy_task, (void *)(intptr_t)stall_us);
	out_begin(o, busy ? "spawn_many_remote_busy" : "spawn_many_remote_idle", w);
	out_num(o, "n", c.n);
	if (busy) {
		out_num(o, "busy_tasks", nbusy);
		out_num(o, "stall_us", stall_us);
	}
	timing(o, opt("iters", 50), c.n, remote_iter, &c);
	atomic_store(&busy_on, 0);
	for (long i = 0; i < nbusy; i++)
		weft_join(bt[i], NULL);
	free(bt);
	free(c.handles);
	weft_runtime_free(c.rt);
}

/* ping_pong: n pairs; each pinger creates two oneshots, spawns its ponger,
   sends, and waits for the answer. */
static void *pp_pong(void *arg)
{
	weft_oneshot **os = arg;
	char v;
	if (weft_oneshot_recv(os[0], &v) != 0 || weft_oneshot_send(os[1], &v) != 0)
		die("pong failed");
	return NULL;
}

static void *pp_ping(void *arg)
{
	struct ctx *c = arg;
	weft_oneshot *os[2] = {weft_oneshot_new(1), weft_oneshot_new(1)};
	weft_detach(weft_spawn(pp_pong, os));
	char v = 1;
	if (weft_oneshot_send(os[0], &v) != 0 || weft_oneshot_recv(os[1], &v) != 0)
		die("ping failed");
	if (atomic_fetch_sub_explicit(&c->rem, 1, memory_order_relaxed) == 1)
		event_set(&c->done);
	return NULL;
}

static void *pp_root(void *arg)
{
	struct ctx *c = arg;
	for (long i = 0; i < c->n; i++)
		weft_detach(weft_spawn(pp_ping, c));
	return NULL;
}

static void pp_iter(void *arg)
{
	struct ctx *c = arg;
	atomic_store(&c->rem, c->n);
	weft_detach(weft_spawn_on(c->rt, pp_root, c));
	event_wait(&c->done);
}

static void ping_pong(unsigned w, struct out *o)
{
	struct ctx c = {.rt = new_runtime(w), .n = opt("n", 1000)};
	out_begin(o, "ping_pong", w);
	out_num(o, "n", c.n);
	timing(o, opt("iters", 200), c.n, pp_iter, &c);
	weft_runtime_free(c.rt);
}

/* mutex: `tasks` tasks each lock / increment / unlock one weft_mutex
   `locks` times (the peers' workload: tokio::sync::Mutex, Go's
   sync.Mutex). */
static weft_mutex g_mutex;
static uint64_t g_counter;
static long g_locks;

static void *mx_task(void *arg)
{
	struct ctx *c = arg;
	for (long i = 0; i < g_locks; i++) {
		if (weft_mutex_lock(&g_mutex) != 0)
			die("mutex lock failed");
		g_counter++;
		weft_mutex_unlock(&g_mutex);
	}
	if (atomic_fetch_sub_explicit(&c->rem, 1, memory_order_relaxed) == 1)
		event_set(&c->done);
	return NULL;
}

static void mx_iter(void *arg)
{
	struct ctx *c = arg;
	g_counter = 0;
	atomic_store(&c->rem, c->n);
	for (long i = 0; i < c->n; i++)
		weft_detach(weft_spawn_on(c->rt, mx_task, c));
	event_wait(&c->done);
	if (g_counter != (uint64_t)(c->n * g_locks))
		die("mutex: lost increments");
}

static void mutex(unsigned w, struct out *o)
{
	struct ctx c = {.rt = new_runtime(w), .n = opt("tasks", 8)};
	g_locks = opt("locks", 100000);
	weft_mutex_init(&g_mutex);
	out_begin(o, "mutex", w);
	out_num(o, "tasks", c.n);
	out_num(o, "locks", g_locks);
	timing(o, opt("iters", 5), c.n * g_locks, mx_iter, &c);
	weft_mutex_destroy(&g_mutex);
	weft_runtime_free(c.rt);
}

/* mpsc_1p1c / mpsc_4p1c: producers send `msgs` in all through one bounded
   channel (capacity `cap`) to one consumer; the last producer to finish
   closes it, as dropping the last tokio Sender does. */
struct mpsc {
	struct ctx c;
	weft_chan *ch;
	long per, producers;
	_Atomic long producing;
	long got;
};

static void *mpsc_producer(void *arg)
{
	struct mpsc *m = arg;
	for (long i = 0; i < m->per; i++)
		if (weft_chan_send(m->ch, &i) != 0)
			die("mpsc send failed");
	if (atomic_fetch_sub_explicit(&m->producing, 1, memory_order_acq_rel) == 1)
		weft_chan_close(m->ch);
	return NULL;
}

static void *mpsc_consumer(void *arg)
{
	struct mpsc *m = arg;
	long v;
	m->got = 0;
	while (weft_chan_recv(m->ch, &v) == 0)
		m->got++;
	event_set(&m->c.done);
	return NULL;
}

static void mpsc_iter(void *arg)
{
	struct mpsc *m = arg;
	m->ch = weft_chan_new((size_t)opt("cap", 1024), sizeof(long));
	if (!m->ch)
		die("mpsc: no channel");
	atomic_store(&m->producing, m->producers);
	for (long i = 0; i < m->producers; i++)
		weft_detach(weft_spawn_on(m->c.rt, mpsc_producer, m));
	weft_detach(weft_spawn_on(m->c.rt, mpsc_consumer, m));
	event_wait(&m->c.done);
	if (m->got != m->per * m->producers)
		die("mpsc: messages lost");
	weft_chan_free(m->ch);
}

static void mpsc(const char *name, long producers, unsigned w, struct out *o)
{
	struct mpsc m = {.c = {.rt = new_runtime(w)}, .producers = opt("producers", producers)};
	long msgs = opt("msgs", 1000000);
	m.per = msgs / m.producers;
	out_begin(o, name, w);
	out_num(o, "producers", m.producers);
	out_num(o, "msgs", m.per * m.producers);
	out_num(o, "cap", opt("cap", 1024));
	timing(o, opt("iters", 5), m.per * m.producers, mpsc_iter, &m);
	weft_runtime_free(m.c.rt);
}

static void mpsc_1p1c(unsigned w, struct out *o)
{
	mpsc("mpsc_1p1c", 1, w, o);
}

static void mpsc_4p1c(unsigned w, struct out *o)
{
	mpsc("mpsc_4p1c", 4, w, o);
}

/* yield_many: tasks x yields, spawned from outside. */
static long g_yields;

static void *ym_task(void *arg)
{
	struct ctx *c = arg;
	for (long i = 0; i < g_yields; i++)
		weft_yield();
	if (atomic_fetch_sub_explicit(&c->rem, 1, memory_order_relaxed) == 1)
		event_set(&c->done);
	return NULL;
}

static void ym_iter(void *arg)
{
	struct ctx *c = arg;
	atomic_store(&c->rem, c->n);
	for (long i = 0; i < c->n; i++)
		weft_detach(weft_spawn_on(c->rt, ym_task, c));
	event_wait(&c->done);
}

static void yield_many(unsigned w, struct out *o)
{
	struct ctx c = {.rt = new_runtime(w), .n = opt("tasks", 200)};
	g_yields = opt("yields", 1000);
	out_begin(o, "yield_many", w);
	out_num(o, "tasks", c.n);
	out_num(o, "yields", g_yields);
	timing(o, opt("iters", 10), c.n * g_yields, ym_iter, &c);
	weft_runtime_free(c.rt);
}

/* chained_spawn: each task spawns the next, depth deep. */
static struct ctx *g_chain;

static void *chain_task(void *arg)
{
	long left = (long)(intptr_t)arg;
	if (left == 0)
		event_set(&g_chain->done);
	else
		weft_detach(weft_spawn(chain_task, (void *)(intptr_t)(left - 1)));
	return NULL;
}

static void chain_iter(void *arg)
{
	struct ctx *c = arg;
	weft_detach(weft_spawn_on(c->rt, chain_task, (void *)(intptr_t)c->n));
	event_wait(&c->done);
}

static void chained_spawn(unsigned w, struct out *o)
{
	struct ctx c = {.rt = new_runtime(w), .n = opt("depth", 1000)};
	g_chain = &c;
	out_begin(o, "chained_spawn", w);
	out_num(o, "depth", c.n);
	timing(o, opt("iters", 200), c.n, chain_iter, &c);
	weft_runtime_free(c.rt);
}

/* idle_tasks: RSS per parked task, with n tasks parked on a oneshot each. */
static long rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * sysconf(_SC_PAGESIZE);
}

static _Atomic long parked;

static void *idle_task(void *arg)
{
	char v;
	atomic_fetch_add_explicit(&parked, 1, memory_order_relaxed);
	weft_oneshot_recv(arg, &v);
	return NULL;
}

static void idle_tasks(unsigned w, struct out *o)
{
	long n = opt("n", 100000);
	weft_runtime *rt = new_runtime(w);
	weft_oneshot **os = calloc((size_t)n, sizeof *os);
	weft_task **ts = calloc((size_t)n, sizeof *ts);
	for (long i = 0; i < n; i++)
		os[i] = weft_oneshot_new(1);
	long before = rss_bytes();
	uint64_t s = now_ns();
	for (long i = 0; i < n; i++)
		ts[i] = weft_spawn_on(rt, idle_task, os[i]);
	while (atomic_load(&parked) < n)
		usleep(1000);
	usleep(20000); /* let the last ones finish parking */
	uint64_t el = now_ns() - s;
	long after = rss_bytes();
	char v = 0;
	for (long i = 0; i < n; i++)
		weft_oneshot_send(os[i], &v);
	for (long i = 0; i < n; i++)
		weft_join(ts[i], NULL);
	out_begin(o, "idle_tasks", w);
	out_num(o, "n", n);
	out_num(o, "iters", 1);
	out_num(o, "ops", n);
	out_num(o, "elapsed_ns", (long long)el);
	out_f(o, "ops_per_sec", (double)n / ((double)el / 1e9));
	out_num(o, "rss_per_task_bytes", (after - before) / n);
	free(os);
	free(ts);
	weft_runtime_free(rt);
}

/* ctx_switch: a bare switch pair between two fibers (no scheduler), against
   a weft_yield between two tasks on one worker. */
static struct weft__fiber sw_main, sw_peer;
static long sw_rounds;

static void sw_entry(void *arg)
{
	(void)arg;
	weft__fiber_started();
	for (;;)
		weft__fiber_switch(&sw_peer, &sw_main);
}

static void *yield_loop(void *arg)
{
	for (long i = 0; i < (long)(intptr_t)arg; i++)
		weft_yield();
	return NULL;
}

static void ctx_switch(unsigned w, struct out *o)
{
	(void)w;
	long rounds = opt("n", 1000000);
	size_t sz = 64 * 1024;
	void *stk = malloc(sz);
	weft__fiber_init_thread(&sw_main);
	weft__fiber_make(&sw_peer, stk, sz, sw_entry, NULL);
	sw_rounds = rounds;
	uint64_t best_pair = UINT64_MAX;
	for (int rep = 0; rep < 5; rep++) {
		uint64_t s = now_ns();
		for (long i = 0; i < rounds; i++)
			weft__fiber_switch(&sw_main, &sw_peer);
		uint64_t el = now_ns() - s;
		if (el < best_pair)
			best_pair = el;
	}
	weft_runtime *rt = new_runtime(1);
	uint64_t best_yield = UINT64_MAX;
	for (int rep = 0; rep < 5; rep++) {
		uint64_t s = now_ns();
		weft_task *a = weft_spawn_on(rt, yield_loop, (void *)(intptr_t)(rounds / 2));
		weft_task *b = weft_spawn_on(rt, yield_loop, (void *)(intptr_t)(rounds / 2));
		weft_join(a, NULL);
		weft_join(b, NULL);
		uint64_t el = now_ns() - s;
		if (el < best_yield)
			best_yield = el;
	}
	weft_runtime_free(rt);
	double pair = (double)best_pair / (double)rounds;
	double yield = (double)best_yield / (double)rounds;
	out_begin(o, "ctx_switch", 1);
	out_num(o, "n", rounds);
	out_num(o, "iters", 5);
	out_num(o, "ops", rounds);
	out_num(o, "elapsed_ns", (long long)best_pair);
	out_f(o, "ops_per_sec", 1e9 / pair);
	out_f(o, "switch_pair_ns", pair);
	out_f(o, "yield_ns", yield);
	out_f(o, "yield_over_pair", yield / pair);
	free(stk);
}

/* timers: n tasks spawned from a task each sleep a pseudo-random 1-100 ms
   (the peers' xorshift sequence); total time, and overshoot = actual -
   requested from the task's first run. */
struct timers_ctx {
	long n;
	uint64_t *durs_ms;
	uint64_t *over_ns; /* per task, this iteration */
	weft_task **handles;
	uint64_t *start_ns;  /* per task, this iteration: its first run */
	uint64_t spawned_ns; /* when the spawn loop ended */
};

static void *timer_task(void *arg)
{
	struct timers_ctx *c = g_timers;
	long i = (long)(intptr_t)arg;
	uint64_t d = c->durs_ms[i] * 1000000ull, s = weft_now_ns();
	c->start_ns[i] = s;
	if (weft_sleep_ms(c->durs_ms[i]) != 0)
		die("sleep failed");
	uint64_t el = weft_now_ns() - s;
	c->over_ns[i] = el > d ? el - d : 0;
	return NULL;
}

static void *timers_body(void *arg)
{
	struct timers_ctx *c = arg;
	for (long i = 0; i < c->n; i++)
		if (!(c->handles[i] = weft_spawn(timer_task, (void *)(intptr_t)i)))
			die("spawn failed");
	c->spawned_ns = now_ns();
	for (long i = 0; i < c->n; i++)
		weft_join(c->handles[i], NULL);
	return NULL;
}

static uint64_t pct_u64(const uint64_t *sorted, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

static void timers(unsigned w, struct out *o)
{
	struct timers_ctx c = {.n = opt("n", 100000)};
	long iters = opt("iters", 3), min_ms = opt("min_ms", 1), max_ms = opt("max_ms", 100);
	uint64_t seed = (uint64_t)opt("seed", 0), x = seed ? seed : 0x9E3779B97F4A7C15ull;
	c.durs_ms = calloc((size_t)c.n, sizeof *c.durs_ms);
	c.over_ns = calloc((size_t)c.n, sizeof *c.over_ns);
	c.handles = calloc((size_t)c.n, sizeof *c.handles);
	c.start_ns = calloc((size_t)c.n, sizeof *c.start_ns);
	uint64_t *all = calloc((size_t)(c.n * iters), sizeof *all);
	for (long i = 0; i < c.n; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		c.durs_ms[i] = (uint64_t)min_ms +
		               (x * 0x2545F4914F6CDD1Dull) % (uint64_t)(max_ms - min_ms + 1);
	}
	g_timers = &c;
	weft_runtime *rt = new_runtime(w);
	uint64_t *t = calloc((size_t)iters, sizeof *t);
	uint64_t *spawned = calloc((size_t)iters, sizeof *spawned);
	uint64_t *started = calloc((size_t)iters, sizeof *started);
	size_t nall = 0;
	for (long it = -1; it < iters; it++) {
		uint64_t s = now_ns();
		if (weft_block_on(rt, timers_body, &c, NULL) != 0)
			die("block_on failed");
		uint64_t el = now_ns() - s;
		if (it < 0)
			continue; /* warm-up */
		t[it] = el;
		spawned[it] = c.spawned_ns - s;
		for (long i = 0; i < c.n; i++)
			if (c.start_ns[i] - s > started[it])
				started[it] = c.start_ns[i] - s;
		memcpy(all + nall, c.over_ns, (size_t)c.n * sizeof *all);
		nall += (size_t)c.n;
	}
	weft_runtime_free(rt);
	qsort(t, (size_t)iters, sizeof *t, cmp_u64);
	qsort(all, nall, sizeof *all, cmp_u64);
	uint64_t med = t[(size_t)(0.5 * (double)(iters - 1) + 0.5)];
	out_begin(o, "timers", w);
	out_num(o, "n", c.n);
	out_num(o, "min_ms", min_ms);
	out_num(o, "max_ms", max_ms);
	out_raw(o, ",\"spawn_from\":\"task\"");
	out_num(o, "iters", iters);
	out_num(o, "ops", c.n);
	out_num(o, "elapsed_ns", (long long)med);
	out_num(o, "min_ns", (long long)t[0]);
	out_num(o, "max_ns", (long long)t[iters - 1]);
	out_f(o, "ops_per_sec", (double)c.n / ((double)med / 1e9));
	out_num(o, "overshoot_p50_us", (long long)(pct_u64(all, nall, 50) / 1000));
	out_num(o, "overshoot_p99_us", (long long)(pct_u64(all, nall, 99) / 1000));
	out_num(o, "overshoot_max_us", (long long)(pct_u64(all, nall, 100) / 1000));
	/* The total is about the last task's first run plus its sleep: when
	   the spawn loop ended and when the last task started (medians). */
	qsort(spawned, (size_t)iters, sizeof *spawned, cmp_u64);
	qsort(started, (size_t)iters, sizeof *started, cmp_u64);
	out_num(o, "spawned_us", (long long)(spawned[(iters - 1) / 2] / 1000));
	out_num(o, "last_start_us", (long long)(started[(iters - 1) / 2] / 1000));
	free(spawned);
	free(started);
	free(t);
	free(all);
	free(c.durs_ms);
	free(c.over_ns);
	free(c.handles);
	free(c.start_ns);
}

/* timer_insert_cancel: what a wait inside a deadline scope adds: arming a
   1 s timer on the worker's wheel and cancelling it, ns per pair. */
static void *insert_cancel_task(void *arg)
{
	long n = (long)(intptr_t)arg;
	weft_pin_push();
	struct weft__timers *tm = &weft__tls()->thread->worker->timers;
	struct weft__timer timer = WEFT__TIMER_INIT;
	uint64_t s = now_ns();
	for (long i = 0; i < n; i++) {
		struct weft__waker self = weft__waker_self(NULL);
		if (weft__timer_arm(tm, &timer, weft_now_ns() + 1000000000ull, self) != 1 ||
		    !weft__timer_cancel(&timer))
			die("arm/cancel failed");
	}
	uint64_t el = now_ns() - s;
	weft_pin_pop();
	return (void *)(uintptr_t)el;
}

static void timer_insert_cancel(unsigned w, struct out *o)
{
	long n = opt("n", 1000000);
	weft_runtime *rt = new_runtime(w);
	uint64_t best = UINT64_MAX;
	for (int rep = 0; rep < 5; rep++) {
		void *r;
		if (weft_block_on(rt, insert_cancel_task, (void *)(intptr_t)n, &r) != 0)
			die("block_on failed");
		if ((uint64_t)(uintptr_t)r < best)
			best = (uint64_t)(uintptr_t)r;
	}
	weft_runtime_free(rt);
	out_begin(o, "timer_insert_cancel", w);
	out_num(o, "n", n);
	out_num(o, "iters", 5);
	out_num(o, "ops", n);
	out_num(o, "elapsed_ns", (long long)best);
	out_f(o, "ops_per_sec", (double)n / ((double)best / 1e9));
	out_f(o, "ns_per_op", (double)best / (double)n);
}

/* spawn_blocking / spawn_blocking_seq: n trivial jobs from a task, all
   issued then joined, or each joined before the next is issued (a round
   trip); each job returns its index, which is checked. */
static void *sb_job(void *arg)
{
	return arg;
}

static void *sb_body(void *arg)
{
	struct ctx *c = arg;
	for (long i = 0; i < c->n; i++)
		if (!(c->handles[i] = weft_spawn_blocking(sb_job, (void *)(intptr_t)i)))
			die("spawn_blocking failed");
	for (long i = 0; i < c->n; i++) {
		void *r;
		if (weft_join(c->handles[i], &r) != 0 || (intptr_t)r != i)
			die("a blocking job's join failed");
	}
	return NULL;
}

static void *sb_seq_body(void *arg)
{
	struct ctx *c = arg;
	for (long i = 0; i < c->n; i++) {
		void *r;
		weft_task *t = weft_spawn_blocking(sb_job, (void *)(intptr_t)i);
		if (!t || weft_join(t, &r) != 0 || (intptr_t)r != i)
			die("a blocking job's round trip failed");
	}
	return NULL;
}

static void *(*g_sb_body)(void *);

static void sb_iter(void *arg)
{
	struct ctx *c = arg;
	if (weft_block_on(c->rt, g_sb_body, c, NULL) != 0)
		die("block_on failed");
}

static void spawn_blocking_common(unsigned w, struct out *o, bool seq)
{
	struct ctx c = {.rt = new_runtime(w), .n = opt("n", 10000)};
	c.handles = calloc((size_t)c.n, sizeof *c.handles);
	g_sb_body = seq ? sb_seq_body : sb_body;
	out_begin(o, seq ? "spawn_blocking_seq" : "spawn_blocking", w);
	out_num(o, "n", c.n);
	timing(o, opt("iters", seq ? 3 : 5), c.n, sb_iter, &c);
	out_num(o, "pool_threads", (long long)c.rt->blocking.threads);
	weft_runtime_free(c.rt);
	free(c.handles);
}

static void spawn_blocking(unsigned w, struct out *o)
{
	spawn_blocking_common(w, o, false);
}

static void spawn_blocking_seq(unsigned w, struct out *o)
{
	spawn_blocking_common(w, o, true);
}

/* starvation (the peers' workload): `tasks` probes loop sleep-until(now +
   interval) for duration_ms, recording how late each wake-up was; from
   busy_start_ms on, one task spins for busy_ms without a weft call.
   Lateness percentiles overall and for wake-ups due inside the busy
   window (benches/lateness.h). */
struct starve_hog {
	uint64_t start_ns, busy_ns;
};

static void *starve_hog(void *arg)
{
	struct starve_hog *h = arg;
	weft_sleep_until_ns(h->start_ns);
	uint64_t s = weft_now_ns();
	while (weft_now_ns() - s < h->busy_ns)
		; /* no weft call: the worker is stuck */
	return NULL;
}

static void starvation(unsigned w, struct out *o)
{
	long tasks = opt("tasks", 1000), interval_us = opt("interval_us", 1000),
	     busy_ms = opt("busy_ms", 200), busy_start_ms = opt("busy_start_ms", 200),
	     duration_ms = opt("duration_ms", 1000);
	weft_runtime *rt = new_runtime(w);
	uint64_t t0 = weft_now_ns();
	struct starve_hog hog = {t0 + (uint64_t)busy_start_ms * 1000000,
	                         (uint64_t)busy_ms * 1000000};
	weft_spawn_opts hog_opts = {.name = "starvation-hog"};
	weft_task *h = weft_spawn_ex(rt, starve_hog, &hog, &hog_opts);
	struct probes p;
	if (probes_start(&p, rt, tasks, (uint64_t)interval_us * 1000, t0,
	                 (uint64_t)duration_ms * 1000000) < 0)
		die("starvation: out of memory");
	weft_join(h, NULL);
	probes_join(&p);
	uint64_t elapsed = weft_now_ns() - t0;
	weft_runtime_free(rt);
	struct lateness all = probes_stats(&p, 0, UINT64_MAX);
	struct lateness win = probes_stats(&p, (uint64_t)busy_start_ms * 1000,
	                                   (uint64_t)(busy_start_ms + busy_ms) * 1000);
	probes_free(&p);
	out_begin(o, "starvation", w);
	out_num(o, "tasks", tasks);
	out_num(o, "interval_us", interval_us);
	out_num(o, "busy_ms", busy_ms);
	out_num(o, "duration_ms", duration_ms);
	out_num(o, "elapsed_ns", (long long)elapsed);
	out_num(o, "samples", (long long)all.samples);
	out_num(o, "lat_p50_us", (long long)all.p50_us);
	out_num(o, "lat_p99_us", (long long)all.p99_us);
	out_num(o, "lat_max_us", (long long)all.max_us);
	out_num(o, "busy_samples", (long long)win.samples);
	out_num(o, "busy_lat_p50_us", (long long)win.p50_us);
	out_num(o, "busy_lat_p99_us", (long long)win.p99_us);
	out_num(o, "busy_lat_max_us", (long long)win.max_us);
}

/* ---------------------------------------------------------------- driver */

struct workload {
	const char *name;
	void (*run)(unsigned workers, struct out *o);
};

static void sm_remote_idle(unsigned w, struct out *o)
{
	spawn_many_remote(w, o, 0);
}

static void sm_remote_busy(unsigned w, struct out *o)
{
	spawn_many_remote(w, o, 1);
}

static const struct workload workloads[] = {
        {"spawn_many_local", spawn_many_local},
        {"spawn_many_remote_idle", sm_remote_idle},
        {"spawn_many_remote_busy", sm_remote_busy},
        {"ping_pong", ping_pong},
        {"mutex", mutex},
        {"mpsc_1p1c", mpsc_1p1c},
        {"mpsc_4p1c", mpsc_4p1c},
        {"yield_many", yield_many},
        {"chained_spawn", chained_spawn},
        {"spawn_blocking", spawn_blocking},
        {"spawn_blocking_seq", spawn_blocking_seq},
        {"timers", timers},
        {"starvation", starvation},
        {"timer_insert_cancel", timer_insert_cancel},
        {"idle_tasks", idle_tasks},
        {"ctx_switch", ctx_switch},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/* Pulls a numeric field out of one of our JSON lines. */
static double json_field(const char *line, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(line, pat);
	return p ? atof(p + strlen(pat)) : -1;
}

static int suite(const char *self, unsigned w, const char *outpath)
{
	FILE *out = outpath ? fopen(outpath, "a") : NULL;
	if (outpath && !out) {
		perror(outpath);
		return 1;
	}
	char wbuf[16];
	snprintf(wbuf, sizeof wbuf, "%u", w);
	printf("| workload | ops/s | median ms | max RSS KiB | note |\n|---|---|---|---|---|\n");
	fflush(stdout);
	int failed = 0;
	for (size_t i = 0; i < NWORKLOADS; i++) {
		int fds[2];
		if (pipe(fds) != 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0) {
			dup2(fds[1], STDOUT_FILENO);
			close(fds[0]);
			execl(self, self, workloads[i].name, "--workers", wbuf, (char *)NULL);
			_exit(127);
		}
		close(fds[1]);
		char line[4096] = "";
		FILE *f = fdopen(fds[0], "r");
		if (!fgets(line, sizeof line, f))
			line[0] = '\0';
		fclose(f);
		int status;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || line[0] != '{') {
			printf("| %s | failed | | | |\n", workloads[i].name);
			failed = 1;
			continue;
		}
		if (out)
			fputs(line, out);
		char note[128] = "";
		if (json_field(line, "rss_per_task_bytes") >= 0)
			snprintf(note, sizeof note, "%.0f bytes RSS per parked task",
			         json_field(line, "rss_per_task_bytes"));
		if (json_field(line, "overshoot_p99_us") >= 0)
			snprintf(note, sizeof note,
			         "overshoot p50 %.0f us, p99 %.0f us, max %.0f us",
			         json_field(line, "overshoot_p50_us"),
			         json_field(line, "overshoot_p99_us"),
			         json_field(line, "overshoot_max_us"));
		if (json_field(line, "ns_per_op") >= 0)
			snprintf(note, sizeof note, "%.1f ns per arm+cancel",
			         json_field(line, "ns_per_op"));
		if (json_field(line, "yield_over_pair") >= 0)
			snprintf(note, sizeof note, "switch pair %.1f ns, yield %.1f ns (%.2fx)",
			         json_field(line, "switch_pair_ns"), json_field(line, "yield_ns"),
			         json_field(line, "yield_over_pair"));
		printf("| %s | %.0f | %.3f | %.0f | %s |\n", workloads[i].name,
		       json_field(line, "ops_per_sec"), json_field(line, "elapsed_ns") / 1e6,
		       json_field(line, "max_rss_kb"), note);
		fflush(stdout);
	}
	if (out)
		fclose(out);
	return failed;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "list") == 0 || strcmp(argv[1], "--help") == 0) {
		if (argc < 2 || strcmp(argv[1], "--help") == 0)
			fprintf(stderr, "usage: weft-bench WORKLOAD|list|suite [--workers N] "
			                "[--iters K] [--PARAM V ...]\n");
		for (size_t i = 0; i < NWORKLOADS; i++)
			printf("%s\n", workloads[i].name);
		return 0;
	}
	for (int i = 2; i < argc; i += 2) {
		if (i + 1 >= argc || strncmp(argv[i], "--", 2) != 0)
			die("options are --name value pairs");
		if (nopts == MAX_OPTS)
			die("too many options");
		opts[nopts].key = argv[i] + 2;
		opts[nopts].val = argv[i + 1];
		nopts++;
	}
	long w = opt("workers", 2);
	if (w < 1 || w > WEFT_MAX_WORKERS)
		die("bad --workers");
	if (strcmp(argv[1], "suite") == 0)
		return suite("/proc/self/exe", (unsigned)w, opt_str("out", NULL));
	for (size_t i = 0; i < NWORKLOADS; i++) {
		if (strcmp(argv[1], workloads[i].name) == 0) {
			struct out o;
			workloads[i].run((unsigned)w, &o);
			out_print(&o);
			return 0;
		}
	}
	die("unknown workload (weft-bench list)");
}
