/*
 * weft_recv_buf / weft_buf_release: receiving into buffers the runtime
 * lends. The bytes arrive intact (in partial receives too), 0 at end of
 * stream lends nothing, more buffers may be lent at once than a worker's
 * pool holds, a buffer released on another thread goes back to its pool,
 * cancellation, deadlines and weft_close behave as for weft_recv and lose
 * nothing, plain threads get a heap buffer, bad arguments get -errno.
 * Both backends (CTest runs the file again with WEFT_IO=epoll).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
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

TestSuite(recv_buf, .timeout = 120);

static void wait_flag_thread(_Atomic int *flag)
{
	uint64_t give_up = test_now_ns() + HANG_NS;
	while (!atomic_load(flag)) {
		cr_assert_lt(test_now_ns(), give_up, "hang");
		test_sleep_ms(1);
	}
}

struct one {
	int fd;
	ssize_t rc, rc_eof;
	char got[16];
	bool cleared, eof_lent;
};

static void *receive_then_eof(void *arg)
{
	struct one *o = arg;
	weft_buf b;
	o->rc = weft_recv_buf(o->fd, &b);
	if (o->rc > 0) {
		if (b.len == (size_t)o->rc && o->rc < (ssize_t)sizeof o->got)
			memcpy(o->got, b.data, b.len);
		weft_buf_release(&b);
		o->cleared = b.data == NULL && b.len == 0;
		weft_buf_release(&b); /* twice: nothing lent, nothing done */
	}
	o->rc_eof = weft_recv_buf(o->fd, &b);
	o->eof_lent = b.data != NULL;
	return NULL;
}

