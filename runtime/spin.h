/*
 * Spinning helpers: a CPU pause and a cheap monotonic clock for bounding a
 * spin. Waking a sleeping thread on another core costs ~6 us here against
 * ~15 ns for a fiber switch, so the runtime spins briefly before sleeping.
 */
#ifndef WEFT_RUNTIME_SPIN_H
#define WEFT_RUNTIME_SPIN_H

#include <stdint.h>
#include <time.h>

static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static inline uint64_t weft__mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
