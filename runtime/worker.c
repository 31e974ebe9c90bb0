/*
 * The worker loop: where runnable tasks come from and where they go.
 *
 * Each worker thread loops on its scheduler context (the thread's own stack):
 *
 *   next task:  every global_queue_interval (61) ticks: submit and reap I/O,
 *               offer the CPU to other threads if I/O is outstanding
 *               (offer_cpu), then the pinned inbox and the injector first (so
 *               two tasks that keep waking each other cannot starve them);
 *               then the LIFO slot (at most 3 runs in a row),
 *               the pinned inbox, the local queue (topped up from the injector
 *               when short), a batch from the injector.
 *   search:     if allowed to search (at most half the workers do), steal half
 *               of a random victim's queue, or take from the injector; keep
 *               looking for spin_us before giving up (yielding the CPU between
 *               looks), because waking a sleeping thread costs ~6 us of the
 *               waker's core here against ~15 ns for a fiber switch.
 *   sleep:      announce it (idle.c), re-check, park on the thread's futex.
 *
 * Tasks mostly switch among themselves without coming back here
 * (fiber_task.c): a task that yields, parks or finishes picks the worker's
 * next task itself (weft__next_runnable), and only when there is none does
 * it return to this loop to search and sleep.
 *
 * Where a runnable task goes (weft__task_schedule):
 *   pinned to a thread     -> that thread's inbox (never stolen)
 *   on a worker of its rt  -> woken/spawned: the LIFO slot (the displaced
 *                             occupant goes to the queue); yielded: behind a
 *                             batch from the injector, or onto the injector
 *                             when it is long (weft__requeue_yielded)
 *   preempted at the end   -> the slow lane, from which a worker picks a
 *   of its time slice         task only when it has nothing else, or
 *                             once the others have had as long as that
 *                             task ran (weft__task_demote)
 *   anywhere else          -> the injector
 * and a push to a stealable place wakes a sleeping worker when nobody is
 * searching (idle.h explains why that loses no wake-up).
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "futex.h"
#include "overflow.h"
#include "rt.h"
#include "spin.h"
#include "task.h"
#include "tls.h"
#include "wait.h"
#include "worker.h"

#include <weft/time.h>

/* ------------------------------------------------------------------ tasks */

struct weft_task *weft__task_alloc(void)
{
	if (weft__fault(WEFT__FAULT_TASK_ALLOC)) {
		errno = ENOMEM;
		return NULL;
	}
	struct weft__thread *th = weft__tls()->thread;
	if (th) {
		struct weft__worker *w = th->worker;
		struct weft_task *t = w->task_cache;
		if (t) {
			w->task_cache = t->qnext;
			w->task_cache_n--;
			return t;
		}
	}
	return aligned_alloc(64, sizeof(struct weft_task));
}

uint64_t weft__next_task_id(struct weft_runtime *rt, struct weft__worker *w)
{
	if (w->id_next == w->id_end) {
		w->id_next = atomic_fetch_add_explicit(&rt->next_id, WEFT__ID_BLOCK,
		                                       memory_order_relaxed) +
		             1;
		w->id_end = w->id_next + WEFT__ID_BLOCK;
	}
	return w->id_next++;
}

void weft__task_free(struct weft_task *t)
{
	t->magic = 0;
	struct weft__thread *th = weft__tls()->thread;
	if (th && th->rt == t->rt && th->worker->task_cache_n < WEFT__TASK_CACHE_MAX) {
		struct weft__worker *w = th->worker;
		t->qnext = w->task_cache;
		w->task_cache = t;
		w->task_cache_n++;
		return;
	}
	free(t);
}

void weft__worker_drain(struct weft__worker *w)
{
	while (w->task_cache) {
		struct weft_task *t = w->task_cache;
		w->task_cache = t->qnext;
		free(t);
	}
	w->task_cache_n = 0;
	weft__stack_pool_drain(&w->stacks);
}

/* ------------------------------------------------------------- scheduling */

