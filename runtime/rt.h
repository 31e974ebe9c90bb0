/*
 * The runtime object (internal).
 */
#ifndef WEFT_RUNTIME_RT_H
#define WEFT_RUNTIME_RT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <weft/runtime.h>

#include "../blocking/pool.h"
#include "idle.h"
#include "inject.h"
#include "monitor.h"
#include "registry.h"
#include "worker.h"

#define WEFT__ID_BLOCK 4096

struct weft_runtime {
	weft_config cfg;
	unsigned nworkers;         /* the configured workers */
	unsigned nthreads;         /* and the spare (worker.h) if the monitor runs: nworkers + 1 */
	int io_backend;            /* WEFT_IO_URING or WEFT_IO_EPOLL, as chosen at start */
	_Atomic uint32_t io_ready; /* workers whose ring or epoll is set up */
	_Atomic uint32_t tls_readers;    /* threads inside weft__running (worker.h) */
	_Atomic uint64_t spawn_backoffs; /* plain threads' yields to the workers (task.c) */
	uint64_t spin_ns;
	uint64_t time_base_ns; /* tick 0 of the workers' timer wheels */
	struct weft__worker *workers;
	struct weft__thread *threads;
	struct weft__inject inject;
	struct weft__inject slow; /* preempted tasks, one pick at a time (worker.c) */
	struct weft__idle idle;
	struct weft__registry reg;
	struct weft__stack_depot stacks;
	struct weft__blocking blocking;
	struct weft__monitor monitor;
	_Atomic bool closed;   /* shutdown began: no spawns, every wait cancelled */
	_Atomic bool stopping; /* workers exit once idle */

	/* Task ids: workers take them in blocks. A line of its own, away from
	   `closed`, which every wait reads. */
	_Alignas(64) _Atomic uint64_t next_id;

	pthread_mutex_t shutdown_lock;
	bool shutdown_done;
	bool leaked; /* a worker never stopped: memory must stay */
	int shutdown_result;
};

/* The spare (worker.h) comes after the regular workers. */
static inline bool weft__is_spare(const struct weft__thread *th)
{
	return th->index >= th->rt->nworkers;
}

#endif
