/*
 * The scheduler under concurrency, through the public API only.
 *
 *  (a) rings: tasks on 4 workers pass a token round rings of oneshots, each
 *      hop waking the next task; every message must arrive exactly once and
 *      in order, and the hop counts must add up.
 *  (b) wakes from plain threads: tasks publish a oneshot and receive on it
 *      while plain threads send into it after a random delay -- before the
 *      task parks, while it parks, or after -- and then block on a reply the
 *      task sends back (a task waking a thread).
 *  (c) cancellation storms: a plain thread cancels random tasks while they
 *      receive on oneshots, join children or yield. Every task must end;
 *      every value sent is either received exactly once or provably never
 *      consumed (a cancelled recv consumes nothing: receiving again inside a
 *      shield gets the same value); joins return 0 or WEFT_CANCELED, and
 *      WEFT_CANCELED exactly when it should.
 *  (d) spawn/join churn from several plain threads at once onto one runtime,
 *      with nested spawns, yields and detached tasks.
 *  (e) preemption: tasks that work 30 us between weft_yield_maybe() calls
 *      run past their time slice and go through the slow lane (picked by
 *      whichever worker has nothing else, or lets them in) beside tasks
 *      that yield and tasks that wake each other, while a plain thread
 *      cancels some of them: every task ends, each with the count of its
 *      iterations, a cancelled one seeing -ECANCELED at a yield_maybe.
 *
 * Lost wake-ups show up as hangs, so a watchdog fails the program when a part
 * makes no progress for 60 s. A plain main() program (Criterion does not run
 * under TSan); exit status 0 on success, 1 with a message on failure.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft.h>

#include "tests/common.h"

#define WORKERS 4
#define STALL_S 60

static const char *_Atomic part = "start";
static _Atomic uint64_t progress;
static _Atomic int failures;
static _Atomic int finished;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	/* Report the first few; the part's end checks the count. */
	if (atomic_fetch_add(&failures, 1) < 10) {
		va_list ap;
		va_start(ap, fmt);
		fprintf(stderr, "stress_sched: FAILED in %s: ", atomic_load(&part));
		vfprintf(stderr, fmt, ap);
		fprintf(stderr, "\n");
		va_end(ap);
	}
}

