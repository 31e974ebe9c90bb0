/*
 * Lent receive buffers under load: on two workers, receivers take byte
 * streams from socket pairs with weft_recv_buf, often inside 1 ms deadline
 * scopes that expire, and give each buffer back in one of three ways: at
 * once, after a yield (the task may have moved to the other worker), or by
 * handing it to a plain thread that releases it (the pool's lock-free
 * return stack). Every stream must arrive complete and in order (a lost,
 * doubled or reused-while-lent buffer shows as a wrong byte), and nothing
 * may hang. A plain main() program (it runs under TSan too).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>

#include "tests/common.h"

#define PAIRS 8

static _Atomic long failures;

static void fail(const char *what, long v)
{
	if (atomic_fetch_add(&failures, 1) < 5)
		fprintf(stderr, "stress_recv_buf: %s (%ld)\n", what, v);
}

static unsigned char pattern(unsigned pair, size_t k)
{
	return (unsigned char)((pair * 131u + k * 7u + (k >> 9)) & 0xff);
}

/* Buffers handed to the releasing thread. */
static pthread_mutex_t handed_lock = PTHREAD_MUTEX_INITIALIZER;
static weft_buf handed[4096];
static size_t nhanded;
static _Atomic int receivers_left;

static bool hand_over(weft_buf *b)
{
	pthread_mutex_lock(&handed_lock);
	bool room = nhanded < sizeof handed / sizeof handed[0];
	if (room)
		handed[nhanded++] = *b;
	pthread_mutex_unlock(&handed_lock);
	return room;
}

static void *releaser(void *arg)
{
	(void)arg;
	for (;;) {
		bool last = atomic_load(&receivers_left) == 0;
		pthread_mutex_lock(&handed_lock);
		size_t n = nhanded;
		weft_buf mine[64];
		if (n > 64)
			n = 64;
		nhanded -= n;
		memcpy(mine, handed + nhanded, n * sizeof *mine);
		pthread_mutex_unlock(&handed_lock);
		for (size_t i = 0; i < n; i++)
			weft_buf_release(&mine[i]);
		if (last && n == 0)
			return NULL;
		if (n == 0)
			usleep(100);
	}
}

struct pair {
	unsigned index;
	int sv[2];
	size_t len;
};

static void *sender(void *arg)
{
	struct pair *p = arg;
	unsigned char chunk[3000];
	uint64_t rng = p->index + 1;
	for (size_t off = 0; off < p->len;) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		size_t n = 1 + (size_t)(rng >> 33) % sizeof chunk;
		if (n > p->len - off)
			n = p->len - off;
		for (size_t i = 0; i < n; i++)
			chunk[i] = pattern(p->index, off + i);
		ssize_t s = weft_send_all(p->sv[0], chunk, n);
		if (s != (ssize_t)n) {
			fail("send_all", (long)s);
			break;
		}
		off += n;
		if ((rng >> 40) % 64 == 0)
			weft_sleep_ms(2); /* the receivers' 1 ms scopes expire */
	}
	weft_shutdown(p->sv[0], SHUT_WR);
	return NULL;
}

static void *receiver(void *arg)
{
	struct pair *p = arg;
	size_t got = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ull ^ p->index;
	for (;;) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		weft_buf b;
		ssize_t n;
		if (rng % 4 == 0) {
			weft_deadline d;
			weft_deadline_push(&d, 1);
			n = weft_recv_buf(p->sv[1], &b);
			weft_deadline_pop(&d);
			if (n == -ETIMEDOUT) {
				if (b.data)
					fail("a timed-out receive lent a buffer", 0);
				continue;
			}
		} else {
			n = weft_recv_buf(p->sv[1], &b);
		}
		if (n == 0)
			break;
		if (n < 0) {
			fail("recv_buf", (long)n);
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if ((unsigned char)b.data[i] != pattern(p->index, got + (size_t)i)) {
				fail("wrong byte at", (long)(got + (size_t)i));
				weft_buf_release(&b);
				goto out;
			}
		got += (size_t)n;
		switch ((rng >> 8) % 3) {
		case 0:
			weft_buf_release(&b);
			break;
		case 1:
			weft_yield();
			weft_buf_release(&b);
			break;
		default:
			if (!hand_over(&b))
				weft_buf_release(&b);
		}
	}
	if (got != p->len)
		fail("stream cut short at", (long)got);
out:
	atomic_fetch_sub(&receivers_left, 1);
	return NULL;
}

int main(void)
{
	alarm(240);
	weft_runtime *rt = test_runtime(2);
	struct pair pairs[PAIRS];
	weft_task *tasks[2 * PAIRS];
	atomic_store(&receivers_left, PAIRS);
	pthread_t rel;
	pthread_create(&rel, NULL, releaser, NULL);
	for (unsigned i = 0; i < PAIRS; i++) {
		pairs[i].index = i;
		pairs[i].len = (size_t)test_scale(4 << 20);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i].sv) != 0)
			return 1;
		tasks[2 * i] = weft_spawn_on(rt, receiver, &pairs[i]);
		tasks[2 * i + 1] = weft_spawn_on(rt, sender, &pairs[i]);
	}
	for (unsigned i = 0; i < 2 * PAIRS; i++)
		weft_join(tasks[i], NULL);
	pthread_join(rel, NULL);
	for (unsigned i = 0; i < PAIRS; i++) {
		weft_close(pairs[i].sv[0]);
		weft_close(pairs[i].sv[1]);
	}
	weft_runtime_free(rt);
	long f = atomic_load(&failures);
	if (f) {
		fprintf(stderr, "stress_recv_buf: %ld failures\n", f);
		return 1;
	}
	printf("stress_recv_buf: %d streams of %zu bytes intact\n", PAIRS, pairs[0].len);
	return 0;
}
