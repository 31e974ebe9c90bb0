/*
 * Task lifecycle: spawn, wake, join, detach, cancel and the reference count.
 * The state word and its invariants are described in task.h.
 *
 * Join protocol. The joiner stores its waker in t->joiner and then sets
 * JOIN_WAITER; the completing worker sets COMPLETE and, if it saw
 * JOIN_WAITER, wakes that waker. Both are single atomic read-modify-writes on
 * the state word, so exactly one side sees the other:
 *   - the joiner's fetch_or returns COMPLETE: the completer did not see the
 *     waiter and will not wake it; the joiner drops its own waker;
 *   - otherwise the completer will wake it. A cancelled joiner withdraws by
 *     clearing JOIN_WAITER with a CAS that fails if COMPLETE is already set;
 *     if it fails, the join has taken effect (the result is there) and the
 *     completer owns the waker, so the join returns success.
 * The result and cancelled_at_return are written before COMPLETE is
 * published (release) and read after it is seen (acquire).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"
#include "stack.h"
#include "task.h"
#include "tls.h"
#include "wait.h"
#include "worker.h"

void weft__task_unref(struct weft_task *t)
{
	uint64_t prev = atomic_fetch_sub_explicit(&t->state, WEFT__T_REF_ONE, memory_order_acq_rel);
	if ((prev & WEFT__T_REF_MASK) == WEFT__T_REF_ONE)
		t->vt->release(t);
}

void weft__task_wake(struct weft_task *t)
{
	uint64_t prev = atomic_load_explicit(&t->state, memory_order_acquire), next;
	do {
		if (prev & WEFT__T_COMPLETE)
			return;
		/* Already NOTIFIED: write it again all the same. The waker
		   published something before waking (a waiter's state); the
		   task's next park must be ordered after that in this word's
		   modification order, or it may clear the old NOTIFIED, look
		   before the publication is visible, and sleep with nobody left
		   to wake it (found by the lock-free channel's 4-producer
		   benchmark, 3 hangs in 100 runs). */
		next = prev | ((prev & WEFT__T_SCHEDULED) ? WEFT__T_NOTIFIED : WEFT__T_SCHEDULED);
	} while (!atomic_compare_exchange_weak_explicit(
	        &t->state, &prev, next, memory_order_acq_rel, memory_order_acquire));
	if (!(prev & WEFT__T_SCHEDULED)) {
		/* It will run soon, most likely on this worker: start fetching
		   the frames it resumes into. From t->stack, which shares the
		   header's first line with the state, not from fiber.sp, which
		   would be a miss of its own on the third. */
		if (t->stack) {
			weft__stack_prefetch(t->stack);
			__builtin_prefetch(&t->fiber); /* the switch reads fiber.sp */
		}
		weft__task_schedule(t, WEFT__SCHED_WAKE);
	}
}

/* Counts a spawn made on a worker (before the task can run, so that shutdown
   never sees more completions than spawns) and returns its id. */
static uint64_t count_local_spawn(weft_runtime *rt, struct weft__thread *th)
{
	struct weft__worker *w = th->worker;
	atomic_store_explicit(&w->spawned, w->spawned + 1, memory_order_release);
	return weft__next_task_id(rt, w);
}

void weft__task_init(struct weft_task *t, weft_runtime *rt, const struct weft__task_vtable *vt,
                     weft_fn fn, void *arg, const char *file, int line)
{
	/* Field by field: a memset of the whole header costs more than this. */
	atomic_init(&t->state, WEFT__T_SCHEDULED | WEFT__T_JOIN_INTEREST | 2 * WEFT__T_REF_ONE);
	t->qnext = NULL;
	t->vt = vt;
	t->rt = rt;
	t->stack = NULL;
	t->stack_size = 0;
	t->pinned_spawn = false;
	t->pin_depth = 0;
	t->shield_depth = 0;
	t->cancelled_at_return = false;
	atomic_init(&t->registered, false);
	t->pinned_to = NULL;
	t->fn = fn;
	t->arg = arg;
	t->result = NULL;
	t->scope = NULL;
	weft__task_set_site(t, NULL, file ? file : "?", line);
	t->wait = WEFT__WAIT_NONE;
	t->wait_obj = NULL;
	t->wait_since_ms = t->runs = t->run_periods = 0;
	t->magic = WEFT__TASK_MAGIC;
}

