/*
 * weft time: the clock, sleeping, and deadline scopes.
 *
 * Deadline scopes put a deadline on every wait inside them, whatever the
 * wait is: between weft_deadline_push() and weft_deadline_pop(), a wait
 * (sleep, yield, join, oneshot receive, and the waits of later modules)
 * returns -ETIMEDOUT once the deadline has passed -- checked before it waits,
 * and it is woken at the deadline if it is waiting then. Scopes nest: the
 * earliest deadline in force applies; popping restores the enclosing one. A
 * shield (weft_shield_push) holds off the deadlines of the scopes around it,
 * as it holds off cancellation; scopes pushed inside the shield apply.
 *
 * A scope is memory the caller owns, normally on its stack: pop scopes in
 * the reverse order of their pushes, and pop every scope before the task
 * returns; either mistake aborts with a message naming the task. Scopes work
 * in plain threads too (their waits block the thread).
 */
#ifndef WEFT_TIME_H
#define WEFT_TIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds: read fresh on every call, never cached. */
uint64_t weft_now_ns(void);

/* A wait: returns 0 once ms milliseconds have passed (never earlier; about
   1 ms of timer resolution later at most, on an idle runtime); -ECANCELED
   if the task is cancelled first; -ETIMEDOUT if an enclosing deadline scope
   expires first; -ENOMEM if no timer could be allocated. From a plain
   thread, sleeps the thread. */
int weft_sleep_ms(uint64_t ms);

/* The same, until weft_now_ns() >= deadline_ns. */
int weft_sleep_until_ns(uint64_t deadline_ns);

typedef struct weft_deadline {
	uint64_t deadline_ns;        /* this scope's own deadline */
	uint64_t effective_ns;       /* the earliest deadline in force inside it */
	struct weft_deadline *outer; /* the enclosing scope */
	unsigned shield_depth;       /* shields open when it was pushed */
} weft_deadline;

/* Opens a scope whose waits time out timeout_ms milliseconds from now. */
void weft_deadline_push(weft_deadline *d, uint64_t timeout_ms);

/* The same with an absolute deadline (weft_now_ns() clock). */
void weft_deadline_push_at_ns(weft_deadline *d, uint64_t deadline_ns);

/* Closes the innermost scope, which must be d. */
void weft_deadline_pop(weft_deadline *d);

#ifdef __cplusplus
}
#endif

#endif
