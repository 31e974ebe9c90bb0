/*
 * The task dump: every parked task is listed with its name and spawn site
 * and what it waits on (a mutex, a channel receive, a join, a sleep, a
 * socket receive, a notify), a spinning task as running on its worker, the
 * live count is in the header; SIGQUIT dumps when the program opted in;
 * bad arguments get -EINVAL. Event-based: the test dumps until every
 * expected line shows up (a 10 s escape hatch fails it).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/common.h"

#define ESCAPE_NS (10000ull * 1000000ull)

TestSuite(dump, .timeout = 60);

static weft_mutex mtx = WEFT_MUTEX_INIT;
static weft_notify note;
static weft_chan *chan;
static int sv[2];
static _Atomic int stop_spinning;

static void *lock_mutex(void *arg)
{
	(void)arg;
	if (weft_mutex_lock(&mtx) == 0)
		weft_mutex_unlock(&mtx);
	return NULL;
}

static void *recv_chan(void *arg)
{
	(void)arg;
	long v;
	weft_chan_recv(chan, &v);
	return NULL;
}

static void *wait_note(void *arg)
{
	(void)arg;
	weft_notify_wait(&note);
	return NULL;
}

static void *recv_socket(void *arg)
{
	(void)arg;
	char c;
	weft_recv(sv[0], &c, 1, 0);
	return NULL;
}

static void *sleep_long(void *arg)
{
	(void)arg;
	weft_sleep_ms(10000);
	return NULL;
}

static void *join_it(void *arg)
{
	weft_join(arg, NULL);
	return NULL;
}

/* Busy, but switching (yielding) so that it does not hold its worker's
   queue up: running whenever nothing else is runnable there. */
static void *spin(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_spinning))
		weft_yield();
	return NULL;
}

