/*
 * A worker thread's io_uring (internal): the completion backend.
 *
 * Each worker thread owns one ring, created on that thread with
 * SINGLE_ISSUER and DEFER_TASKRUN (else COOP_TASKRUN, else neither): only
 * the owner may touch it. A task's operation is an SQE on the ring of the
 * thread it runs on, carrying the address of a struct weft__uop on the
 * task's stack; the task parks, and the owner's reaping of the CQE wakes it.
 *
 * Batching: preparing an SQE does not enter the kernel. The owner submits
 * and reaps every global_queue_interval ticks (weft__ring_poll_now), while
 * it searches for work, and when it parks -- parking is a wait in the ring
 * for one completion with the next timer deadline as its timeout
 * (weft__ring_park). Another worker ends that wait with IORING_OP_MSG_RING
 * from its own ring (submitted at once, with whatever it had queued); any
 * other thread writes the ring's eventfd, which a multishot poll in the
 * ring turns into a completion; the eventfd is never read back (each write
 * wakes the poll once).
 *
 * A uop's life: armed (count 1: its completion) -> the CQE sets res and
 * drops the count; a cancel request posted from another thread adds one,
 * dropped when the owner has turned it into an ASYNC_CANCEL. Whoever drops
 * the count to zero wakes the task, which only then takes its memory back:
 * no CQE and no mailbox entry can touch a uop that its task has left.
 *
 * Mailbox: cancel requests from other threads (a cancelled or timed-out
 * task resumed elsewhere, weft_close of an fd the op uses) are pushed onto
 * the owner's lock-free stack and the owner is woken; it drains the stack
 * at every submit.
 */
#ifndef WEFT_IO_RING_H
#define WEFT_IO_RING_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../runtime/list.h"
#include "../runtime/task.h"

#ifdef WEFT_HAVE_URING
#include <liburing.h>
#endif

struct weft__ring;

/* One operation in flight; lives on the stack of the task waiting for it. */
struct weft__uop {
	struct weft__waker waker;
	struct weft__ring *ring;   /* where it was submitted */
	uint64_t seq;              /* the ring's prep count when it was prepared */
	_Atomic uint32_t count;    /* completion + posted cancel requests */
	_Atomic bool cancel_asked; /* a cancel was requested (once) */
	int32_t res;
	uint32_t cqe_flags;      /* IORING_CQE_F_BUFFER and the buffer id */
	int fd;                  /* the fd it uses, or -1 */
	bool closing;            /* the fd was closed meanwhile (under its lock) */
	bool linked;             /* on the fd state's list of ops */
	struct weft__dlink link; /* in the fd state's list of ops */
	struct weft__uop *_Atomic mb_next;
	/* Multishot ops only (weft__ring_prep_multishot), owned by no task:
	   on_cqe takes each completion (on the owner, inside its reap, so it
	   must not submit), on_idle runs once the last CQE and every cancel
	   request are through, after which op may be armed again. Both return
	   how many tasks they woke (the ring's `woken`). */
	unsigned (*on_cqe)(struct weft__uop *op, int32_t res, uint32_t flags);
	unsigned (*on_idle)(struct weft__uop *op);
	struct weft__dlink ring_link; /* in its ring's multishots */
};

struct weft__ring {
#ifdef WEFT_HAVE_URING
	struct io_uring uring;
#endif
	bool active;
	bool msg_ok;                    /* the kernel has IORING_OP_MSG_RING */
	unsigned inflight;              /* armed uops whose CQE is not reaped */
	unsigned woken;                 /* tasks its uops woke so far (wraps) */
	uint64_t prep_seq;              /* SQEs prepared so far */
	_Atomic uint64_t submitted_seq; /* of those, handed to the kernel */
	_Atomic uint64_t completions;   /* CQEs of uops reaped (metrics) */
	int wakefd;                     /* eventfd polled in the ring */
	struct weft__uop *_Atomic mailbox;
	struct weft__dlist multishots; /* armed multishot ops (owner only) */
};

#ifdef WEFT_HAVE_URING
/* Whether io_uring works here (probed once: setup with the flags weft
   uses); the reason it does not in *why (an errno) otherwise. */
bool weft__ring_supported(int *why);

/* On the owner thread. -errno when no ring can be made (the thread then
   uses the epoll poller). */
int weft__ring_init(struct weft__ring *r);
void weft__ring_destroy(struct weft__ring *r);

/* The calling thread's ring when it is a worker thread with an active one
   and a task is running; else NULL (plain threads, pool jobs). */
