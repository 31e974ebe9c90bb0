/*
 * Thin futex wrappers: the one way weft blocks an OS thread (parked workers,
 * plain threads waiting on a task or a channel).
 */
#ifndef WEFT_RUNTIME_FUTEX_H
#define WEFT_RUNTIME_FUTEX_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *word == expect (returns at once otherwise). May return
   spuriously; callers loop. timeout NULL: no limit (relative). */
static inline void weft__futex_wait(_Atomic uint32_t *word, uint32_t expect,
                                    const struct timespec *timeout)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect, timeout, NULL, 0);
}

static inline void weft__futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

#endif
