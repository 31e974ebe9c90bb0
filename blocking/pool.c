/*
 * The blocking pool: spawning jobs, the pool threads' loop, and shutdown.
 * The design is described in pool.h.
 *
 * Hand-off. A spawn that finds an idle thread takes it off the idle list,
 * leaves the job in its `handed` slot and sets its word to WOKEN, all under
 * the lock; only a thread that had already gone to sleep (word SLEEPING)
 * costs a futex wake. The thread re-checks everything under the lock after
 * any return from its wait, so a stale or early WOKEN is harmless.
 *
 * The one race: an idle thread's keep-alive may run out just as a spawn
 * hands it a job. Both decide under the lock: a thread leaves only while it
 * is still on the idle list with nothing handed, and a spawn only hands to
 * a thread it takes off that list. Waking under the lock too means no spawn
 * touches a thread that has exited and been reaped.
 *
 * Exited threads are joined by whoever comes next: a spawn that starts a
 * thread, a thread that exits, or shutdown's drain -- so at most one exited
 * thread waits to be joined once the pool is quiet.
 */
#include "pool.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft/blocking.h>

#include "../runtime/fault.h"
#include "../runtime/futex.h"
#include "../runtime/lock.h"
#include "../runtime/rt.h"
#include "../runtime/spin.h"
#include "../runtime/task.h"
#include "../runtime/tls.h"
#include "../runtime/wait.h"
#include "../runtime/worker.h"

enum { POOL_SPINNING, POOL_SLEEPING, POOL_WOKEN };

/* ------------------------------------------------------------- the job kind */

static void job_run(struct weft__thread *th, struct weft_task *t)
{
	(void)th;
	fprintf(stderr, "weft: blocking job %llu (spawned at %s:%d) was queued on a worker\n",
	        (unsigned long long)t->id, t->file, t->line);
	abort();
}

static void job_release(struct weft_task *t)
{
	weft__task_free(t);
}

static const struct weft__task_vtable job_vtable = {
        .run = job_run,
        .release = job_release,
};

static void run_job(struct weft__blocking *p, struct weft_task *t)
{
	struct weft__tls *tls = weft__tls();
	struct weft_deadline *scope = tls->scope;
	tls->job = t;
	t->result = t->fn(t->arg);
	t->cancelled_at_return = weft__cancel_requested(t);
	tls = weft__tls();
	tls->job = NULL;
	if (tls->scope != scope) {
		fprintf(stderr,
		        "weft: blocking job %llu (spawned at %s:%d) returned with a deadline scope "
		        "(weft_deadline_push) still open\n",
		        (unsigned long long)t->id, t->file, t->line);
		abort();
	}
	/* Not alive any more before the joiner can see it complete: a joined
	   job must not still count (test_blocking saw alive == 1 after every
	   join, 1 run in ~26 under load). */
	atomic_fetch_sub_explicit(&p->alive, 1, memory_order_release);
	weft__task_finish(t);
	weft__task_unref(t);
}

/* ---------------------------------------------------- lists (under the lock) */

static void enqueue(struct weft__blocking *p, struct weft_task *t)
{
	t->qnext = NULL;
	if (p->tail)
		p->tail->qnext = t;
	else
		p->head = t;
	p->tail = t;
	p->queued++;
}

static struct weft_task *dequeue(struct weft__blocking *p)
{
	struct weft_task *t = p->head;
	if (t) {
		p->head = t->qnext;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
	}
	return t;
}

/* Takes t back out of the queue; false if a thread already took it. */
static bool unqueue(struct weft__blocking *p, struct weft_task *t)
{
	struct weft_task *prev = NULL;
	for (struct weft_task *q = p->head; q; prev = q, q = q->qnext) {
		if (q != t)
			continue;
		if (prev)
			prev->qnext = q->qnext;
		else
			p->head = q->qnext;
		if (p->tail == q)
			p->tail = prev;
		p->queued--;
		return true;
	}
	return false;
}