Test(recv_buf, lends_the_bytes_received_and_lends_nothing_at_eof)
{
	weft_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct one o = {.fd = sv[1]};
	weft_task *t = weft_spawn_on(rt, receive_then_eof, &o);
	cr_assert_eq(send(sv[0], "hello", 5, 0), 5);
	test_sleep_ms(10);
	cr_assert_eq(shutdown(sv[0], SHUT_WR), 0);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(o.rc, 5);
	cr_assert_str_eq(o.got, "hello");
	cr_assert(o.cleared, "release must clear the weft_buf");
	cr_assert_eq(o.rc_eof, 0);
	cr_assert_not(o.eof_lent, "end of stream lends no buffer");
	close(sv[0]);
	weft_close(sv[1]);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------------------------------- partial receives */

#define BIG (1 << 20)

struct stream {
	int fd;
	uint64_t sum;
	size_t got;
	ssize_t rc;
	size_t most;
};

static void *receive_all(void *arg)
{
	struct stream *s = arg;
	weft_buf b;
	ssize_t n;
	while ((n = weft_recv_buf(s->fd, &b)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			s->sum = s->sum * 31 + (unsigned char)b.data[i];
		s->got += (size_t)n;
		if ((size_t)n > s->most)
			s->most = (size_t)n;
		weft_buf_release(&b);
		if ((s->got / WEFT_BUF_SIZE) % 7 == 0)
			weft_yield(); /* let the sender fill the socket now and then */
	}
	s->rc = n;
	return NULL;
}

Test(recv_buf, a_megabyte_arrives_intact_in_buffer_sized_pieces)
{
	weft_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	unsigned char *data = malloc(BIG);
	uint64_t want = 0, seed = 7;
	for (size_t i = 0; i < BIG; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		data[i] = (unsigned char)(seed >> 56);
		want = want * 31 + data[i];
	}
	struct stream s = {.fd = sv[1]};
	weft_task *t = weft_spawn_on(rt, receive_all, &s);
	for (size_t off = 0; off < BIG;) {
		ssize_t n = send(sv[0], data + off, BIG - off < 10000 ? BIG - off : 10000, 0);
		cr_assert_gt(n, 0);
		off += (size_t)n;
	}
	shutdown(sv[0], SHUT_WR);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(s.rc, 0);
	cr_assert_eq(s.got, (size_t)BIG);
	cr_assert_eq(s.sum, want, "the bytes changed on the way");
	cr_assert_leq(s.most, (size_t)WEFT_BUF_SIZE);
	free(data);
	close(sv[0]);
	weft_close(sv[1]);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------------------- more lent than a pool holds */

struct holder {
	int fd;
	unsigned index;
	_Atomic int *received, *release;
	bool ok;
};

static void *receive_and_hold(void *arg)
{
	struct holder *h = arg;
	weft_buf b;
	char want[16];
	int len = snprintf(want, sizeof want, "#%u", h->index);
	ssize_t n = weft_recv_buf(h->fd, &b);
	h->ok = n == len && memcmp(b.data, want, (size_t)len) == 0;
	atomic_fetch_add(h->received, 1);
	while (!atomic_load(h->release))
		weft_sleep_ms(1);
	/* Still intact after every other holder wrote into its own. */
	h->ok = h->ok && memcmp(b.data, want, (size_t)len) == 0;
	weft_buf_release(&b);
	return NULL;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

Test(recv_buf, more_buffers_lent_at_once_than_a_worker_pool_holds)
{
	raise_fd_limit();
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	/* 1,100 holders on one worker: past its 1,024 pooled buffers. */
	long n = test_scale(1100);
	if ((rlim_t)(2 * n + 64) > rl.rlim_cur)
		n = (long)(rl.rlim_cur - 64) / 2;
	weft_runtime *rt = test_runtime(1);
	struct holder *h = calloc((size_t)n, sizeof *h);
	int(*sv)[2] = calloc((size_t)n, sizeof *sv);
	weft_task **t = calloc((size_t)n, sizeof *t);
	_Atomic int received = 0, release = 0;
	for (int round = 0; round < 2; round++) {
		atomic_store(&received, 0);
		atomic_store(&release, 0);
		for (long i = 0; i < n; i++) {
			cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
			h[i] = (struct holder){.fd = sv[i][1],
			                       .index = (unsigned)i,
			                       .received = &received,
			                       .release = &release};
			t[i] = weft_spawn_on(rt, receive_and_hold, &h[i]);
			cr_assert_not_null(t[i]);
		}
		for (long i = 0; i < n; i++) {
			char msg[16];
			int len = snprintf(msg, sizeof msg, "#%ld", i);
			cr_assert_eq(send(sv[i][0], msg, (size_t)len, 0), len);
		}
		uint64_t give_up = test_now_ns() + HANG_NS;
		while (atomic_load(&received) < n) {
			cr_assert_lt(test_now_ns(), give_up, "hang: %d of %ld received",
			             atomic_load(&received), n);
			test_sleep_ms(1);
		}
		atomic_store(&release, 1);
		for (long i = 0; i < n; i++) {
			cr_assert_eq(weft_join(t[i], NULL), 0);
			cr_assert(h[i].ok, "holder %ld got the wrong bytes (round %d)", i, round);
			close(sv[i][0]);
			weft_close(sv[i][1]);
		}
	}
	free(h);
	free(sv);
	free(t);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* --------------------------------------- released on another thread */

struct relay {
	int fd;
	weft_buf handed;
	_Atomic int full; /* handed holds a buffer for the main thread */
	long rounds;
	bool ok;
};

static void *receive_and_hand_over(void *arg)
{
	struct relay *r = arg;
	r->ok = true;
	for (long i = 0; i < r->rounds; i++) {
		weft_buf b;
		ssize_t n = weft_recv_buf(r->fd, &b);
		if (n != 1 || b.data[0] != (char)(i & 0x7f)) {
			r->ok = false;
			weft_buf_release(&b);
			return NULL;
		}
		while (atomic_load(&r->full))
			weft_yield();
		r->handed = b;
		atomic_store(&r->full, 1);
	}
	return NULL;
}

Test(recv_buf, a_buffer_released_on_another_thread_goes_back_to_its_pool)
{
	weft_runtime *rt = test_runtime(1);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct relay r = {.fd = sv[1], .rounds = test_scale(3000)};
	weft_task *t = weft_spawn_on(rt, receive_and_hand_over, &r);
	enum { SEEN_MAX = 4096 };
	static char *seen[SEEN_MAX];
	size_t nseen = 0;
	for (long i = 0; i < r.rounds; i++) {
		char c = (char)(i & 0x7f);
		cr_assert_eq(send(sv[0], &c, 1, 0), 1);
		wait_flag_thread(&r.full);
		char *p = r.handed.data;
		size_t k = 0;
		while (k < nseen && seen[k] != p)
			k++;
		if (k == nseen && nseen < SEEN_MAX)
			seen[nseen++] = p;
		weft_buf_release(&r.handed); /* on this plain thread: goes home */
		cr_assert_null(r.handed.data);
		atomic_store(&r.full, 0);
	}
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert(r.ok, "a relayed receive got the wrong byte");
	/* Returned buffers are lent again: one at a time needs few. Were the
	   returns lost, every round would take a fresh one (1,024, then
	   malloc's). */
	cr_assert_lt(nseen, 512, "%zu distinct buffers for one at a time", nseen);
	close(sv[0]);
	weft_close(sv[1]);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------------ cancellation, deadlines, close */

struct blocked {
	int fd;
	ssize_t rc;
	bool lent;
	_Atomic int waiting;
	uint64_t waited_ns;
};

static void *recv_buf_blocked(void *arg)
{
	struct blocked *b = arg;
	weft_buf buf;
	atomic_store(&b->waiting, 1);
	b->rc = weft_recv_buf(b->fd, &buf);
	b->lent = buf.data != NULL;
	weft_buf_release(&buf);
	return NULL;
}

static void *recv_buf_in_scope(void *arg)
{
	struct blocked *b = arg;
	weft_deadline d;
	uint64_t t0 = weft_now_ns();
	weft_deadline_push(&d, 20);
	recv_buf_blocked(b);
	b->waited_ns = weft_now_ns() - t0;
	weft_deadline_pop(&d);
	return NULL;
}

struct drained {
	int fd;
	char got[8];
	ssize_t rc;
};

static void *receive_three(void *arg)
{
	struct drained *d = arg;
	weft_buf b;
	d->rc = weft_recv_buf(d->fd, &b);
	if (d->rc > 0 && d->rc <= (ssize_t)sizeof d->got)
		memcpy(d->got, b.data, (size_t)d->rc);
	weft_buf_release(&b);
	return NULL;
}

Test(recv_buf, a_cancelled_recv_buf_returns_ecanceled_and_loses_nothing)
{
	weft_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct blocked b = {.fd = sv[1], .rc = 1};
	weft_task *t = weft_spawn_on(rt, recv_buf_blocked, &b);
	wait_flag_thread(&b.waiting);
	test_sleep_ms(20); /* parked in the receive by now; correct either way */
	weft_cancel(t);
	cr_assert_eq(weft_join(t, NULL), WEFT_CANCELED);
	cr_assert_eq(b.rc, -ECANCELED);
	cr_assert_not(b.lent, "a cancelled receive lends nothing");
	cr_assert_eq(send(sv[0], "abc", 3, 0), 3);
	struct drained d = {.fd = sv[1]};
	cr_assert_eq(weft_block_on(rt, receive_three, &d, NULL), 0);
	cr_assert_eq(d.rc, 3);
	cr_assert_eq(memcmp(d.got, "abc", 3), 0);
	close(sv[0]);
	weft_close(sv[1]);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(recv_buf, a_deadline_scope_times_out_recv_buf)
{
	weft_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct blocked b = {.fd = sv[1], .rc = 1};
	cr_assert_eq(weft_block_on(rt, recv_buf_in_scope, &b, NULL), 0);
	cr_assert_eq(b.rc, -ETIMEDOUT);
	cr_assert_not(b.lent);
	cr_assert_geq(b.waited_ns, 20 * MS);
	cr_assert_lt(b.waited_ns, HANG_NS);
	/* A plain thread's, in a scope too. */
	b.rc = 1;
	recv_buf_in_scope(&b);
	cr_assert_eq(b.rc, -ETIMEDOUT);
	close(sv[0]);
	weft_close(sv[1]);
	weft_runtime_free(rt);
	assert_no_leaks();
}

Test(recv_buf, closing_the_fd_wakes_a_waiting_recv_buf_with_ebadf)
{
	weft_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct blocked b = {.fd = sv[1], .rc = 1};
	weft_task *t = weft_spawn_on(rt, recv_buf_blocked, &b);
	wait_flag_thread(&b.waiting);
	test_sleep_ms(20);
	cr_assert_eq(weft_close(sv[1]), 0);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert(b.rc == -EBADF, "recv_buf on a closed fd returned %zd", b.rc);
	cr_assert_not(b.lent);
	close(sv[0]);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* ------------------------------------------- plain threads, bad input */

Test(recv_buf, a_plain_thread_gets_a_heap_buffer)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(send(sv[0], "xyz", 3, 0), 3);
	weft_buf b;
	cr_assert_eq(weft_recv_buf(sv[1], &b), 3);
	cr_assert_eq(b.len, 3);
	cr_assert_eq(memcmp(b.data, "xyz", 3), 0);
	weft_buf_release(&b);
	cr_assert_null(b.data);
	close(sv[0]);
	cr_assert_eq(weft_recv_buf(sv[1], &b), 0);
	close(sv[1]);
	assert_no_leaks();
}

struct bad {
	ssize_t null_buf, bad_fd, closed_fd, not_socket;
	bool lent;
};

static void *bad_calls(void *arg)
{
	struct bad *r = arg;
	weft_buf b;
	r->null_buf = weft_recv_buf(0, NULL);
	r->bad_fd = weft_recv_buf(-1, &b);
	r->lent = b.data != NULL;
	int p[2];
	if (pipe(p) == 0) {
		if (write(p[1], "x", 1) == 1)
			r->not_socket = weft_recv_buf(p[0], &b);
		r->lent = r->lent || b.data != NULL;
		close(p[1]);
		close(p[0]);
		r->closed_fd = weft_recv_buf(p[0], &b);
	}
	weft_buf_release(NULL);
	return NULL;
}

Test(recv_buf, bad_arguments_get_negative_errno)
{
	weft_runtime *rt = test_runtime(2);
	struct bad r;
	memset(&r, 0, sizeof r);
	cr_assert_eq(weft_block_on(rt, bad_calls, &r, NULL), 0);
	cr_assert_eq(r.null_buf, -EINVAL);
	cr_assert_eq(r.bad_fd, -EBADF);
	cr_assert_eq(r.not_socket, -ENOTSOCK);
	cr_assert_eq(r.closed_fd, -EBADF);
	cr_assert_not(r.lent);
	weft_runtime_free(rt);
	assert_no_leaks();
}
