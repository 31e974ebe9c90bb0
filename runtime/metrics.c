/*
 * Metrics (include/weft/observe.h): read from the counters the workers,
 * rings, pollers, timer wheels and the blocking pool keep anyway. Owner-
 * written counters are relaxed atomics (one plain store on the owner's
 * side); the blocking pool's are read under its lock. Nothing here is on a
 * hot path.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/observe.h>

#include "rt.h"
#include "textbuf.h"
#include "worker.h"

static uint64_t load(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

int weft_metrics_worker(weft_runtime *rt, unsigned i, weft_worker_metrics *out)
{
	if (!rt || !out || i >= rt->nthreads)
		return -EINVAL;
	struct weft__worker *w = &rt->workers[i];
	struct weft__thread *th = &rt->threads[i];
	memset(out, 0, sizeof *out);
	out->completed = atomic_load_explicit(&w->completed, memory_order_acquire);
	out->spawned = atomic_load_explicit(&w->spawned, memory_order_acquire);
	out->runs = atomic_load_explicit(&w->tick, memory_order_relaxed);
	out->lifo_hits = load(&w->lifo_hits);
	out->steals = load(&w->steals);
	out->stolen_tasks = load(&w->stolen_tasks);
	out->parks = load(&w->parks);
	out->unparks = load(&w->unparks);
	out->busy_ns = load(&w->busy_ns);
	out->local_queue_depth = weft__lq_len(&w->lq);
	out->io_submitted = load(&th->ring.submitted_seq);
	out->io_completed = load(&th->ring.completions) + load(&th->poller.events);
	out->timers_armed = load(&w->timers.armed);
	out->timers_fired = load(&w->timers.fired);
	out->timers_rescued = load(&w->timers_rescued);
	out->handoffs = load(&w->handoffs);
	out->timers_stolen = load(&w->timers_stolen);
	out->preemptions = load(&w->preemptions);
	return 0;
}

int weft_metrics_get(weft_runtime *rt, weft_metrics *out)
{
	if (!rt || !out)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	out->workers = rt->nworkers;
	out->spares = rt->nthreads - rt->nworkers;
	/* Completions first: a completion counted happened after its spawn
	   was counted, so alive never comes out negative. */
	uint64_t done = 0;
	for (unsigned i = 0; i < rt->nthreads; i++)
		done += atomic_load_explicit(&rt->workers[i].completed, memory_order_acquire);
	uint64_t spawned = atomic_load_explicit(&rt->inject.spawned, memory_order_acquire);
	for (unsigned i = 0; i < rt->nthreads; i++) {
		weft_worker_metrics wm;
		weft_metrics_worker(rt, i, &wm);
		spawned += wm.spawned;
		out->runs += wm.runs;
		out->steals += wm.steals;
		out->parks += wm.parks;
		out->handoffs += wm.handoffs;
		out->preemptions += wm.preemptions;
	}
	out->tasks_spawned = spawned;
	out->tasks_completed = done;
	out->tasks_alive = spawned - done;
	out->injector_depth = weft__inject_len(&rt->inject);
	out->slow_lane_depth = weft__inject_len(&rt->slow);
	out->spawn_backoffs = atomic_load_explicit(&rt->spawn_backoffs, memory_order_relaxed);
	struct weft__blocking *b = &rt->blocking;
	pthread_mutex_lock(&b->lock);
	out->blocking_threads = b->threads;
	out->blocking_busy = b->busy;
	out->blocking_queued = b->queued;
	pthread_mutex_unlock(&b->lock);
	out->stalls = atomic_load_explicit(&rt->monitor.stalls, memory_order_relaxed);
	return 0;
}

/* ---------------------------------------------------------- Prometheus */

static void family(struct weft__textbuf *o, const char *name, const char *type, const char *help)
{
	weft__textbuf_printf(o, "# HELP weft_%s %s\n# TYPE weft_%s %s\n", name, help, name, type);
}

static void sample(struct weft__textbuf *o, const char *name, uint64_t v)
{
	weft__textbuf_printf(o, "weft_%s %llu\n", name, (unsigned long long)v);
}

/* One per-worker family: the field at `offset` of each worker's metrics. */
static void per_worker(struct weft__textbuf *o, const weft_worker_metrics *wm, unsigned n,
                       const char *name, const char *type, const char *help, size_t offset)
{
	family(o, name, type, help);
	for (unsigned i = 0; i < n; i++) {
		uint64_t v;
		memcpy(&v, (const char *)&wm[i] + offset, sizeof v);
		weft__textbuf_printf(o, "weft_%s{worker=\"%u\"} %llu\n", name, i,
		                     (unsigned long long)v);
	}
}

#define WORKER_FAMILY(o, wm, n, field, type, help)                                                 \
	per_worker((o), (wm), (n), "worker_" #field, (type), (help),                               \
	           offsetof(weft_worker_metrics, field))

