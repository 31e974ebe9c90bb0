/*
 * Choosing the I/O backend: io_uring where it works, epoll when asked for
 * or when io_uring is refused -- here by a seccomp filter that makes
 * io_uring_setup fail with ENOSYS, as container runtimes do -- and I/O
 * working either way. (The rest of the suite runs once per backend: CTest
 * registers every test a second time with WEFT_IO=epoll.)
 *
 * Criterion runs each test in a child process of its own, so the filter
 * stays in that child.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sched.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests/common.h"

TestSuite(io_backend, .timeout = 60);

static weft_runtime *runtime_on(int backend, unsigned workers)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = workers;
	cfg.io_backend = backend;
	return weft_runtime_new(&cfg);
}

static weft_runtime *runtime_with(int backend)
{
	return runtime_on(backend, 2);
}

/* Whether the kernel lets this process set up a ring at all. */
static bool kernel_has_io_uring(void)
{
#ifdef __NR_io_uring_setup
	unsigned char params[120] = {0}; /* struct io_uring_params */
	long fd = syscall(__NR_io_uring_setup, 1, params);
	if (fd < 0)
		return false;
	close((int)fd);
	return true;
#else
	return false;
#endif
}

static void *echo_over_pair(void *arg)
{
	int *sv = arg;
	char buf[16];
	if (weft_send_all(sv[0], "ping", 4) != 4)
		return (void *)1;
	if (weft_recv(sv[1], buf, 4, MSG_WAITALL) != 4)
		return (void *)2;
	if (memcmp(buf, "ping", 4))
		return (void *)3;
	/* A wait that really parks: nothing is there yet. */
	weft_deadline dl;
	weft_deadline_push(&dl, 20);
	ssize_t r = weft_recv(sv[1], buf, sizeof buf, 0);
	weft_deadline_pop(&dl);
	return r == -ETIMEDOUT ? NULL : (void *)4;
}

static void assert_io_works(weft_runtime *rt)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	void *res = (void *)-1;
	cr_assert_eq(weft_block_on(rt, echo_over_pair, sv, &res), 0);
	cr_assert_null(res, "step %ld failed", (long)(intptr_t)res);
	weft_close(sv[0]);
	weft_close(sv[1]);
}

Test(io_backend, epoll_when_asked_and_io_uring_where_the_kernel_has_it)
{
	weft_runtime *rt = runtime_with(WEFT_IO_EPOLL);
	cr_assert_not_null(rt);
	cr_assert_eq(weft_runtime_io_backend(rt), WEFT_IO_EPOLL);
	assert_io_works(rt);
	weft_runtime_free(rt);

	rt = runtime_with(WEFT_IO_URING);
	if (!kernel_has_io_uring()) {
		cr_assert_null(rt);
		cr_assert_eq(errno, ENOSYS);
		cr_log_info("no io_uring here: only the refusal was checked");
		return;
	}
#ifdef WEFT_HAVE_URING
	cr_assert_not_null(rt);
	cr_assert_eq(weft_runtime_io_backend(rt), WEFT_IO_URING);
	assert_io_works(rt);
	weft_runtime_free(rt);
#else
	cr_assert_null(rt, "built without liburing, yet io_uring was granted");
#endif
	cr_assert_eq(weft_runtime_io_backend(NULL), -EINVAL);
	assert_no_leaks();
}

/* io_uring_setup fails with ENOSYS from now on in this process. */
static void refuse_io_uring(void)
{
	struct sock_filter prog[] = {
	        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fprog = {.len = sizeof prog / sizeof prog[0], .filter = prog};
	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog), 0, "seccomp: %s",
	             strerror(errno));
	cr_assert_eq(kernel_has_io_uring(), false);
}

Test(io_backend, io_uring_refused_by_seccomp_falls_back_to_epoll)
{
	unsetenv("WEFT_IO"); /* the automatic choice is under test */
	refuse_io_uring();
	weft_runtime *rt = runtime_with(WEFT_IO_AUTO);
	cr_assert_not_null(rt);
	cr_assert_eq(weft_runtime_io_backend(rt), WEFT_IO_EPOLL);
	assert_io_works(rt);
	weft_runtime_free(rt);

	errno = 0;
	cr_assert_null(runtime_with(WEFT_IO_URING), "io_uring asked for by name must fail");
	cr_assert_eq(errno, ENOSYS);
	assert_no_leaks();
}

