/*
 * The stall monitor: a task that spins without switching is reported with
 * its name, spawn site and a backtrace that passes through it; a task
 * blocked in a system call is reported as blocked in that call, which is
 * not interrupted; a stall that goes on is reported again at twice its
 * length; a sleeper whose timer is due on a stuck worker is fired by the
 * monitor and run elsewhere; WEFT_DISABLED starts no monitor thread.
 * Event-based: each hog
 * runs until the reports it waits for arrived (a 10 s escape hatch fails
 * the test).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "tests/common.h"

#define MS 1000000ull
#define ESCAPE_NS (10000 * MS)
#define KEEP 8

TestSuite(monitor, .timeout = 60);

struct seen {
	pthread_mutex_t lock;
	int count;
	weft_stall_report r[KEEP];
	char name[KEEP][32], file[KEEP][256], sys[KEEP][32];
	_Atomic int reports;
	int want; /* reports the hog waits for */
};

static void record(const weft_stall_report *r, void *arg)
{
	struct seen *s = arg;
	pthread_mutex_lock(&s->lock);
	if (s->count < KEEP) {
		s->r[s->count] = *r;
		snprintf(s->name[s->count], sizeof s->name[0], "%s", r->name);
		snprintf(s->file[s->count], sizeof s->file[0], "%s", r->file);
		snprintf(s->sys[s->count], sizeof s->sys[0], "%s", r->syscall_name);
	}
	s->count++;
	atomic_store(&s->reports, s->count);
	pthread_mutex_unlock(&s->lock);
}

static weft_runtime *monitored_on(struct seen *s, unsigned threshold_ms, unsigned workers)
{
	pthread_mutex_init(&s->lock, NULL);
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = workers;
	cfg.stall_threshold_ms = threshold_ms;
	cfg.stall_handler = record;
	cfg.stall_handler_arg = s;
	return weft_runtime_new(&cfg);
}

static weft_runtime *monitored(struct seen *s, unsigned threshold_ms)
{
	return monitored_on(s, threshold_ms, 2);
}

/* Spins without a weft call until the monitor reported s->want times;
   returns 1 if the escape hatch fired instead. */
__attribute__((noinline)) static void *hog(void *arg)
{
	struct seen *s = arg;
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	while (atomic_load(&s->reports) < s->want)
		if (test_now_ns() > give_up)
			return (void *)1;
	return NULL;
}

static bool frame_in(const weft_stall_report *r, void *fn, size_t len)
{
	for (int i = 0; i < r->nframes; i++)
		if ((char *)r->frames[i] >= (char *)fn && (char *)r->frames[i] < (char *)fn + len)
			return true;
	return false;
}

Test(monitor, a_spinning_task_is_reported_with_its_name_spawn_site_and_backtrace)
{
	struct seen s = {.want = 1};
	weft_runtime *rt = monitored(&s, 50);
	weft_spawn_opts opts = {.name = "hog"};
	int line = __LINE__ + 1;
	weft_task *t = weft_spawn_ex(rt, hog, &s, &opts);
	void *escaped;
	cr_assert_eq(weft_join(t, &escaped), 0);
	cr_assert_null(escaped, "no stall report within 10 s");
	cr_assert_str_eq(s.name[0], "hog");
	cr_assert(strstr(s.file[0], "test_monitor.c"), "spawn site %s", s.file[0]);
	cr_assert_eq(s.r[0].line, line);
	cr_assert_not(s.r[0].blocked);
	cr_assert_eq(s.r[0].syscall, -1);
	cr_assert_geq(s.r[0].run_ms, 50);
	cr_assert_eq(s.r[0].report, 1);
	cr_assert_gt(s.r[0].nframes, 0, "no backtrace");
	cr_assert(frame_in(&s.r[0], (void *)hog, 512),
	          "the backtrace does not pass through the hog");
	weft_runtime_free(rt);
}