int weft_metrics_prometheus(weft_runtime *rt, int fd)
{
	if (!rt || fd < 0)
		return -EINVAL;
	weft_metrics m;
	weft_metrics_get(rt, &m);
	unsigned n = m.workers + m.spares; /* the spare is worker="<workers>" */
	weft_worker_metrics *wm = calloc(n, sizeof *wm);
	if (!wm)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		weft_metrics_worker(rt, i, &wm[i]);
	struct weft__textbuf o = {0};
	family(&o, "workers", "gauge", "Worker threads of the runtime.");
	sample(&o, "workers", m.workers);
	family(&o, "tasks_spawned_total", "counter", "Tasks spawned.");
	sample(&o, "tasks_spawned_total", m.tasks_spawned);
	family(&o, "tasks_completed_total", "counter", "Tasks that finished.");
	sample(&o, "tasks_completed_total", m.tasks_completed);
	family(&o, "tasks_alive", "gauge", "Tasks spawned and not yet finished.");
	sample(&o, "tasks_alive", m.tasks_alive);
	family(&o, "injector_depth", "gauge", "Tasks queued in the global injector.");
	sample(&o, "injector_depth", m.injector_depth);
	family(&o, "slow_lane_depth", "gauge",
	       "Tasks preempted at the end of a time slice, queued to run again.");
	sample(&o, "slow_lane_depth", m.slow_lane_depth);
	family(&o, "preemptions_total", "counter", "Runs ended at the end of a time slice.");
	sample(&o, "preemptions_total", m.preemptions);
	family(&o, "spawn_backoffs_total", "counter",
	       "Times a plain thread spawning into a deep injector yielded its CPU.");
	sample(&o, "spawn_backoffs_total", m.spawn_backoffs);
	family(&o, "blocking_threads", "gauge", "Blocking pool threads alive.");
	sample(&o, "blocking_threads", m.blocking_threads);
	family(&o, "blocking_busy_threads", "gauge", "Blocking pool threads running a job.");
	sample(&o, "blocking_busy_threads", m.blocking_busy);
	family(&o, "blocking_queued_jobs", "gauge", "Blocking jobs waiting for a thread.");
	sample(&o, "blocking_queued_jobs", m.blocking_queued);
	family(&o, "stalls_total", "counter", "Stalls the monitor reported (or suppressed).");
	sample(&o, "stalls_total", m.stalls);
	family(&o, "handoffs_total", "counter", "Stuck workers whose work the spare took over.");
	sample(&o, "handoffs_total", m.handoffs);
	WORKER_FAMILY(&o, wm, n, spawned, "counter", "Tasks spawned from tasks on the worker.");
	WORKER_FAMILY(&o, wm, n, completed, "counter", "Tasks that finished on the worker.");
	WORKER_FAMILY(&o, wm, n, runs, "counter", "Task switches on the worker.");
	WORKER_FAMILY(&o, wm, n, lifo_hits, "counter", "Switches into the LIFO slot's task.");
	WORKER_FAMILY(&o, wm, n, steals, "counter", "Steals the worker made.");
	WORKER_FAMILY(&o, wm, n, stolen_tasks, "counter", "Tasks the worker's steals took.");
	WORKER_FAMILY(&o, wm, n, parks, "counter", "Times the worker's thread went to sleep.");
	WORKER_FAMILY(&o, wm, n, unparks, "counter", "Times the worker's thread woke.");
	WORKER_FAMILY(&o, wm, n, busy_ns, "counter", "Nanoseconds the worker's thread was awake.");
	WORKER_FAMILY(&o, wm, n, local_queue_depth, "gauge", "Tasks in the worker's local queue.");
	WORKER_FAMILY(&o, wm, n, io_submitted, "counter",
	              "io_uring submissions handed to the kernel.");
	WORKER_FAMILY(&o, wm, n, io_completed, "counter", "I/O completions or readiness events.");
	WORKER_FAMILY(&o, wm, n, timers_armed, "counter", "Timers armed in the worker's wheel.");
	WORKER_FAMILY(&o, wm, n, timers_fired, "counter", "Timers the worker's wheel fired.");
	WORKER_FAMILY(&o, wm, n, timers_rescued, "counter",
	              "Timers of the worker the monitor fired while it was stuck.");
	WORKER_FAMILY(&o, wm, n, timers_stolen, "counter",
	              "Late timers of other workers that this worker fired.");
	WORKER_FAMILY(&o, wm, n, handoffs, "counter",
	              "Times the worker was found stuck and its work handed to the spare.");
	WORKER_FAMILY(&o, wm, n, preemptions, "counter",
	              "Runs the worker ended at the end of a time slice.");
	free(wm);
	if (o.truncated)
		weft__textbuf_printf(&o, "# out of memory: some samples are missing\n");
	return weft__textbuf_write(&o, fd);
}