/* The dump, as text. */
static void dump_text(weft_runtime *rt, char *buf, size_t cap)
{
	int fd = memfd_create("dump", 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(weft_dump_tasks(rt, fd), 0);
	ssize_t n = pread(fd, buf, cap - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
}

/* The dump's line for the task named name, or NULL. */
static const char *line_of(const char *text, const char *name, char *line, size_t cap)
{
	char key[64];
	snprintf(key, sizeof key, "\"%s\" (spawned at", name);
	const char *p = strstr(text, key);
	if (!p)
		return NULL;
	while (p > text && p[-1] != '\n')
		p--;
	const char *e = strchr(p, '\n');
	size_t len = e ? (size_t)(e - p) : strlen(p);
	if (len >= cap)
		len = cap - 1;
	memcpy(line, p, len);
	line[len] = '\0';
	return line;
}

struct expect {
	const char *name;
	char what[96];
};

static bool all_listed(const char *text, struct expect *e, int n)
{
	char line[512];
	for (int i = 0; i < n; i++)
		if (!line_of(text, e[i].name, line, sizeof line) || !strstr(line, e[i].what))
			return false;
	return true;
}

Test(dump, parked_tasks_are_listed_with_what_they_wait_on)
{
	weft_runtime *rt = test_runtime(2);
	weft_notify_init(&note);
	chan = weft_chan_new(1, sizeof(long));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(weft_mutex_lock(&mtx), 0); /* held by this thread */
	weft_spawn_opts o[8] = {{.name = "locker"}, {.name = "receiver"}, {.name = "noted"},
	                        {.name = "reader"}, {.name = "sleeper"},  {.name = "spinner"},
	                        {.name = "joiner"}};
	weft_task *t[7];
	uint64_t spawned_ns = test_now_ns();
	t[0] = weft_spawn_ex(rt, lock_mutex, NULL, &o[0]);
	t[1] = weft_spawn_ex(rt, recv_chan, NULL, &o[1]);
	t[2] = weft_spawn_ex(rt, wait_note, NULL, &o[2]);
	t[3] = weft_spawn_ex(rt, recv_socket, NULL, &o[3]);
	t[4] = weft_spawn_ex(rt, sleep_long, NULL, &o[4]);
	t[5] = weft_spawn_ex(rt, spin, NULL, &o[5]);
	t[6] = weft_spawn_ex(rt, join_it, t[1], &o[6]);
	struct expect e[7] = {{"locker", ""},  {"receiver", ""}, {"noted", ""}, {"reader", ""},
	                      {"sleeper", ""}, {"spinner", ""},  {"joiner", ""}};
	snprintf(e[0].what, sizeof e[0].what, "parked, waiting on mutex %p", (void *)&mtx);
	snprintf(e[1].what, sizeof e[1].what, "parked, waiting on recv on chan %p", (void *)chan);
	snprintf(e[2].what, sizeof e[2].what, "parked, waiting on notify %p", (void *)&note);
	/* io_uring: the receive itself; epoll: readiness. */
	bool uring = weft_runtime_io_backend(rt) == WEFT_IO_URING;
	snprintf(e[3].what, sizeof e[3].what,
	         uring ? "waiting on recv on fd %d" : "waiting on fd %d to be readable", sv[0]);
	snprintf(e[4].what, sizeof e[4].what, "parked, waiting on a sleep, due in");
	snprintf(e[5].what, sizeof e[5].what, "running on worker");
	snprintf(e[6].what, sizeof e[6].what, "parked, waiting on join task");
	static char text[16384];
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	do {
		cr_assert_lt(test_now_ns(), give_up, "not all listed in 10 s:\n%s", text);
		test_sleep_ms(5);
		dump_text(rt, text, sizeof text);
	} while (!all_listed(text, e, 7));
	cr_assert(strstr(text, "weft: task dump: "), "%s", text);
	char line[512];
	line_of(text, "locker", line, sizeof line);
	cr_assert(strstr(line, "test_dump.c:"), "no spawn site: %s", line);
	/* The wait's length shows, and is no longer than the task has
	   existed (plus one monitor period of clock resolution). */
	give_up = test_now_ns() + ESCAPE_NS;
	const char *len;
	do {
		cr_assert_lt(test_now_ns(), give_up, "no wait length in 10 s: %s", line);
		test_sleep_ms(10);
		dump_text(rt, text, sizeof text);
		line_of(text, "locker", line, sizeof line);
	} while (!(len = strstr(line, " for ")));
	unsigned long waited = strtoul(len + 5, NULL, 10);
	cr_assert_leq(waited, (test_now_ns() - spawned_ns) / 1000000 + 25, "%s", line);

	weft_mutex_unlock(&mtx);
	long v = 1;
	weft_chan_send(chan, &v);
	weft_notify_one(&note);
	cr_assert_eq(write(sv[1], "x", 1), 1);
	atomic_store(&stop_spinning, 1);
	weft_cancel(t[4]);
	for (int i = 0; i < 7; i++)
		weft_join(t[i], NULL);
	weft_chan_free(chan);
	close(sv[0]);
	close(sv[1]);
	weft_runtime_free(rt);
}

Test(dump, sigquit_dumps_when_the_program_opted_in_and_bad_arguments)
{
	weft_runtime *rt = test_runtime(1);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(weft_dump_tasks_on_signal(rt, SIGQUIT, p[1]), 0);
	cr_assert_eq(raise(SIGQUIT), 0);
	struct pollfd pfd = {.fd = p[0], .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 10000), 1, "no dump within 10 s of SIGQUIT");
	char buf[256] = "";
	cr_assert_gt(read(p[0], buf, sizeof buf - 1), 0);
	cr_assert(strstr(buf, "weft: task dump:"), "%s", buf);
	cr_assert_eq(weft_dump_tasks(NULL, 1), -EINVAL);
	cr_assert_eq(weft_dump_tasks(rt, -1), -EINVAL);
	cr_assert_eq(weft_dump_tasks_on_signal(rt, 0, 1), -EINVAL);
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 1;
	cfg.stall_threshold_ms = WEFT_DISABLED;
	weft_runtime *off = weft_runtime_new(&cfg);
	cr_assert_eq(weft_dump_tasks_on_signal(off, SIGQUIT, p[1]), -ENOTSUP);
	weft_runtime_free(off);
	weft_runtime_free(rt);
	close(p[0]);
	close(p[1]);
}
