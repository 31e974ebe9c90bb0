/*
 * weft_accept through a listener's multishot accept (io_uring; the same
 * behaviour is checked on epoll, where each accept is an accept4): every
 * connection is accepted exactly once by concurrent acceptors on two
 * workers, with the peer's address; connections that arrive while nobody
 * accepts -- more than the queue holds before the multishot pauses -- are
 * all accepted later; a cancelled acceptor takes nothing; weft_close of the
 * listener wakes acceptors with -EBADF and closes the connections still
 * queued; a runtime freed with the multishot armed leaves the listener
 * usable by a plain thread and by the next runtime.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/common.h"

#define MS 1000000ull
#define HANG_NS (10000 * MS)

TestSuite(accept, .timeout = 120);

static uint16_t port_of(int fd, bool peer)
{
	struct sockaddr_in a;
	socklen_t l = sizeof a;
	int rc = peer ? getpeername(fd, (struct sockaddr *)&a, &l)
	              : getsockname(fd, (struct sockaddr *)&a, &l);
	cr_assert_eq(rc, 0);
	return ntohs(a.sin_port);
}

static int connect_to(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s",
	             strerror(errno));
	return fd;
}

static void wait_flag_thread(_Atomic int *flag)
{
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (!atomic_load(flag)) {
		cr_assert_lt(test_now_ns(), give_up, "hang");
		test_sleep_ms(1);
	}
}

/* ---------------------------------------- concurrent acceptors, addresses */

struct acceptors {
	int lfd;
	long want;
	_Atomic long taken;
	_Atomic long bad_addr;
	uint16_t *peer_ports; /* [accepted index] = peer port as accept reported it */
	int *fds;
};

static void *acceptor(void *arg)
{
	struct acceptors *a = arg;
	for (;;) {
		struct sockaddr_in sa;
		socklen_t l = sizeof sa;
		int c = weft_accept(a->lfd, (struct sockaddr *)&sa, &l);
		if (c < 0)
			return NULL; /* -EBADF: the test closed the listener */
		long i = atomic_fetch_add(&a->taken, 1);
		if (l != sizeof sa || sa.sin_family != AF_INET)
			atomic_fetch_add(&a->bad_addr, 1);
		if (i < a->want) {
			a->peer_ports[i] = ntohs(sa.sin_port);
			a->fds[i] = c;
		} else {
			close(c);
		}
	}
}

static int cmp_u16(const void *x, const void *y)
{
	return (int)*(const uint16_t *)x - (int)*(const uint16_t *)y;
}

