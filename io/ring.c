/*
 * The io_uring of a worker thread; the protocol is in ring.h.
 */
#include "ring.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../runtime/tls.h"
#include "../runtime/wait.h"
#include "../runtime/worker.h"

#define RING_ENTRIES 256 /* SQ: a submit happens at least every 61 task runs */
#define RING_CQ_ENTRIES 4096
#define UD_IGNORE 0ull /* a cancel request's own completion */
#define UD_WAKE 1ull   /* the wake eventfd's poll */
#define UD_MSG 2ull    /* a wake sent by another ring (IORING_OP_MSG_RING) */

/* Strongest first; each later set drops what an older kernel refuses. */
static const unsigned setup_flags[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
};

/* SUBMIT_ALL (5.18) keeps a batch going past an SQE that fails at submit;
   kernels without it still get a ring. */
static int setup(struct io_uring *u, unsigned entries, unsigned cq_entries)
{
	int rc = -EINVAL;
	const size_t nflags = sizeof setup_flags / sizeof setup_flags[0];
	for (size_t i = 0; i < 2 * nflags; i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.flags = setup_flags[i % nflags] | (i < nflags ? IORING_SETUP_SUBMIT_ALL : 0);
		if (cq_entries) {
			p.flags |= IORING_SETUP_CQSIZE;
			p.cq_entries = cq_entries;
		}
		rc = io_uring_queue_init_params(entries, u, &p);
		if (rc != -EINVAL)
			break;
	}
	return rc;
}

bool weft__ring_supported(int *why)
{
	struct io_uring u;
	int rc = setup(&u, 2, 0);
	if (rc < 0) {
		*why = -rc;
		return false;
	}
	io_uring_queue_exit(&u);
	return true;
}

static void arm_wake_poll(struct weft__ring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
	if (!sqe) {
		io_uring_submit(&r->uring);
		sqe = io_uring_get_sqe(&r->uring);
	}
	io_uring_prep_poll_multishot(sqe, r->wakefd, POLLIN);
	io_uring_sqe_set_data64(sqe, UD_WAKE);
	r->prep_seq++;
}

int weft__ring_init(struct weft__ring *r)
{
	memset(r, 0, sizeof *r);
	r->wakefd = -1;
	int rc = setup(&r->uring, RING_ENTRIES, RING_CQ_ENTRIES);
	if (rc < 0)
		return rc;
	r->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->wakefd < 0) {
		rc = -errno;
		io_uring_queue_exit(&r->uring);
		return rc;
	}
	struct io_uring_probe *probe = io_uring_get_probe_ring(&r->uring);
	r->msg_ok = probe && io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
	io_uring_free_probe(probe);
	r->active = true;
	arm_wake_poll(r);
	weft__ring_poll(r);
	return 0;
}

void weft__ring_destroy(struct weft__ring *r)
{
	if (!r->active)
		return;
	r->active = false;
	io_uring_queue_exit(&r->uring);
	close(r->wakefd);
	r->wakefd = -1;
}

struct weft__ring *weft__ring_current(void)
{
	struct weft__tls *tls = weft__tls();
	if (!tls->task || !tls->thread || !tls->thread->ring.active)
		return NULL;
	return &tls->thread->ring;
}

/* ------------------------------------------------------------- owner side */

static struct io_uring_sqe *get_sqe(struct weft__ring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
	if (!sqe) {
		/* Full: hand the queue to the kernel now (a rare extra enter). */
		weft__ring_poll(r);
		sqe = io_uring_get_sqe(&r->uring);
	}
	if (sqe)
		r->prep_seq++;
	return sqe;
}

/* An SQE for op, op set up as in flight on r (count 1: its completion). */
static struct io_uring_sqe *prep_op(struct weft__ring *r, struct weft__uop *op, int fd,
                                    struct weft__waker waker)
{
	struct io_uring_sqe *sqe = get_sqe(r);
	if (!sqe)
		return NULL;
	op->waker = waker;
	op->ring = r;
	op->seq = r->prep_seq;
	op->fd = fd;
	op->cqe_flags = 0;
	op->on_cqe = NULL;
	op->on_idle = NULL;
	atomic_init(&op->count, 1);
	atomic_init(&op->cancel_asked, false);
	atomic_init(&op->mb_next, NULL);
	r->inflight++;
	return sqe;
}

struct io_uring_sqe *weft__ring_prep(struct weft__ring *r, struct weft__uop *op, int fd)
{
	struct weft__waker self = weft__waker_self(NULL);
	struct io_uring_sqe *sqe = prep_op(r, op, fd, self);
	if (!sqe)
		weft__waker_drop(self);
	return sqe;
}