static inline void tick(void)
{
	atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static void spin(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cpu_relax();
}

/* Fails the program when no part makes progress for STALL_S seconds. */
static void *watchdog_main(void *arg)
{
	(void)arg;
	uint64_t last = atomic_load(&progress);
	unsigned still = 0;
	while (!atomic_load(&finished)) {
		test_sleep_ms(100);
		uint64_t now = atomic_load(&progress);
		if (now != last) {
			last = now;
			still = 0;
		} else if (++still >= STALL_S * 10) {
			fprintf(stderr,
			        "stress_sched: FAILED: %s made no progress for %d s "
			        "(a lost wake-up or a task that never ends)\n",
			        atomic_load(&part), STALL_S);
			_exit(1);
		}
	}
	return NULL;
}

static weft_runtime *new_runtime(void)
{
	weft_runtime *rt = test_runtime(WORKERS);
	if (!rt) {
		fprintf(stderr, "stress_sched: cannot create a runtime\n");
		exit(1);
	}
	return rt;
}

static void end_part(weft_runtime *rt, uint64_t t0)
{
	int rc = weft_runtime_shutdown(rt, 10000);
	if (rc != 0)
		fail("shutdown returned %d (tasks left behind)", rc);
	weft_runtime_free(rt);
	printf("stress_sched: %s: %.2f s\n", atomic_load(&part),
	       (double)(test_now_ns() - t0) / 1e9);
	fflush(stdout);
	if (atomic_load(&failures)) {
		fprintf(stderr, "stress_sched: %d failure(s) in %s\n", atomic_load(&failures),
		        atomic_load(&part));
		exit(1);
	}
}

/* ---------------------------------------------------------- (a) rings */

#define RING_STOP UINT64_MAX

struct ring_msg {
	uint64_t v;
	weft_oneshot *next; /* where the receiver gets its next message */
};

struct ring_task {
	unsigned ring, k, K;
	uint64_t last; /* the final hop value, K * rounds */
	weft_oneshot *in, *out;
	_Atomic uint64_t *hops, *stops;
};

static void ring_send(struct ring_task *rt, uint64_t v, weft_oneshot *next)
{
	struct ring_msg m = {v, next};
	int rc = weft_oneshot_send(rt->out, &m);
	if (rc != 0)
		fail("ring %u task %u: send of %llu returned %d", rt->ring, rt->k,
		     (unsigned long long)v, rc);
}

static void *ring_fn(void *arg)
{
	struct ring_task *rt = arg;
	uint64_t expect = rt->k, received = 0;
	for (;;) {
		struct ring_msg m;
		int rc = weft_oneshot_recv(rt->in, &m);
		if (rc != 0) {
			fail("ring %u task %u: recv returned %d", rt->ring, rt->k, rc);
			return NULL;
		}
		if (m.v == RING_STOP) {
			atomic_fetch_add(rt->stops, 1);
			if (rt->k != rt->K - 1)
				ring_send(rt, RING_STOP, NULL);
			else
				weft_oneshot_drop_sender(rt->out); /* task 0 left it */
			break;
		}
		if (m.v != expect) {
			fail("ring %u task %u: got hop %llu, expected %llu", rt->ring, rt->k,
			     (unsigned long long)m.v, (unsigned long long)expect);
			return NULL;
		}
		expect += rt->K;
		received++;
		atomic_fetch_add_explicit(rt->hops, 1, memory_order_relaxed);
		tick();
		if (m.v == rt->last) {
			/* Task 0 got the last hop: stop the others. */
			weft_oneshot_drop_receiver(m.next);
			ring_send(rt, RING_STOP, NULL);
			break;
		}
		rt->in = m.next;
		/* Now and then let the task move to another worker, so that
		   wakes cross threads. */
		if (m.v % 5 == 0)
			weft_yield();
		weft_oneshot *next = weft_oneshot_new(sizeof(struct ring_msg));
		if (!next) {
			fail("oneshot_new returned NULL");
			return NULL;
		}
		ring_send(rt, m.v + 1, next);
		rt->out = next;
	}
	return (void *)(uintptr_t)received;
}

static void part_rings(void)
{
	const unsigned R = 64, K = 8;
	const uint64_t rounds = (uint64_t)test_scale(3000);
	atomic_store(&part, "(a) rings");
	uint64_t t0 = test_now_ns();
	weft_runtime *rt = new_runtime();
	_Atomic uint64_t hops = 0, stops = 0;
	struct ring_task *tasks = calloc(R * K, sizeof *tasks);
	weft_task **handles = calloc(R * K, sizeof *handles);
	weft_oneshot **kick = calloc(R, sizeof *kick), **kick_next = calloc(R, sizeof *kick);

	for (unsigned r = 0; r < R; r++) {
		weft_oneshot *o[K];
		for (unsigned k = 0; k < K; k++)
			o[k] = weft_oneshot_new(sizeof(struct ring_msg));
		kick[r] = o[0];
		kick_next[r] = weft_oneshot_new(sizeof(struct ring_msg));
		for (unsigned k = 0; k < K; k++) {
			struct ring_task *t = &tasks[r * K + k];
			*t = (struct ring_task){.ring = r,
			                        .k = k,
			                        .K = K,
			                        .last = K * rounds,
			                        .in = o[k],
			                        .out = k + 1 < K ? o[k + 1] : kick_next[r],
			                        .hops = &hops,
			                        .stops = &stops};
			handles[r * K + k] = weft_spawn_on(rt, ring_fn, t);
			if (!handles[r * K + k]) {
				fprintf(stderr, "stress_sched: spawn failed\n");
				exit(1);
			}
		}
	}
	for (unsigned r = 0; r < R; r++) {
		struct ring_msg m = {0, kick_next[r]};
		int rc = weft_oneshot_send(kick[r], &m);
		if (rc != 0)
			fail("kick of ring %u returned %d", r, rc);
	}
	for (unsigned i = 0; i < R * K; i++) {
		void *res = NULL;
		int rc = weft_join(handles[i], &res);
		uint64_t want = i % K == 0 ? rounds + 1 : rounds;
		if (rc != 0)
			fail("join of ring task %u returned %d", i, rc);
		else if ((uint64_t)(uintptr_t)res != want)
			fail("ring %u task %u received %llu hops, expected %llu", i / K, i % K,
			     (unsigned long long)(uintptr_t)res, (unsigned long long)want);
	}
	uint64_t want_hops = R * (K * rounds + 1);
	if (atomic_load(&hops) != want_hops)
		fail("%llu hops in total, expected %llu", (unsigned long long)atomic_load(&hops),
		     (unsigned long long)want_hops);
	if (atomic_load(&stops) != R * (K - 1))
		fail("%llu stop messages, expected %u", (unsigned long long)atomic_load(&stops),
		     R * (K - 1));
	printf("stress_sched: (a) %u rings of %u tasks, %llu hops\n", R, K,
	       (unsigned long long)atomic_load(&hops));
	free(tasks);
	free(handles);
	free(kick);
	free(kick_next);
	end_part(rt, t0);
}

/* ---------------------------------------------- (b) wakes from threads */

#define B_TASKS 32
#define B_THREADS 2

struct b_req {
	weft_oneshot *to_task, *to_thread;
	uint64_t value;
};

static _Atomic(struct b_req *) b_slots[B_TASKS];
static _Atomic uint64_t b_served;
static uint64_t b_iters;

static void *b_task(void *arg)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	for (uint64_t j = 0; j < b_iters; j++) {
		struct b_req req = {weft_oneshot_new(sizeof(uint64_t)),
		                    weft_oneshot_new(sizeof(uint64_t)), i * b_iters + j};
		if (!req.to_task || !req.to_thread) {
			fail("oneshot_new returned NULL");
			return NULL;
		}
		atomic_store_explicit(&b_slots[i], &req, memory_order_release);
		/* Sometimes let the sender get there first. */
		if (j % 4 == 1)
			weft_yield();
		uint64_t v = 0;
		int rc = weft_oneshot_recv(req.to_task, &v);
		if (rc != 0 || v != req.value) {
			fail("task %u: recv returned %d, value %llu (expected %llu)", i, rc,
			     (unsigned long long)v, (unsigned long long)req.value);
			return NULL;
		}
		v++;
		rc = weft_oneshot_send(req.to_thread, &v);
		if (rc != 0) {
			fail("task %u: reply returned %d", i, rc);
			return NULL;
		}
	}
	return (void *)(uintptr_t)b_iters;
}