Test(accept, concurrent_acceptors_take_each_connection_once_with_its_address)
{
	weft_runtime *rt = test_runtime(2);
	struct acceptors a = {.want = test_scale(500)};
	a.lfd = weft_tcp_listen("127.0.0.1", 0, 1024);
	cr_assert_geq(a.lfd, 0);
	a.peer_ports = calloc((size_t)a.want, sizeof *a.peer_ports);
	a.fds = calloc((size_t)a.want, sizeof *a.fds);
	weft_task *t[4];
	for (int i = 0; i < 4; i++)
		t[i] = weft_spawn_on(rt, acceptor, &a);
	uint16_t port = port_of(a.lfd, false);
	uint16_t *client_ports = calloc((size_t)a.want, sizeof *client_ports);
	int *clients = calloc((size_t)a.want, sizeof *clients);
	for (long i = 0; i < a.want; i++) {
		clients[i] = connect_to(port);
		client_ports[i] = port_of(clients[i], false);
	}
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (atomic_load(&a.taken) < a.want) {
		cr_assert_lt(test_now_ns(), give_up, "hang: %ld of %ld accepted",
		             atomic_load(&a.taken), a.want);
		test_sleep_ms(1);
	}
	weft_close(a.lfd); /* wakes the acceptors with -EBADF */
	for (int i = 0; i < 4; i++)
		cr_assert_eq(weft_join(t[i], NULL), 0);
	cr_assert_eq(atomic_load(&a.taken), a.want, "a connection was accepted twice");
	cr_assert_eq(atomic_load(&a.bad_addr), 0);
	qsort(client_ports, (size_t)a.want, sizeof *client_ports, cmp_u16);
	qsort(a.peer_ports, (size_t)a.want, sizeof *a.peer_ports, cmp_u16);
	for (long i = 0; i < a.want; i++)
		cr_assert_eq(a.peer_ports[i], client_ports[i], "the peer addresses differ");
	for (long i = 0; i < a.want; i++) {
		close(clients[i]);
		close(a.fds[i]);
	}
	free(client_ports);
	free(clients);
	free(a.peer_ports);
	free(a.fds);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------- a backlog that arrived before any accept */

struct later {
	int lfd;
	long n;
	long got;
};

static void *accept_n(void *arg)
{
	struct later *l = arg;
	for (l->got = 0; l->got < l->n; l->got++) {
		int c = weft_accept(l->lfd, NULL, NULL);
		if (c < 0)
			return NULL;
		close(c);
	}
	return NULL;
}

static void *accept_one_then_nap(void *arg)
{
	struct later *l = arg;
	int c = weft_accept(l->lfd, NULL, NULL);
	if (c >= 0) {
		close(c);
		l->got = 1;
	}
	return NULL;
}

Test(accept, connections_beyond_the_queue_that_nobody_accepted_yet_are_all_accepted_later)
{
	weft_runtime *rt = test_runtime(2);
	struct later l = {.n = 300};
	l.lfd = weft_tcp_listen("127.0.0.1", 0, 1024);
	cr_assert_geq(l.lfd, 0);
	uint16_t port = port_of(l.lfd, false);
	/* One accept arms the multishot; then 300 connections arrive with
	   nobody accepting: 128 queue, the rest wait in the kernel. */
	int first = connect_to(port);
	cr_assert_eq(weft_block_on(rt, accept_one_then_nap, &l, NULL), 0);
	cr_assert_eq(l.got, 1);
	int *clients = calloc((size_t)l.n, sizeof *clients);
	for (long i = 0; i < l.n; i++)
		clients[i] = connect_to(port);
	test_sleep_ms(50);
	cr_assert_eq(weft_block_on(rt, accept_n, &l, NULL), 0);
	cr_assert_eq(l.got, l.n);
	for (long i = 0; i < l.n; i++)
		close(clients[i]);
	close(first);
	weft_close(l.lfd);
	free(clients);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ---------------------------------------- cancellation and weft_close */

struct blocked {
	int lfd;
	int rc;
	_Atomic int waiting;
};

static void *accept_blocked(void *arg)
{
	struct blocked *b = arg;
	atomic_store(&b->waiting, 1);
	b->rc = weft_accept(b->lfd, NULL, NULL);
	return NULL;
}

Test(accept, a_cancelled_acceptor_takes_nothing_and_the_next_gets_the_connection)
{
	weft_runtime *rt = test_runtime(2);
	struct blocked a = {.rc = 1}, b = {.rc = 1};
	a.lfd = b.lfd = weft_tcp_listen("127.0.0.1", 0, 16);
	cr_assert_geq(a.lfd, 0);
	weft_task *ta = weft_spawn_on(rt, accept_blocked, &a);
	wait_flag_thread(&a.waiting);
	test_sleep_ms(20); /* parked in the accept by now; correct either way */
	weft_cancel(ta);
	cr_assert_eq(weft_join(ta, NULL), WEFT_CANCELED);
	cr_assert_eq(a.rc, -ECANCELED);
	int client = connect_to(port_of(a.lfd, false));
	test_sleep_ms(20); /* accepted by the still-armed multishot, queued */
	weft_task *tb = weft_spawn_on(rt, accept_blocked, &b);
	cr_assert_eq(weft_join(tb, NULL), 0);
	cr_assert_geq(b.rc, 0, "the connection was lost: %d", b.rc);
	cr_assert_eq(port_of(b.rc, true), port_of(client, false));
	close(b.rc);
	close(client);
	weft_close(a.lfd);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(accept, closing_the_listener_wakes_acceptors_and_closes_queued_connections)
{
	weft_runtime *rt = test_runtime(2);
	struct blocked b = {.rc = 1};
	b.lfd = weft_tcp_listen("127.0.0.1", 0, 16);
	cr_assert_geq(b.lfd, 0);
	uint16_t port = port_of(b.lfd, false);
	/* Arm the multishot, then let a connection queue unclaimed. */
	int first = connect_to(port);
	struct later l = {.lfd = b.lfd};
	cr_assert_eq(weft_block_on(rt, accept_one_then_nap, &l, NULL), 0);
	int queued = connect_to(port);
	test_sleep_ms(20);
	weft_task *t = weft_spawn_on(rt, accept_blocked, &b);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_geq(b.rc, 0); /* took the queued one */
	close(b.rc);
	int unclaimed = connect_to(port);
	test_sleep_ms(20);
	cr_assert_eq(weft_close(b.lfd), 0);
	/* The unclaimed connection was closed (by weft_close, or by the
	   kernel's backlog teardown): its client sees the end. */
	struct pollfd p = {.fd = unclaimed, .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 5000), 1, "the unclaimed connection stayed open");
	char c;
	cr_assert_leq(recv(unclaimed, &c, 1, 0), 0);
	close(unclaimed);
	close(queued);
	close(first);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(accept, closing_the_listener_wakes_a_waiting_acceptor_with_ebadf)
{
	weft_runtime *rt = test_runtime(2);
	struct blocked b = {.rc = 1};
	b.lfd = weft_tcp_listen("127.0.0.1", 0, 16);
	weft_task *t = weft_spawn_on(rt, accept_blocked, &b);
	wait_flag_thread(&b.waiting);
	test_sleep_ms(20);
	cr_assert_eq(weft_close(b.lfd), 0);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(b.rc, -EBADF);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------ a listener outliving its runtime */

Test(accept, a_listener_outlives_the_runtime_that_accepted_on_it)
{
	int lfd = weft_tcp_listen("127.0.0.1", 0, 16);
	cr_assert_geq(lfd, 0);
	uint16_t port = port_of(lfd, false);
	for (int round = 0; round < 3; round++) {
		weft_runtime *rt = test_runtime(2);
		int client = connect_to(port);
		struct later l = {.lfd = lfd};
		cr_assert_eq(weft_block_on(rt, accept_one_then_nap, &l, NULL), 0);
		cr_assert_eq(l.got, 1, "round %d", round);
		weft_runtime_free(rt); /* the multishot is still armed here */
		close(client);
	}
	/* A plain thread accepts too, queued connections first. */
	int client = connect_to(port);
	int c = weft_accept(lfd, NULL, NULL);
	cr_assert_geq(c, 0);
	close(c);
	close(client);
	cr_assert_eq(weft_close(lfd), 0);
	assert_no_leaks();
}