/* More completions at once than the ring's completion queue holds (4,096):
   thousands of tasks wait for the same eventfd, one write wakes them all,
   and the completions the kernel kept back for a full queue must arrive
   too. On epoll the same wakes go through one fd's waiter list. */
struct herd {
	int efd;
	_Atomic long waiting, woke;
};

static void *wait_for_the_herd(void *arg)
{
	struct herd *h = arg;
	atomic_fetch_add(&h->waiting, 1);
	int r = weft_wait_fd(h->efd, POLLIN);
	if (r > 0 && (r & POLLIN))
		atomic_fetch_add(&h->woke, 1);
	return NULL;
}

Test(io_backend, a_thundering_herd_overflows_the_completion_queue_and_loses_nothing)
{
	long n = test_scale(6000);
	weft_runtime *rt = runtime_on(WEFT_IO_AUTO, 1); /* all on one ring */
	cr_assert_not_null(rt);
	struct herd h = {.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
	cr_assert_geq(h.efd, 0);
	weft_task **ts = calloc((size_t)n, sizeof *ts);
	for (long i = 0; i < n; i++)
		cr_assert_not_null(ts[i] = weft_spawn_on(rt, wait_for_the_herd, &h));
	while (atomic_load(&h.waiting) < n)
		test_sleep_ms(1);
	test_sleep_ms(50); /* parked in their waits by now; correct either way */
	uint64_t one = 1;
	cr_assert_eq(write(h.efd, &one, sizeof one), (ssize_t)sizeof one);
	for (long i = 0; i < n; i++)
		cr_assert_eq(weft_join(ts[i], NULL), 0);
	cr_assert_eq(atomic_load(&h.woke), n, "%ld of %ld waits saw the event",
	             atomic_load(&h.woke), n);
	free(ts);
	close(h.efd);
	weft_runtime_free(rt);
	assert_no_leaks();
}

/* A cancellation racing the data: the receive either completed first and
   returns the byte, or was cancelled and the byte is still in the socket.
   Never both, never neither. */
struct racer {
	int fd;
	_Atomic int waiting;
	ssize_t rc;
	char got;
};

static void *receive_one(void *arg)
{
	struct racer *r = arg;
	char buf[64]; /* on the task's stack: the kernel must be done with it */
	atomic_store(&r->waiting, 1);
	r->rc = weft_recv(r->fd, buf, sizeof buf, 0);
	r->got = r->rc == 1 ? buf[0] : 0;
	return NULL;
}

Test(io_backend, a_cancel_racing_the_data_loses_nothing_and_duplicates_nothing)
{
	long rounds = test_scale(300);
	long completed = 0, cancelled = 0;
	for (unsigned workers = 1; workers <= 2; workers++) {
		weft_runtime *rt = runtime_on(WEFT_IO_AUTO, workers);
		cr_assert_not_null(rt);
		for (long i = 0; i < rounds; i++) {
			int sv[2];
			cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
			struct racer r = {.fd = sv[1], .rc = 99};
			weft_task *t = weft_spawn_on(rt, receive_one, &r);
			while (!atomic_load(&r.waiting))
				sched_yield();
			if (i % 3) /* sometimes let it park first */
				for (long k = 0; k < i % 50; k++)
					sched_yield();
			cr_assert_eq(send(sv[0], "x", 1, 0), 1);
			weft_cancel(t);
			int jr = weft_join(t, NULL);
			cr_assert(jr == 0 || jr == WEFT_CANCELED, "join: %d", jr);
			char left = 0;
			ssize_t n = recv(sv[1], &left, 1, MSG_DONTWAIT);
			if (r.rc == 1) {
				cr_assert_eq(r.got, 'x');
				cr_assert(n < 0 && errno == EAGAIN, "the byte arrived twice");
				completed++;
			} else {
				cr_assert_eq(r.rc, -ECANCELED, "recv: %zd", r.rc);
				cr_assert_eq(n, 1, "the cancelled receive lost the byte");
				cr_assert_eq(left, 'x');
				cancelled++;
			}
			close(sv[0]);
			weft_close(sv[1]);
		}
		weft_runtime_free(rt);
	}
	cr_log_info("%ld completed first, %ld cancelled first", completed, cancelled);
	assert_no_leaks();
}
