/*
 * Timers (internal): one timing wheel per worker, behind its own lock.
 *
 * A task arms a timer in the wheel of the worker it runs on; the worker
 * polls its wheel between tasks and before it sleeps (bounding the sleep
 * by the next deadline), and fires due timers by waking their wakers. The
 * wheel belongs to the worker's state (struct weft__worker), not its thread,
 * so a replacement thread can fire a stuck worker's timers.
 *
 * A timer is a handle the caller owns (struct weft__timer, normally on a
 * task's stack) to a node in its wheel's pool. The nodes are packed in
 * chunks per worker because the wheel walks them when it cascades and
 * fires: 100,000 nodes on 100,000 task stacks would cost a TLB miss each.
 * A timer may be cancelled from any worker (a task that migrated): the
 * cancel takes the owning wheel's lock. The firing worker marks a node FIRED
 * and wakes its waker under the same lock; only the owner's cancel frees
 * the node, so nobody reads freed memory, and the owner can tell afterwards
 * whether it fired.
 *
 * Time: ticks are whole milliseconds since the runtime's time base. A
 * deadline in ns becomes the first tick not before it (rounded up), and the
 * wheel is advanced to the current tick rounded down: a timer never fires
 * before its deadline, and at most ~1 ms plus a poll interval after it.
 */
#ifndef WEFT_TIMER_TIMER_H
#define WEFT_TIMER_TIMER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../runtime/task.h"
#include "wheel.h"

#define WEFT__NO_DEADLINE UINT64_MAX

enum { WEFT__TIMER_PENDING = 1, WEFT__TIMER_FIRED };

#define WEFT__TIMER_INIT                                                                           \
	{                                                                                          \
		NULL, NULL                                                                         \
	}

struct weft__timers;

struct weft__timer_node {
	struct weft__wheel_entry e;
	struct weft__waker waker;
	_Atomic int state; /* PENDING or FIRED; written under the wheel's lock */
	struct weft__timer_node *free_next;
};

/* The caller's handle: node is NULL when not armed. */
struct weft__timer {
	struct weft__timers *owner;
	struct weft__timer_node *node;
};

struct weft__timer_chunk;

struct weft__timers {
	pthread_mutex_t lock;
	struct weft__wheel wheel;
	uint64_t base_ns;      /* tick 0, the runtime's time base */
	_Atomic uint64_t next; /* tick of the next expiration, or WEFT__WHEEL_NEVER */
	struct weft__timer_node *free;
	struct weft__timer_chunk *chunks;
	_Atomic uint64_t armed, fired; /* under the lock; read by metrics */
};

void weft__timers_init(struct weft__timers *tm, uint64_t base_ns);
void weft__timers_destroy(struct weft__timers *tm);

/* Arms t in tm to wake w at deadline_ns (absolute CLOCK_MONOTONIC). Returns
   1 when armed; 0 when the deadline has passed, and -ENOMEM when no node
   could be allocated: then nothing is armed and the caller keeps w. */
int weft__timer_arm(struct weft__timers *tm, struct weft__timer *t, uint64_t deadline_ns,
                    struct weft__waker w);

/* Disarms t (a no-op if it is not armed). True if it was pending (its waker
   was dropped); false if it had fired (the waker was woken) or was not
   armed. */
bool weft__timer_cancel(struct weft__timer *t);

/* Whether armed t has fired (read after being woken). */
static inline bool weft__timer_fired(const struct weft__timer *t)
{
	return t->node &&
	       atomic_load_explicit(&t->node->state, memory_order_relaxed) == WEFT__TIMER_FIRED;
}

/* Fires up to max of tm's timers due at now_ns, oldest deadline first;
   returns how many. The rest stay due (weft__timers_due) for the next
   call. */
unsigned weft__timers_fire(struct weft__timers *tm, uint64_t now_ns, unsigned max);

/* Shutdown: wakes every task with a timer pending in tm (without firing
   it), so that a task parked on nothing but its sleep sees the runtime
   closed. A task that arms a timer after this has run sees `closed` once
   its arm returns (both hold tm's lock), so none is missed. */
void weft__timers_wake_all(struct weft__timers *tm);

/* Calls fn, under tm's lock, for each task parked in tm on nothing but a
   timer (a sleep; the registry has the others), with when it is due. */
void weft__timers_visit_sleepers(struct weft__timers *tm,
                                 void (*fn)(struct weft_task *t, uint64_t due_ns, void *arg),
                                 void *arg);

/* Nanoseconds until tm's next timer is due (0 if due), or WEFT__NO_DEADLINE. */
uint64_t weft__timers_wait_ns(struct weft__timers *tm, uint64_t now_ns);

/* Whether tm has a timer due at now_ns (a lock-free check). */
static inline bool weft__timers_due(struct weft__timers *tm, uint64_t now_ns)
{
	uint64_t next = atomic_load_explicit(&tm->next, memory_order_relaxed);
	return next != WEFT__WHEEL_NEVER && (now_ns - tm->base_ns) / 1000000 >= next;
}

/* How many whole ticks (ms) the earliest due timer is late at now_ns (0
   when none is due). */
static inline uint64_t weft__timers_behind(struct weft__timers *tm, uint64_t now_ns)
{
	uint64_t next = atomic_load_explicit(&tm->next, memory_order_relaxed);
	uint64_t tick = (now_ns - tm->base_ns) / 1000000;
	return next != WEFT__WHEEL_NEVER && tick > next ? tick - next : 0;
}

/* Nanoseconds from now_ns until tm's earliest timer is late_ms whole
   ticks late (0: it is), or WEFT__NO_DEADLINE with none armed. */
static inline uint64_t weft__timers_late_in_ns(struct weft__timers *tm, uint64_t now_ns,
                                               uint64_t late_ms)
{
	uint64_t next = atomic_load_explicit(&tm->next, memory_order_relaxed);
	if (next == WEFT__WHEEL_NEVER)
		return WEFT__NO_DEADLINE;
	uint64_t at = tm->base_ns + (next + late_ms) * 1000000ull;
	return at <= now_ns ? 0 : at - now_ns;
}

static inline bool weft__timers_armed(struct weft__timers *tm)
{
	return atomic_load_explicit(&tm->next, memory_order_relaxed) != WEFT__WHEEL_NEVER;
}

#endif