Test(monitor, a_stall_that_goes_on_is_reported_again_at_twice_its_length)
{
	struct seen s = {.want = 3};
	weft_runtime *rt = monitored(&s, 20);
	void *escaped;
	cr_assert_eq(weft_block_on(rt, hog, &s, &escaped), 0);
	cr_assert_null(escaped, "fewer than 3 reports within 10 s");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(s.r[i].report, (unsigned)i + 1);
		cr_assert_eq(s.r[i].task_id, s.r[0].task_id);
	}
	cr_assert_geq(s.r[1].run_ms, 2 * s.r[0].run_ms);
	cr_assert_geq(s.r[2].run_ms, 2 * s.r[1].run_ms);
	weft_runtime_free(rt);
}

struct blocker {
	struct seen *s;
	int fd;
	ssize_t got;
	int err;
};

static void *read_blocking(void *arg)
{
	struct blocker *b = arg;
	char c;
	b->got = read(b->fd, &c, 1); /* a plain blocking read: the stall */
	b->err = b->got < 0 ? errno : 0;
	return NULL;
}

static void wait_reports(struct seen *s, int n)
{
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	while (atomic_load(&s->reports) < n) {
		cr_assert_lt(test_now_ns(), give_up, "no stall report within 10 s");
		test_sleep_ms(5);
	}
}

Test(monitor, a_task_blocked_in_a_system_call_is_named_and_not_interrupted)
{
	struct seen s = {0};
	weft_runtime *rt = monitored(&s, 50);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	struct blocker b = {.s = &s, .fd = p[0]};
	weft_spawn_opts opts = {.name = "reader"};
	weft_task *t = weft_spawn_ex(rt, read_blocking, &b, &opts);
	wait_reports(&s, 1);
	cr_assert_eq(write(p[1], "x", 1), 1);
	cr_assert_eq(weft_join(t, NULL), 0);
	cr_assert_eq(b.got, 1, "the read was interrupted (errno %d)", b.err);
	cr_assert_str_eq(s.name[0], "reader");
	cr_assert(s.r[0].blocked);
	cr_assert_str_eq(s.sys[0], "read");
	cr_assert_eq(s.r[0].nframes, 0);
	close(p[0]);
	close(p[1]);
	weft_runtime_free(rt);
}

static void *sleep_blocking(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)usleep(400 * 1000);
}

Test(monitor, a_task_in_usleep_is_reported_as_blocked_in_its_sleep)
{
	struct seen s = {0};
	weft_runtime *rt = monitored(&s, 50);
	void *rc;
	cr_assert_eq(weft_block_on(rt, sleep_blocking, NULL, &rc), 0);
	cr_assert_eq((intptr_t)rc, 0, "usleep was interrupted");
	cr_assert_geq(atomic_load(&s.reports), 1, "a 400 ms usleep was not reported at 50 ms");
	cr_assert(s.r[0].blocked);
	cr_assert(!strcmp(s.sys[0], "clock_nanosleep") || !strcmp(s.sys[0], "nanosleep"),
	          "blocked in %s", s.sys[0]);
	weft_runtime_free(rt);
}

/* Threads of this process named `name`. */
static int threads_named(const char *name)
{
	int n = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[300], comm[32] = "";
		snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, comm, sizeof comm - 1);
		close(fd);
		if (len > 0 && !strncmp(comm, name, strlen(name)))
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

Test(monitor, one_monitor_thread_per_runtime_and_none_when_disabled)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 1;
	cfg.stall_threshold_ms = WEFT_DISABLED;
	weft_runtime *off = weft_runtime_new(&cfg);
	cr_assert_eq(threads_named("weft-monitor"), 0);
	cr_assert_eq(threads_named("weft-spare"), 0, "no monitor, no hand-offs, no spare");
	cfg.stall_threshold_ms = 100;
	weft_runtime *on = weft_runtime_new(&cfg);
	cr_assert_eq(threads_named("weft-monitor"), 1);
	cr_assert_eq(threads_named("weft-spare"), 1);
	cfg.handoff_ms = WEFT_DISABLED;
	weft_runtime *no_handoff = weft_runtime_new(&cfg);
	cr_assert_eq(threads_named("weft-monitor"), 2);
	cr_assert_eq(threads_named("weft-spare"), 1, "hand-offs disabled: no spare");
	weft_runtime_free(no_handoff);
	weft_runtime_free(on);
	cr_assert_eq(threads_named("weft-monitor"), 0);
	cr_assert_eq(threads_named("weft-spare"), 0);
	weft_runtime_free(off);
}

