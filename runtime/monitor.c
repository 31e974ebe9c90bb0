/*
 * The stall monitor; see monitor.h and include/weft/observe.h.
 *
 * Each period the monitor reads, for every worker, the task it runs (a
 * release store at every switch) and its switch counter. A worker seen
 * running the same task at the same count stalls from the first such
 * sample on. Once a stall reaches the threshold, the monitor looks in
 * /proc/self/task/TID/syscall whether the thread is in a system call; if
 * not, it asks the thread for a backtrace with a signal (WEFT__BT_SIGNAL,
 * handled on the worker's alternate stack; backtrace() was warmed up here
 * first, so its lazy loading of the unwinder does not happen in the
 * handler). A blocked thread is never signalled: its call would see
 * EINTR. A report is dropped if the worker moved on while it was being
 * made.
 *
 * The task header is read by the monitor while its worker runs it: its
 * identity fields are written before it first runs (the release store of
 * `running` orders them), and the worker is re-checked afterwards.
 */
#include "monitor.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <weft/time.h>

#include "../timer/timer.h"
#include "asym.h"
#include "fault.h"
#include "futex.h"
#include "rt.h"
#include "spin.h"
#include "task.h"
#include "tls.h"
#include "worker.h"

#define WEFT__BT_SIGNAL (SIGRTMAX - 1)

_Atomic uint32_t weft__coarse_ms_now;
#define REPORTS_PER_MINUTE 10
#define BT_WAIT_NS (50 * 1000000ull)
#define MIN_PERIOD_NS (1000000ull)
#define MAX_PERIOD_NS (25 * 1000000ull)

/* ------------------------------------------------- the backtrace signal */

static void on_bt_signal(int sig)
{
	(void)sig;
	int saved = errno;
	struct weft__thread *th = weft__tls()->thread;
	if (th && atomic_load_explicit(&th->bt_n, memory_order_acquire) == -1) {
		int n = backtrace(th->bt, WEFT_STALL_MAX_FRAMES);
		atomic_store_explicit(&th->bt_n, n, memory_order_release);
	}
	errno = saved;
}

static pthread_once_t bt_once = PTHREAD_ONCE_INIT;
static bool bt_ready;

static void install_bt_signal(void)
{
	void *warm[4];
	backtrace(warm, 4); /* loads the unwinder now, not in the handler */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_bt_signal;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	bt_ready = sigaction(WEFT__BT_SIGNAL, &sa, NULL) == 0;
}

/* -------------------------------------------------------- system calls */

static const struct {
	long nr;
	const char *name;
} syscall_names[] = {
        {SYS_read, "read"},
        {SYS_write, "write"},
        {SYS_readv, "readv"},
        {SYS_writev, "writev"},
        {SYS_pread64, "pread64"},
        {SYS_pwrite64, "pwrite64"},
        {SYS_openat, "openat"},
        {SYS_fsync, "fsync"},
        {SYS_fdatasync, "fdatasync"},
        {SYS_flock, "flock"},
        {SYS_nanosleep, "nanosleep"},
        {SYS_clock_nanosleep, "clock_nanosleep"},
        {SYS_futex, "futex"},
        {SYS_ppoll, "ppoll"},
        {SYS_pselect6, "pselect6"},
        {SYS_epoll_pwait, "epoll_pwait"},
        {SYS_accept, "accept"},
        {SYS_accept4, "accept4"},
        {SYS_connect, "connect"},
        {SYS_recvfrom, "recvfrom"},
        {SYS_sendto, "sendto"},
        {SYS_recvmsg, "recvmsg"},
        {SYS_sendmsg, "sendmsg"},
        {SYS_wait4, "wait4"},
        {SYS_waitid, "waitid"},
        {SYS_rt_sigsuspend, "rt_sigsuspend"},
        {SYS_rt_sigtimedwait, "rt_sigtimedwait"},
        {SYS_sched_yield, "sched_yield"},
#ifdef SYS_poll
        {SYS_poll, "poll"},
#endif
#ifdef SYS_select
        {SYS_select, "select"},
#endif
#ifdef SYS_epoll_wait
        {SYS_epoll_wait, "epoll_wait"},
#endif
#ifdef SYS_pause
        {SYS_pause, "pause"},
#endif
#ifdef SYS_io_uring_enter
        {SYS_io_uring_enter, "io_uring_enter"},
#endif
};

static const char *syscall_name(long nr)
{
	for (size_t i = 0; i < sizeof syscall_names / sizeof syscall_names[0]; i++)
		if (syscall_names[i].nr == nr)
			return syscall_names[i].name;
	return "";
}

