/*
 * The oneshot: one value, one sender, one receiver.
 *
 * State bits:
 *   VALUE       the value is in place (set once, by send)
 *   CLOSED      the sender left without sending
 *   RX_WAITING  the receiver stored its waker in o->rx
 *   TX_DONE     the sender will not touch the object again
 *   RX_DONE     the receiver will not touch the object again
 * The side that sets the second of TX_DONE/RX_DONE frees the object.
 *
 * The sender publishes VALUE (or CLOSED) first and only then -- after waking
 * the receiver through o->rx -- sets TX_DONE, so the receiver cannot free
 * the object while the sender still reads o->rx. The receiver withdraws its
 * waker (cancelled recv) with a CAS that fails once VALUE or CLOSED is set:
 * from then on the sender owns the waker, and the value is delivered.
 *
 * A weft_select waits on a oneshot the same way with its registration in
 * o->sel (o->rx unused): the sender that sees RX_WAITING claims the select
 * for the case and, if it wins, marks it delivered and wakes it; the
 * select then performs the receive itself. A select that withdraws and
 * finds VALUE or CLOSED already set waits for TX_DONE before it returns:
 * until then the sender may still be touching the select, which lives on
 * the selecting caller's stack.
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <weft/sync.h>

#include "../runtime/fault.h"
#include "../runtime/wait.h"
#include "oneshot.h"
#include "waitq.h"

#define VALUE 1u
#define CLOSED 2u
#define RX_WAITING 4u
#define TX_DONE 8u
#define RX_DONE 16u

struct weft_oneshot {
	_Atomic uint32_t state;
	size_t elem_size;
	struct weft__waker rx;
	struct weft__sel *sel; /* a select waiting instead of a plain recv */
	unsigned case_i;       /* its case */
	alignas(max_align_t) unsigned char value[];
};

weft_oneshot *weft_oneshot_new(size_t elem_size)
{
	if (elem_size == 0 || elem_size > SIZE_MAX / 2 || weft__fault(WEFT__FAULT_ONESHOT_ALLOC))
		return NULL;
	struct weft_oneshot *o = malloc(sizeof *o + elem_size);
	if (!o)
		return NULL;
	atomic_init(&o->state, 0);
	o->elem_size = elem_size;
	o->rx = (struct weft__waker){NULL, NULL};
	o->sel = NULL;
	return o;
}

/* The sender, having published: wakes the waiting receiver -- a plain one,
   or a select this oneshot's case wins. */
static void wake_receiver(weft_oneshot *o)
{
	struct weft__sel *sel = o->sel;
	if (!sel) {
		weft__waker_wake(o->rx);
		return;
	}
	if (weft__sel_claim(sel, (int)o->case_i)) {
		struct weft__waker k = sel->waker;
		atomic_store_explicit(&sel->delivered, 1, memory_order_release);
		weft__waker_wake(k);
	}
}

/* Publishes VALUE or CLOSED, wakes a waiting receiver, then leaves. Returns
   -EPIPE if the receiver had already left. */
static int sender_finish(weft_oneshot *o, uint32_t what)
{
	uint32_t prev = atomic_fetch_or_explicit(&o->state, what, memory_order_acq_rel);
	if (prev & RX_DONE) {
		free(o); /* the receiver left before us and did not free */
		return -EPIPE;
	}
	if (prev & RX_WAITING)
		wake_receiver(o);
	prev = atomic_fetch_or_explicit(&o->state, TX_DONE, memory_order_acq_rel);
	if (prev & RX_DONE)
		free(o);
	return 0;
}

int weft_oneshot_send(weft_oneshot *o, const void *elem)
{
	if (!o || !elem)
		return -EINVAL;
	memcpy(o->value, elem, o->elem_size);
	return sender_finish(o, VALUE);
}

void weft_oneshot_drop_sender(weft_oneshot *o)
{
	if (o)
		sender_finish(o, CLOSED);
}

static void receiver_leave(weft_oneshot *o)
{
	uint32_t prev = atomic_fetch_or_explicit(&o->state, RX_DONE, memory_order_acq_rel);
	if (prev & TX_DONE)
		free(o);
}