Test(monitor, the_default_report_names_the_task_and_what_it_does)
{
	weft_stall_report r = {.worker = 1,
	                       .task_id = 42,
	                       .name = "crunch",
	                       .file = "app.c",
	                       .line = 7,
	                       .run_ms = 120,
	                       .report = 1,
	                       .blocked = true,
	                       .syscall = 0,
	                       .syscall_name = "read"};
	int p[2];
	cr_assert_eq(pipe(p), 0);
	weft_stall_report_print(&r, p[1]);
	close(p[1]);
	char buf[512] = "";
	cr_assert_gt(read(p[0], buf, sizeof buf - 1), 0);
	close(p[0]);
	cr_assert(
	        strstr(buf, "worker 1 has run task 42 \"crunch\" (spawned at app.c:7) for 120 ms"),
	        "%s", buf);
	cr_assert(strstr(buf, "blocked in system call read"), "%s", buf);
}

/* A sleeper whose timer sits in the wheel of a worker that a pinned hog
   keeps stuck: the monitor fires it (past handoff_ms) and another worker
   runs it. The hog spins until the sleeper ran (10 s escape hatch). */
struct rescue {
	_Atomic int armed, woke;
	unsigned sleep_ms; /* 0: 30 */
};

static void *sleeper(void *arg)
{
	struct rescue *r = arg;
	atomic_store(&r->armed, 1);
	weft_sleep_ms(r->sleep_ms ? r->sleep_ms : 30); /* armed in this worker's wheel: the hog's */
	atomic_store(&r->woke, 1);
	return NULL;
}

static void *pinned_hog(void *arg)
{
	struct rescue *r = arg;
	weft_task *s = weft_spawn(sleeper, r); /* this worker's LIFO slot */
	while (!atomic_load(&r->armed))
		weft_yield(); /* the sleeper runs here, arms its timer, parks */
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	while (!atomic_load(&r->woke))
		if (test_now_ns() > give_up)
			break;
	intptr_t escaped = !atomic_load(&r->woke); /* before the join lets the wheel run */
	weft_join(s, NULL);
	return (void *)escaped;
}

Test(monitor, a_timer_due_on_a_stuck_worker_fires_anyway)
{
	struct seen s = {.want = 0};
	weft_runtime *rt = monitored(&s, 100); /* handoff_ms: the default 10 */
	struct rescue r = {0};
	weft_spawn_opts opts = {.name = "pinned-hog", .pinned = true};
	weft_task *h = weft_spawn_ex(rt, pinned_hog, &r, &opts);
	void *escaped;
	cr_assert_eq(weft_join(h, &escaped), 0);
	cr_assert_null(escaped, "the sleeper's timer never fired while its worker was stuck");
	/* The monitor fired it, or the other worker did, awake at that moment
	   (it fires the timers another worker is 2 ms late with). */
	uint64_t fired_for_it = 0;
	for (unsigned i = 0; i < 3; i++) {
		weft_worker_metrics wm;
		weft_metrics_worker(rt, i, &wm);
		fired_for_it += wm.timers_rescued + wm.timers_stolen;
	}
	cr_assert_geq(fired_for_it, 1, "the timer fired, but not by the rescue or a steal");
	weft_runtime_free(rt);
}

/* A worker that is busy (here: a task yielding in a loop) fires the due
   timers of another worker that is not getting to them -- with the
   monitor's rescue off, nothing else could: the sleeper sits in the wheel
   of the worker a pinned hog keeps. */
struct steal {
	struct rescue r;
	_Atomic int stop;
};

static void *busy_yielder(void *arg)
{
	struct steal *st = arg;
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	while (!atomic_load(&st->r.woke) && !atomic_load(&st->stop) && test_now_ns() < give_up)
		weft_yield();
	return NULL;
}

/* 2 workers, no rescue and no spare (handoff_ms off), and a pinned hog
   holding one of them with r's sleeper armed in its wheel. */