static void *b_thread(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	uint64_t rng = 0xB5AD4ECEDA1CE2A9ull * (me + 1);
	const uint64_t total = B_TASKS * b_iters;
	while (atomic_load(&b_served) < total && !atomic_load(&failures)) {
		bool any = false;
		for (unsigned i = me; i < B_TASKS; i += B_THREADS) {
			struct b_req *r =
			        atomic_exchange_explicit(&b_slots[i], NULL, memory_order_acquire);
			if (!r)
				continue;
			any = true;
			/* Copy out: r lives on the task's stack. */
			struct b_req req = *r;
			switch (test_rng_next(&rng) % 4) {
			case 0:
				break;
			case 1:
				spin((unsigned)(test_rng_next(&rng) % 200));
				break;
			case 2:
				spin((unsigned)(test_rng_next(&rng) % 5000));
				break;
			default:
				sched_yield();
			}
			int rc = weft_oneshot_send(req.to_task, &req.value);
			if (rc != 0)
				fail("thread send to task %u returned %d", i, rc);
			uint64_t back = 0;
			rc = weft_oneshot_recv(req.to_thread, &back);
			if (rc != 0 || back != req.value + 1)
				fail("thread recv from task %u returned %d, value %llu (expected "
				     "%llu)",
				     i, rc, (unsigned long long)back,
				     (unsigned long long)req.value + 1);
			atomic_fetch_add(&b_served, 1);
			tick();
		}
		if (!any)
			sched_yield();
	}
	return NULL;
}

