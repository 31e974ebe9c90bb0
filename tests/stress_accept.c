/*
 * Multishot accept under load: acceptor tasks on two workers take
 * connections from one listener while plain client threads connect in a
 * loop and others of the acceptors are cancelled and replaced. Each
 * connection is answered (a byte echoed) by exactly one acceptor: a client
 * that gets no answer means a connection was lost in the queue, one
 * answered twice cannot happen without a double accept. Nothing may hang
 * (the alarm fails the test). A plain main() program (it runs under TSan
 * too).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>

#include "tests/common.h"

#define ACCEPTORS 4
#define CLIENTS 2

static int lfd;
static uint16_t port;
static _Atomic long failures, served, answered;
static _Atomic int stop;

static void fail(const char *what, long v)
{
	if (atomic_fetch_add(&failures, 1) < 5)
		fprintf(stderr, "stress_accept: %s (%ld)\n", what, v);
}

static void *acceptor(void *arg)
{
	(void)arg;
	for (;;) {
		int c = weft_accept(lfd, NULL, NULL);
		if (c == -ECANCELED || c == -EBADF)
			return NULL;
		if (c < 0) {
			fail("accept", c);
			return NULL;
		}
		/* Once accepted, the connection is served even if we are
		   cancelled meanwhile: only the accept itself may be cut. */
		weft_shield_push();
		char b;
		if (weft_recv(c, &b, 1, 0) == 1 && weft_send_all(c, &b, 1) == 1)
			atomic_fetch_add(&served, 1);
		weft_close(c);
		weft_shield_pop();
	}
}

static void *client(void *arg)
{
	long n = (long)(intptr_t)arg;
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (long i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
			fail("connect", errno);
			if (fd >= 0)
				close(fd);
			continue;
		}
		char b = (char)i, back = 0;
		if (send(fd, &b, 1, 0) != 1 || recv(fd, &back, 1, 0) != 1 || back != b)
			fail("no answer for connection", i);
		else
			atomic_fetch_add(&answered, 1);
		close(fd);
	}
	return NULL;
}

/* Cancels a random acceptor now and then and starts another in its place. */
static void *churn(void *arg)
{
	weft_task **acc = arg;
	uint64_t rng = 12345;
	while (!atomic_load(&stop)) {
		weft_sleep_ms(2);
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		int k = (int)(rng % ACCEPTORS);
		weft_cancel(acc[k]);
		weft_join(acc[k], NULL);
		acc[k] = weft_spawn(acceptor, NULL);
	}
	return NULL;
}

int main(void)
{
	alarm(240);
	weft_runtime *rt = test_runtime(2);
	lfd = weft_tcp_listen("127.0.0.1", 0, 1024);
	struct sockaddr_in sa;
	socklen_t l = sizeof sa;
	if (lfd < 0 || getsockname(lfd, (struct sockaddr *)&sa, &l) != 0)
		return 1;
	port = ntohs(sa.sin_port);
	weft_task *acc[ACCEPTORS];
	for (int i = 0; i < ACCEPTORS; i++)
		acc[i] = weft_spawn_on(rt, acceptor, NULL);
	weft_task *ch = weft_spawn_on(rt, churn, acc);
	long per = test_scale(10000);
	pthread_t cl[CLIENTS];
	for (int i = 0; i < CLIENTS; i++)
		pthread_create(&cl[i], NULL, client, (void *)(intptr_t)per);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(cl[i], NULL);
	atomic_store(&stop, 1);
	weft_join(ch, NULL);
	weft_close(lfd); /* the acceptors end with -EBADF */
	for (int i = 0; i < ACCEPTORS; i++)
		weft_join(acc[i], NULL);
	weft_runtime_free(rt);
	long f = atomic_load(&failures), want = CLIENTS * per;
	if (f || atomic_load(&answered) != want || atomic_load(&served) != want) {
		fprintf(stderr, "stress_accept: %ld failures, %ld of %ld answered, %ld served\n", f,
		        atomic_load(&answered), want, atomic_load(&served));
		return 1;
	}
	printf("stress_accept: %ld connections, each accepted once\n", want);
	return 0;
}
