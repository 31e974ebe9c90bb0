/*
 * The runtime's lifecycle: configuration, start, block_on, shutdown, free.
 *
 * Shutdown order: mark the runtime closed -- spawns fail and every wait of
 * every task returns -ECANCELED from then on -- and wake every parked task
 * (the registry, and the timer wheels for tasks parked in a sleep) so it sees that;
 * close the blocking pool (queued jobs still run, seeing weft_is_cancelled()); wait up to the
 * grace period for the count of live tasks to reach zero; then tell the workers to stop and join
 * them. A worker still running a task after the grace period cannot be joined (its task never
 * returns to the scheduler); the runtime is then deliberately leaked -- its tasks' stacks may still
 * be in use -- and kept reachable so leak checkers do not report it.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <weft/task.h>
#include <weft/time.h>

#include "dump.h"
#include "futex.h"
#include "lock.h"
#include "rt.h"
#include "task.h"
#include "tls.h"
#include "worker.h"

#define DEFAULT_STACK (64u * 1024)
#define DEFAULT_GQI 61
#define DEFAULT_GRACE_MS 5000
#define DEFAULT_SPIN_US 50
#define JOIN_STRAGGLER_MS 100

/* Runtimes whose shutdown timed out; kept reachable on purpose. */
static pthread_mutex_t leaked_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft_runtime **leaked;
static size_t nleaked;

static unsigned cpu_count(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static unsigned env_unsigned(const char *name, unsigned dflt)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return dflt;
	char *end;
	unsigned long n = strtoul(v, &end, 10);
	return (*end == '\0' && n > 0 && n <= WEFT_MAX_WORKERS) ? (unsigned)n : dflt;
}

/* WEFT_STALL_MS: a threshold in ms, or "off". */
static unsigned env_stall_ms(unsigned dflt)
{
	const char *v = getenv("WEFT_STALL_MS");
	if (!v || !*v)
		return dflt;
	if (!strcmp(v, "off"))
		return WEFT_DISABLED;
	char *end;
	unsigned long n = strtoul(v, &end, 10);
	return (*end == '\0' && n > 0 && n < WEFT_DISABLED) ? (unsigned)n : dflt;
}

static int env_io_backend(void)
{
	const char *v = getenv("WEFT_IO");
	if (v && !strcmp(v, "uring"))
		return WEFT_IO_URING;
	if (v && !strcmp(v, "epoll"))
		return WEFT_IO_EPOLL;
	return WEFT_IO_AUTO;
}

/* io_uring where it works (it may be compiled out, disabled by
   kernel.io_uring_disabled, refused by a seccomp filter, or missing from an
   old kernel or an emulator), else epoll; -ENOSYS when io_uring was asked
   for by name and does not work. */
static int choose_io_backend(int asked)
{
	if (asked == WEFT_IO_EPOLL)
		return WEFT_IO_EPOLL;
	int why;
	if (weft__ring_supported(&why))
		return WEFT_IO_URING;
	return asked == WEFT_IO_URING ? -ENOSYS : WEFT_IO_EPOLL;
}

static unsigned default_workers(void)
{
	return env_unsigned("WEFT_WORKERS", cpu_count());
}

void weft_config_init(weft_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->workers = default_workers();
	cfg->stack_size = DEFAULT_STACK;
	cfg->max_blocking_threads = 512;
	cfg->blocking_keepalive_ms = 10000;
	cfg->global_queue_interval = DEFAULT_GQI;
	cfg->shutdown_grace_ms = DEFAULT_GRACE_MS;
	cfg->stall_threshold_ms = env_stall_ms(100);
	cfg->handoff_ms = 10;
	cfg->io_backend = env_io_backend();
	cfg->spin_us = DEFAULT_SPIN_US;
}

