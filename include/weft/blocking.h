/*
 * weft blocking pool: run code that blocks its thread (a blocking system
 * call, a library without an asynchronous interface, a long computation)
 * without blocking a worker.
 *
 * A job runs fn(arg) on one of the runtime's pool threads. The pool starts
 * threads on demand up to weft_config.max_blocking_threads (default 512);
 * a thread idle for blocking_keepalive_ms (default 10 s) exits; jobs queue
 * when every thread is busy.
 *
 * The handle is a weft_task: weft_join() waits for the job (parking a task,
 * blocking a plain thread) with the same return codes as for a task --
 * WEFT_CANCELED when cancellation was requested before fn returned -- and
 * weft_detach() drops it. weft_cancel() on a job that has not started makes
 * it run with weft_is_cancelled() true, so that it can release its argument
 * and return at once; a started job always runs to completion (the thread
 * cannot be interrupted), though it may poll weft_is_cancelled().
 *
 * Inside a job, weft_runtime_current() is the runtime (weft_spawn_on() into
 * it works), weft_current() is NULL, and waits block the job's thread.
 *
 * At shutdown, jobs that never started still run (with weft_is_cancelled()
 * true), running jobs are waited for within the grace period, and the pool's
 * threads are joined.
 */
#ifndef WEFT_BLOCKING_H
#define WEFT_BLOCKING_H

#include <weft/runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Queues fn(arg) on rt's blocking pool (NULL: the runtime of the calling
   task or job). Returns the job's handle; NULL when fn is NULL, there is no
   runtime, rt is shutting down, or no memory or thread could be had (then
   nothing was queued). weft_spawn_blocking and weft_spawn_blocking_on are
   macros that record the caller's file and line. */
weft_task *weft_spawn_blocking_at(weft_runtime *rt, weft_fn fn, void *arg, const char *file,
                                  int line);

#define weft_spawn_blocking(fn, arg) weft_spawn_blocking_at(NULL, (fn), (arg), __FILE__, __LINE__)
#define weft_spawn_blocking_on(rt, fn, arg)                                                        \
	weft_spawn_blocking_at((rt), (fn), (arg), __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif

#endif
