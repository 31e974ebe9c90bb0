/*
 * Channels: a ring buffer and two FIFOs of waiters, senders and receivers,
 * under one spinlock (the senders queue's; waitq.h).
 *
 * Invariants, under the lock: receivers wait only while the buffer is
 * empty, senders only while it is full (bounded channels), and never both.
 * So a send first hands its element to the longest-waiting receiver --
 * copied into the receiver's own buffer, then GRANTED -- else appends to
 * the buffer, else waits with its element; a receive takes the buffer's
 * head and, if a sender waits, moves that sender's element in behind and
 * GRANTs it, else waits. An element copied for a waiter is its call's
 * effect: a GRANTED wait returns 0 whatever else happened. A waiter still
 * queued when cancelled leaves with nothing sent or received.
 *
 * Close marks the channel and wakes every waiter (WOKEN): they look again,
 * senders find it closed (-EPIPE, nothing sent), receivers drain the buffer
 * and then find it closed.
 */
#include <errno.h>
#include <sched.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <weft/sync.h>

#include "../runtime/fault.h"
#include <weft/time.h>
#include "oneshot.h"
#include "waitq.h"

#define WAKE_BATCH 64
#define UNBOUNDED_START 16

struct weft_chan {
	struct weft_waitq_ senders; /* its lock guards everything below */
	/* The lock's own line: its waiters' looks then do not take the
	   holder's data away (mpsc_1p1c 26-30 -> 43-47 M msgs/s). */
	alignas(64) struct weft_waitq_ receivers;
	size_t cap; /* 0: unbounded */
	size_t elem_size;
	unsigned char *buf;
	size_t slots, head, len;
	bool closed;
	_Atomic uint32_t closing; /* closes in progress: see closed_and_settled */
};

weft_chan *weft_chan_new(size_t capacity, size_t elem_size)
{
	if (elem_size == 0 || elem_size > SIZE_MAX / 4)
		return NULL;
	size_t slots = capacity ? capacity : UNBOUNDED_START;
	if (slots > SIZE_MAX / elem_size)
		return NULL;
	size_t size = (sizeof(weft_chan) + 63) & ~(size_t)63;
	weft_chan *c = aligned_alloc(64, size);
	if (!c)
		return NULL;
	memset(c, 0, size);
	c->buf = malloc(slots * elem_size);
	if (!c->buf) {
		free(c);
		return NULL;
	}
	c->cap = capacity;
	c->elem_size = elem_size;
	c->slots = slots;
	return c;
}

void weft_chan_free(weft_chan *c)
{
	if (!c)
		return;
	free(c->buf);
	free(c);
}

static unsigned char *slot(weft_chan *c, size_t i)
{
	return c->buf + ((c->head + i) % c->slots) * c->elem_size;
}

/* Doubles an unbounded channel's buffer; false when out of memory. */
static bool grow(weft_chan *c)
{
	if (c->slots > SIZE_MAX / 2 / c->elem_size)
		return false;
	unsigned char *nb = malloc(2 * c->slots * c->elem_size);
	if (!nb)
		return false;
	for (size_t i = 0; i < c->len; i++)
		memcpy(nb + i * c->elem_size, slot(c, i), c->elem_size);
	free(c->buf);
	c->buf = nb;
	c->slots *= 2;
	c->head = 0;
	return true;
}

static void push(weft_chan *c, const void *elem)
{
	memcpy(slot(c, c->len), elem, c->elem_size);
	c->len++;
}

static void pop(weft_chan *c, void *elem)
{
	memcpy(elem, slot(c, 0), c->elem_size);
	c->head = (c->head + 1) % c->slots;
	c->len--;
}

/* The helpers that run under the lock are forced inline: the lock's
   waiters look at it only every WEFT__WQ_PAUSES pauses, so every cycle the
   holder adds costs the others a round (the select's additions, out of
   line, took mpsc_1p1c from 30 to 15 M msgs/s; inline, 37-40).

   Under the lock: the first waiter of q that can be served now -- a plain
   one, or a select's registration whose select this call wins (claims) --
   still queued; registrations of selects that fired elsewhere are dropped
   on the way (their select finds them gone). */
static inline __attribute__((always_inline)) struct weft__waiter *take_waiter(struct weft_waitq_ *q)
{
	struct weft__waiter *w;
	while ((w = weft__wq_head(q))) {
		if (!w->sel || weft__sel_claim(w->sel, (int)w->case_i))
			return w;
		weft__wq_remove(q, w);
		atomic_store_explicit(&w->state, WEFT__W_WOKEN, memory_order_release);
	}
	return NULL;
}