/* Fills zero fields with defaults and validates. */
static int resolve_config(const weft_config *in, weft_config *out)
{
	weft_config d;
	weft_config_init(&d);
	if (!in) {
		*out = d;
		return 0;
	}
	*out = *in;
	if (!out->workers)
		out->workers = d.workers;
	if (!out->stack_size)
		out->stack_size = d.stack_size;
	if (!out->max_blocking_threads)
		out->max_blocking_threads = d.max_blocking_threads;
	if (!out->blocking_keepalive_ms)
		out->blocking_keepalive_ms = d.blocking_keepalive_ms;
	if (!out->global_queue_interval)
		out->global_queue_interval = d.global_queue_interval;
	if (!out->shutdown_grace_ms)
		out->shutdown_grace_ms = d.shutdown_grace_ms;
	if (!out->stall_threshold_ms)
		out->stall_threshold_ms = d.stall_threshold_ms;
	if (!out->handoff_ms)
		out->handoff_ms = d.handoff_ms;
	if (!out->spin_us)
		out->spin_us = d.spin_us;
	if (out->io_backend == WEFT_IO_AUTO)
		out->io_backend = d.io_backend;
	if (out->workers > WEFT_MAX_WORKERS || out->stack_size < WEFT_MIN_STACK_SIZE ||
	    out->stack_size > WEFT_MAX_STACK_SIZE || out->global_queue_interval == WEFT_DISABLED ||
	    out->io_backend < WEFT_IO_AUTO || out->io_backend > WEFT_IO_EPOLL)
		return -EINVAL;
	return 0;
}

static void free_runtime_memory(struct weft_runtime *rt)
{
	if (rt->workers) {
		for (unsigned i = 0; i < rt->nthreads; i++) {
			weft__worker_drain(&rt->workers[i]);
			weft__timers_destroy(&rt->workers[i].timers);
		}
	}
	if (rt->threads) {
		for (unsigned i = 0; i < rt->nthreads; i++) {
			pthread_mutex_destroy(&rt->threads[i].inbox_lock);
			weft__poller_destroy(&rt->threads[i].poller);
			weft__ring_destroy(&rt->threads[i].ring);
			weft__bufs_close(&rt->threads[i].bufs);
		}
	}
	weft__registry_destroy(&rt->reg);
	weft__blocking_destroy(&rt->blocking);
	weft__stack_depot_destroy(&rt->stacks);
	weft__idle_destroy(&rt->idle);
	weft__inject_destroy(&rt->inject);
	weft__inject_destroy(&rt->slow);
	pthread_mutex_destroy(&rt->shutdown_lock);
	free(rt->workers);
	free(rt->threads);
	free(rt);
}

static void stop_and_join(struct weft_runtime *rt, unsigned nstarted)
{
	atomic_store_explicit(&rt->stopping, true, memory_order_seq_cst);
	weft__wake_all(rt);
	for (unsigned i = 0; i < nstarted; i++) {
		struct weft__thread *th = &rt->threads[i];
		if (!th->started)
			continue;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += (long)JOIN_STRAGGLER_MS * 1000000;
		until.tv_sec += until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		if (rt->leaked ? pthread_timedjoin_np(th->pthread, NULL, &until) == 0
		               : pthread_join(th->pthread, NULL) == 0) {
			th->started = false;
		} else {
			fprintf(stderr, "weft: worker %u is still running a task; leaving it\n", i);
			pthread_detach(th->pthread);
		}
	}
}

static int start_threads(struct weft_runtime *rt)
{
	for (unsigned i = 0; i < rt->nthreads; i++) {
		struct weft__thread *th = &rt->threads[i];
		if (pthread_create(&th->pthread, NULL, weft__worker_main, th) != 0) {
			stop_and_join(rt, i);
			return -EAGAIN;
		}
		th->started = true;
	}
	/* Each thread makes its own ring (or epoll): wait for that, so that
	   the descriptors they take are taken when weft_runtime_new returns,
	   not at some later moment of the program's (which may be counting
	   its descriptors). */
	uint32_t ready;
	while ((ready = atomic_load_explicit(&rt->io_ready, memory_order_acquire)) < rt->nthreads)
		weft__futex_wait(&rt->io_ready, ready, NULL);
	return 0;
}