static void idle_push(struct weft__blocking *p, struct weft__pool_thread *th)
{
	weft__dlist_push_head(&p->idle, &th->idle_link);
	th->idle = true;
}

static void idle_remove(struct weft__blocking *p, struct weft__pool_thread *th)
{
	weft__dlist_unlink(&p->idle, &th->idle_link);
	th->idle = false;
}

/* The most recently idle thread, or NULL. */
static struct weft__pool_thread *idle_first(struct weft__blocking *p)
{
	return p->idle.head ? weft__container_of(p->idle.head, struct weft__pool_thread, idle_link)
	                    : NULL;
}

/* Wakes an idle thread taken off the idle list (under the lock). */
static void wake_thread(struct weft__pool_thread *th)
{
	if (atomic_exchange_explicit(&th->word, POOL_WOKEN, memory_order_acq_rel) == POOL_SLEEPING)
		weft__futex_wake(&th->word, 1);
}

/* Unlinks the exited threads other than self from the list of all threads
   and returns them, linked through all_next, to be joined. */
static struct weft__pool_thread *take_exited(struct weft__blocking *p,
                                             struct weft__pool_thread *self)
{
	struct weft__pool_thread *reap = NULL, **link = &p->all;
	while (*link) {
		struct weft__pool_thread *th = *link;
		if (th->exited && th != self) {
			*link = th->all_next;
			th->all_next = reap;
			reap = th;
		} else {
			link = &th->all_next;
		}
	}
	return reap;
}

/* Joins and frees threads taken by take_exited (without the lock). */
static void reap(struct weft__pool_thread *list)
{
	while (list) {
		struct weft__pool_thread *th = list;
		list = th->all_next;
		pthread_join(th->pthread, NULL);
		free(th);
	}
}

/* ------------------------------------------------------------- pool threads */

