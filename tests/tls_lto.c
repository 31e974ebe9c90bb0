/*
 * Thread-locals and errno across migrations, with the whole runtime compiled
 * into this program at -O3 -flto (see tests/CMakeLists.txt), so the compiler
 * is free to inline weft into the task code and to cache thread-local
 * addresses across calls that switch fibers -- exactly what must not break.
 *
 * Each round the task spawns a short busy task (which takes its worker's LIFO
 * slot) and yields, so it waits in the worker's queue while that worker is
 * busy, and the other, idle worker steals it: it migrates most rounds. After
 * every yield it checks that:
 *   - weft_current() is still the task itself and weft_runtime_current() the
 *     runtime (the runtime's own thread-locals, read after a migration);
 *   - errno, set to a task-specific value before the yield, is that value
 *     after it (weft saves and restores errno per fiber);
 *   - the task really migrated between threads often (else it proves nothing).
 * A plain main() program.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft.h>

#include "tests/common.h"

#define TASKS 1
#define SPIN_NS 30000

static weft_runtime *rt;
static _Atomic long migrations, failures;

/* errno and the thread through calls the optimizer cannot see into: the
   runtime restores the variable; whether user code caches its address across
   a yield is the user's affair (docs/guide.md). */
__attribute__((noinline, noipa)) static int *errno_addr(void)
{
	return &errno;
}

__attribute__((noinline, noipa)) static pthread_t self_thread(void)
{
	return pthread_self();
}

static void *spinner(void *arg)
{
	(void)arg;
	uint64_t s = test_now_ns();
	while (test_now_ns() - s < SPIN_NS)
		;
	return NULL;
}

static void *task(void *arg)
{
	long id = (long)(intptr_t)arg, rounds = test_scale(5000);
	weft_task *me = weft_current();
	pthread_t last = self_thread();
	for (long i = 0; i < rounds; i++) {
		int mine = (int)(id * 100000 + i % 1000 + 1);
		weft_detach(weft_spawn(spinner, NULL));
		*errno_addr() = mine;
		if (weft_yield() != 0)
			atomic_fetch_add(&failures, 1);
		if (*errno_addr() != mine && atomic_fetch_add(&failures, 1) < 5) {
			fprintf(stderr, "task %ld: errno %d, expected %d\n", id, *errno_addr(),
			        mine);
		}
		if (weft_current() != me || weft_runtime_current() != rt) {
			fprintf(stderr, "task %ld: wrong current task or runtime\n", id);
			atomic_fetch_add(&failures, 1);
		}
		pthread_t now = self_thread();
		if (!pthread_equal(now, last))
			atomic_fetch_add(&migrations, 1);
		last = now;
	}
	return NULL;
}

int main(void)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	rt = weft_runtime_new(&cfg);
	if (!rt)
		return 1;
	weft_task *ts[TASKS];
	for (long i = 0; i < TASKS; i++)
		ts[i] = weft_spawn_on(rt, task, (void *)(intptr_t)i);
	for (long i = 0; i < TASKS; i++)
		if (weft_join(ts[i], NULL) != 0)
			return 1;
	weft_runtime_free(rt);
	long m = atomic_load(&migrations), f = atomic_load(&failures);
	long want = test_scale(5000) * TASKS / 2;
	printf("tls_lto: %ld migrations (want %ld), %ld failures\n", m, want, f);
	return f == 0 && m >= want ? 0 : 1;
}