struct io_uring_sqe *weft__ring_prep_multishot(struct weft__ring *r, struct weft__uop *op, int fd,
                                               unsigned (*on_cqe)(struct weft__uop *, int32_t,
                                                                  uint32_t),
                                               unsigned (*on_idle)(struct weft__uop *))
{
	struct io_uring_sqe *sqe = prep_op(r, op, fd, (struct weft__waker){0});
	if (!sqe)
		return NULL;
	op->on_cqe = on_cqe;
	op->on_idle = on_idle;
	weft__dlist_push_tail(&r->multishots, &op->ring_link);
	return sqe;
}

void weft__ring_unprep(struct weft__ring *r, struct io_uring_sqe *sqe, struct weft__uop *op)
{
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, UD_IGNORE);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	r->inflight--;
	if (op->on_cqe)
		weft__dlist_unlink(&r->multishots, &op->ring_link);
	else
		weft__waker_drop(op->waker);
}

/* Puts a cancel request for op on r's mailbox; the count it adds keeps op
   alive until the owner took the request out. */
static void post(struct weft__ring *r, struct weft__uop *op)
{
	atomic_fetch_add_explicit(&op->count, 1, memory_order_relaxed);
	struct weft__uop *head = atomic_load_explicit(&r->mailbox, memory_order_relaxed);
	do
		atomic_store_explicit(&op->mb_next, head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&r->mailbox, &head, op, memory_order_release,
	                                              memory_order_relaxed));
}

/* Owner only. Queued behind op's own SQE if that is still queued, so the
   kernel sees op first. With the queue full, the request waits in the
   mailbox for the next submit instead of being lost -- it does not submit
   to make room: the caller may hold an fd state's lock, or be inside the
   reap, which a multishot op's on_cqe runs in and takes that lock. */
static void prep_cancel(struct weft__ring *r, struct weft__uop *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
	if (!sqe) {
		post(r, op);
		return;
	}
	r->prep_seq++;
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data64(sqe, UD_IGNORE);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* Drops one of op's counts; the last wakes its task (or, for a multishot
   op, says it is idle). */
static void put_op(struct weft__ring *r, struct weft__uop *op)
{
	/* Read before the drop: once the count is zero a task's uop is its
	   again (it may see that and return before our wake). A multishot op
	   lives in its fd state and stays readable. */
	struct weft__waker w = op->waker;
	unsigned (*on_idle)(struct weft__uop *) = op->on_idle;
	if (atomic_fetch_sub_explicit(&op->count, 1, memory_order_acq_rel) != 1)
		return;
	if (on_idle) {
		weft__dlist_unlink(&r->multishots, &op->ring_link);
		r->woken += on_idle(op);
		return;
	}
	r->woken++;
	weft__waker_wake(w);
}

/* Turns the cancel requests other threads posted into ASYNC_CANCELs. */
static void drain_mailbox(struct weft__ring *r)
{
	if (!atomic_load_explicit(&r->mailbox, memory_order_relaxed))
		return;
	struct weft__uop *op = atomic_exchange_explicit(&r->mailbox, NULL, memory_order_acquire);
	while (op) {
		struct weft__uop *next = atomic_load_explicit(&op->mb_next, memory_order_relaxed);
		prep_cancel(r, op);
		put_op(r, op);
		op = next;
	}
}

static void reap(struct weft__ring *r)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	io_uring_for_each_cqe(&r->uring, head, cqe)
	{
		seen++;
		uint64_t ud = cqe->user_data;
		if (ud != UD_IGNORE && ud != UD_MSG && ud != UD_WAKE)
			atomic_store_explicit(
			        &r->completions,
			        atomic_load_explicit(&r->completions, memory_order_relaxed) + 1,
			        memory_order_relaxed);
		if (ud == UD_IGNORE || ud == UD_MSG)
			continue; /* a wake: it ended the wait, nothing else */
		if (ud == UD_WAKE) {
			if (!(cqe->flags & IORING_CQE_F_MORE))
				arm_wake_poll(r); /* the multishot poll ended: again */
			continue;
		}
		struct weft__uop *op = (struct weft__uop *)(uintptr_t)ud;
		if (op->on_cqe) {
			r->woken += op->on_cqe(op, cqe->res, cqe->flags);
			if (cqe->flags & IORING_CQE_F_MORE)
				continue;
		} else {
			op->res = cqe->res;
			op->cqe_flags = cqe->flags;
		}
		r->inflight--;
		put_op(r, op);
	}
	io_uring_cq_advance(&r->uring, seen);
}

/* After an enter: SQEs still in the queue (the kernel refused them for
   now, -EBUSY/-EAGAIN) are not submitted. */