/* The system call thread tid is in: its number, -1 when it runs in user
   space, -2 when that cannot be told. */
static long current_syscall(pid_t tid)
{
	char path[64], buf[128];
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -2;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -2;
	buf[n] = '\0';
	if (!strncmp(buf, "running", 7))
		return -1;
	char *end;
	long nr = strtol(buf, &end, 10);
	return end == buf || nr < 0 ? -2 : nr;
}

/* --------------------------------------------------------------- reports */

void weft_stall_report_print(const weft_stall_report *r, int fd)
{
	char extra[96] = "";
	if (r->report > 1)
		snprintf(extra, sizeof extra, " (report %u of this stall)", r->report);
	if (r->suppressed) {
		size_t len = strlen(extra);
		snprintf(extra + len, sizeof extra - len, " (%u reports suppressed before)",
		         r->suppressed);
	}
	dprintf(fd,
	        "weft: stall: worker %u has run task %llu \"%s\" (spawned at %s:%d) for %llu ms "
	        "without switching%s; ",
	        r->worker, (unsigned long long)r->task_id, r->name, r->file, r->line,
	        (unsigned long long)r->run_ms, extra);
	if (r->blocked) {
		dprintf(fd, "it is blocked in system call %s (%ld)\n",
		        *r->syscall_name ? r->syscall_name : "?", r->syscall);
	} else if (r->nframes > 0) {
		dprintf(fd, "it is running:\n");
		backtrace_symbols_fd((void *const *)r->frames, r->nframes, fd);
	} else {
		dprintf(fd, "it is running (no backtrace)\n");
	}
}

/* Asks th for its backtrace; the number of frames copied (0 if none came). */
static int take_backtrace(struct weft__thread *th, void **frames)
{
	if (!bt_ready)
		return 0;
	atomic_store_explicit(&th->bt_n, -1, memory_order_release);
	if (pthread_kill(th->pthread, WEFT__BT_SIGNAL) != 0)
		return 0;
	uint64_t until = weft__mono_ns() + BT_WAIT_NS;
	int n;
	while ((n = atomic_load_explicit(&th->bt_n, memory_order_acquire)) < 0) {
		if (weft__mono_ns() >= until) {
			/* Too late: stop a late handler from writing. */
			int expect = -1;
			if (atomic_compare_exchange_strong(&th->bt_n, &expect, 0))
				return 0;
			n = expect;
			break;
		}
		struct timespec pause = {0, 100000};
		nanosleep(&pause, NULL);
	}
	memcpy(frames, th->bt, (size_t)n * sizeof *frames);
	return n;
}

/* True when the rate limit lets a report through now. */
static bool admit(struct weft__monitor *m, uint64_t now)
{
	if (now - m->window_start_ns >= 60 * 1000000000ull) {
		m->window_start_ns = now;
		m->window_reports = 0;
	}
	if (m->window_reports >= REPORTS_PER_MINUTE) {
		m->suppressed++;
		return false;
	}
	m->window_reports++;
	return true;
}

static bool still_stuck(struct weft__thread *th, const struct weft__watch *w)
{
	return weft__running(th) == w->task &&
	       atomic_load_explicit(&th->worker->tick, memory_order_relaxed) == w->tick;
}

static void report(struct weft_runtime *rt, unsigned i, struct weft__watch *w, uint64_t now)
{
	struct weft__monitor *m = &rt->monitor;
	struct weft__thread *th = &rt->threads[i];
	struct weft_task *t = w->task;
	weft_stall_report r;
	memset(&r, 0, sizeof r);
	r.worker = i;
	const char *name = __atomic_load_n(&t->name, __ATOMIC_RELAXED);
	const char *file = __atomic_load_n(&t->file, __ATOMIC_RELAXED);
	r.task_id = __atomic_load_n(&t->id, __ATOMIC_RELAXED);
	r.name = name ? name : "";
	r.file = file ? file : "?";
	r.line = __atomic_load_n(&t->line, __ATOMIC_RELAXED);
	r.run_ms = (now - w->since_ns) / 1000000;
	r.report = w->reports + 1;
	r.syscall = current_syscall(th->tid);
	r.blocked = r.syscall >= 0;
	r.syscall_name = r.blocked ? syscall_name(r.syscall) : "";
	if (!r.blocked) {
		r.syscall = -1;
		r.nframes = take_backtrace(th, r.frames);
	}
	if (!still_stuck(th, w))
		return; /* it moved on meanwhile: what we read may be stale */
	w->reports++;
	atomic_fetch_add_explicit(&m->stalls, 1, memory_order_relaxed);
	if (!admit(m, now))
		return;
	r.suppressed = m->suppressed;
	m->suppressed = 0;
	if (m->handler)
		m->handler(&r, m->handler_arg);
	else
		weft_stall_report_print(&r, STDERR_FILENO);
}