static void part_thread_wakes(void)
{
	atomic_store(&part, "(b) wakes from plain threads");
	uint64_t t0 = test_now_ns();
	b_iters = (uint64_t)test_scale(2000);
	weft_runtime *rt = new_runtime();
	weft_task *h[B_TASKS];
	for (unsigned i = 0; i < B_TASKS; i++) {
		atomic_init(&b_slots[i], NULL);
		h[i] = weft_spawn_on(rt, b_task, (void *)(uintptr_t)i);
	}
	pthread_t th[B_THREADS];
	for (unsigned i = 0; i < B_THREADS; i++)
		pthread_create(&th[i], NULL, b_thread, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < B_TASKS; i++) {
		void *res = NULL;
		int rc = weft_join(h[i], &res);
		if (rc != 0 || (uint64_t)(uintptr_t)res != b_iters)
			fail("task %u: join returned %d after %llu round trips", i, rc,
			     (unsigned long long)(uintptr_t)res);
	}
	for (unsigned i = 0; i < B_THREADS; i++)
		pthread_join(th[i], NULL);
	if (atomic_load(&b_served) != B_TASKS * b_iters)
		fail("%llu round trips served, expected %llu",
		     (unsigned long long)atomic_load(&b_served),
		     (unsigned long long)(B_TASKS * b_iters));
	printf("stress_sched: (b) %llu task/thread round trips\n",
	       (unsigned long long)atomic_load(&b_served));
	end_part(rt, t0);
}

/* ------------------------------------------------ (c) cancellation storms */

enum c_kind { C_RECV, C_SEND, C_JOIN, C_YIELD, C_KINDS };
enum c_outcome { C_NONE, C_RECEIVED, C_RECEIVED_AFTER_CANCEL, C_DROPPED };

#define C_PAIRS 40
#define C_JOINERS 24
#define C_YIELDERS 24
#define C_TASKS (2 * C_PAIRS + C_JOINERS + C_YIELDERS)
#define C_CHILD_MAGIC ((void *)(uintptr_t)0xC41D)

struct c_pair {
	weft_oneshot *o;
	uint64_t value;
	unsigned send_yields;
	int send_rc;
	enum c_outcome outcome;
};

struct c_child {
	unsigned yields;
	_Atomic int cancel_called;
	int saw_cancel;
};

struct c_task {
	enum c_kind kind;
	weft_task *h;
	_Atomic int cancel_called; /* set before weft_cancel() is called */
	int saw_cancel;            /* a wait of the task returned -ECANCELED */
	unsigned yields;
	struct c_pair *pair;
	struct c_child child;
	int child_rc;
	bool cancel_child;
};

static _Atomic unsigned c_done;
static struct {
	uint64_t cancels, received, received_after_cancel, dropped, epipe, joins_cancelled,
	        child_cancelled, yield_cancelled;
} c_stats;

static void *c_child_fn(void *arg)
{
	struct c_child *c = arg;
	for (unsigned i = 0; i < c->yields; i++) {
		if (weft_yield() == -ECANCELED) {
			c->saw_cancel = 1;
			break;
		}
	}
	return C_CHILD_MAGIC;
}