void weft_oneshot_drop_receiver(weft_oneshot *o)
{
	if (o)
		receiver_leave(o);
}

/* Clears RX_WAITING unless the sender already published; returns the state
   seen (VALUE or CLOSED set: it was not cleared, the sender has the
   waiter). */
static uint32_t clear_waiting(weft_oneshot *o)
{
	uint32_t cur = atomic_load_explicit(&o->state, memory_order_acquire);
	do {
		if (cur & (VALUE | CLOSED))
			return cur;
	} while (!atomic_compare_exchange_weak_explicit(
	        &o->state, &cur, cur & ~RX_WAITING, memory_order_acq_rel, memory_order_acquire));
	return cur;
}

/* Takes the waker back unless the sender already published; returns the
   state seen. */
static uint32_t withdraw_rx(weft_oneshot *o)
{
	uint32_t cur = clear_waiting(o);
	if (!(cur & (VALUE | CLOSED)))
		weft__waker_drop(o->rx);
	return cur;
}

/* Parks until VALUE or CLOSED is set: 0; or the wait ends first. */
static int wait_published(weft_oneshot *o)
{
	_Atomic uint32_t word;
	o->rx = weft__waker_self(&word);
	o->sel = NULL;
	uint32_t s = atomic_fetch_or_explicit(&o->state, RX_WAITING, memory_order_acq_rel);
	if (s & (VALUE | CLOSED)) {
		weft__waker_drop(o->rx); /* published before we registered */
		return 0;
	}
	for (;;) {
		weft__block(&word, WEFT__WAIT_ONESHOT, o, 0);
		s = atomic_load_explicit(&o->state, memory_order_acquire);
		if (s & (VALUE | CLOSED))
			break;
		int rc = weft__wait_check();
		if (rc) {
			s = withdraw_rx(o);
			if (!(s & (VALUE | CLOSED)))
				return rc;
			break;
		}
	}
	weft__waker_settle(o->rx); /* the sender is done with our word */
	return 0;
}

/* The receive once VALUE or CLOSED is set: copies the value, or -EPIPE;
   the receiver leaves. */
int weft__oneshot_take(weft_oneshot *o, void *elem)
{
	uint32_t s = atomic_load_explicit(&o->state, memory_order_acquire);
	int rc = -EPIPE;
	if (s & VALUE) {
		memcpy(elem, o->value, o->elem_size);
		rc = 0;
	}
	receiver_leave(o);
	return rc;
}

static bool published(weft_oneshot *o)
{
	return atomic_load_explicit(&o->state, memory_order_acquire) & (VALUE | CLOSED);
}

int weft_oneshot_recv(weft_oneshot *o, void *elem)
{
	if (!o || !elem)
		return -EINVAL;
	int rc = weft__wait_enter();
	if (rc)
		return rc;
	if (!published(o) && (rc = wait_published(o)) < 0)
		return rc;
	return weft__oneshot_take(o, elem);
}

int weft_oneshot_try_recv(weft_oneshot *o, void *elem)
{
	if (!o || !elem)
		return -EINVAL;
	return published(o) ? weft__oneshot_take(o, elem) : -EAGAIN;
}

bool weft__oneshot_sel_arm(weft_oneshot *o, struct weft__sel *sel, unsigned case_i)
{
	if (published(o))
		return true;
	o->sel = sel;
	o->case_i = case_i;
	uint32_t s = atomic_fetch_or_explicit(&o->state, RX_WAITING, memory_order_acq_rel);
	/* Published before we registered: the sender did not see us. */
	return s & (VALUE | CLOSED);
}

void weft__oneshot_sel_disarm(weft_oneshot *o)
{
	if (!(clear_waiting(o) & (VALUE | CLOSED)))
		return;
	/* The sender saw our registration: it may still be claiming or
	   waking the select; it is done once it set TX_DONE (its next step). */
	for (unsigned spins = 0; !(atomic_load_explicit(&o->state, memory_order_acquire) & TX_DONE);
	     spins++) {
		if (spins < 1000)
			weft__cpu_relax();
		else
			sched_yield();
	}
}