/* Under the lock: w, taken by take_waiter, had its operation performed
   with this result; dequeues it and returns the waker to wake. */
static inline __attribute__((always_inline)) struct weft__waker
deliver(struct weft_waitq_ *q, struct weft__waiter *w, int result)
{
	if (!w->sel)
		return weft__wq_release(q, w, result ? WEFT__W_WOKEN : WEFT__W_GRANTED);
	struct weft__sel *sel = w->sel;
	sel->cases[w->case_i].result = result;
	weft__wq_remove(q, w);
	atomic_store_explicit(&w->state, WEFT__W_GRANTED, memory_order_release);
	atomic_store_explicit(&sel->delivered, 1, memory_order_release);
	return sel->waker;
}

/* Under the lock: sends without waiting if it can. 0, -EPIPE, -EAGAIN
   (bounded and full), -ENOMEM; *k is set when a receiver must be woken. */
static inline __attribute__((always_inline)) int send_now(weft_chan *c, const void *elem,
                                                          struct weft__waker *k, bool *wake)
{
	if (c->closed)
		return -EPIPE;
	struct weft__waiter *r = take_waiter(&c->receivers);
	if (r) {
		memcpy(r->data, elem, c->elem_size);
		*k = deliver(&c->receivers, r, 0);
		*wake = true;
		return 0;
	}
	if (c->len == c->slots) {
		if (c->cap)
			return -EAGAIN;
		if (!grow(c))
			return -ENOMEM;
	}
	push(c, elem);
	return 0;
}

/* Under the lock: receives without waiting if it can. 0, -EPIPE (closed and
   drained), -EAGAIN; *k is set when a sender must be woken. */
static inline __attribute__((always_inline)) int recv_now(weft_chan *c, void *elem,
                                                          struct weft__waker *k, bool *wake)
{
	if (c->len) {
		pop(c, elem);
		struct weft__waiter *s = take_waiter(&c->senders);
		if (s) {
			push(c, s->data);
			*k = deliver(&c->senders, s, 0);
			*wake = true;
		}
		return 0;
	}
	return c->closed ? -EPIPE : -EAGAIN;
}

/* Whoever finds the channel closed may free it once the others are done
   with it -- but close drops the lock between batches of wakes, after it
   marked the channel closed. So `closing` is raised before close takes
   the lock and lowered as its last access, and an operation that found
   the channel closed waits for it before it returns. */
static __attribute__((noinline)) int closed_and_settled(weft_chan *c)
{
	for (unsigned spins = 0; atomic_load_explicit(&c->closing, memory_order_acquire); spins++) {
		if (spins < 64)
			weft__cpu_relax();
		else
			sched_yield();
	}
	return -EPIPE;
}

static int finish(weft_chan *c, int rc, struct weft__waker k, bool wake)
{
	weft__wq_unlock(&c->senders);
	if (wake)
		weft__waker_wake(k);
	return rc == -EPIPE ? closed_and_settled(c) : rc;
}

/* Under the lock: a send (kind WEFT_SELECT_SEND) or receive without
   waiting, as send_now / recv_now. */
static inline __attribute__((always_inline)) int op_now(weft_chan *c, int kind, void *elem,
                                                        struct weft__waker *k, bool *wake)
{
	return kind == WEFT_SELECT_SEND ? send_now(c, elem, k, wake) : recv_now(c, elem, k, wake);
}

static struct weft_waitq_ *queue_of(weft_chan *c, int kind)
{
	return kind == WEFT_SELECT_SEND ? &c->senders : &c->receivers;
}

static inline __attribute__((always_inline)) int try_op(weft_chan *c, int kind, void *elem)
{
	if (!c || !elem)
		return -EINVAL;
	struct weft__waker k;
	bool wake = false;
	weft__wq_lock(&c->senders);
	int rc = op_now(c, kind, elem, &k, &wake); /* before finish reads k and wake */
	return finish(c, rc, k, wake);
}

/* A send or receive that waits while it cannot take effect. */
static inline __attribute__((always_inline)) int wait_op(weft_chan *c, int kind, void *elem)
{
	if (!c || !elem)
		return -EINVAL;
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	struct weft__waker k;
	bool wake = false;
	struct weft__waiter w;
	w.data = elem;
	for (;;) {
		weft__wq_lock(&c->senders);
		rc = op_now(c, kind, elem, &k, &wake);
		if (rc != -EAGAIN)
			return finish(c, rc, k, wake);
		weft__wq_enqueue(queue_of(c, kind), &w, false);
		int r = weft__wq_wait_in(&c->senders, queue_of(c, kind), &w,
		                         kind == WEFT_SELECT_SEND ? WEFT__WAIT_CHAN_SEND
		                                                  : WEFT__WAIT_CHAN_RECV,
		                         c, 0);
		if (r == WEFT__W_GRANTED)
			return 0; /* the other side moved our element */
		if (r < 0)
			return r;
		/* WOKEN: closed; look again */
	}
}