static void *c_task_fn(void *arg)
{
	struct c_task *t = arg;
	switch (t->kind) {
	case C_RECV: {
		struct c_pair *p = t->pair;
		uint64_t v = 0;
		int rc = weft_oneshot_recv(p->o, &v);
		if (rc == 0) {
			p->outcome = C_RECEIVED;
		} else if (rc == -ECANCELED) {
			t->saw_cancel = 1;
			if (p->value % 2 == 0) {
				/* Nothing was consumed: waiting again, shielded,
				   gets the very value. */
				weft_shield_push();
				rc = weft_oneshot_recv(p->o, &v);
				weft_shield_pop();
				if (rc != 0)
					fail("shielded recv after -ECANCELED returned %d", rc);
				p->outcome = C_RECEIVED_AFTER_CANCEL;
			} else {
				weft_oneshot_drop_receiver(p->o);
				p->outcome = C_DROPPED;
			}
		} else {
			fail("recv returned %d", rc);
		}
		if ((p->outcome == C_RECEIVED || p->outcome == C_RECEIVED_AFTER_CANCEL) &&
		    v != p->value)
			fail("recv got %llu, sent %llu", (unsigned long long)v,
			     (unsigned long long)p->value);
		break;
	}
	case C_SEND: {
		/* A cancelled sender still sends (send never waits). */
		for (unsigned i = 0; i < t->pair->send_yields; i++)
			if (weft_yield() == -ECANCELED)
				t->saw_cancel = 1;
		t->pair->send_rc = weft_oneshot_send(t->pair->o, &t->pair->value);
		break;
	}
	case C_JOIN: {
		weft_task *c = weft_spawn(c_child_fn, &t->child);
		if (!c) {
			fail("nested spawn returned NULL");
			break;
		}
		void *res = NULL;
		int rc = weft_join(c, &res);
		if (rc == -ECANCELED) {
			/* The handle is still ours: maybe cancel the child,
			   then join it for good inside a shield. */
			t->saw_cancel = 1;
			if (t->cancel_child) {
				atomic_store(&t->child.cancel_called, 1);
				weft_cancel(c);
			}
			weft_shield_push();
			rc = weft_join(c, &res);
			weft_shield_pop();
			if (rc == -ECANCELED)
				fail("a shielded join returned -ECANCELED");
		}
		t->child_rc = rc;
		if (rc != 0 && rc != WEFT_CANCELED)
			fail("join of a child returned %d", rc);
		else if (res != C_CHILD_MAGIC)
			fail("join of a child gave result %p", res);
		break;
	}
	case C_YIELD:
		for (unsigned i = 0; i < t->yields; i++) {
			if (weft_yield() == -ECANCELED) {
				t->saw_cancel = 1;
				break;
			}
		}
		break;
	default:
		break;
	}
	atomic_fetch_add(&c_done, 1);
	tick();
	return t;
}

struct c_canceller {
	struct c_task *tasks;
	uint64_t rng;
	uint64_t cancels;
};

/* Cancels random tasks of the round until all of them have returned. */
static void *c_canceller_main(void *arg)
{
	struct c_canceller *c = arg;
	while (atomic_load(&c_done) < C_TASKS) {
		struct c_task *t = &c->tasks[test_rng_next(&c->rng) % C_TASKS];
		atomic_store(&t->cancel_called, 1);
		weft_cancel(t->h);
		c->cancels++;
		switch (test_rng_next(&c->rng) % 8) {
		case 0:
		case 1:
		case 2:
		case 3:
			break;
		case 4:
		case 5:
			spin((unsigned)(test_rng_next(&c->rng) % 200));
			break;
		case 6:
			spin((unsigned)(test_rng_next(&c->rng) % 5000));
			break;
		default:
			sched_yield();
		}
	}
	return NULL;
}

/* WEFT_CANCELED exactly when it may be: only if cancellation was requested,
   and always if the task saw it. */
static void c_check_join(const char *what, int rc, int cancel_called, int saw_cancel)
{
	if (rc != 0 && rc != WEFT_CANCELED)
		fail("join of a %s task returned %d", what, rc);
	else if (rc == WEFT_CANCELED && !cancel_called)
		fail("join of a %s task returned WEFT_CANCELED, but nobody cancelled it", what);
	else if (rc == 0 && saw_cancel)
		fail("join of a %s task returned 0, but the task saw its cancellation", what);
}

