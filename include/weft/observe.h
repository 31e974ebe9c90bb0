/*
 * Observability: stall reports from the runtime's monitor.
 *
 * A monitor thread (one per runtime; off with stall_threshold_ms =
 * WEFT_DISABLED, or env WEFT_STALL_MS=off) samples each worker's switch
 * counter. A worker that has run one task without switching for
 * stall_threshold_ms (env WEFT_STALL_MS) is reported once: the task, its
 * spawn site, how long it has run, and either a backtrace of the spinning
 * thread (taken in a signal handler on that thread) or, for a thread
 * blocked in a system call, which call (read from /proc, without
 * signalling the thread: its call is not interrupted). The same stall is
 * reported again when it lasts twice as long as at its last report, and at
 * most 10 reports a minute are made in all (the next one says how many
 * were suppressed). Reports go to stderr, or to config.stall_handler.
 */
#ifndef WEFT_OBSERVE_H
#define WEFT_OBSERVE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_STALL_MAX_FRAMES 32

typedef struct weft_stall_report {
	unsigned worker;  /* index of the stuck worker */
	uint64_t task_id; /* the task it runs */
	const char *name; /* its name ("" when unnamed) */
	const char *file; /* its spawn site */
	int line;
	uint64_t run_ms;                     /* how long it has run without switching (at least) */
	unsigned report;                     /* 1 for a stall's first report, 2, 3... for repeats */
	unsigned suppressed;                 /* reports dropped by the rate limit before this one */
	bool blocked;                        /* in a system call (below), else spinning */
	long syscall;                        /* its number (blocked), else -1 */
	const char *syscall_name;            /* e.g. "nanosleep", or "" when not known */
	void *frames[WEFT_STALL_MAX_FRAMES]; /* spinning: its backtrace */
	int nframes;                         /* 0 when blocked, or none was taken */
} weft_stall_report;

/* Called on the monitor thread, once per report; it must not block for
   long (the monitor checks no other worker meanwhile). The report and its
   strings are valid during the call only. */
typedef void (*weft_stall_handler)(const weft_stall_report *report, void *arg);

/* Writes a report the way the default handler does (to fd). */
void weft_stall_report_print(const weft_stall_report *report, int fd);

#ifdef __cplusplus
}
#endif

#endif