weft_runtime *weft_runtime_new(const weft_config *cfg)
{
	weft_config c;
	if (resolve_config(cfg, &c) < 0)
		return NULL;
	int io = choose_io_backend(c.io_backend);
	if (io < 0) {
		errno = -io;
		return NULL;
	}
	struct weft_runtime *rt = calloc(1, sizeof *rt);
	if (!rt)
		return NULL;
	rt->cfg = c;
	rt->io_backend = io;
	rt->nworkers = c.workers;
	/* The spare exists for the monitor's hand-offs (worker.h). */
	rt->nthreads = c.workers +
	               (c.stall_threshold_ms != WEFT_DISABLED && c.handoff_ms != WEFT_DISABLED);
	rt->spin_ns = c.spin_us == WEFT_DISABLED ? 0 : (uint64_t)c.spin_us * 1000;
	rt->time_base_ns = weft_now_ns();
	weft__stack_depot_init(&rt->stacks, c.stack_size);
	weft__blocking_init(&rt->blocking, rt, c.max_blocking_threads,
	                    c.blocking_keepalive_ms == WEFT_DISABLED
	                            ? UINT64_MAX
	                            : (uint64_t)c.blocking_keepalive_ms * 1000000,
	                    rt->spin_ns);
	pthread_mutex_init(&rt->shutdown_lock, NULL);
	weft__inject_init(&rt->inject);
	weft__inject_init(&rt->slow);
	rt->workers = aligned_alloc(64, sizeof(struct weft__worker) * rt->nthreads);
	rt->threads = aligned_alloc(64, sizeof(struct weft__thread) * rt->nthreads);
	if (!rt->workers || !rt->threads || weft__idle_init(&rt->idle, c.workers) < 0 ||
	    weft__registry_init(&rt->reg, c.workers * 4) < 0) {
		free(rt->workers);
		free(rt->threads);
		weft__registry_destroy(&rt->reg);
		weft__blocking_destroy(&rt->blocking);
		weft__stack_depot_destroy(&rt->stacks);
		weft__inject_destroy(&rt->inject);
		weft__inject_destroy(&rt->slow);
		pthread_mutex_destroy(&rt->shutdown_lock);
		free(rt);
		return NULL;
	}
	for (unsigned i = 0; i < rt->nthreads; i++) {
		struct weft__worker *w = &rt->workers[i];
		memset(w, 0, sizeof *w);
		weft__lifo_init(&w->lifo, i >= c.workers);
		if (i >= c.workers) /* the spare, until the monitor wants it */
			atomic_init(&w->shed, true);
		weft__lq_init(&w->lq);
		w->index = i;
		w->rng = 0x9E3779B97F4A7C15ull * (i + 1);
		w->gq_countdown = c.global_queue_interval;
		weft__stack_pool_init(&w->stacks, &rt->stacks);
		weft__timers_init(&w->timers, rt->time_base_ns);

		struct weft__thread *th = &rt->threads[i];
		memset(th, 0, sizeof *th);
		th->rt = rt;
		th->worker = w;
		th->index = i;
		th->poller.epfd = th->poller.wakefd = -1; /* both made on the thread */
		th->ring.active = false;
		weft__parker_init(&th->parker, &th->poller, &th->ring);
		weft__lock_init(&th->inbox_lock);
	}
	if (start_threads(rt) < 0) {
		free_runtime_memory(rt);
		return NULL;
	}
	if (weft__monitor_start(rt) < 0) {
		stop_and_join(rt, rt->nthreads);
		free_runtime_memory(rt);
		return NULL;
	}
	return rt;
}

int weft_runtime_io_backend(const weft_runtime *rt)
{
	return rt ? rt->io_backend : -EINVAL;
}

int weft_block_on(weft_runtime *rt, weft_fn fn, void *arg, void **result)
{
	if (!rt || !fn)
		return -EINVAL;
	weft_task *t = weft_spawn_at(rt, fn, arg, NULL, "weft_block_on", 0);
	if (!t)
		return atomic_load_explicit(&rt->closed, memory_order_acquire) ? -ESHUTDOWN
		                                                               : -ENOMEM;
	int rc = weft_join(t, result);
	if (rc < 0) {
		/* Our own wait was cancelled: the task must not outlive the call
		   unnoticed, so it is cancelled too, then left to finish. */
		weft_cancel(t);
		weft_detach(t);
	}
	return rc;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Tasks spawned and not yet completed. Completions are read before spawns:
   a completion we count happened after its spawn was counted (the spawn
   counter is released before the task is queued), so the difference never
   undercounts. */
static uint64_t tasks_alive(struct weft_runtime *rt)
{
	uint64_t done = 0, spawned = 0;
	for (unsigned i = 0; i < rt->nthreads; i++)
		done += atomic_load_explicit(&rt->workers[i].completed, memory_order_acquire);
	for (unsigned i = 0; i < rt->nthreads; i++)
		spawned += atomic_load_explicit(&rt->workers[i].spawned, memory_order_acquire);
	spawned += atomic_load_explicit(&rt->inject.spawned, memory_order_acquire);
	return spawned - done;
}

static bool drain_tasks(struct weft_runtime *rt, uint64_t deadline)
{
	struct timespec nap = {0, 100 * 1000};
	while (tasks_alive(rt) > 0) {
		if (mono_ms() >= deadline)
			return false;
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < 5 * 1000 * 1000)
			nap.tv_nsec *= 2;
	}
	return true;
}