static void part_cancel_storms(void)
{
	atomic_store(&part, "(c) cancellation storms");
	uint64_t t0 = test_now_ns();
	weft_runtime *rt = new_runtime();
	const long rounds = test_scale(800);
	uint64_t rng = 0xC0FFEE123456789ull;
	static const char *names[C_KINDS] = {"recv", "send", "join", "yield"};
	static struct c_task tasks[C_TASKS];
	static struct c_pair pairs[C_PAIRS];

	long round;
	for (round = 0; round < rounds && !atomic_load(&failures); round++) {
		memset(tasks, 0, sizeof tasks);
		memset(pairs, 0, sizeof pairs);
		atomic_store(&c_done, 0);
		unsigned n = 0;
		for (unsigned i = 0; i < C_PAIRS; i++) {
			pairs[i].o = weft_oneshot_new(sizeof(uint64_t));
			pairs[i].value = (uint64_t)round * 1000 + i;
			pairs[i].send_yields = (unsigned)(test_rng_next(&rng) % 48);
			tasks[n++] = (struct c_task){.kind = C_RECV, .pair = &pairs[i]};
			tasks[n++] = (struct c_task){.kind = C_SEND, .pair = &pairs[i]};
		}
		for (unsigned i = 0; i < C_JOINERS; i++)
			tasks[n++] = (struct c_task){
			        .kind = C_JOIN,
			        .child = {.yields = (unsigned)(test_rng_next(&rng) % 48)},
			        .cancel_child = test_rng_next(&rng) % 2};
		for (unsigned i = 0; i < C_YIELDERS; i++)
			tasks[n++] = (struct c_task){
			        .kind = C_YIELD, .yields = (unsigned)(test_rng_next(&rng) % 64)};
		/* Spawn in a shuffled order so kinds mix on the workers. */
		for (unsigned i = n - 1; i > 0; i--) {
			unsigned j = (unsigned)(test_rng_next(&rng) % (i + 1));
			struct c_task tmp = tasks[i];
			tasks[i] = tasks[j];
			tasks[j] = tmp;
		}
		for (unsigned i = 0; i < n; i++) {
			tasks[i].h = weft_spawn_on(rt, c_task_fn, &tasks[i]);
			if (!tasks[i].h) {
				fprintf(stderr, "stress_sched: spawn failed\n");
				exit(1);
			}
		}
		struct c_canceller cc = {tasks, test_rng_next(&rng) | 1, 0};
		pthread_t canceller;
		pthread_create(&canceller, NULL, c_canceller_main, &cc);
		/* Handles stay valid until the canceller is done with them. */
		pthread_join(canceller, NULL);
		c_stats.cancels += cc.cancels;

		for (unsigned i = 0; i < n; i++) {
			struct c_task *t = &tasks[i];
			void *res = NULL;
			int rc = weft_join(t->h, &res);
			if (res != t && rc >= 0)
				fail("join of a %s task gave result %p", names[t->kind], res);
			c_check_join(names[t->kind], rc, atomic_load(&t->cancel_called),
			             t->saw_cancel);
			if (rc == WEFT_CANCELED && t->kind == C_YIELD && t->saw_cancel)
				c_stats.yield_cancelled++;
			if (t->kind == C_JOIN) {
				c_check_join("child", t->child_rc,
				             atomic_load(&t->child.cancel_called),
				             t->child.saw_cancel);
				c_stats.joins_cancelled += t->saw_cancel;
				c_stats.child_cancelled += t->child_rc == WEFT_CANCELED;
			}
		}
		for (unsigned i = 0; i < C_PAIRS; i++) {
			struct c_pair *p = &pairs[i];
			switch (p->outcome) {
			case C_RECEIVED:
				c_stats.received++;
				break;
			case C_RECEIVED_AFTER_CANCEL:
				c_stats.received_after_cancel++;
				break;
			case C_DROPPED:
				c_stats.dropped++;
				break;
			default:
				fail("pair %u: the receiver ended without an outcome", i);
			}
			/* A received value was sent successfully; a value can be
			   refused (-EPIPE) only if the receiver left. */
			if (p->send_rc == -EPIPE) {
				c_stats.epipe++;
				if (p->outcome != C_DROPPED)
					fail("pair %u: send got -EPIPE but the value was received",
					     i);
			} else if (p->send_rc != 0) {
				fail("pair %u: send returned %d", i, p->send_rc);
			}
		}
	}
	uint64_t pairs_total = (uint64_t)round * C_PAIRS;
	if (c_stats.received + c_stats.received_after_cancel + c_stats.dropped != pairs_total &&
	    !atomic_load(&failures))
		fail("%llu values accounted for, %llu sent",
		     (unsigned long long)(c_stats.received + c_stats.received_after_cancel +
		                          c_stats.dropped),
		     (unsigned long long)pairs_total);
	printf("stress_sched: (c) %ld rounds, %llu cancels: %llu values received, %llu received "
	       "after a cancelled recv, %llu dropped by cancelled receivers (%llu refused with "
	       "-EPIPE); %llu joins cancelled, %llu children cancelled, %llu yielders "
	       "cancelled\n",
	       round, (unsigned long long)c_stats.cancels, (unsigned long long)c_stats.received,
	       (unsigned long long)c_stats.received_after_cancel,
	       (unsigned long long)c_stats.dropped, (unsigned long long)c_stats.epipe,
	       (unsigned long long)c_stats.joins_cancelled,
	       (unsigned long long)c_stats.child_cancelled,
	       (unsigned long long)c_stats.yield_cancelled);
	end_part(rt, t0);
}