struct weft__ring *weft__ring_current(void);

/* Submits what is prepared and reaps completions without waiting; returns
   how many tasks that woke. Owner only. */
unsigned weft__ring_poll(struct weft__ring *r);

/* The periodic look, a few loads when there is nothing to do: it enters
   the kernel only for SQEs to submit, cancel requests, or completions
   waiting -- posted already, kept back by a full CQ (IORING_SQ_CQ_OVERFLOW),
   or (IORING_SQ_TASKRUN) waiting for the enter that runs the ring's
   deferred task work. */
static inline unsigned weft__ring_poll_now(struct weft__ring *r)
{
	if (!r->active)
		return 0;
	if (r->prep_seq != atomic_load_explicit(&r->submitted_seq, memory_order_relaxed) ||
	    atomic_load_explicit(&r->mailbox, memory_order_relaxed) ||
	    (r->inflight && ((IO_URING_READ_ONCE(*r->uring.sq.kflags) &
	                      (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) ||
	                     io_uring_cq_ready(&r->uring))))
		return weft__ring_poll(r);
	return 0;
}

/* Submits, then waits for a completion or a wake for up to timeout_ns
   (UINT64_MAX: no limit; 0: only looks); returns how many tasks that woke
   (it does not wait when taking in cancel requests woke one). Owner only. */
unsigned weft__ring_park(struct weft__ring *r, uint64_t timeout_ns);

/* Ends a park in progress (or the next one). Any thread. */
void weft__ring_wake(struct weft__ring *r);

/* Reserves an SQE on the owner's ring r for op (submitting first if the
   queue is full) and sets op up (count, waker, ring), so that op may be
   published (to its fd's list) before the SQE is filled in; the caller
   fills it and sets its user_data to op. NULL if the queue stays full. */
struct io_uring_sqe *weft__ring_prep(struct weft__ring *r, struct weft__uop *op, int fd);

/* As weft__ring_prep, for a multishot op that no task waits for: its
   completions go to on_cqe, and on_idle says when it ended. */
struct io_uring_sqe *weft__ring_prep_multishot(struct weft__ring *r, struct weft__uop *op, int fd,
                                               unsigned (*on_cqe)(struct weft__uop *, int32_t,
                                                                  uint32_t),
                                               unsigned (*on_idle)(struct weft__uop *));

/* Before the owner thread ends: cancels the ring's multishot ops and reaps
   until each is idle, so none outlives the ring. Owner only. */
void weft__ring_quiesce(struct weft__ring *r);

/* Gives back a reserved SQE (it becomes a silent no-op) and op's waker. */
void weft__ring_unprep(struct weft__ring *r, struct io_uring_sqe *sqe, struct weft__uop *op);

/* Waits, as a wait, for the op just prepared to complete (op->res): 0, or
   -ECANCELED / -ETIMEDOUT if the task was cancelled or its deadline passed
   first -- the op was then cancelled in the kernel and its completion
   awaited all the same, so the buffer is the caller's again; op->res then
   says whether it took effect anyway (anything but -ECANCELED). */
int weft__ring_wait(struct weft__uop *op, unsigned opcode); /* opcode: for the task dump */

/* Asks op's ring to cancel it (from any thread; once). */
void weft__ring_cancel(struct weft__uop *op);

#else /* built without liburing: every thread uses the epoll poller */

static inline bool weft__ring_supported(int *why)
{
	*why = ENOSYS;
	return false;
}
static inline int weft__ring_init(struct weft__ring *r)
{
	r->active = false;
	return -ENOSYS;
}
static inline void weft__ring_destroy(struct weft__ring *r)
{
	(void)r;
}
static inline struct weft__ring *weft__ring_current(void)
{
	return NULL;
}
static inline unsigned weft__ring_poll(struct weft__ring *r)
{
	(void)r;
	return 0;
}
static inline unsigned weft__ring_poll_now(struct weft__ring *r)
{
	(void)r;
	return 0;
}
static inline unsigned weft__ring_park(struct weft__ring *r, uint64_t timeout_ns)
{
	(void)r;
	(void)timeout_ns;
	return 0;
}
static inline void weft__ring_wake(struct weft__ring *r)
{
	(void)r;
}
static inline void weft__ring_cancel(struct weft__uop *op)
{
	(void)op;
}
static inline void weft__ring_quiesce(struct weft__ring *r)
{
	(void)r;
}
#endif

#endif