/* ------------------------------------------------------------ hand-off */

/* A worker stuck past handoff_ms fires no timers: the monitor fires the
   due ones of its wheel (under the wheel's lock, as its owner would), and
   the woken tasks go to the injector, where the other workers and the
   spare take them. */
static void rescue_timers(struct weft__worker *w)
{
	unsigned n = weft__timers_fire(&w->timers, weft_now_ns(), UINT_MAX);
	if (n)
		atomic_fetch_add_explicit(&w->timers_rescued, n, memory_order_relaxed);
}

/* Takes the task in a worker's LIFO slot to the injector: the slow side of
   the handshake in lifo.h. The slot stays frozen (the owner's wakes go
   to its stealable queue, or a shed spare's to the injector) until the
   owner, back in its scheduler, reopens it. */
static void take_lifo(struct weft_runtime *rt, struct weft__worker *w)
{
	struct weft_task *t;
	if (weft__lifo_steal(&w->lifo, &t) && t) {
		weft__inject_push(&rt->inject, t);
		weft__notify_one(rt);
	}
}

/* The spare is wanted while some worker is handed off (worker.h). Told to
   shed, its slot is frozen too (emptied into the injector): what it wakes
   from then on goes to the injector even while it runs a task that never
   switches. Wanted again, it reopens its slot itself. */
static void want_spare(struct weft_runtime *rt, bool wanted)
{
	struct weft__thread *spare = &rt->threads[rt->nworkers];
	atomic_store_explicit(&spare->worker->shed, !wanted, memory_order_release);
	if (wanted)
		weft__parker_unpark(&spare->parker);
	else
		take_lifo(rt, spare->worker);
}

/* Each period a worker stays stuck past handoff_ms: its due timers and
   its LIFO slot go to the injector; at the first, the spare is woken to
   run them and to steal the stuck worker's queue. The spare itself can be
   the stuck one (it took a hog from the injector): its timers and slot go
   to the injector too, for the regular workers, which steal its queue. */
static void hand_off(struct weft_runtime *rt, unsigned i, struct weft__watch *w)
{
	struct weft__monitor *m = &rt->monitor;
	struct weft__worker *wk = &rt->workers[i];
	/* Its timers first: what is due now is fired here, before the spare
	   is awake to look at the wheel itself. */
	rescue_timers(wk);
	take_lifo(rt, wk);
	if (!w->handed) {
		w->handed = true;
		atomic_fetch_add_explicit(&wk->handoffs, 1, memory_order_relaxed);
		if (i < rt->nworkers && m->handed_off++ == 0)
			want_spare(rt, true);
	}
}

/* The worker switched: it runs its own work again. */
static void end_hand_off(struct weft_runtime *rt, unsigned i, struct weft__watch *w)
{
	if (!w->handed)
		return;
	w->handed = false;
	if (i < rt->nworkers && --rt->monitor.handed_off == 0)
		want_spare(rt, false);
}

static void check_worker(struct weft_runtime *rt, unsigned i, uint64_t now)
{
	struct weft__monitor *m = &rt->monitor;
	struct weft__thread *th = &rt->threads[i];
	struct weft__watch *w = &m->watch[i];
	struct weft_task *t = weft__running(th);
	uint32_t tick = atomic_load_explicit(&th->worker->tick, memory_order_relaxed);
	if (t)
		atomic_store_explicit(&th->sampled, 1, memory_order_relaxed); /* a run period */
	if (!t || t != w->task || tick != w->tick) {
		end_hand_off(rt, i, w);
		w->task = t;
		w->tick = tick;
		w->since_ns = now;
		w->next_report_ns = m->stall_ns;
		w->reports = 0;
		return;
	}
	uint64_t stuck = now - w->since_ns;
	if (stuck >= m->handoff_ns)
		hand_off(rt, i, w);
	if (stuck < w->next_report_ns)
		return;
	/* Again when it has lasted twice as long as now. */
	w->next_report_ns = 2 * (now - w->since_ns);
	report(rt, i, w, now);
}