int weft_chan_try_send(weft_chan *c, const void *elem)
{
	return try_op(c, WEFT_SELECT_SEND, (void *)elem);
}

int weft_chan_try_recv(weft_chan *c, void *elem)
{
	return try_op(c, WEFT_SELECT_RECV, elem);
}

int weft_chan_send(weft_chan *c, const void *elem)
{
	return wait_op(c, WEFT_SELECT_SEND, (void *)elem);
}

int weft_chan_recv(weft_chan *c, void *elem)
{
	return wait_op(c, WEFT_SELECT_RECV, elem);
}

/* Under the lock: wakes every waiter of q as WOKEN, in batches. */
static void wake_all(weft_chan *c, struct weft_waitq_ *q)
{
	struct weft__waker k[WAKE_BATCH];
	for (;;) {
		size_t got = 0;
		struct weft__waiter *h;
		while (got < WAKE_BATCH && (h = take_waiter(q)))
			k[got++] = deliver(q, h, -EPIPE); /* plain waiters look again */
		weft__wq_unlock(&c->senders);
		for (size_t i = 0; i < got; i++)
			weft__waker_wake(k[i]);
		weft__wq_lock(&c->senders);
		if (got < WAKE_BATCH)
			return;
	}
}

void weft_chan_close(weft_chan *c)
{
	if (!c)
		return;
	atomic_fetch_add_explicit(&c->closing, 1, memory_order_relaxed);
	weft__wq_lock(&c->senders);
	c->closed = true;
	wake_all(c, &c->receivers);
	wake_all(c, &c->senders);
	weft__wq_unlock(&c->senders);
	atomic_fetch_sub_explicit(&c->closing, 1, memory_order_release);
}

/* ----------------------------------------------------------------- select */

/* Under the lock: whether the case would take effect now. A send always
   can once there is room (receivers wait only while the buffer is empty,
   so there is room whenever one waits); a receive once there is an
   element. Closed: both, with -EPIPE. */
static bool case_ready(const weft_chan *c, int kind)
{
	if (c->closed)
		return true;
	return kind == WEFT_SELECT_SEND ? (!c->cap || c->len < c->slots) : c->len > 0;
}

static bool case_valid(const weft_select_case *sc)
{
	if (!sc->elem)
		return false;
	if (sc->kind == WEFT_SELECT_ONESHOT)
		return sc->oneshot != NULL;
	return (sc->kind == WEFT_SELECT_SEND || sc->kind == WEFT_SELECT_RECV) && sc->chan;
}

static int check_cases(const weft_select_case *cases, size_t n)
{
	if (!cases || n == 0 || n > WEFT_SELECT_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!case_valid(&cases[i]))
			return -EINVAL;
		/* A oneshot has one receiver slot: one case at most. */
		for (size_t j = 0; cases[i].kind == WEFT_SELECT_ONESHOT && j < i; j++)
			if (cases[j].kind == WEFT_SELECT_ONESHOT &&
			    cases[j].oneshot == cases[i].oneshot)
				return -EINVAL;
	}
	return 0;
}

static unsigned start_point(size_t n)
{
	static _Atomic unsigned seed = 0x9e3779b9u;
	unsigned x = atomic_fetch_add_explicit(&seed, 0x9e3779b9u, memory_order_relaxed);
	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	x ^= x >> 12;
	return x % (unsigned)n;
}

static int poll_case(weft_select_case *sc)
{
	if (sc->kind == WEFT_SELECT_ONESHOT)
		return weft_oneshot_try_recv(sc->oneshot, sc->elem);
	return try_op(sc->chan, sc->kind, sc->elem);
}

/* Registers case i: false when it is ready instead -- then the select
   claims and performs it itself (*own), unless it fired elsewhere
   meanwhile. */
static bool register_case(struct weft__sel *sel, struct weft__waiter *w, unsigned i, bool *own)
{
	weft_select_case *sc = &sel->cases[i];
	if (sc->kind == WEFT_SELECT_ONESHOT) {
		if (!weft__oneshot_sel_arm(sc->oneshot, sel, i))
			return true;
		if ((*own = weft__sel_claim(sel, (int)i)))
			sc->result = weft__oneshot_take(sc->oneshot, sc->elem);
		return false;
	}
	weft_chan *c = sc->chan;
	struct weft__waker k;
	bool wake = false;
	weft__wq_lock(&c->senders);
	if (case_ready(c, sc->kind)) {
		if ((*own = weft__sel_claim(sel, (int)i)))
			sc->result = op_now(c, sc->kind, sc->elem, &k, &wake);
		finish(c, 0, k, wake);
		return false;
	}
	w->sel = sel;
	w->case_i = i;
	w->data = sc->elem;
	atomic_init(&w->state, WEFT__W_QUEUED);
	weft__wq_push_tail(queue_of(c, sc->kind), w);
	weft__wq_unlock(&c->senders);
	return true;
}