void weft__task_finish(struct weft_task *t)
{
	uint64_t prev = atomic_load_explicit(&t->state, memory_order_relaxed), next;
	do {
		next = (prev & ~(WEFT__T_SCHEDULED | WEFT__T_NOTIFIED)) | WEFT__T_COMPLETE;
	} while (!atomic_compare_exchange_weak_explicit(
	        &t->state, &prev, next, memory_order_acq_rel, memory_order_relaxed));
	if (prev & WEFT__T_JOIN_WAITER)
		weft__waker_wake(weft__waker_unpack(t->joiner));
}

/* A plain thread that spawns faster than the workers run the tasks (the
   injector holds more than WEFT__SPAWN_BACKOFF_DEPTH) gives its CPU away
   every WEFT__SPAWN_BACKOFF_EVERY spawns: on a machine with no idle core,
   such a thread otherwise keeps a core from a worker for milliseconds at a
   time (perf sched: workers runnable but off their cores up to 8 ms beside
   a flooding thread; 1,000 sleeping probes 2.7-4.4 ms late at p99 against
   1.2 idle, 1.8-2.7 with this). With an idle core it costs a system call
   per 64 spawns. A burst pays too: 10,000 spawned at once and joined ran
   13% slower into idle workers (median of 8 interleaved runs, 11.2 vs
   12.9 M/s) and 2% into busy ones; yielding only once the injector had
   stayed deep for 1-2 ms spared the bursts but lost the flood's gain. */
static void outside_spawn_backoff(struct weft_runtime *rt, struct weft__tls *tls, long queued)
{
	if (queued <= WEFT__SPAWN_BACKOFF_DEPTH || ++tls->deep_spawns % WEFT__SPAWN_BACKOFF_EVERY)
		return;
	atomic_fetch_add_explicit(&rt->spawn_backoffs, 1, memory_order_relaxed);
	sched_yield();
}

weft_task *weft_spawn_at(weft_runtime *rt, weft_fn fn, void *arg, const weft_spawn_opts *opts,
                         const char *file, int line)
{
	struct weft__tls *tls = weft__tls();
	if (!rt)
		rt = tls->rt;
	if (!rt || !fn || atomic_load_explicit(&rt->closed, memory_order_acquire))
		return NULL;
	size_t stack_size = rt->cfg.stack_size;
	if (opts && opts->stack_size) {
		if (opts->stack_size < WEFT_MIN_STACK_SIZE ||
		    opts->stack_size > WEFT_MAX_STACK_SIZE)
			return NULL;
		stack_size = opts->stack_size;
	}
	struct weft_task *t = weft__task_alloc();
	if (!t)
		return NULL;
	weft__task_init(t, rt, &weft__fiber_task_vtable, fn, arg, file, line);
	t->stack_size = stack_size;
	t->pinned_spawn = opts && opts->pinned;
	t->pin_depth = t->pinned_spawn;
	__atomic_store_n(&t->name, opts ? opts->name : NULL, __ATOMIC_RELAXED);
	struct weft__thread *th = tls->thread;
	if (th && th->rt == rt) {
		weft__task_set_id(t, count_local_spawn(rt, th));
		weft__task_schedule(t, WEFT__SCHED_WAKE);
		return t;
	}
	/* From outside the workers: counted (and refused once shut down)
	   under the injector's lock. The id is taken now, one at a time (a
	   worker takes blocks of them): a joiner records it (wait_complete). */
	weft__task_set_id(t, atomic_fetch_add_explicit(&rt->next_id, 1, memory_order_relaxed) + 1);
	long queued = weft__inject_push_spawn(&rt->inject, t);
	if (queued < 0) {
		weft__task_free(t);
		return NULL;
	}
	weft__notify_one(rt);
	if (!th)
		outside_spawn_backoff(rt, tls, queued);
	return t;
}

static bool handle_valid(weft_task *t)
{
	return t && t->magic == WEFT__TASK_MAGIC;
}

/* Consumes the handle: clears its bits and drops its reference. */
static void drop_handle(weft_task *t)
{
	uint64_t prev = atomic_load_explicit(&t->state, memory_order_relaxed), next;
	do {
		next = (prev & ~(WEFT__T_JOIN_INTEREST | WEFT__T_JOIN_WAITER)) - WEFT__T_REF_ONE;
	} while (!atomic_compare_exchange_weak_explicit(
	        &t->state, &prev, next, memory_order_acq_rel, memory_order_relaxed));
	if ((prev & WEFT__T_REF_MASK) == WEFT__T_REF_ONE)
		t->vt->release(t);
}

