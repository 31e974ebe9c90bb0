/*
 * I/O on the readiness (epoll) backend: socket pairs and loopback TCP --
 * partial reads and writes, EOF, peer reset, thousands of concurrent
 * connections, accept out of file descriptors -- cancellation of tasks
 * blocked in recv, accept and connect (nothing lost, the stack buffer left
 * alone), deadline scopes around recv and connect, weft_close waking a task
 * that waits on the fd, files through the pool, weft_wait_fd on a pipe,
 * plain-thread calls, and bad arguments.
 *
 * Only 127.0.0.1. Events decide; sleeps only give the other side a chance.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/common.h"

#define MS 1000000ull
#define HANG_NS (10000 * MS)

TestSuite(io, .timeout = 120);

static uint16_t local_port(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof a;
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	return ntohs(a.sin_port);
}

static void wait_flag_thread(_Atomic int *flag)
{
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (!atomic_load(flag)) {
		cr_assert_lt(test_now_ns(), give_up, "hang");
		test_sleep_ms(1);
	}
}

/* ------------------------------------------------- partial reads, writes */

#define BIG (1 << 20)

struct stream {
	int fd;
	unsigned char *data;
	size_t len;
	ssize_t rc;
	uint64_t sum;
};

static void *send_big(void *arg)
{
	struct stream *s = arg;
	s->rc = weft_send_all(s->fd, s->data, s->len);
	return NULL;
}

static void *recv_big(void *arg)
{
	struct stream *s = arg;
	size_t got = 0;
	unsigned char buf[1000]; /* not a divisor of anything: partial reads */
	while (got < s->len) {
		ssize_t n = weft_recv(s->fd, buf, sizeof buf, 0);
		if (n <= 0) {
			s->rc = n;
			return NULL;
		}
		for (ssize_t i = 0; i < n; i++)
			s->sum = s->sum * 31 + buf[i];
		got += (size_t)n;
	}
	s->rc = (ssize_t)got;
	return NULL;
}