/* Registers the select on each case, in order from `start`; stops early at
   a ready case (see register_case). Returns how many were registered. */
static size_t register_cases(struct weft__sel *sel, struct weft__waiter *w, size_t n,
                             unsigned start, bool *own)
{
	*own = false;
	size_t done = 0;
	for (; done < n; done++) {
		unsigned i = (start + (unsigned)done) % (unsigned)n;
		if (!register_case(sel, &w[i], i, own))
			break;
	}
	return done;
}

/* Withdraws every registration; on return no other party touches sel. */
static void unregister_cases(struct weft__sel *sel, struct weft__waiter *w, size_t n,
                             size_t registered, unsigned start)
{
	for (size_t j = 0; j < registered; j++) {
		unsigned i = (start + (unsigned)j) % (unsigned)n;
		weft_select_case *sc = &sel->cases[i];
		if (sc->kind == WEFT_SELECT_ONESHOT) {
			weft__oneshot_sel_disarm(sc->oneshot);
			continue;
		}
		weft__wq_lock(&sc->chan->senders);
		if (atomic_load_explicit(&w[i].state, memory_order_relaxed) == WEFT__W_QUEUED)
			weft__wq_remove(queue_of(sc->chan, sc->kind), &w[i]);
		weft__wq_unlock(&sc->chan->senders);
	}
}

/* Parks until a party delivered a case, or the wait ends (cancellation,
   the deadline) and the select withdraws first; the error then. */
static int await_delivery(struct weft__sel *sel, size_t n)
{
	for (;;) {
		if (atomic_load_explicit(&sel->delivered, memory_order_acquire))
			return 0;
		weft__block(&sel->word, WEFT__WAIT_SELECT, sel, (uint32_t)n);
		if (atomic_load_explicit(&sel->delivered, memory_order_acquire))
			return 0;
		int rc = weft__wait_check();
		if (rc && weft__sel_claim(sel, WEFT__SEL_WITHDRAWN))
			return rc;
		/* else: an early return, or a case fired as we gave up: its
		   delivery is on the way */
	}
}

int weft_select(weft_select_case *cases, size_t n, int64_t timeout_ms)
{
	int rc = check_cases(cases, n);
	if (rc)
		return rc;
	if ((rc = weft__wait_enter()))
		return rc;
	unsigned start = start_point(n);
	for (size_t j = 0; j < n; j++) {
		unsigned i = (start + (unsigned)j) % (unsigned)n;
		int r = poll_case(&cases[i]);
		if (r != -EAGAIN) {
			cases[i].result = r;
			return (int)i;
		}
	}
	if (timeout_ms == 0)
		return -ETIMEDOUT;
	weft_deadline d;
	if (timeout_ms > 0)
		weft_deadline_push(&d, (uint64_t)timeout_ms);
	struct weft__sel sel;
	atomic_init(&sel.fired, -1);
	atomic_init(&sel.delivered, 0);
	sel.cases = cases;
	sel.waker = weft__waker_self(&sel.word);
	struct weft__waiter w[n];
	bool own;
	size_t registered = register_cases(&sel, w, n, start, &own);
	if (!own)
		if (!own)
			rc = await_delivery(&sel, n); /* 0 once a case was delivered */
	unregister_cases(&sel, w, n, registered, start);
	int fired = atomic_load_explicit(&sel.fired, memory_order_acquire);
	if (own || fired == WEFT__SEL_WITHDRAWN)
		weft__waker_drop(sel.waker); /* nobody else will wake it */
	else
		weft__waker_settle(sel.waker); /* its deliverer is done with our word */
	if (timeout_ms > 0)
		weft_deadline_pop(&d);
	if (fired >= 0 && !own && cases[fired].kind == WEFT_SELECT_ONESHOT)
		cases[fired].result = weft__oneshot_take(cases[fired].oneshot, cases[fired].elem);
	else if (fired >= 0 && cases[fired].kind != WEFT_SELECT_ONESHOT &&
	         cases[fired].result == -EPIPE)
		closed_and_settled(cases[fired].chan);
	return fired >= 0 ? fired : rc;
}
