/*
 * Spawning from plain threads while the runtime shuts down.
 *
 * Two threads keep spawning tasks onto a runtime (tasks that yield, so some
 * are still queued or running) while the main thread shuts it down at a
 * random moment. Every spawn must either fail (NULL) or give a task that
 * runs: a task counted nowhere would sit in the injector after the workers
 * stopped, and its join would hang -- the alarm fails the test then. Every
 * join must return 0 or WEFT_CANCELED, and shutdown must return 0.
 * A plain main() program (it runs under TSan too).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <weft.h>

#include "tests/common.h"

#define SPAWNERS 2
#define MAX_HANDLES 1000

struct spawner {
	weft_runtime *rt;
	weft_task *handles[MAX_HANDLES];
	long n;
};

static void *yielder(void *arg)
{
	weft_yield();
	weft_yield();
	return arg;
}

static void *spawn_until_refused(void *arg)
{
	struct spawner *s = arg;
	while (s->n < MAX_HANDLES) {
		weft_task *t = weft_spawn_on(s->rt, yielder, NULL);
		if (!t)
			break;
		s->handles[s->n++] = t;
	}
	return NULL;
}

static int one_round(unsigned seed)
{
	struct spawner sp[SPAWNERS];
	pthread_t th[SPAWNERS];
	weft_runtime *rt = test_runtime(2);
	if (!rt)
		return -1;
	for (int i = 0; i < SPAWNERS; i++) {
		sp[i].rt = rt;
		sp[i].n = 0;
		pthread_create(&th[i], NULL, spawn_until_refused, &sp[i]);
	}
	usleep(100 + seed % 2000);
	int rc = weft_runtime_shutdown(rt, 10000);
	for (int i = 0; i < SPAWNERS; i++)
		pthread_join(th[i], NULL);
	if (rc != 0) {
		fprintf(stderr, "stress_shutdown: shutdown returned %d\n", rc);
		return -1;
	}
	for (int i = 0; i < SPAWNERS; i++) {
		for (long k = 0; k < sp[i].n; k++) {
			int jr = weft_join(sp[i].handles[k], NULL);
			if (jr != 0 && jr != WEFT_CANCELED) {
				fprintf(stderr, "stress_shutdown: join returned %d\n", jr);
				return -1;
			}
		}
	}
	weft_runtime_free(rt);
	return 0;
}

int main(void)
{
	alarm(300); /* a stranded task hangs its join: fail instead */
	long rounds = test_scale(100);
	for (long r = 0; r < rounds; r++) {
		if (one_round((unsigned)(r * 2654435761u)) != 0) {
			fprintf(stderr, "stress_shutdown: round %ld failed\n", r);
			return 1;
		}
	}
	printf("stress_shutdown: %ld rounds\n", rounds);
	return 0;
}