static void *monitor_main(void *arg)
{
	struct weft_runtime *rt = arg;
	struct weft__monitor *m = &rt->monitor;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* the program's signals are not ours */
	weft__asym_prepare();                   /* here, long before the first hand-off needs it */
	m->window_start_ns = weft__mono_ns();
	atomic_store_explicit(&weft__coarse_ms_now, (uint32_t)(m->window_start_ns / 1000000),
	                      memory_order_relaxed);
	struct timespec period = {(time_t)(m->period_ns / 1000000000ull),
	                          (long)(m->period_ns % 1000000000ull)};
	while (!atomic_load_explicit(&m->stop, memory_order_acquire)) {
		weft__futex_wait(&m->stop, 0, &period);
		uint64_t now = weft__mono_ns();
		atomic_store_explicit(&weft__coarse_ms_now, (uint32_t)(now / 1000000),
		                      memory_order_relaxed);
		if (atomic_exchange_explicit(&m->dump_asked, 0, memory_order_acquire))
			weft_dump_tasks(rt,
			                atomic_load_explicit(&m->dump_fd, memory_order_relaxed));
		for (unsigned i = 0; i < rt->nthreads; i++)
			check_worker(rt, i, now);
	}
	return NULL;
}

int weft__monitor_start(struct weft_runtime *rt)
{
	struct weft__monitor *m = &rt->monitor;
	if (rt->cfg.stall_threshold_ms == WEFT_DISABLED)
		return 0;
	/* Now, before any task of rt can record a wait against it. */
	atomic_store_explicit(&weft__coarse_ms_now, (uint32_t)(weft__mono_ns() / 1000000),
	                      memory_order_relaxed);
	pthread_once(&bt_once, install_bt_signal);
	m->stall_ns = (uint64_t)rt->cfg.stall_threshold_ms * 1000000ull;
	m->handoff_ns = rt->cfg.handoff_ms == WEFT_DISABLED
	                        ? UINT64_MAX
	                        : (uint64_t)rt->cfg.handoff_ms * 1000000ull;
	m->period_ns = (m->stall_ns < m->handoff_ns ? m->stall_ns : m->handoff_ns) / 4;
	if (m->period_ns < MIN_PERIOD_NS)
		m->period_ns = MIN_PERIOD_NS;
	if (m->period_ns > MAX_PERIOD_NS)
		m->period_ns = MAX_PERIOD_NS;
	m->handler = rt->cfg.stall_handler;
	m->handler_arg = rt->cfg.stall_handler_arg;
	m->watch = weft__fault(WEFT__FAULT_MONITOR) ? NULL : calloc(rt->nthreads, sizeof *m->watch);
	if (!m->watch)
		return -ENOMEM;
	m->handed_off = 0;
	atomic_init(&m->stop, 0);
	atomic_init(&m->dump_fd, -1);
	atomic_init(&m->dump_asked, 0);
	int rc = pthread_create(&m->thread, NULL, monitor_main, rt);
	if (rc) {
		free(m->watch);
		m->watch = NULL;
		return -rc;
	}
	pthread_setname_np(m->thread, "weft-monitor");
	m->started = true;
	return 0;
}

static void forget_dump_rt(struct weft_runtime *rt);

void weft__monitor_stop(struct weft_runtime *rt)
{
	struct weft__monitor *m = &rt->monitor;
	if (!m->started)
		return;
	forget_dump_rt(rt);
	atomic_store_explicit(&m->stop, 1, memory_order_release);
	weft__futex_wake(&m->stop, 1);
	pthread_join(m->thread, NULL);
	m->started = false;
	free(m->watch);
	m->watch = NULL;
}

/* ------------------------------------------------- dumps on a signal */

static struct weft_runtime *_Atomic dump_rt;

static void on_dump_signal(int sig)
{
	(void)sig;
	int saved = errno;
	struct weft_runtime *rt = atomic_load_explicit(&dump_rt, memory_order_acquire);
	if (rt) {
		atomic_store_explicit(&rt->monitor.dump_asked, 1, memory_order_release);
		weft__futex_wake(&rt->monitor.stop, 1); /* a futex call is async-signal-safe */
	}
	errno = saved;
}

int weft_dump_tasks_on_signal(weft_runtime *rt, int signo, int fd)
{
	if (!rt || fd < 0 || signo <= 0 || signo >= NSIG || signo == WEFT__BT_SIGNAL)
		return -EINVAL;
	if (!rt->monitor.started)
		return -ENOTSUP;
	atomic_store_explicit(&rt->monitor.dump_fd, fd, memory_order_relaxed);
	atomic_store_explicit(&dump_rt, rt, memory_order_release);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_dump_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	return sigaction(signo, &sa, NULL) == 0 ? 0 : -errno;
}

/* The runtime is going away: its signal dumps stop. */
static void forget_dump_rt(struct weft_runtime *rt)
{
	struct weft_runtime *expect = rt;
	atomic_compare_exchange_strong(&dump_rt, &expect, NULL);
}