static weft_runtime *hog_without_rescue(struct rescue *r, weft_task **hog)
{
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	cfg.stall_threshold_ms = 60000;
	cfg.handoff_ms = WEFT_DISABLED;
	weft_runtime *rt = weft_runtime_new(&cfg);
	weft_spawn_opts opts = {.name = "pinned-hog", .pinned = true};
	*hog = weft_spawn_ex(rt, pinned_hog, r, &opts);
	while (!atomic_load(&r->armed))
		test_sleep_ms(1);
	return rt;
}

Test(monitor, a_busy_worker_fires_the_timers_another_worker_is_late_with)
{
	struct steal st = {0};
	weft_task *h;
	weft_runtime *rt = hog_without_rescue(&st.r, &h);
	weft_task *y = weft_spawn_on(rt, busy_yielder, &st); /* runs on the other worker */
	void *escaped;
	cr_assert_eq(weft_join(h, &escaped), 0);
	atomic_store(&st.stop, 1);
	cr_assert_eq(weft_join(y, NULL), 0);
	cr_assert_null(escaped, "the sleeper's timer never fired while its worker was busy");
	weft_runtime_free(rt);
}

/* The same with the other worker asleep: a worker going to sleep while
   another is awake with timers armed sleeps only until those are 2 ms
   late, then fires them and runs what they woke. (A timer armed after it
   fell asleep is the monitor's to rescue, at handoff_ms: arming does not
   wake sleepers.) */
static void *nothing(void *arg)
{
	return arg;
}

Test(monitor, a_sleeping_worker_wakes_for_the_timers_another_worker_is_late_with)
{
	struct rescue r = {0};
	weft_task *h;
	weft_runtime *rt = hog_without_rescue(&r, &h);
	test_sleep_ms(1);
	/* Wakes the other worker, which runs this and sleeps again, now with
	   the hog's worker's timer in view. */
	cr_assert_eq(weft_join(weft_spawn_on(rt, nothing, NULL), NULL), 0);
	void *escaped;
	cr_assert_eq(weft_join(h, &escaped), 0);
	cr_assert_null(escaped, "nobody fired the sleeper's timer while its worker was stuck");
	weft_runtime_free(rt);
}

/* Hand-off with one worker: a hog that never switches keeps its worker;
   the tasks queued behind it -- in its LIFO slot (the last one it
   spawned), its local queue (the ones that slot displaced) and the
   injector (spawned from outside) -- run on the spare. The hog spins
   until every probe ran (10 s escape hatch). */
#define PROBES 4

struct handoff {
	_Atomic int ran[PROBES];
	_Atomic int outside_spawned;
};

static void *probe(void *arg)
{
	atomic_store((_Atomic int *)arg, 1);
	return NULL;
}

static bool all_ran(struct handoff *h)
{
	for (int i = 0; i < PROBES; i++)
		if (!atomic_load(&h->ran[i]))
			return false;
	return true;
}

static void *lone_hog(void *arg)
{
	struct handoff *h = arg;
	weft_task *p[PROBES - 1];
	for (int i = 0; i < PROBES - 1; i++)
		p[i] = weft_spawn(probe, &h->ran[i]); /* the last one sits in the LIFO slot */
	atomic_store(&h->outside_spawned, 1);
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	while (!all_ran(h))
		if (test_now_ns() > give_up)
			break;
	intptr_t escaped = !all_ran(h);
	for (int i = 0; i < PROBES - 1; i++)
		weft_join(p[i], NULL);
	return (void *)escaped;
}

static uint64_t handoffs_of_worker_0(weft_runtime *rt)
{
	weft_worker_metrics wm;
	cr_assert_eq(weft_metrics_worker(rt, 0, &wm), 0);
	return wm.handoffs;
}

Test(monitor, one_worker_a_hog_and_the_tasks_queued_behind_it_run_on_the_spare)
{
	struct seen s = {.want = 0};
	weft_runtime *rt = monitored_on(&s, 1000, 1); /* handoff_ms: the default 10 */
	struct handoff h = {0};
	weft_spawn_opts opts = {.name = "lone-hog"};
	weft_task *hog_task = weft_spawn_ex(rt, lone_hog, &h, &opts);
	while (!atomic_load(&h.outside_spawned))
		test_sleep_ms(1);
	weft_task *outside = weft_spawn_on(rt, probe, &h.ran[PROBES - 1]); /* the injector */
	void *escaped;
	cr_assert_eq(weft_join(hog_task, &escaped), 0);
	cr_assert_null(escaped, "a probe queued behind the hog never ran");
	cr_assert_eq(weft_join(outside, NULL), 0);
	cr_assert_geq(handoffs_of_worker_0(rt), 1);
	weft_metrics m;
	cr_assert_eq(weft_metrics_get(rt, &m), 0);
	cr_assert_geq(m.handoffs, 1);
	cr_assert_eq(m.tasks_spawned, m.tasks_completed + m.tasks_alive);
	weft_runtime_free(rt);
}