static struct timespec ns_timespec(uint64_t ns)
{
	return (struct timespec){(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
}

/* Waits, off the lock, for a hand-off: spins (yielding the CPU between
   looks, as searching workers do) for spin_ns, then sleeps on the word
   until woken or until deadline_ns. May return early; the caller re-checks
   under the lock. */
static void wait_idle(struct weft__blocking *p, struct weft__pool_thread *th, uint64_t deadline_ns)
{
	uint64_t spin_until = weft__mono_ns() + p->spin_ns;
	while (atomic_load_explicit(&th->word, memory_order_acquire) == POOL_SPINNING) {
		uint64_t now = weft__mono_ns();
		if (now < spin_until) {
			sched_yield();
			continue;
		}
		uint32_t expect = POOL_SPINNING;
		if (!atomic_compare_exchange_strong_explicit(&th->word, &expect, POOL_SLEEPING,
		                                             memory_order_acq_rel,
		                                             memory_order_acquire))
			return; /* woken meanwhile */
		if (now >= deadline_ns)
			return;
		struct timespec ts = ns_timespec(deadline_ns - now);
		weft__futex_wait(&th->word, POOL_SLEEPING, &ts);
		return;
	}
}

static int start_thread(struct weft__blocking *p);

/* Whether to start one more thread for the queue (under the lock): only
   when every started thread is busy with a job and none is starting. */
static bool start_wanted(const struct weft__blocking *p)
{
	return p->queued && !p->idle.head && p->threads < p->max_threads && p->starting == 0 &&
	       p->busy == p->threads;
}

/* Starts a thread counted in threads and starting; undoes the count if it
   cannot be started. */
static int start_or_undo(struct weft__blocking *p)
{
	int rc = start_thread(p);
	if (rc < 0) {
		pthread_mutex_lock(&p->lock);
		p->threads--;
		p->starting--;
		pthread_mutex_unlock(&p->lock);
	}
	return rc;
}

static void *pool_thread_main(void *arg)
{
	struct weft__pool_thread *th = arg;
	struct weft__blocking *p = th->pool;
	weft__tls()->rt = p->rt;
	pthread_mutex_lock(&p->lock);
	p->starting--;
	uint64_t idle_since = 0;
	for (;;) {
		struct weft_task *t = th->handed;
		th->handed = NULL;
		if (!t)
			t = dequeue(p);
		if (t) {
			th->running = t;
			p->busy++;
			/* Jobs queued while a thread was being started found no
			   one to start another; if this job blocks, they must
			   not wait for it. */
			bool more = start_wanted(p);
			if (more) {
				p->threads++;
				p->starting++;
			}
			pthread_mutex_unlock(&p->lock);
			if (more)
				start_or_undo(p);
			run_job(p, t);
			pthread_mutex_lock(&p->lock);
			p->busy--;
			th->running = NULL;
			idle_since = 0;
			continue;
		}
		uint64_t now = weft__mono_ns();
		if (!idle_since)
			idle_since = now;
		if (p->closed || now - idle_since >= p->keepalive_ns)
			break;
		/* Idle: on the list, spinning first. Resetting the word also
		   clears a late WOKEN left by an earlier hand-off. */
		atomic_store_explicit(&th->word, POOL_SPINNING, memory_order_relaxed);
		if (!th->idle)
			idle_push(p, th);
		pthread_mutex_unlock(&p->lock);
		uint64_t deadline =
		        p->keepalive_ns == UINT64_MAX ? UINT64_MAX : idle_since + p->keepalive_ns;
		wait_idle(p, th, deadline);
		pthread_mutex_lock(&p->lock);
	}
	if (th->idle)
		idle_remove(p, th);
	p->threads--;
	th->exited = true;
	struct weft__pool_thread *others = take_exited(p, th);
	pthread_cond_broadcast(&p->exited);
	pthread_mutex_unlock(&p->lock);
	reap(others);
	return NULL;
}

/* Starts one more pool thread (the caller counted it in threads and
   starting). */
static int start_thread(struct weft__blocking *p)
{
	if (weft__fault(WEFT__FAULT_POOL_THREAD))
		return -EAGAIN;
	struct weft__pool_thread *th = calloc(1, sizeof *th);
	if (!th)
		return -ENOMEM;
	th->pool = p;
	atomic_init(&th->word, POOL_WOKEN);
	pthread_mutex_lock(&p->lock);
	th->all_next = p->all;
	p->all = th;
	pthread_mutex_unlock(&p->lock);
	int rc = pthread_create(&th->pthread, NULL, pool_thread_main, th);
	if (rc == 0)
		return 0;
	pthread_mutex_lock(&p->lock);
	for (struct weft__pool_thread **link = &p->all; *link; link = &(*link)->all_next) {
		if (*link == th) {
			*link = th->all_next;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	free(th);
	return -rc;
}

/* ------------------------------------------------------------------- spawn */

/* Hands t to an idle thread, or queues it (starting a thread when every
   started one is busy). -ESHUTDOWN once closed; -EAGAIN/-ENOMEM when no
   thread exists to run it and none could be started. */
static int submit(struct weft__blocking *p, struct weft_task *t)
{
	pthread_mutex_lock(&p->lock);
	if (p->closed) {
		pthread_mutex_unlock(&p->lock);
		return -ESHUTDOWN;
	}
	atomic_fetch_add_explicit(&p->alive, 1, memory_order_relaxed);
	struct weft__pool_thread *th = idle_first(p);
	if (th) {
		idle_remove(p, th);
		th->handed = t;
		wake_thread(th);
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	enqueue(p, t);
	/* A thread between two jobs will take this one; a thread being
	   started will too (and starts another if it finds more queued). */
	bool start = start_wanted(p);
	struct weft__pool_thread *exited = NULL;
	if (start) {
		p->threads++;
		p->starting++;
		exited = take_exited(p, NULL);
	}
	pthread_mutex_unlock(&p->lock);
	reap(exited);
	if (!start)
		return 0;
	int rc = start_or_undo(p);
	if (rc == 0)
		return 0;
	pthread_mutex_lock(&p->lock);
	/* With no thread left to run it, the spawn fails; else a busy
	   thread takes it when it is done. */
	bool stranded = p->threads == 0 && unqueue(p, t);
	if (stranded)
		atomic_fetch_sub_explicit(&p->alive, 1, memory_order_relaxed);
	pthread_mutex_unlock(&p->lock);
	return stranded ? rc : 0;
}

static uint64_t job_id(struct weft_runtime *rt)
{
	struct weft__thread *th = weft__tls()->thread;
	if (th && th->rt == rt)
		return weft__next_task_id(rt, th->worker);
	return atomic_fetch_add_explicit(&rt->next_id, 1, memory_order_relaxed) + 1;
}

weft_task *weft_spawn_blocking_at(weft_runtime *rt, weft_fn fn, void *arg, const char *file,
                                  int line)
{
	if (!rt)
		rt = weft__tls()->rt;
	if (!rt || !fn || atomic_load_explicit(&rt->closed, memory_order_acquire))
		return NULL;
	struct weft_task *t = weft__task_alloc();
	if (!t)
		return NULL;
	weft__task_init(t, rt, &job_vtable, fn, arg, file, line);
	weft__task_set_id(t, job_id(rt));
	if (submit(&rt->blocking, t) < 0) {
		weft__task_free(t);
		return NULL;
	}
	return t;
}

/* ------------------------------------------------------ lifecycle, shutdown */

void weft__blocking_init(struct weft__blocking *p, struct weft_runtime *rt, unsigned max_threads,
                         uint64_t keepalive_ns, uint64_t spin_ns)
{
	weft__lock_init(&p->lock);
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&p->exited, &a);
	pthread_condattr_destroy(&a);
	p->head = p->tail = NULL;
	p->queued = 0;
	weft__dlist_init(&p->idle);
	p->all = NULL;
	p->threads = p->starting = p->busy = 0;
	p->max_threads = max_threads;
	p->keepalive_ns = keepalive_ns;
	p->spin_ns = spin_ns;
	p->closed = false;
	p->rt = rt;
	atomic_init(&p->alive, 0);
}

void weft__blocking_close(struct weft__blocking *p)
{
	pthread_mutex_lock(&p->lock);
	p->closed = true;
	struct weft__pool_thread *th;
	while ((th = idle_first(p))) {
		idle_remove(p, th);
		wake_thread(th);
	}
	pthread_mutex_unlock(&p->lock);
}

bool weft__blocking_drain(struct weft__blocking *p, uint64_t deadline_ns)
{
	pthread_mutex_lock(&p->lock);
	while (p->threads > 0) {
		uint64_t now = weft__mono_ns();
		if (now >= deadline_ns)
			break;
		struct timespec until = ns_timespec(deadline_ns); /* the cond's clock */
		pthread_cond_timedwait(&p->exited, &p->lock, &until);
	}
	bool done = p->threads == 0;
	struct weft__pool_thread *exited = take_exited(p, NULL);
	pthread_mutex_unlock(&p->lock);
	reap(exited);
	return done;
}

size_t weft__blocking_report(struct weft__blocking *p, int fd)
{
	size_t n = 0;
	pthread_mutex_lock(&p->lock);
	for (struct weft__pool_thread *th = p->all; th; th = th->all_next) {
		struct weft_task *t = th->running;
		if (!t)
			continue;
		dprintf(fd, "weft:   blocking job %llu spawned at %s:%d is still running\n",
		        (unsigned long long)t->id, t->file, t->line);
		n++;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

void weft__blocking_destroy(struct weft__blocking *p)
{
	reap(take_exited(p, NULL));
	pthread_cond_destroy(&p->exited);
	pthread_mutex_destroy(&p->lock);
}
