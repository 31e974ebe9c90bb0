/*
 * The task dump (weft_dump_tasks, include/weft/observe.h): one line per
 * live task that has started -- the tasks the workers run now, the
 * registry's (every task that ever switched away: parked, ready, or
 * running again) and the sleepers the timer wheels hold -- with what a
 * parked one waits on and for how long. Tasks that never switched away
 * (not started, or in their first run) are only counted. Shutdown's report
 * of stragglers is a dump too.
 *
 * Fields are read while their tasks run elsewhere: the state word is
 * atomic, the dump fields relaxed atomics (task.h); the registry's and the
 * wheels' locks keep the tasks listed from being freed meanwhile (a dump is
 * a picture taken over a few microseconds, not one instant).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/observe.h>

#ifdef WEFT_HAVE_URING
#include <liburing.h>
#endif

#include "../timer/timer.h"
#include "dump.h"
#include "rt.h"
#include "spin.h"
#include "task.h"
#include "textbuf.h"
#include "worker.h"

/* Lines are formatted into memory under the registry's and the wheels'
   locks and written after: a worker that finishes a task needs the shard
   lock, and must not wait for the dump's writes. */
struct dump {
	struct weft_runtime *rt;
	uint32_t now_ms;    /* the coarse clock (monitor.h) */
	bool timed;         /* a monitor advances it */
	uint64_t period_ms; /* what one sampled run period counts for */
	size_t listed;
	struct weft__textbuf text;
};

static const char *opcode_name(unsigned op)
{
#ifndef WEFT_HAVE_URING
	(void)op;
	return "op";
#else
	switch (op) {
	case IORING_OP_RECV:
		return "recv";
	case IORING_OP_SEND:
		return "send";
	case IORING_OP_RECVMSG:
		return "recvmsg";
	case IORING_OP_SENDMSG:
		return "sendmsg";
	case IORING_OP_ACCEPT:
		return "accept";
	case IORING_OP_CONNECT:
		return "connect";
	case IORING_OP_READ:
		return "read";
	case IORING_OP_WRITE:
		return "write";
	case IORING_OP_POLL_ADD:
		return "poll";
	case IORING_OP_CLOSE:
		return "close";
	default:
		return "op";
	}
#endif
}

/* What a parked task waits on, into buf. */
static void describe_wait(char *buf, size_t cap, unsigned kind, const void *obj, unsigned arg)
{
	int fd = (int)(intptr_t)obj;
	switch (kind) {
	case WEFT__WAIT_MUTEX:
		snprintf(buf, cap, "mutex %p", obj);
		break;
	case WEFT__WAIT_RWLOCK_READ:
		snprintf(buf, cap, "rwlock %p (read)", obj);
		break;
	case WEFT__WAIT_RWLOCK_WRITE:
		snprintf(buf, cap, "rwlock %p (write)", obj);
		break;
	case WEFT__WAIT_SEM:
		snprintf(buf, cap, "semaphore %p (%u permits)", obj, arg);
		break;
	case WEFT__WAIT_NOTIFY:
		snprintf(buf, cap, "notify %p", obj);
		break;
	case WEFT__WAIT_CHAN_SEND:
		snprintf(buf, cap, "send on chan %p", obj);
		break;
	case WEFT__WAIT_CHAN_RECV:
		snprintf(buf, cap, "recv on chan %p", obj);
		break;
	case WEFT__WAIT_SELECT:
		snprintf(buf, cap, "select over %u cases", arg);
		break;
	case WEFT__WAIT_ONESHOT:
		snprintf(buf, cap, "oneshot %p", obj);
		break;
	case WEFT__WAIT_JOIN:
		snprintf(buf, cap, "join task %" PRIu64, (uint64_t)(uintptr_t)obj); /* its id */
		break;
	case WEFT__WAIT_GROUP:
		snprintf(buf, cap, "group %p (join_next)", obj);
		break;
	case WEFT__WAIT_FD:
		snprintf(buf, cap, "fd %d to be %s", fd,
		         arg & 4 /* EPOLLOUT */ ? "writable" : "readable");
		break;
	case WEFT__WAIT_IO:
		snprintf(buf, cap, "%s on fd %d", opcode_name(arg), fd);
		break;
	case WEFT__WAIT_ACCEPT:
		snprintf(buf, cap, "accept on a listener");
		break;
	default:
		buf[0] = '\0';
	}
}

/* runs counts the runs that ended (a switch away); a running task is in
   one more. */
