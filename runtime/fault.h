/*
 * Fault injection for tests: makes the n-th next allocation at a given site
 * fail, so that tests can walk every allocation site of an operation and
 * check that it fails cleanly and leaves the runtime usable.
 *
 * Costs one relaxed load per allocation when disarmed.
 */
#ifndef WEFT_RUNTIME_FAULT_H
#define WEFT_RUNTIME_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>

enum weft__fault_site {
	WEFT__FAULT_TASK_ALLOC,  /* the task header, in spawn */
	WEFT__FAULT_STACK_ALLOC, /* a new stack mapping, at a task's first run */
	WEFT__FAULT_ONESHOT_ALLOC,
	WEFT__FAULT_TIMER_ALLOC, /* a chunk of timer nodes, when a wait arms a timer */
	WEFT__FAULT_POOL_THREAD, /* starting a blocking-pool thread */
	WEFT__FAULT_MONITOR,     /* starting the stall monitor, in weft_runtime_new */
	WEFT__FAULT_SITES
};

extern _Atomic int weft__fault_countdown[WEFT__FAULT_SITES];

/* The n-th call of weft__fault(site) from now returns true (n >= 1); 0
   disarms the site. */
void weft__fault_arm(enum weft__fault_site site, int n);

static inline bool weft__fault(enum weft__fault_site site)
{
	int n = atomic_load_explicit(&weft__fault_countdown[site], memory_order_relaxed);
	while (__builtin_expect(n > 0, 0)) {
		if (atomic_compare_exchange_weak_explicit(&weft__fault_countdown[site], &n, n - 1,
		                                          memory_order_relaxed,
		                                          memory_order_relaxed))
			return n == 1;
	}
	return false;
}

#endif