/* Names the tasks that outlived the grace period -- those running on a
   worker, those parked -- and the blocking jobs still running. */
static void report_stragglers(struct weft_runtime *rt, uint64_t grace_ms)
{
	fprintf(stderr,
	        "weft: shutdown: %llu task(s) and %zu blocking job(s) still alive after %llu ms:\n",
	        (unsigned long long)tasks_alive(rt),
	        atomic_load_explicit(&rt->blocking.alive, memory_order_acquire),
	        (unsigned long long)grace_ms);
	weft__dump_task_lines(rt, STDERR_FILENO);
	weft__blocking_report(&rt->blocking, STDERR_FILENO);
}

int weft_runtime_shutdown(weft_runtime *rt, int64_t grace_ms)
{
	if (!rt)
		return -EINVAL;
	struct weft__tls *tls = weft__tls();
	if (tls->thread && tls->thread->rt == rt)
		return -EDEADLK;
	pthread_mutex_lock(&rt->shutdown_lock);
	if (rt->shutdown_done) {
		pthread_mutex_unlock(&rt->shutdown_lock);
		return rt->shutdown_result;
	}
	uint64_t grace = grace_ms < 0 ? rt->cfg.shutdown_grace_ms : (uint64_t)grace_ms;
	/* From here every wait fails with -ECANCELED (wait.c); parked tasks
	   are woken to see it. */
	atomic_store_explicit(&rt->closed, true, memory_order_seq_cst);
	weft__inject_close(&rt->inject);
	weft__registry_sweep(&rt->reg);
	for (unsigned i = 0; i < rt->nthreads; i++)
		weft__timers_wake_all(&rt->workers[i].timers);
	weft__blocking_close(&rt->blocking);
	int result = 0;
	uint64_t deadline = mono_ms() + grace;
	bool drained = drain_tasks(rt, deadline);
	drained = weft__blocking_drain(&rt->blocking, deadline * 1000000) && drained;
	if (!drained) {
		report_stragglers(rt, grace);
		rt->leaked = true;
		result = -ETIMEDOUT;
	}
	weft__monitor_stop(rt);
	stop_and_join(rt, rt->nthreads);
	rt->shutdown_done = true;
	rt->shutdown_result = result;
	pthread_mutex_unlock(&rt->shutdown_lock);
	return result;
}

void weft_runtime_free(weft_runtime *rt)
{
	if (!rt)
		return;
	weft_runtime_shutdown(rt, -1);
	if (rt->leaked) {
		pthread_mutex_lock(&leaked_lock);
		struct weft_runtime **grown = realloc(leaked, (nleaked + 1) * sizeof *leaked);
		if (grown) {
			leaked = grown;
			leaked[nleaked++] = rt;
		}
		pthread_mutex_unlock(&leaked_lock);
		return;
	}
	free_runtime_memory(rt);
}

int weft_run(weft_fn main_fn, void *arg, const weft_config *cfg, void **result)
{
	if (!main_fn)
		return -EINVAL;
	weft_config c;
	if (resolve_config(cfg, &c) < 0)
		return -EINVAL;
	weft_runtime *rt = weft_runtime_new(&c);
	if (!rt)
		return -ENOMEM;
	int rc = weft_block_on(rt, main_fn, arg, result);
	int src = weft_runtime_shutdown(rt, -1);
	weft_runtime_free(rt);
	return rc ? rc : src;
}