/* --------------------------------------------------- (d) spawn/join churn */

#define D_THREADS 4
#define D_BATCH 32

static _Atomic uint64_t d_detached_done, d_detached;
static weft_runtime *d_rt;
static long d_iters;

static void *d_plain(void *arg)
{
	return (void *)((uintptr_t)arg + 1);
}

static void *d_yielder(void *arg)
{
	for (int i = 0; i < 3; i++)
		weft_yield();
	return (void *)((uintptr_t)arg + 1);
}

static void *d_nested(void *arg)
{
	weft_task *c = weft_spawn(d_yielder, (void *)((uintptr_t)arg + 1));
	if (!c) {
		fail("nested spawn returned NULL");
		return NULL;
	}
	void *res = NULL;
	int rc = weft_join(c, &res);
	if (rc != 0)
		fail("nested join returned %d", rc);
	return (void *)((uintptr_t)res - 1); /* arg + 1 */
}

static void *d_detached_fn(void *arg)
{
	(void)arg;
	weft_yield();
	atomic_fetch_add(&d_detached_done, 1);
	tick();
	return NULL;
}

static void *d_thread(void *arg)
{
	uintptr_t me = (uintptr_t)arg;
	static weft_fn const fns[] = {d_plain, d_yielder, d_nested};
	for (long it = 0; it < d_iters && !atomic_load(&failures); it++) {
		weft_task *h[D_BATCH];
		for (unsigned i = 0; i < D_BATCH; i++) {
			uintptr_t v = (me << 40) | ((uintptr_t)it << 8) | i;
			h[i] = weft_spawn_on(d_rt, fns[i % 3], (void *)v);
			if (!h[i])
				fail("spawn from a plain thread returned NULL");
		}
		if (it % 4 == 0) {
			weft_task *d = weft_spawn_on(d_rt, d_detached_fn, NULL);
			if (d) {
				atomic_fetch_add(&d_detached, 1);
				weft_detach(d);
			}
		}
		for (unsigned i = 0; i < D_BATCH; i++) {
			if (!h[i])
				continue;
			void *res = NULL;
			int rc = weft_join(h[i], &res);
			uintptr_t v = (me << 40) | ((uintptr_t)it << 8) | i;
			if (rc != 0 || (uintptr_t)res != v + 1)
				fail("join returned %d, result %#lx (expected %#lx)", rc,
				     (unsigned long)(uintptr_t)res, (unsigned long)(v + 1));
			tick();
		}
	}
	return NULL;
}