static void mark_submitted(struct weft__ring *r)
{
	atomic_store_explicit(&r->submitted_seq, r->prep_seq - io_uring_sq_ready(&r->uring),
	                      memory_order_release);
}

/* Tasks are woken by the last drop of a uop's count, which a completion
   or a cancel request taken from the mailbox may be: the callers learn how
   many from r->woken, so that a worker about to sleep sees the tasks its
   own drain woke (they are in its LIFO slot, which wakes nobody). */
unsigned weft__ring_poll(struct weft__ring *r)
{
	unsigned before = r->woken;
	drain_mailbox(r);
	io_uring_submit_and_get_events(&r->uring);
	mark_submitted(r);
	reap(r);
	return r->woken - before;
}

unsigned weft__ring_park(struct weft__ring *r, uint64_t timeout_ns)
{
	unsigned before = r->woken;
	drain_mailbox(r);
	if (timeout_ns == 0 || r->woken != before) {
		weft__ring_poll(r);
		return r->woken - before;
	}
	struct __kernel_timespec ts, *tp = NULL;
	if (timeout_ns != UINT64_MAX) {
		ts.tv_sec = (long long)(timeout_ns / 1000000000ull);
		ts.tv_nsec = (long long)(timeout_ns % 1000000000ull);
		tp = &ts;
	}
	struct io_uring_cqe *cqe;
	io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, tp, NULL);
	mark_submitted(r);
	reap(r);
	return r->woken - before;
}

/* From a worker thread with a ring of its own: a message from ring to
   ring, submitted at once together with whatever the caller's ring had
   queued (its completion on our side is skipped). */
static bool wake_by_message(struct weft__ring *r)
{
	struct weft__thread *th = weft__tls()->thread;
	if (!th || !th->ring.active || &th->ring == r || !r->msg_ok)
		return false;
	struct weft__ring *own = &th->ring;
	/* No submit-to-make-room here: we may be inside this ring's reap. */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&own->uring);
	if (!sqe)
		return false;
	own->prep_seq++;
	io_uring_prep_msg_ring(sqe, r->uring.ring_fd, 0, UD_MSG, 0);
	io_uring_sqe_set_data64(sqe, UD_IGNORE);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_submit(&own->uring);
	mark_submitted(own);
	return true;
}

void weft__ring_wake(struct weft__ring *r)
{
	if (wake_by_message(r))
		return;
	uint64_t one = 1;
	if (write(r->wakefd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is saturated, so a wake is pending anyway */
	}
}

void weft__ring_quiesce(struct weft__ring *r)
{
	if (!r->active)
		return;
	for (struct weft__dlink *l = r->multishots.head; l; l = l->next)
		weft__ring_cancel(weft__container_of(l, struct weft__uop, ring_link));
	/* Each cancel ends its op with a final CQE within a few reaps. */
	for (int i = 0; r->multishots.head && i < 10000; i++)
		weft__ring_park(r, 1000000);
	/* Should the kernel not have answered in 10 s, the ring's exit ends
	   the ops all the same: their owners must not wait for it. */
	while (r->multishots.head) {
		struct weft__uop *op =
		        weft__container_of(r->multishots.head, struct weft__uop, ring_link);
		weft__dlist_unlink(&r->multishots, &op->ring_link);
		op->on_idle(op);
	}
}

/* ------------------------------------------------------------ task side */

void weft__ring_cancel(struct weft__uop *op)
{
	if (atomic_exchange_explicit(&op->cancel_asked, true, memory_order_acq_rel))
		return;
	struct weft__ring *r = op->ring;
	struct weft__thread *th = weft__tls()->thread;
	if (th && &th->ring == r) {
		prep_cancel(r, op); /* the owner: goes out with the next submit */
		return;
	}
	post(r, op); /* another thread: through the owner's mailbox */
	struct weft__thread *owner = weft__container_of(r, struct weft__thread, ring);
	weft__parker_unpark(&owner->parker);
}

int weft__ring_wait(struct weft__uop *op, unsigned opcode)
{
	int rc = 0;
	while (atomic_load_explicit(&op->count, memory_order_acquire)) {
		if (rc) {
			/* Cancel requested: the kernel may still write into the
			   caller's buffer until the completion arrives. */
			weft__task_park();
			continue;
		}
		weft__block(NULL, WEFT__WAIT_IO, (const void *)(intptr_t)op->fd, opcode);
		if (atomic_load_explicit(&op->count, memory_order_acquire) == 0)
			break;
		if ((rc = weft__wait_check()))
			weft__ring_cancel(op);
	}
	return rc;
}
