/*
 * weft runtime: configuration, creation, block_on and shutdown.
 *
 * A runtime owns N worker threads that run tasks. Its memory may be released
 * with weft_runtime_free() once weft_runtime_shutdown() returned (free shuts
 * down first when that was not done).
 */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include <weft/observe.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_runtime weft_runtime;
typedef struct weft_task weft_task;
typedef void *(*weft_fn)(void *arg);

/* A config field set to WEFT_DISABLED turns that optional feature off. */
#define WEFT_DISABLED 0xffffffffu

#define WEFT_IO_AUTO 0
#define WEFT_IO_URING 1
#define WEFT_IO_EPOLL 2

/* Limits checked by weft_runtime_new(). */
#define WEFT_MAX_WORKERS 1024
#define WEFT_MIN_STACK_SIZE (16u * 1024)
#define WEFT_MAX_STACK_SIZE (256u * 1024 * 1024)

typedef struct weft_config {
	unsigned workers;                 /* default: number of CPUs; env WEFT_WORKERS */
	size_t stack_size;                /* usable stack per task, default 64 KiB */
	unsigned max_blocking_threads;    /* default 512 */
	unsigned blocking_keepalive_ms;   /* default 10000 */
	unsigned global_queue_interval;   /* ticks between injector checks, default 61 */
	unsigned shutdown_grace_ms;       /* default 5000 */
	unsigned stall_threshold_ms;      /* default 100; WEFT_DISABLED: no monitor; env
	                                     WEFT_STALL_MS (a number, or "off") */
	unsigned handoff_ms;              /* default 10: a stuck worker's work goes to the spare */
	int io_backend;                   /* WEFT_IO_AUTO (default), _URING, _EPOLL; env WEFT_IO */
	unsigned spin_us;                 /* how long an idle worker looks for work before it
	                                     sleeps, default 50; WEFT_DISABLED: sleep at once */
	weft_stall_handler stall_handler; /* NULL: stall reports go to stderr (observe.h) */
	void *stall_handler_arg;
} weft_config;

/* Fills *cfg with the defaults, then applies environment overrides
   (WEFT_WORKERS; WEFT_IO=uring|epoll). A zero field left in a config also means "the default". */
void weft_config_init(weft_config *cfg);

/* Starts the workers. cfg may be NULL (defaults). Returns NULL on a bad config
   (workers > WEFT_MAX_WORKERS, stack_size outside [WEFT_MIN_STACK_SIZE,
   WEFT_MAX_STACK_SIZE]) or when memory or threads run out.

   I/O backend: WEFT_IO_AUTO takes io_uring when it works here (one ring per
   worker) and epoll otherwise (compiled without liburing, disabled by
   kernel.io_uring_disabled, refused by seccomp, an old kernel);
   WEFT_IO_URING insists (NULL with errno ENOSYS when io_uring does not
   work); WEFT_IO_EPOLL never uses io_uring. */
weft_runtime *weft_runtime_new(const weft_config *cfg);

/* The backend rt chose: WEFT_IO_URING or WEFT_IO_EPOLL (-EINVAL for NULL). */
int weft_runtime_io_backend(const weft_runtime *rt);

/* Runs fn(arg) as a task of rt and waits for it: from a plain thread the
   thread blocks, from a task the task parks. Returns what weft_join() returns
   for that task (0, WEFT_CANCELED, -ECANCELED, ...); -EINVAL for a NULL rt or
   fn; -ESHUTDOWN when rt no longer accepts tasks; -ENOMEM. */
int weft_block_on(weft_runtime *rt, weft_fn fn, void *arg, void **result);

/* Stops accepting spawns, cancels every task, waits up to grace_ms (negative:
   the config's shutdown_grace_ms) for them to finish, then stops and joins the
   workers. Returns 0; -ETIMEDOUT if tasks were still alive after the grace
   period (they are named on stderr and their memory is deliberately not
   freed); -EDEADLK when called from one of rt's own tasks; -EINVAL for NULL.
   A second call returns the first one's result. */
int weft_runtime_shutdown(weft_runtime *rt, int64_t grace_ms);

/* Releases the runtime's memory (shutting it down first if needed). */
void weft_runtime_free(weft_runtime *rt);

/* The runtime of the calling task; NULL outside one. */
weft_runtime *weft_runtime_current(void);

/* new + block_on + shutdown + free. Returns block_on's result when it is not
   0, else shutdown's; -EINVAL/-ENOMEM when the runtime could not start. */
int weft_run(weft_fn main_fn, void *arg, const weft_config *cfg, void **result);

#ifdef __cplusplus
}
#endif

#endif