/* The same for a task woken by its timer: it sleeps in the hog's worker's
   wheel, the monitor fires it, the spare runs it. */
static void *lone_timer_hog(void *arg)
{
	struct rescue *r = arg;
	weft_task *s = weft_spawn(sleeper, r);
	while (!atomic_load(&r->armed))
		weft_yield();
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	while (!atomic_load(&r->woke))
		if (test_now_ns() > give_up)
			break;
	intptr_t escaped = !atomic_load(&r->woke);
	weft_join(s, NULL);
	return (void *)escaped;
}

Test(monitor, one_worker_a_timer_woken_task_behind_a_hog_runs_on_the_spare)
{
	struct seen s = {.want = 0};
	weft_runtime *rt = monitored_on(&s, 1000, 1);
	/* Due after 1 ms: long overdue when the hand-off begins, so the
	   monitor fires it before it wakes the spare (nobody else is awake). */
	struct rescue r = {.sleep_ms = 1};
	void *escaped;
	cr_assert_eq(weft_block_on(rt, lone_timer_hog, &r, &escaped), 0);
	cr_assert_null(escaped, "the sleeper never woke while the only worker was stuck");
	cr_assert_geq(handoffs_of_worker_0(rt), 1);
	weft_worker_metrics wm;
	cr_assert_eq(weft_metrics_worker(rt, 0, &wm), 0);
	cr_assert_geq(wm.timers_rescued, 1, "not fired by the monitor's rescue");
	weft_runtime_free(rt);
}

/* After a hand-off the worker runs its own work again and the spare goes
   back to sleep: a burst of tasks afterwards completes with the spare
   taking none of it once it shed what it had. */
static void *short_hog(void *arg)
{
	struct handoff *h = arg;
	weft_task *p = weft_spawn(probe, &h->ran[0]);
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	while (!atomic_load(&h->ran[0]) && test_now_ns() < give_up)
		;
	weft_join(p, NULL);
	return (void *)(intptr_t)!atomic_load(&h->ran[0]);
}

static void *count_up(void *arg)
{
	atomic_fetch_add((_Atomic int *)arg, 1);
	weft_yield();
	return NULL;
}

Test(monitor, after_a_hand_off_the_spare_sheds_its_work_and_sleeps)
{
	struct seen s = {.want = 0};
	weft_runtime *rt = monitored_on(&s, 1000, 1);
	struct handoff h = {0};
	void *escaped;
	cr_assert_eq(weft_block_on(rt, short_hog, &h, &escaped), 0);
	cr_assert_null(escaped);
	/* The monitor notices the worker moved on within a period or two. */
	weft_worker_metrics spare, after;
	uint64_t give_up = test_now_ns() + ESCAPE_NS;
	do {
		test_sleep_ms(20);
		cr_assert_eq(weft_metrics_worker(rt, 1, &spare), 0);
		test_sleep_ms(20);
		cr_assert_eq(weft_metrics_worker(rt, 1, &after), 0);
	} while (after.runs != spare.runs && test_now_ns() < give_up);
	_Atomic int done = 0;
	weft_task *t[200];
	for (int i = 0; i < 200; i++)
		t[i] = weft_spawn_on(rt, count_up, &done);
	for (int i = 0; i < 200; i++)
		cr_assert_eq(weft_join(t[i], NULL), 0);
	cr_assert_eq(atomic_load(&done), 200);
	cr_assert_eq(weft_metrics_worker(rt, 1, &after), 0);
	cr_assert_eq(after.runs, spare.runs, "the spare ran tasks though nobody was stuck");
	weft_runtime_free(rt);
}