static void print_task(struct dump *d, struct weft_task *t, const char *state, const char *waits,
                       bool running)
{
	const char *name = __atomic_load_n(&t->name, __ATOMIC_RELAXED);
	const char *file = __atomic_load_n(&t->file, __ATOMIC_RELAXED);
	weft__textbuf_printf(
	        &d->text,
	        "  task %" PRIu64 " \"%s\" (spawned at %s:%d): %s%s%s; %" PRIu64 " runs, %" PRIu64
	        " ms run\n",
	        __atomic_load_n(&t->id, __ATOMIC_RELAXED), name ? name : "", file ? file : "?",
	        __atomic_load_n(&t->line, __ATOMIC_RELAXED), state, *waits ? ", waiting on " : "",
	        waits, (uint64_t)__atomic_load_n(&t->runs, __ATOMIC_RELAXED) + running,
	        (uint64_t)__atomic_load_n(&t->run_periods, __ATOMIC_RELAXED) * d->period_ms);
	d->listed++;
}

static int running_on(struct weft_runtime *rt, struct weft_task *t)
{
	for (unsigned i = 0; i < rt->nthreads; i++)
		if (weft__running(&rt->threads[i]) == t)
			return (int)i;
	return -1;
}

/* A registered task: running, ready or parked (with what on). */
static void dump_registered(struct weft_task *t, void *arg)
{
	struct dump *d = arg;
	char state[64], waits[160] = "";
	int w = running_on(d->rt, t);
	uint64_t st = weft__task_state(t);
	if (w >= 0) {
		snprintf(state, sizeof state, "running on worker %d", w);
	} else if (st & WEFT__T_SCHEDULED) {
		snprintf(state, sizeof state, "ready");
	} else {
		uint32_t wait = __atomic_load_n(&t->wait, __ATOMIC_RELAXED);
		describe_wait(waits, sizeof waits, wait & 0xff,
		              __atomic_load_n(&t->wait_obj, __ATOMIC_RELAXED), wait >> 8);
		uint32_t since = __atomic_load_n(&t->wait_since_ms, __ATOMIC_RELAXED);
		if (*waits && d->timed) {
			size_t len = strlen(waits);
			snprintf(waits + len, sizeof waits - len, " for %u ms", d->now_ms - since);
		}
		snprintf(state, sizeof state, "parked");
	}
	print_task(d, t, state, waits, w >= 0);
}

static void dump_sleeper(struct weft_task *t, uint64_t due_ns, void *arg)
{
	struct dump *d = arg;
	char waits[64];
	uint64_t now = weft__mono_ns();
	snprintf(waits, sizeof waits, "a sleep, due in %" PRIu64 " ms",
	         due_ns > now ? (due_ns - now) / 1000000 : 0);
	print_task(d, t, "parked", waits, false);
}

/* The task lines into d. */
static void collect(struct weft_runtime *rt, struct dump *d)
{
	weft__registry_visit(&rt->reg, dump_registered, d);
	/* A running task that never switched is not registered: it may
	   finish and be freed at any moment, so it is only counted. */
	for (unsigned i = 0; i < rt->nthreads; i++)
		weft__timers_visit_sleepers(&rt->workers[i].timers, dump_sleeper, d);
	if (d->text.truncated)
		weft__textbuf_printf(&d->text, "  (out of memory: some tasks not listed)\n");
}

static struct dump new_dump(struct weft_runtime *rt)
{
	return (struct dump){
	        .rt = rt,
	        .now_ms = weft__coarse_ms(),
	        .timed = rt->monitor.started,
	        .period_ms = rt->monitor.period_ns / 1000000,
	};
}

size_t weft__dump_task_lines(struct weft_runtime *rt, int fd)
{
	struct dump d = new_dump(rt);
	collect(rt, &d);
	weft__textbuf_write(&d.text, fd);
	return d.listed;
}

int weft_dump_tasks(weft_runtime *rt, int fd)
{
	if (!rt || fd < 0)
		return -EINVAL;
	weft_metrics m;
	weft_metrics_get(rt, &m);
	struct dump d = new_dump(rt);
	weft__textbuf_printf(&d.text, "weft: task dump: %" PRIu64 " live tasks, %u workers\n",
	                     m.tasks_alive, rt->nworkers);
	collect(rt, &d);
	if (m.tasks_alive > d.listed)
		weft__textbuf_printf(
		        &d.text, "  (%" PRIu64 " more spawned, not started yet or started since)\n",
		        m.tasks_alive - d.listed);
	return weft__textbuf_write(&d.text, fd);
}