static void part_churn(void)
{
	atomic_store(&part, "(d) spawn/join churn");
	uint64_t t0 = test_now_ns();
	d_rt = new_runtime();
	d_iters = test_scale(1200);
	pthread_t th[D_THREADS];
	for (uintptr_t i = 0; i < D_THREADS; i++)
		pthread_create(&th[i], NULL, d_thread, (void *)i);
	for (unsigned i = 0; i < D_THREADS; i++)
		pthread_join(th[i], NULL);
	/* Detached tasks finish on their own; the watchdog bounds this. */
	while (atomic_load(&d_detached_done) != atomic_load(&d_detached))
		test_sleep_ms(1);
	printf("stress_sched: (d) %d threads x %ld batches of %d tasks, %llu detached\n", D_THREADS,
	       d_iters, D_BATCH, (unsigned long long)atomic_load(&d_detached));
	end_part(d_rt, t0);
}

/* ------------------------------------------------------ (e) preemption */

#define E_CPU 16
#define E_READY 8

#define E_MARK 20 /* iterations after which a task to cancel says so */

static _Atomic int e_cpu_left, e_marked[E_CPU];

static void *e_cpu(void *arg)
{
	long iters = (long)(intptr_t)arg >> 8, i;
	int me = (int)((intptr_t)arg & 0xff);
	for (i = 0; i < iters; i++) {
		if (i == E_MARK)
			atomic_store(&e_marked[me], 1);
		uint64_t until = test_now_ns() + 30000;
		while (test_now_ns() < until)
			;
		if (weft_yield_maybe() == -ECANCELED)
			break;
		tick();
	}
	atomic_fetch_sub(&e_cpu_left, 1);
	return (void *)(intptr_t)i;
}

static void *e_ready(void *arg)
{
	(void)arg;
	while (atomic_load(&e_cpu_left) > 0) {
		weft_yield();
		tick();
	}
	return NULL;
}

static void part_preemption(void)
{
	atomic_store(&part, "(e) preemption");
	uint64_t t0 = test_now_ns();
	weft_runtime *rt = new_runtime();
	long iters = test_scale(60) < 24 ? 24 : test_scale(60); /* 24 x 30 us: past a slice */
	atomic_store(&e_cpu_left, E_CPU);
	weft_task *cpu[E_CPU], *ready[E_READY];
	/* Every third runs until cancelled, once it said it ran E_MARK
	   iterations (past a slice: it has been through the slow lane). */
	for (int i = 0; i < E_CPU; i++)
		cpu[i] = weft_spawn_on(rt, e_cpu,
		                       (void *)(intptr_t)(((i % 3 ? iters : 1000000) << 8) | i));
	for (int i = 0; i < E_READY; i++)
		ready[i] = weft_spawn_on(rt, e_ready, NULL);
	for (int i = 0; i < E_CPU; i += 3) {
		while (!atomic_load(&e_marked[i]))
			test_sleep_ms(1);
		weft_cancel(cpu[i]);
	}
	long done = 0;
	for (int i = 0; i < E_CPU; i++) {
		void *res = NULL;
		int rc = weft_join(cpu[i], &res);
		long n = (long)(intptr_t)res;
		if (i % 3 == 0 ? (rc != WEFT_CANCELED || n < E_MARK) : (rc != 0 || n != iters))
			fail("cpu task %d: join %d after %ld of %ld iterations", i, rc, n, iters);
		done += n;
	}
	for (int i = 0; i < E_READY; i++)
		if (weft_join(ready[i], NULL) != 0)
			fail("ready task %d did not end cleanly", i);
	weft_metrics m;
	weft_metrics_get(rt, &m);
	if (m.preemptions == 0)
		fail("no task was preempted (%ld iterations of 30 us)", done);
	printf("stress_sched: (e) %d cpu tasks (every third cancelled), %ld iterations done, %d "
	       "ready, %llu preemptions\n",
	       E_CPU, done, E_READY, (unsigned long long)m.preemptions);
	end_part(rt, t0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_t wd;
	pthread_create(&wd, NULL, watchdog_main, NULL);
	uint64_t t0 = test_now_ns();
	part_rings();
	part_thread_wakes();
	part_cancel_storms();
	part_churn();
	part_preemption();
	atomic_store(&finished, 1);
	pthread_join(wd, NULL);
	printf("stress_sched: OK (%.2f s)\n", (double)(test_now_ns() - t0) / 1e9);
	return 0;
}