Test(io, a_megabyte_through_a_socket_pair_in_partial_reads_and_writes)
{
	weft_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	unsigned char *data = malloc(BIG);
	uint64_t expect = 0, seed = 7;
	for (size_t i = 0; i < BIG; i++) {
		data[i] = (unsigned char)test_rng_next(&seed);
		expect = expect * 31 + data[i];
	}
	struct stream tx = {.fd = sv[0], .data = data, .len = BIG};
	struct stream rx = {.fd = sv[1], .len = BIG};
	weft_task *a = weft_spawn_on(rt, send_big, &tx), *b = weft_spawn_on(rt, recv_big, &rx);
	cr_assert_eq(weft_join(a, NULL), 0);
	cr_assert_eq(weft_join(b, NULL), 0);
	cr_assert_eq(tx.rc, BIG);
	cr_assert_eq(rx.rc, BIG, "received %zd", rx.rc);
	cr_assert_eq(rx.sum, expect, "the bytes arrived changed");
	weft_close(sv[0]);
	weft_close(sv[1]);
	free(data);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------------------------ TCP: echo, EOF, reset */

struct tcp {
	int listener;
	uint16_t port;
	int accept_rc, recv_rc, eof_rc, reset_rc;
	char got[16];
};

static void *tcp_server(void *arg)
{
	struct tcp *t = arg;
	int c = weft_accept(t->listener, NULL, NULL);
	t->accept_rc = c < 0 ? c : 0;
	if (c < 0)
		return NULL;
	char buf[16];
	ssize_t n = weft_recv(c, buf, sizeof buf, 0);
	t->recv_rc = (int)n;
	if (n > 0)
		weft_send_all(c, buf, (size_t)n);
	t->eof_rc = (int)weft_recv(c, buf, sizeof buf, 0); /* the client shut down */
	weft_close(c);
	/* A second client resets its connection. */
	c = weft_accept(t->listener, NULL, NULL);
	if (c >= 0) {
		ssize_t r;
		while ((r = weft_recv(c, buf, sizeof buf, 0)) > 0)
			;
		t->reset_rc = (int)r;
		weft_close(c);
	}
	return NULL;
}

static void *tcp_client(void *arg)
{
	struct tcp *t = arg;
	int fd = weft_tcp_connect("127.0.0.1", t->port);
	if (fd < 0)
		return (void *)(intptr_t)fd;
	weft_send_all(fd, "hello", 5);
	ssize_t n = weft_recv(fd, t->got, sizeof t->got - 1, 0);
	if (n > 0)
		t->got[n] = '\0';
	weft_shutdown(fd, SHUT_WR);
	char c;
	weft_recv(fd, &c, 1, 0); /* server closes: EOF */
	weft_close(fd);
	fd = weft_tcp_connect("localhost", t->port);
	if (fd < 0)
		return (void *)(intptr_t)fd;
	weft_send_all(fd, "x", 1);
	struct linger lg = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	weft_close(fd); /* RST */
	return NULL;
}

Test(io, tcp_echo_eof_and_reset_over_loopback)
{
	weft_runtime *rt = test_runtime(2);
	struct tcp t = {.accept_rc = 1, .recv_rc = 1, .eof_rc = 1, .reset_rc = 1};
	t.listener = weft_tcp_listen("127.0.0.1", 0, 16);
	cr_assert_geq(t.listener, 0, "listen: %s", strerror(-t.listener));
	t.port = local_port(t.listener);
	weft_task *s = weft_spawn_on(rt, tcp_server, &t), *c = weft_spawn_on(rt, tcp_client, &t);
	void *crc;
	cr_assert_eq(weft_join(c, &crc), 0);
	cr_assert_eq(weft_join(s, NULL), 0);
	cr_assert_eq((intptr_t)crc, 0, "client: %s", strerror(-(int)(intptr_t)crc));
	cr_assert_eq(t.accept_rc, 0);
	cr_assert_eq(t.recv_rc, 5);
	cr_assert_str_eq(t.got, "hello");
	cr_assert_eq(t.eof_rc, 0, "EOF: %d", t.eof_rc);
	cr_assert_eq(t.reset_rc, -ECONNRESET, "reset: %d", t.reset_rc);
	weft_close(t.listener);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* -------------------------------------------- many concurrent connections */

struct many {
	int listener;
	uint16_t port;
	long n;
	_Atomic long ok, bad;
	int first_error;
};

static void *echo_one(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[64];
	ssize_t n;
	while ((n = weft_recv(fd, buf, sizeof buf, 0)) > 0)
		if (weft_send_all(fd, buf, (size_t)n) != n)
			break;
	weft_close(fd);
	return NULL;
}

/* Accepts until the listener is closed (-EBADF), which the test does once
   every client is done: a client that failed cannot leave it waiting. */
static void *acceptor(void *arg)
{
	struct many *m = arg;
	for (;;) {
		int c = weft_accept(m->listener, NULL, NULL);
		if (c == -EBADF)
			return NULL;
		if (c < 0) {
			if (atomic_fetch_add(&m->bad, 1) == 0)
				m->first_error = c;
			continue;
		}
		weft_detach(weft_spawn(echo_one, (void *)(intptr_t)c));
	}
}

static void *client_one(void *arg)
{
	struct many *m = arg;
	int fd = weft_tcp_connect("127.0.0.1", m->port);
	if (fd < 0) {
		if (atomic_fetch_add(&m->bad, 1) == 0)
			m->first_error = fd;
		return NULL;
	}
	/* Wait until everybody is connected, then talk. */
	char msg[8] = "ping-42", back[8];
	weft_sleep_ms(50);
	if (weft_send_all(fd, msg, sizeof msg) == sizeof msg) {
		size_t got = 0;
		while (got < sizeof back) {
			ssize_t n = weft_recv(fd, back + got, sizeof back - got, 0);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (got == sizeof back && memcmp(msg, back, sizeof msg) == 0)
			atomic_fetch_add(&m->ok, 1);
		else if (atomic_fetch_add(&m->bad, 1) == 0)
			m->first_error = 1000 + (int)got;
	}
	weft_close(fd);
	return NULL;
}

Test(io, thousands_of_concurrent_connections_in_one_process, .timeout = 300)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	/* Two fds per connection in one process, and some slack. */
	long want = test_scale(10000), fit = ((long)rl.rlim_cur - 200) / 2;
	long n = want < fit ? want : fit;
	if (n < want)
		cr_log_info("RLIMIT_NOFILE %ld: %ld connections instead of %ld", (long)rl.rlim_cur,
		            n, want);
	weft_runtime *rt = test_runtime(2);
	struct many m = {.n = n};
	m.listener = weft_tcp_listen("127.0.0.1", 0, 4096);
	cr_assert_geq(m.listener, 0);
	m.port = local_port(m.listener);
	weft_task *a = weft_spawn_on(rt, acceptor, &m);
	weft_task **c = calloc((size_t)n, sizeof *c);
	for (long i = 0; i < n; i++)
		cr_assert_not_null(c[i] = weft_spawn_on(rt, client_one, &m));
	for (long i = 0; i < n; i++)
		weft_join(c[i], NULL);
	weft_close(m.listener); /* the acceptor's accept returns -EBADF */
	weft_join(a, NULL);
	cr_assert_eq(atomic_load(&m.bad), 0, "%ld connections failed (first: %d)",
	             atomic_load(&m.bad), m.first_error);
	cr_assert_eq(atomic_load(&m.ok), n);
	free(c);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* -------------------------------------------------- accept out of fds */

struct emfile {
	int listener;
	int first, second;
};

static void *accept_twice(void *arg)
{
	struct emfile *e = arg;
	e->first = weft_accept(e->listener, NULL, NULL);
	if (e->first >= 0) {
		weft_close(e->first);
		e->first = 0;
	}
	return NULL;
}

Test(io, accept_out_of_descriptors_returns_emfile_and_the_server_recovers)
{
	weft_runtime *rt = test_runtime(1);
	struct emfile e = {.first = 1};
	e.listener = weft_tcp_listen("127.0.0.1", 0, 16);
	cr_assert_geq(e.listener, 0);
	uint16_t port = local_port(e.listener);
	/* A pending connection, made before the limit drops. */
	int cl = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in to = {.sin_family = AF_INET,
	                         .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(connect(cl, (struct sockaddr *)&to, sizeof to), 0);
	/* Use up every descriptor below a low limit. */
	struct rlimit old, low;
	getrlimit(RLIMIT_NOFILE, &old);
	int probe = dup(0);
	low.rlim_cur = (rlim_t)probe + 1;
	low.rlim_max = old.rlim_max;
	close(probe);
	int fillers[64], nf = 0;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	int f;
	while (nf < 64 && (f = dup(0)) >= 0)
		fillers[nf++] = f;
	void *r;
	(void)r;
	e.first = weft_accept(e.listener, NULL, NULL); /* from the test thread */
	cr_assert_eq(e.first, -EMFILE, "accept: %d", e.first);
	for (int i = 0; i < nf; i++)
		close(fillers[i]);
	setrlimit(RLIMIT_NOFILE, &old);
	weft_task *t = weft_spawn_on(rt, accept_twice, &e);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(e.first, 0, "the listener did not recover: %d", e.first);
	close(cl);
	weft_close(e.listener);
	weft_runtime_free(rt);
}

/* ---------------------------------------------------------- cancellation */

struct blocked {
	int fd;
	_Atomic int waiting;
	ssize_t rc;
	unsigned char buf[64];
	uint64_t waited_ns;
};

static void *recv_blocked(void *arg)
{
	struct blocked *b = arg;
	unsigned char stackbuf[64];
	memset(stackbuf, 0xAA, sizeof stackbuf);
	atomic_store(&b->waiting, 1);
	b->rc = weft_recv(b->fd, stackbuf, sizeof stackbuf, 0);
	memcpy(b->buf, stackbuf, sizeof stackbuf);
	return NULL;
}

Test(io, a_cancelled_recv_returns_ecanceled_and_loses_nothing)
{
	weft_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct blocked b = {.fd = sv[1], .rc = 1};
	weft_task *t = weft_spawn_on(rt, recv_blocked, &b);
	wait_flag_thread(&b.waiting);
	test_sleep_ms(20); /* parked in recv by now; correct either way */
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(b.rc, -ECANCELED);
	for (size_t i = 0; i < sizeof b.buf; i++)
		cr_assert_eq(b.buf[i], 0xAA, "the cancelled recv wrote into its buffer");
	/* What is sent afterwards is all still there. */
	cr_assert_eq(send(sv[0], "abc", 3, 0), 3);
	char got[8];
	cr_assert_eq(weft_recv(sv[1], got, sizeof got, 0), 3); /* from this plain thread */
	cr_assert_eq(memcmp(got, "abc", 3), 0);
	weft_close(sv[0]);
	weft_close(sv[1]);
	weft_runtime_free(rt);
	assert_no_leaks();
}

static void *accept_blocked(void *arg)
{
	struct blocked *b = arg;
	atomic_store(&b->waiting, 1);
	b->rc = weft_accept(b->fd, NULL, NULL);
	return NULL;
}

Test(io, a_cancelled_accept_returns_ecanceled)
{
	weft_runtime *rt = test_runtime(2);
	struct blocked b = {.rc = 1};
	b.fd = weft_tcp_listen("127.0.0.1", 0, 16);
	cr_assert_geq(b.fd, 0);
	weft_task *t = weft_spawn_on(rt, accept_blocked, &b);
	wait_flag_thread(&b.waiting);
	test_sleep_ms(20);
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(b.rc, -ECANCELED);
	weft_close(b.fd);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* A listener whose accept queue is full drops new SYNs, so a connect to it
   stays in progress: time one out with a deadline scope, cancel another. */
struct stuck {
	uint16_t port;
	int timed_rc, cancel_rc;
	uint64_t waited_ns;
	_Atomic int waiting;
};

static int connect_to(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in to = {.sin_family = AF_INET,
	                         .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int rc = weft_connect(fd, (struct sockaddr *)&to, sizeof to);
	weft_close(fd);
	return rc;
}

static void *connect_with_deadline(void *arg)
{
	struct stuck *s = arg;
	/* Fill the queue: connects complete until it is full. */
	for (int i = 0; i < 64; i++) {
		weft_deadline d;
		uint64_t t0 = weft_now_ns();
		weft_deadline_push(&d, 100);
		int rc = connect_to(s->port);
		weft_deadline_pop(&d);
		if (rc == -ETIMEDOUT) {
			s->timed_rc = rc;
			s->waited_ns = weft_now_ns() - t0;
			return NULL;
		}
		s->timed_rc = rc;
	}
	return NULL;
}

static void *connect_cancelled(void *arg)
{
	struct stuck *s = arg;
	atomic_store(&s->waiting, 1);
	s->cancel_rc = connect_to(s->port);
	return NULL;
}

Test(io, connect_honours_deadline_scopes_and_cancellation)
{
	weft_runtime *rt = test_runtime(2);
	struct stuck s = {.timed_rc = 1, .cancel_rc = 1};
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(l, 0), 0); /* never accepted */
	s.port = local_port(l);
	weft_task *t = weft_spawn_on(rt, connect_with_deadline, &s);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(s.timed_rc, -ETIMEDOUT, "no connect stayed pending: %d", s.timed_rc);
	cr_assert_geq(s.waited_ns, 100 * MS, "timed out early");
	t = weft_spawn_on(rt, connect_cancelled, &s);
	wait_flag_thread(&s.waiting);
	test_sleep_ms(20);
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(s.cancel_rc, -ECANCELED);
	close(l);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ----------------------------------------------- deadline, close, wait_fd */

static void *recv_in_scope(void *arg)
{
	struct blocked *b = arg;
	unsigned char c;
	weft_deadline d;
	uint64_t t0 = weft_now_ns();
	weft_deadline_push(&d, 20);
	b->rc = weft_recv(b->fd, &c, 1, 0);
	b->waited_ns = weft_now_ns() - t0;
	weft_deadline_pop(&d);
	return NULL;
}

Test(io, a_deadline_scope_times_out_recv)
{
	weft_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct blocked b = {.fd = sv[1], .rc = 1};
	cr_assert_eq(weft_block_on(rt, recv_in_scope, &b, NULL), 0);
	cr_assert_eq(b.rc, -ETIMEDOUT);
	cr_assert_geq(b.waited_ns, 20 * MS);
	cr_assert_lt(b.waited_ns, HANG_NS);
	/* A plain thread's recv in a scope too. */
	b.rc = 1;
	recv_in_scope(&b);
	cr_assert_eq(b.rc, -ETIMEDOUT);
	cr_assert_geq(b.waited_ns, 20 * MS);
	weft_close(sv[0]);
	weft_close(sv[1]);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(io, closing_an_fd_wakes_the_task_waiting_on_it_with_ebadf)
{
	weft_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct blocked b = {.fd = sv[1], .rc = 1};
	weft_task *t = weft_spawn_on(rt, recv_blocked, &b);
	wait_flag_thread(&b.waiting);
	test_sleep_ms(20);
	cr_assert_eq(weft_close(sv[1]), 0);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert(b.rc == -EBADF, "recv on a closed fd returned %zd", b.rc);
	weft_close(sv[0]);
	weft_runtime_free(rt);
	assert_no_leaks();
}

struct pipe_wait {
	int fd;
	int rc;
	_Atomic int waiting;
};

static void *wait_readable(void *arg)
{
	struct pipe_wait *p = arg;
	atomic_store(&p->waiting, 1);
	p->rc = weft_wait_fd(p->fd, POLLIN);
	return NULL;
}

Test(io, wait_fd_on_a_pipe)
{
	weft_runtime *rt = test_runtime(2);
	int p[2];
	cr_assert_eq(pipe(p), 0); /* blocking mode: weft copes */
	struct pipe_wait w = {.fd = p[0], .rc = -1};
	weft_task *t = weft_spawn_on(rt, wait_readable, &w);
	wait_flag_thread(&w.waiting);
	test_sleep_ms(20);
	cr_assert_eq(write(p[1], "z", 1), 1);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert(w.rc > 0 && (w.rc & POLLIN), "wait_fd returned %d", w.rc);
	/* Still readable: the level is seen without a new edge. */
	cr_assert(weft_wait_fd(p[0], POLLIN) & POLLIN);
	char c;
	cr_assert_eq(weft_read(p[0], &c, 1, -1), 1);
	cr_assert_eq(weft_wait_fd(p[0], 0), -EINVAL);
	weft_close(p[0]);
	weft_close(p[1]);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------------------------------------------ files */

struct file_io {
	char path[64];
	int rc_open, rc_fsync;
	ssize_t rc_write, rc_read, rc_pread;
	char got[32], got_at[8];
};

static void *file_task(void *arg)
{
	struct file_io *f = arg;
	int fd = weft_open(f->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	f->rc_open = fd < 0 ? fd : 0;
	if (fd < 0)
		return NULL;
	f->rc_write = weft_write(fd, "hello, file", 11, -1);
	f->rc_fsync = weft_fsync(fd);
	f->rc_pread = weft_read(fd, f->got_at, 4, 7);
	lseek(fd, 0, SEEK_SET);
	f->rc_read = weft_read(fd, f->got, sizeof f->got - 1, -1);
	weft_close(fd);
	return NULL;
}

Test(io, file_open_write_fsync_and_read_on_the_pool)
{
	weft_runtime *rt = test_runtime(2);
	struct file_io f = {0};
	snprintf(f.path, sizeof f.path, "/tmp/weft-test-io-%d", (int)getpid());
	cr_assert_eq(weft_block_on(rt, file_task, &f, NULL), 0);
	unlink(f.path);
	cr_assert_eq(f.rc_open, 0);
	cr_assert_eq(f.rc_write, 11);
	cr_assert_eq(f.rc_fsync, 0);
	cr_assert_eq(f.rc_pread, 4);
	cr_assert_eq(memcmp(f.got_at, "file", 4), 0);
	cr_assert_eq(f.rc_read, 11);
	cr_assert_eq(memcmp(f.got, "hello, file", 11), 0);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------------------------------------ bad input */

Test(io, bad_arguments_get_negative_errno)
{
	char c;
	cr_assert_eq(weft_recv(-1, &c, 1, 0), -EBADF);
	cr_assert_eq(weft_send(-1, &c, 1, 0), -EBADF);
	cr_assert_eq(weft_read(-1, &c, 1, -1), -EBADF);
	cr_assert_eq(weft_tcp_connect(NULL, 80), -EINVAL);
	cr_assert_eq(weft_open(NULL, O_RDONLY, 0), -EINVAL);
	cr_assert_eq(weft_close(-1), -EBADF);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(weft_accept(sv[0], NULL, NULL), -EINVAL); /* not listening */
	weft_close(sv[0]);
	weft_close(sv[1]);
}

/* --------------------------------------------------------------- signals */

struct sig_wait {
	int signo, rc;
	_Atomic int waiting;
};

static void *wait_signal(void *arg)
{
	struct sig_wait *s = arg;
	atomic_store(&s->waiting, 1);
	s->rc = weft_signal_wait(s->signo);
	return NULL;
}

Test(io, signal_wait_returns_when_the_signal_arrives)
{
	weft_runtime *rt = test_runtime(2);
	struct sig_wait s = {.signo = SIGUSR1, .rc = 1};
	weft_task *t = weft_spawn_on(rt, wait_signal, &s);
	wait_flag_thread(&s.waiting);
	test_sleep_ms(20);
	cr_assert_eq(kill(getpid(), SIGUSR1), 0);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(s.rc, 0);
	/* A delivery before anyone waits is kept for the next wait. */
	cr_assert_eq(kill(getpid(), SIGUSR1), 0);
	s.rc = 1;
	t = weft_spawn_on(rt, wait_signal, &s);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(s.rc, 0);
	/* A waiting task can be cancelled; bad signals are refused. */
	s.rc = 1;
	atomic_store(&s.waiting, 0);
	t = weft_spawn_on(rt, wait_signal, &s);
	wait_flag_thread(&s.waiting);
	test_sleep_ms(20);
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(s.rc, -ECANCELED);
	cr_assert_eq(weft_signal_wait(SIGKILL), -EINVAL);
	cr_assert_eq(weft_signal_wait(0), -EINVAL);
	cr_assert_eq(weft_signal_wait(NSIG), -EINVAL);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* Datagrams with addresses: weft_recvfrom reports the sender, weft_sendto
   answers it (recvmsg/sendmsg on io_uring, the plain calls on epoll). */
struct udp_pair {
	int a, b;
	uint16_t a_port, b_port;
	ssize_t got;
	char reply[16];
};

static int udp_socket(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(fd, (struct sockaddr *)&any, sizeof any), 0);
	*port = local_port(fd);
	return fd;
}

static void *udp_echo_once(void *arg)
{
	struct udp_pair *u = arg;
	char buf[16];
	struct sockaddr_in from;
	socklen_t flen = sizeof from;
	ssize_t n = weft_recvfrom(u->b, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
	if (n < 0 || flen != sizeof from || ntohs(from.sin_port) != u->a_port)
		return (void *)1;
	if (weft_sendto(u->b, buf, (size_t)n, 0, (struct sockaddr *)&from, flen) != n)
		return (void *)2;
	return NULL;
}

static void *udp_ask(void *arg)
{
	struct udp_pair *u = arg;
	struct sockaddr_in to = {.sin_family = AF_INET,
	                         .sin_port = htons(u->b_port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (weft_sendto(u->a, "datagram", 8, 0, (struct sockaddr *)&to, sizeof to) != 8)
		return (void *)3;
	u->got = weft_recvfrom(u->a, u->reply, sizeof u->reply, 0, NULL, NULL);
	return NULL;
}

Test(io, recvfrom_reports_the_sender_and_sendto_answers_it)
{
	weft_runtime *rt = test_runtime(2);
	struct udp_pair u = {.got = -1};
	u.a = udp_socket(&u.a_port);
	u.b = udp_socket(&u.b_port);
	weft_task *echo = weft_spawn_on(rt, udp_echo_once, &u);
	test_sleep_ms(10); /* usually parked in recvfrom by now; correct either way */
	weft_task *ask = weft_spawn_on(rt, udp_ask, &u);
	void *r1 = (void *)-1, *r2 = (void *)-1;
	cr_assert_eq(weft_join(echo, &r1), 0);
	cr_assert_eq(weft_join(ask, &r2), 0);
	cr_assert_null(r1, "echo step %ld", (long)(intptr_t)r1);
	cr_assert_null(r2, "ask step %ld", (long)(intptr_t)r2);
	cr_assert_eq(u.got, 8);
	cr_assert_eq(memcmp(u.reply, "datagram", 8), 0);
	weft_close(u.a);
	weft_close(u.b);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* The other waits on a pipe: weft_wait_fd cancelled, weft_read timed out
   by a deadline scope; afterwards the byte written is all still there. */
struct pipe_reader {
	int fd;
	_Atomic int waiting;
	int wait_rc;
	ssize_t read_rc;
};

static void *wait_then_read(void *arg)
{
	struct pipe_reader *r = arg;
	char buf[8]; /* on the stack: a timed-out read must leave it alone */
	memset(buf, 0x55, sizeof buf);
	weft_deadline d;
	weft_deadline_push(&d, 30);
	r->read_rc = weft_read(r->fd, buf, sizeof buf, -1);
	weft_deadline_pop(&d);
	for (size_t i = 0; i < sizeof buf; i++)
		if ((unsigned char)buf[i] != 0x55)
			r->read_rc = -1000; /* the kernel wrote into it */
	atomic_store(&r->waiting, 1);
	r->wait_rc = weft_wait_fd(r->fd, POLLIN);
	return NULL;
}

Test(io, a_cancelled_wait_fd_and_a_timed_out_read_lose_nothing)
{
	weft_runtime *rt = test_runtime(2);
	int p[2];
	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	struct pipe_reader r = {.fd = p[0], .wait_rc = 1, .read_rc = 1};
	weft_task *t = weft_spawn_on(rt, wait_then_read, &r);
	wait_flag_thread(&r.waiting);
	test_sleep_ms(20); /* parked in weft_wait_fd by now; correct either way */
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(r.read_rc, -ETIMEDOUT, "read: %zd", r.read_rc);
	cr_assert_eq(r.wait_rc, -ECANCELED, "wait_fd: %d", r.wait_rc);
	cr_assert_eq(write(p[1], "q", 1), 1);
	char c = 0;
	cr_assert_eq(weft_read(p[0], &c, 1, -1), 1); /* from this plain thread */
	cr_assert_eq(c, 'q');
	weft_close(p[0]);
	weft_close(p[1]);
	weft_runtime_free(rt);
	assert_no_leaks();
}