/* Wakes a sleeping worker for work we just published, if nobody searches.
   A push to a place only the sleeper would find (the injector) must be
   ordered before our reading of the idle state, or a worker going to sleep
   could miss both (idle.h): such callers pass ordered = true. A push to our
   own local queue needs no ordering: if the wake is missed, this worker runs
   the task itself. */
static void notify(struct weft_runtime *rt, bool ordered)
{
	int idx = weft__idle_pick_sleeper(&rt->idle, ordered);
	if (idx >= 0)
		weft__parker_unpark(&rt->threads[idx].parker);
}

void weft__notify_one(struct weft_runtime *rt)
{
	notify(rt, true);
}

void weft__wake_all(struct weft_runtime *rt)
{
	for (unsigned i = 0; i < rt->nthreads; i++) {
		if (!weft__is_spare(&rt->threads[i]))
			weft__idle_take_sleeper(&rt->idle, i);
		weft__parker_unpark(&rt->threads[i].parker);
	}
}

static void inbox_push(struct weft__thread *target, struct weft_task *t)
{
	t->qnext = NULL;
	pthread_mutex_lock(&target->inbox_lock);
	if (target->inbox_tail)
		target->inbox_tail->qnext = t;
	else
		target->inbox_head = t;
	target->inbox_tail = t;
	atomic_fetch_add_explicit(&target->inbox_len, 1, memory_order_seq_cst);
	pthread_mutex_unlock(&target->inbox_lock);
	if (weft__tls()->thread != target &&
	    (weft__is_spare(target) || weft__idle_take_sleeper(&target->rt->idle, target->index)))
		weft__parker_unpark(&target->parker);
}