/* Takes the joiner's waker back unless the task completed first; returns the
   state seen (COMPLETE set: the completer owns the waker). */
static uint64_t withdraw_joiner(weft_task *t)
{
	uint64_t cur = atomic_load_explicit(&t->state, memory_order_acquire);
	do {
		if (cur & WEFT__T_COMPLETE)
			return cur;
	} while (!atomic_compare_exchange_weak_explicit(&t->state, &cur, cur & ~WEFT__T_JOIN_WAITER,
	                                                memory_order_acq_rel,
	                                                memory_order_acquire));
	weft__waker_drop(weft__waker_unpack(t->joiner));
	return cur;
}

/* Waits for COMPLETE. 0 once seen (*state updated), or the caller's
   cancellation with the waker withdrawn. */
static int wait_complete(weft_task *t, uint64_t *state)
{
	_Atomic uint32_t word;
	struct weft__waker self = weft__waker_self(&word);
	t->joiner = weft__waker_pack(self);
	uint64_t s = atomic_fetch_or_explicit(&t->state, WEFT__T_JOIN_WAITER, memory_order_acq_rel);
	if (s & WEFT__T_COMPLETE) {
		weft__waker_drop(self); /* the completer did not see us */
		*state = s;
		return 0;
	}
	for (;;) {
		/* The dump is given the id, not the task: by the time it reads a
		   stale record, this joiner may have freed t. */
		weft__block(&word, WEFT__WAIT_JOIN, (const void *)(uintptr_t)t->id, 0);
		s = weft__task_state(t);
		if (s & WEFT__T_COMPLETE)
			break;
		int rc = weft__wait_check();
		if (rc) {
			s = withdraw_joiner(t);
			if (!(s & WEFT__T_COMPLETE))
				return rc;
			break; /* completed meanwhile: the join took effect */
		}
	}
	weft__waker_settle(self); /* the completer is done with our word */
	*state = s;
	return 0;
}

int weft_join(weft_task *t, void **result)
{
	/* The header's first line was last written by the worker that ran the
	   task; fetch it for writing at once rather than shared and then again
	   for the final read-modify-write. */
	__builtin_prefetch(t, 1);
	if (!handle_valid(t))
		return -EINVAL;
	if (t == weft__tls()->task)
		return -EDEADLK;
	uint64_t s = weft__task_state(t);
	if (!(s & WEFT__T_JOIN_INTEREST) || (s & WEFT__T_JOIN_WAITER))
		return -EINVAL;
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	s = weft__task_state(t);
	if (!(s & WEFT__T_COMPLETE) && (rc = wait_complete(t, &s)) < 0)
		return rc;
	if (result)
		*result = t->result;
	rc = t->cancelled_at_return ? WEFT_CANCELED : 0;
	drop_handle(t);
	return rc;
}

static void handle_misuse(const char *call, weft_task *t)
{
	fprintf(stderr, "weft: %s on task %llu (spawned at %s:%d): its handle was already %s\n",
	        call, (unsigned long long)t->id, t->file, t->line,
	        (weft__task_state(t) & WEFT__T_JOIN_WAITER) ? "being joined"
	                                                    : "joined or detached");
	abort();
}

void weft_detach(weft_task *t)
{
	if (!handle_valid(t))
		return;
	uint64_t s = weft__task_state(t);
	if (!(s & WEFT__T_JOIN_INTEREST) || (s & WEFT__T_JOIN_WAITER))
		handle_misuse("weft_detach", t);
	drop_handle(t);
}

void weft_cancel(weft_task *t)
{
	if (!handle_valid(t))
		return;
	uint64_t prev = atomic_load_explicit(&t->state, memory_order_acquire);
	do {
		if (prev & (WEFT__T_COMPLETE | WEFT__T_CANCELLED))
			return;
	} while (!atomic_compare_exchange_weak_explicit(&t->state, &prev, prev | WEFT__T_CANCELLED,
	                                                memory_order_acq_rel,
	                                                memory_order_acquire));
	weft__task_wake(t);
}
