/*
 * How a caller waits (internal): the building blocks every wait is made of.
 *
 * A wait registers a waker with the thing it waits on, then blocks until
 * woken, re-checking its condition each time (a task's park may return
 * early, see task.h). A waker is either the calling task, which it holds a
 * reference to so that a waker in flight never touches freed memory, or a
 * futex word on a plain thread's stack, which the waker sets as its last
 * access to that memory. Whoever takes a waker out of the waited-on object
 * must either wake it or drop it, exactly once.
 *
 * The pattern (join and oneshot recv follow it):
 *
 *     if ((rc = weft__wait_enter()) < 0) return rc;     // cancelled: no effect
 *     if (!ready) {
 *         w = weft__waker_self(&word); publish w;
 *         while (!ready) {
 *             weft__block(&word, WEFT__WAIT_..., obj, 0);
 *             if (!ready && (rc = weft__wait_check()) < 0 && withdraw w)
 *                 return rc;                             // nothing taken
 *         }
 *     }
 *     take effect; return 0;                              // even if cancelled now
 */
#ifndef WEFT_RUNTIME_WAIT_H
#define WEFT_RUNTIME_WAIT_H

#include <stdatomic.h>
#include <stdint.h>

#include "task.h"

/* A waker for the caller: the current task (a reference is taken), or the
   futex word *word (reset to 0) of a plain thread. */
struct weft__waker weft__waker_self(_Atomic uint32_t *word);

/* Wakes and consumes a waker. */
void weft__waker_wake(struct weft__waker w);

/* Consumes a waker without waking (after withdrawing it). */
void weft__waker_drop(struct weft__waker w);

/* Blocks the caller until its waker is woken, or the deadline of its
   deadline scope passes; may return early (recheck, then weft__wait_check).
   kind, obj, arg: what it waits on, for the task dump (enum
   weft__wait_kind in task.h; arg is kept up to 2^24 - 1). */
void weft__block(_Atomic uint32_t *word, unsigned kind, const void *obj, uint32_t arg);

/* The checks every wait makes before it waits and after each wake-up:
   -ECANCELED for a cancelled task outside a shield, -ETIMEDOUT once the
   deadline in force has passed; else 0. */
int weft__wait_check(void);

/* weft__wait_check, plus spending one unit of the coop budget (yielding
   first when it is used up). */
int weft__wait_enter(void);

/* Whether spinning for something another task holds can pay: the caller is
   a plain thread, or a task on a runtime with more than one worker. (On
   one worker the holder cannot run while the caller spins.) */
bool weft__spin_may_pay(void);

/* Whether cancellation was requested for t: by weft_cancel, or by the
   shutdown of its runtime. */
bool weft__cancel_requested(struct weft_task *t);

/* The deadline in force for a scope stack whose innermost scope is d, with
   shield_depth shields open now: none once a shield was opened after d. */
static inline uint64_t weft__deadline_in_force(const struct weft_deadline *d, unsigned shield_depth)
{
	return d && d->shield_depth == shield_depth ? d->effective_ns : UINT64_MAX;
}

/* After a withdraw failed (the operation took effect), waits until the
   waker that is now in flight has finished with the caller's memory: a
   plain thread's wait word lives on its stack. Nothing to do for a task
   (the waker holds a reference to it). */
void weft__waker_settle(struct weft__waker w);

/* Parks the current task (part of weft__block). */
void weft__task_park(void);

/* Parks the current task on nothing but a timer it armed in its worker's
   wheel (a sleep): shutdown finds it through the wheel, not the registry,
   so the caller must check, after arming, that shutdown had not begun
   (weft__timers_wake_all). */
void weft__task_park_timed(void);

#endif