static struct weft_task *inbox_pop_locked(struct weft__thread *th)
{
	pthread_mutex_lock(&th->inbox_lock);
	struct weft_task *t = th->inbox_head;
	if (t) {
		th->inbox_head = t->qnext;
		if (!th->inbox_head)
			th->inbox_tail = NULL;
		atomic_fetch_sub_explicit(&th->inbox_len, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&th->inbox_lock);
	return t;
}

static inline struct weft_task *inbox_pop(struct weft__thread *th)
{
	if (atomic_load_explicit(&th->inbox_len, memory_order_acquire) == 0)
		return NULL;
	return inbox_pop_locked(th);
}

static void push_back(struct weft_runtime *rt, struct weft__worker *w, struct weft_task *t)
{
	struct weft__batch overflow;
	if (weft__lq_push(&w->lq, t, &overflow))
		weft__inject_push_batch(&rt->inject, &overflow);
}

/* The spare sheds what it would queue once it is not wanted (worker.h):
   to the injector, for the regular workers. */
static void shed(struct weft_runtime *rt, struct weft_task *t)
{
	weft__inject_push(&rt->inject, t);
	weft__notify_one(rt);
}

/* A task that leaves a frozen slot: to the stealable queue, or a shed
   spare's to the injector. (Also prev of a put into a slot the monitor
   let be after all: then the worker is not shed, and this is the fast
   path's queueing.) */
static void leave_frozen_slot(struct weft__thread *th, struct weft_task *t)
{
	if (weft__worker_shed(th->worker)) {
		shed(th->rt, t);
		return;
	}
	push_back(th->rt, th->worker, t);
	notify(th->rt, false);
}

/* A wake found the slot frozen (lifo.h): what must leave it, leaves. */
static __attribute__((noinline)) void lifo_put_frozen(struct weft__thread *th,
                                                      struct weft_task *prev)
{
	struct weft_task *out[2];
	unsigned n = weft__lifo_put_frozen(&th->worker->lifo, prev, out);
	for (unsigned i = 0; i < n; i++)
		leave_frozen_slot(th, out[i]);
}

static inline void schedule_local(struct weft__thread *th, struct weft_task *t,
                                  enum weft__sched_how how)
{
	struct weft__worker *w = th->worker;
	if (how == WEFT__SCHED_WAKE) {
		struct weft_task *prev;
		if (__builtin_expect(!weft__lifo_put(&w->lifo, t, &prev), 0)) {
			lifo_put_frozen(th, prev);
			return;
		}
		if (!prev)
			return; /* nobody else takes from the slot: nobody to wake */
		t = prev;
	}
	/* A yield on a shed spare lands here too: its queue goes to the
	   injector every global_queue_interval (shed_queue), which keeps the
	   check off the yield path. */
	push_back(th->rt, w, t);
	notify(th->rt, false);
}

void weft__task_schedule(struct weft_task *t, enum weft__sched_how how)
{
	if (t->pinned_to) {
		inbox_push(t->pinned_to, t);
		return;
	}
	struct weft__thread *th = weft__tls()->thread;
	if (th && th->rt == t->rt) {
		schedule_local(th, t, how);
		return;
	}
	weft__inject_push(&t->rt->inject, t);
	weft__notify_one(t->rt);
}

void weft__requeue(struct weft__thread *th, struct weft_task *t)
{
	if (t->pinned_to)
		inbox_push(t->pinned_to, t);
	else
		schedule_local(th, t, WEFT__SCHED_YIELD);
}

void weft__requeue_yielded(struct weft__thread *th, struct weft_task *t)
{
	struct weft_runtime *rt = th->rt;
	if (!t->pinned_to && weft__inject_len(&rt->inject) >= WEFT__LQ_CAP) {
		weft__inject_push_last(&rt->inject, t);
		weft__notify_one(rt);
		return;
	}
	weft__requeue(th, t);
}

/* The slow lane. A task that used a whole time slice (wait.c) between two
   switches is CPU-bound for now; the tasks that sleep and wake (a timer, a
   socket, a channel) should not wait behind it. So it goes to a queue of
   its own, shared by the workers, and a worker picks one task from it only
   when it has nothing else, or every global_queue_interval once as much
   time has passed since the last preemption as that task ran: a core
   kept busy by CPU-bound tasks gives the others at least half of it.
   (Behind the other tasks in the local queue, 64 tasks that each ran 2.56
   ms per turn held 1,000 timer-woken probes 92 ms late at p99 on one
   worker.) As Go puts a preempted goroutine on its global queue, which
   its Ps look at every 61st schedule. */
void weft__task_demote(struct weft__thread *th, uint64_t ran_ns)
{
	struct weft__worker *w = th->worker;
	atomic_store_explicit(&w->preemptions, w->preemptions + 1, memory_order_relaxed);
	w->slow_gate_ns = weft__mono_ns() + ran_ns;
	weft__task_switch_out(WEFT__SW_DEMOTE);
}

void weft__requeue_demoted(struct weft__thread *th, struct weft_task *t)
{
	if (t->pinned_to) {
		inbox_push(t->pinned_to, t);
		return;
	}
	weft__inject_push(&th->rt->slow, t);
	weft__notify_one(th->rt);
}

static struct weft_task *take_slow(struct weft_runtime *rt, struct weft__worker *w)
{
	if (weft__inject_len(&rt->slow) == 0 || weft__worker_shed(w))
		return NULL;
	struct weft__batch b;
	weft__inject_pop_batch(&rt->slow, 1, &b);
	return b.n ? b.first : NULL;
}

/* No stack could be mapped for the task's first run (memory or
   vm.max_map_count exhausted): put it back and let the worker breathe, so the
   task runs once memory is available again. */
void weft__stack_unavailable(struct weft__thread *th, struct weft_task *t)
{
	static atomic_flag warned = ATOMIC_FLAG_INIT;
	if (!atomic_flag_test_and_set(&warned))
		fprintf(stderr, "weft: cannot map a stack for task %llu (%s); retrying\n",
		        (unsigned long long)t->id, strerror(errno));
	weft__inject_push(&th->rt->inject, t);
	struct timespec pause = {0, 1000 * 1000};
	nanosleep(&pause, NULL);
}

/* ------------------------------------------------------------ worker loop */

static uint64_t rng_next(struct weft__worker *w)
{
	uint64_t x = w->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Takes a fair share of the injector into the local queue. With run_first,
   the first task is returned to run now instead of being queued; otherwise
   NULL is returned. */
static struct weft_task *take_injected(struct weft_runtime *rt, struct weft__worker *w,
                                       bool run_first)
{
	size_t len = weft__inject_len(&rt->inject);
	if (len == 0 || weft__worker_shed(w))
		return NULL;
	/* A fair share, into the free room of the local queue less some
	   headroom for the tasks the batch will spawn. */
	size_t n = len / rt->nworkers + 1;
	size_t room = weft__lq_free_slots(&w->lq);
	room = (room > WEFT__INJECT_HEADROOM ? room - WEFT__INJECT_HEADROOM : 0) + run_first;
	if (n > room)
		n = room;
	if (n == 0)
		return NULL;
	struct weft__batch b;
	weft__inject_pop_batch(&rt->inject, (unsigned)n, &b);
	if (b.n == 0)
		return NULL;
	if (!run_first) {
		weft__lq_push_batch(&w->lq, b.first, b.n);
		return NULL;
	}
	if (b.n > 1)
		weft__lq_push_batch(&w->lq, b.first->qnext, b.n - 1);
	return b.first;
}

/* Fires a few of this worker's due timers (a clock read per call, and only
   while timers are armed): their tasks become runnable on this worker. A
   few per tick, not a whole expired slot at once: a task woken now runs
   within a few ticks, while the stack lines its wake started fetching are
   still in the cache, rather than behind a thousand others -- unless the
   timers fall behind (tasks that run long between switches: a few per
   switch then cannot keep up), when all that are due fire: 64 tasks
   holding a mutex 20 us at a time made 1,000 probe sleeps of 1 ms late by
   113 ms at p99 on one worker with 4 per switch. */
static inline void poll_timers(struct weft__worker *w)
{
	if (weft__timers_armed(&w->timers)) {
		uint64_t now = weft_now_ns();
		if (weft__timers_due(&w->timers, now))
			weft__timers_fire(&w->timers, now,
			                  weft__timers_behind(&w->timers, now) >
			                                  WEFT__TIMERS_BEHIND_MS
			                          ? UINT_MAX
			                          : WEFT__TIMERS_PER_TICK);
	}
}

/* Submits prepared I/O and takes in completions and readiness without
   waiting; how many tasks it woke. */
static inline unsigned poll_io(struct weft__thread *th)
{
	weft__bufs_poll(&th->bufs);
	return weft__ring_poll_now(&th->ring) + weft__poller_poll_now(&th->poller);
}

/* A worker with I/O outstanding offers its CPU to the other runnable
   threads of the machine once per global_queue_interval. A socket write
   wakes its peer with the kernel's "sync" hint -- the waker is about to
   sleep -- so the woken thread (a client on the same machine, another
   process) is queued behind the waker on the waker's CPU; a worker that
   keeps finding work never sleeps, and that thread then waits for the
   scheduler tick (4 ms at HZ=250), twice in a row for the unlucky. Measured
   on tcp_echo with the client on the same 2 cores: p99 8.0 -> 0.8-1.8 ms,
   http_hello 4.3 -> 1.0 ms, throughput unchanged, server CPU per round
   trip down a third (the work each wake-up finds is batched better); the
   median rises from 140 to ~500 us -- the mean a closed loop of 100
   connections at 200 k/s must have (Little's law): latencies are no
   longer split between a fast majority and a starved tail. With nothing
   else runnable sched_yield returns at once (~0.35 us per 61 task runs);
   without I/O outstanding (the scheduler workloads) it is not called. */
static inline void offer_cpu(struct weft__thread *th)
{
	if (th->ring.inflight || atomic_load_explicit(&th->poller.registered, memory_order_relaxed))
		sched_yield();
}

void weft__before_yield(struct weft__thread *th)
{
	take_injected(th->rt, th->worker, false);
}

/* A shed spare's queue, for the regular workers. */
static void shed_queue(struct weft_runtime *rt, struct weft__worker *w)
{
	struct weft_task *t;
	while ((t = weft__lq_pop(&w->lq)))
		shed(rt, t);
}

/* Every global_queue_interval (not urgent: a frozen slot only sends wakes
   to the queue), the slot follows what the worker is. Back in its
   scheduler, a worker whose slot the monitor took is not stuck any more:
   the slot is its own again. A shed spare's is frozen -- the monitor froze
   it when it told the spare to shed, unless the spare reopened it just
   then -- and its queue goes to the injector. */
static __attribute__((noinline)) void follow_shed(struct weft_runtime *rt, struct weft__worker *w)
{
	uint32_t s = weft__lifo_state(&w->lifo);
	bool shed_ = weft__worker_shed(w);
	if (__builtin_expect(s == WEFT__LIFO_TAKEN, 0) && !shed_) {
		weft__lifo_reopen(&w->lifo);
	} else if (__builtin_expect(shed_, 0)) {
		struct weft_task *t;
		if (s == WEFT__LIFO_OPEN && weft__lifo_freeze(&w->lifo, &t) && t)
			shed(rt, t);
		shed_queue(rt, w);
	}
}

/* Fires the timers of other workers that are WEFT__TIMERS_STEAL_MS late:
   their owner is not getting to them -- descheduled by the kernel (more
   busy threads than cores), or in a long task -- so this worker runs the
   tasks they wake. Go's findrunnable runs other Ps' timers the same way.
   A few loads of lines the owners write rarely; the wheel's lock only for
   a wheel that is late. */
static void steal_timers(struct weft__thread *th, uint64_t now)
{
	struct weft_runtime *rt = th->rt;
	for (unsigned i = 0; i < rt->nthreads; i++) {
		struct weft__timers *tm = &rt->workers[i].timers;
		if (i == th->index || weft__timers_behind(tm, now) < WEFT__TIMERS_STEAL_MS)
			continue;
		unsigned n = weft__timers_fire(tm, now, UINT_MAX);
		struct weft__worker *w = th->worker;
		atomic_store_explicit(&w->timers_stolen, w->timers_stolen + n,
		                      memory_order_relaxed);
	}
}

struct weft_task *weft__next_runnable(struct weft__thread *th)
{
	struct weft_runtime *rt = th->rt;
	struct weft__worker *w = th->worker;
	struct weft_task *t;

	atomic_store_explicit(&w->tick, atomic_load_explicit(&w->tick, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	poll_timers(w);
	if (--w->gq_countdown == 0) {
		w->gq_countdown = rt->cfg.global_queue_interval;
		follow_shed(rt, w);
		uint64_t now = weft_now_ns();
		weft__stack_depot_trim(&rt->stacks, now);
		steal_timers(th, now);
		poll_io(th);
		offer_cpu(th);
		if ((now >= w->slow_gate_ns && (t = take_slow(rt, w))) || (t = inbox_pop(th)) ||
		    (t = take_injected(rt, w, true)))
			return t;
	}
	if ((t = weft__lifo_take(&w->lifo))) {
		if (w->lifo_runs < WEFT__LIFO_MAX_RUNS) {
			w->lifo_runs++;
			atomic_store_explicit(
			        &w->lifo_hits,
			        atomic_load_explicit(&w->lifo_hits, memory_order_relaxed) + 1,
			        memory_order_relaxed);
			return t;
		}
		push_back(rt, w, t); /* capped: to the back, behind the others */
	}
	w->lifo_runs = 0;
	if ((t = inbox_pop(th)))
		return t;
	/* A short local queue is topped up from the injector before it runs
	   dry: injected tasks then join the local FIFO behind the tasks already
	   there instead of waiting for the periodic check, which comes only
	   every 61 ticks -- long ones, when local tasks run long. */
	if (weft__lq_len(&w->lq) < WEFT__REFILL_BELOW)
		take_injected(rt, w, false);
	if ((t = weft__lq_pop(&w->lq)) || (t = take_injected(rt, w, true)))
		return t;
	return take_slow(rt, w); /* nothing else: the CPU-bound may have it */
}

static struct weft_task *steal_work(struct weft__thread *th)
{
	struct weft_runtime *rt = th->rt;
	struct weft__worker *w = th->worker;
	unsigned n = rt->nthreads; /* the spare's queue too, and the spare steals */
	unsigned start = (unsigned)(rng_next(w) % n);
	for (unsigned i = 0; i < n; i++) {
		unsigned idx = (start + i) % n;
		if (idx == w->index)
			continue;
		unsigned stolen = 0;
		struct weft_task *t = weft__lq_steal(&rt->workers[idx].lq, &w->lq, &stolen);
		if (t) {
			atomic_store_explicit(&w->steals, w->steals + 1, memory_order_relaxed);
			atomic_store_explicit(&w->stolen_tasks, w->stolen_tasks + stolen,
			                      memory_order_relaxed);
			return t;
		}
	}
	return take_injected(rt, w, true);
}

/* Steals for up to spin_ns if this worker may search; NULL if nothing came.

   Between two looks the searcher gives its CPU away (sched_yield) rather
   than spinning on it: the work it waits for is often made by a thread
   that is not a worker -- a spawning or waking thread of the program, or
   later a blocking-pool thread -- and with more runnable threads than
   cores a spinning searcher holds that thread off its CPU for a whole
   scheduler slice. spawn_many_remote_idle (the program's thread spawning
   onto two idle workers on two cores) spent 6 ms instead of 0.35 ms
   spawning in about a third of its runs that way; with nothing else
   runnable sched_yield returns at once. */
static struct weft_task *search(struct weft__thread *th)
{
	struct weft_runtime *rt = th->rt;
	if (weft__is_spare(th)) {
		if (weft__worker_shed(th->worker))
			return inbox_pop(th); /* not wanted: nothing but its own */
	} else if (!th->searching) {
		if (!weft__idle_try_search(&rt->idle))
			return NULL;
		th->searching = true;
	}
	uint64_t deadline = 0;
	for (;;) {
		struct weft_task *t = steal_work(th);
		if (t || (t = inbox_pop(th)))
			return t;
		if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
			return NULL;
		if (poll_io(th) && (t = weft__next_runnable(th)))
			return t;
		uint64_t now = weft__mono_ns();
		steal_timers(th, now);
		if (weft__timers_due(&th->worker->timers, now)) {
			weft__timers_fire(&th->worker->timers, now, UINT_MAX);
			if ((t = weft__next_runnable(th)))
				return t;
		}
		if (!deadline)
			deadline = now + rt->spin_ns;
		if (now >= deadline)
			return NULL;
		sched_yield();
	}
}

static bool work_visible(struct weft_runtime *rt)
{
	if (weft__inject_len(&rt->inject) || weft__inject_len(&rt->slow))
		return true;
	for (unsigned i = 0; i < rt->nthreads; i++)
		if (!weft__lq_is_empty(&rt->workers[i].lq))
			return true;
	return false;
}

static void sleep_until_event(struct weft__thread *th, struct weft__timers *timers);

static void count_sleep(struct weft__worker *w)
{
	atomic_store_explicit(&w->parks, w->parks + 1, memory_order_relaxed);
	atomic_store_explicit(&w->busy_ns, w->busy_ns + (weft__mono_ns() - w->active_since_ns),
	                      memory_order_relaxed);
}

static void count_wake(struct weft__worker *w)
{
	w->active_since_ns = weft__mono_ns();
	atomic_store_explicit(&w->unparks, w->unparks + 1, memory_order_relaxed);
}

/* Sleeps until woken, or until this worker's next timer is due (or, while
   the stack depot holds stacks, for at most a trim interval). */
static void sleep_until_woken(struct weft__thread *th)
{
	struct weft_runtime *rt = th->rt;
	struct weft__timers *timers = &th->worker->timers;
	bool last = weft__idle_to_sleeping(&rt->idle, th->index, th->searching);
	th->searching = false;
	/* Re-check after announcing the sleep: a push that saw us searching
	   skipped its wake (idle.h). */
	if (last && work_visible(rt))
		weft__notify_one(rt);
	if ((atomic_load_explicit(&th->inbox_len, memory_order_seq_cst) ||
	     atomic_load_explicit(&rt->stopping, memory_order_seq_cst)) &&
	    weft__idle_take_sleeper(&rt->idle, th->index))
		return;
	count_sleep(th->worker);
	sleep_until_event(th, timers);
	count_wake(th->worker);
}

/* The sleep itself, once announced. */
/* How long until the wheel of another worker that is awake -- running a
   task, so possibly stuck in it or off its core -- is WEFT__TIMERS_STEAL_MS
   late (0: one is), so that a sleeping worker wakes to fire it. A worker
   that sleeps wakes for its own timers. */
static uint64_t others_late_in_ns(struct weft__thread *th, uint64_t now)
{
	struct weft_runtime *rt = th->rt;
	uint64_t soonest = WEFT__NO_DEADLINE;
	for (unsigned i = 0; i < rt->nthreads; i++) {
		if (i == th->index ||
		    atomic_load_explicit(&rt->threads[i].parked, memory_order_relaxed))
			continue;
		uint64_t in =
		        weft__timers_late_in_ns(&rt->workers[i].timers, now, WEFT__TIMERS_STEAL_MS);
		if (in < soonest)
			soonest = in;
	}
	return soonest;
}

static void sleep_until_event(struct weft__thread *th, struct weft__timers *timers)
{
	struct weft_runtime *rt = th->rt;
	for (;;) {
		uint64_t now = weft_now_ns();
		weft__stack_depot_trim(&rt->stacks, now);
		uint64_t wait_ns = weft__timers_wait_ns(timers, now);
		if (weft__stack_depot_held(&rt->stacks) && wait_ns > WEFT__STACK_TRIM_NS)
			wait_ns = WEFT__STACK_TRIM_NS; /* wake to give idle stacks back */
		if (wait_ns == 0 && weft__idle_take_sleeper(&rt->idle, th->index))
			return; /* a timer is due: back to the loop, which fires it */
		/* Another worker late with its timers (stuck, or off its core):
		   fire them here and go and run what they woke. As Go's idle Ms
		   sleep until the earliest timer of any P. */
		uint64_t steal_ns = others_late_in_ns(th, now);
		if (steal_ns == 0) {
			steal_timers(th, now);
			if (weft__idle_take_sleeper(&rt->idle, th->index))
				return;
		} else if (steal_ns < wait_ns) {
			wait_ns = steal_ns;
		}
		atomic_store_explicit(&th->parked, true, memory_order_relaxed);
		bool events = weft__parker_park_timeout(&th->parker, wait_ns);
		atomic_store_explicit(&th->parked, false, memory_order_relaxed);
		bool searching;
		if (weft__idle_from_sleeping(&rt->idle, th->index, &searching)) {
			th->searching = searching;
			return;
		}
		/* Readiness woke tasks onto this worker (its LIFO slot, which
		   wakes nobody): go and run them. */
		if (events && weft__idle_take_sleeper(&rt->idle, th->index))
			return;
	}
}

/* The spare's sleep (worker.h): outside the idle protocol, so nobody wakes
   it for new work. Unwanted, it sleeps until its own timers are due, I/O
   on its ring completes, a task pinned to it wakes, or the monitor wants
   it. Wanted, it also looks for work every WEFT__SPARE_POLL_MS: work
   pushed while a worker is stuck wakes no sleeper when nobody else sleeps
   (with one worker, the stuck one), and the monitor wakes the spare only
   as the hand-off begins. */
static void spare_sleep(struct weft__thread *th)
{
	struct weft_runtime *rt = th->rt;
	struct weft__worker *w = th->worker;
	uint64_t wait_ns = weft__timers_wait_ns(&w->timers, weft_now_ns());
	if (!weft__worker_shed(w) && wait_ns > WEFT__SPARE_POLL_MS * 1000000ull)
		wait_ns = WEFT__SPARE_POLL_MS * 1000000ull;
	if (wait_ns == 0 || atomic_load_explicit(&th->inbox_len, memory_order_acquire) ||
	    atomic_load_explicit(&rt->stopping, memory_order_acquire))
		return;
	count_sleep(w);
	atomic_store_explicit(&th->parked, true, memory_order_relaxed);
	weft__parker_park_timeout(&th->parker, wait_ns);
	atomic_store_explicit(&th->parked, false, memory_order_relaxed);
	count_wake(w);
}

/* What an idle worker does before it sleeps: map stacks ahead of demand
   (stack.h), a few at a time, for as long as no work shows up. True if it
   did any: then the caller looks for work again. */
static bool idle_chores(struct weft__thread *th)
{
	struct weft_runtime *rt = th->rt;
	bool did = false;
	while (!work_visible(rt) && !atomic_load_explicit(&th->inbox_len, memory_order_relaxed) &&
	       !weft__timers_due(&th->worker->timers, weft__mono_ns()) &&
	       !atomic_load_explicit(&rt->stopping, memory_order_relaxed) &&
	       weft__stack_depot_top_up(&rt->stacks))
		did = true;
	return did;
}

static void run_loop(struct weft__thread *th)
{
	struct weft_runtime *rt = th->rt;
	struct weft__tls *tls = weft__tls();
	for (;;) {
		/* Back from a task: finish what it left (fiber_task.c). */
		weft__finish_pending(th);
		weft__set_running(tls, NULL);
		struct weft_task *t = weft__next_runnable(th);
		if (!t)
			t = search(th);
		if (t) {
			if (th->searching) {
				th->searching = false;
				if (weft__idle_leave_search(&rt->idle))
					weft__notify_one(rt);
			}
			t->vt->run(th, t);
			continue;
		}
		if (atomic_load_explicit(&rt->stopping, memory_order_acquire))
			break;
		if (weft__is_spare(th))
			spare_sleep(th);
		else if (!idle_chores(th))
			sleep_until_woken(th);
	}
	if (th->searching) {
		th->searching = false;
		weft__idle_leave_search(&rt->idle);
	}
}

struct weft_task *weft__running(struct weft__thread *th)
{
	struct weft_runtime *rt = th->rt;
	atomic_fetch_add_explicit(&rt->tls_readers, 1, memory_order_seq_cst);
	struct weft__tls *tls = atomic_load_explicit(&th->tls, memory_order_seq_cst);
	struct weft_task *t = tls ? __atomic_load_n(&tls->task, __ATOMIC_ACQUIRE) : NULL;
	atomic_fetch_sub_explicit(&rt->tls_readers, 1, memory_order_release);
	return t;
}

/* The thread is leaving: its thread-local memory is about to go. A reader
   either sees the pointer gone, or is seen reading and waited for. */
static void forget_tls(struct weft__thread *th)
{
	atomic_store_explicit(&th->tls, NULL, memory_order_seq_cst);
	while (atomic_load_explicit(&th->rt->tls_readers, memory_order_seq_cst))
		sched_yield();
}

void *weft__worker_main(void *arg)
{
	struct weft__thread *th = arg;
	struct weft__tls *tls = weft__tls();
	tls->thread = th;
	tls->rt = th->rt;
	th->tid = (pid_t)syscall(SYS_gettid);
	if (weft__is_spare(th))
		pthread_setname_np(pthread_self(), "weft-spare");
	th->worker->active_since_ns = weft__mono_ns();
	weft__set_running(tls, NULL);
	atomic_store_explicit(&th->tls, tls, memory_order_release);
	weft__fiber_init_thread(&th->sched);
	th->altstack = weft__overflow_thread_init();
	/* The ring is made here: only this thread may submit to it (it is
	   torn down after the thread was joined, when no unpark can write its
	   eventfd any more). Without one
	   (epoll chosen, or this ring failed) readiness goes through epoll. */
	if (th->rt->io_backend != WEFT_IO_URING || weft__ring_init(&th->ring) < 0)
		weft__poller_init(&th->poller); /* else: no epoll, a futex parker */
	atomic_fetch_add_explicit(&th->rt->io_ready, 1, memory_order_release);
	weft__futex_wake(&th->rt->io_ready, INT_MAX);
	run_loop(th);
	forget_tls(th);
	weft__ring_quiesce(&th->ring); /* no multishot op outlives its ring */
	weft__overflow_thread_fini(th->altstack);
	th->altstack = NULL;
	tls->thread = NULL;
	tls->rt = NULL;
	return NULL;
}
