/*
 * Helpers shared by the tests: the size scale for heavy tests, a runtime per
 * test, small waiting utilities, a leak check and a pseudo-random sequence.
 */
#ifndef WEFT_TESTS_COMMON_H
#define WEFT_TESTS_COMMON_H

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* Runs fn in a forked child whose stderr is captured into buf (at most cap - 1
   bytes, NUL-terminated); the child exits with fn's return value. Returns
   the child's wait status, or -1 when it could not be started. For death
   tests: a crash or abort in the child is what is being checked. */
static inline int test_run_in_child(int (*fn)(void), char *buf, size_t cap)
{
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		close(fds[1]);
		_exit(fn());
	}
	close(fds[1]);
	size_t len = 0;
	while (len < cap - 1) {
		ssize_t r = read(fds[0], buf + len, cap - 1 - len);
		if (r > 0)
			len += (size_t)r;
		else if (r == 0 || errno != EINTR)
			break;
	}
	buf[len] = '\0';
	close(fds[0]);
	int status;
	return waitpid(pid, &status, 0) == pid ? status : -1;
}

/* Leaks LeakSanitizer finds now, when it is linked in (ASan builds); 0
   otherwise. A leak reported only at exit would not fail a Criterion test. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static inline int test_leaks_found(void)
{
	return __lsan_do_recoverable_leak_check ? __lsan_do_recoverable_leak_check() : 0;
}

#ifdef cr_assert_eq
#define assert_no_leaks() cr_assert_eq(test_leaks_found(), 0, "memory leaked (see stderr)")
#endif

/* xorshift64*: the next value of the sequence kept in *s (never 0). */
static inline uint64_t test_rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

#endif
