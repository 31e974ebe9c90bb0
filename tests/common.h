/*
 * Helpers shared by the tests: the size scale for heavy tests, a runtime per
 * test, and small waiting utilities.
 */
#ifndef WEFT_TESTS_COMMON_H
#define WEFT_TESTS_COMMON_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <weft.h>

/* Percent of the full size heavy tests run at (WEFT_TEST_SCALE, default 100);
   sanitizer builds run at 10. */
static inline long test_scale(long full)
{
	const char *s = getenv("WEFT_TEST_SCALE");
	long pct = s ? atol(s) : 100;
	if (pct <= 0)
		pct = 100;
	long n = full * pct / 100;
	return n > 0 ? n : 1;
}

static inline weft_runtime *test_runtime(unsigned workers)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = workers;
	return weft_runtime_new(&cfg);
}

static inline uint64_t test_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void test_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Spins (yielding the task or thread) until *flag becomes nonzero. */
static inline void test_wait_flag(_Atomic int *flag)
{
	while (!atomic_load(flag))
		weft_yield();
}

#endif
