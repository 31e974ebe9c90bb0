/*
 * weft tasks: spawn, join, detach, cancel, yield, shields and pinning.
 *
 * A task is a plain function void *fn(void *arg) running on its own stack.
 * Handle rule: weft_spawn*() returns a handle that must be consumed exactly
 * once, by weft_join() (when it returns 0 or WEFT_CANCELED) or weft_detach().
 * After that the handle may point to freed memory.
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include <stdbool.h>
#include <stddef.h>

#include <weft/runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_spawn_opts {
	const char *name;  /* shown in stall reports and task dumps; not copied */
	size_t stack_size; /* usable stack; 0: the runtime's default */
	bool pinned;       /* never migrates from the worker it first runs on */
} weft_spawn_opts;

/* Spawns fn(arg) on rt (NULL: the calling task's runtime). Returns the task's
   handle, or NULL when fn is NULL, rt is NULL outside a runtime, the options
   are invalid (stack_size out of range), the runtime is shutting down, or
   memory ran out. The macros below record the spawn site. */
weft_task *weft_spawn_at(weft_runtime *rt, weft_fn fn, void *arg, const weft_spawn_opts *opts,
                         const char *file, int line);

#define weft_spawn(fn, arg) weft_spawn_at(NULL, (fn), (arg), NULL, __FILE__, __LINE__)
#define weft_spawn_on(rt, fn, arg) weft_spawn_at((rt), (fn), (arg), NULL, __FILE__, __LINE__)
#define weft_spawn_ex(rt, fn, arg, opts)                                                           \
	weft_spawn_at((rt), (fn), (arg), (opts), __FILE__, __LINE__)

#define WEFT_CANCELED 1

/* Waits for t to finish and consumes the handle; *result (if result is not
   NULL) gets fn's return value. Returns 0 if fn returned without cancellation
   having been requested, WEFT_CANCELED if it was requested before fn returned.
   If the caller's own wait is cancelled first, returns -ECANCELED and the
   handle stays valid (join it again inside a shield, or detach it).
   -EINVAL: NULL, or a handle already joined, being joined, or detached (where
   detectable: while the task is still alive). -EDEADLK: a task joining
   itself. */
int weft_join(weft_task *t, void **result);

/* Drops the handle; the task keeps running and frees itself when done. */
void weft_detach(weft_task *t);

/* Requests cancellation. Idempotent, callable from any thread, never waits.
   The task's current or next wait returns -ECANCELED (and so do the later
   ones, outside shields). A task cancelled before it started still runs:
   its argument may own what only it can release. */
void weft_cancel(weft_task *t);

/* Reschedules the calling task behind the other ready tasks (a wait: it
   returns -ECANCELED in a cancelled task, after yielding). Outside a task it
   yields the thread and returns 0. */
int weft_yield(void);

/* Yields only when the task's cooperative budget (128 waits, spent by every
   wait and by this call) is used up, or its time slice (about 250 us of
   running) -- then behind the tasks that sleep and wake (a slow lane);
   otherwise returns at once. Same return values as weft_yield. */
int weft_yield_maybe(void);

/* The calling task, or NULL outside a task. */
weft_task *weft_current(void);

/* Whether cancellation was requested for the calling task (false outside a
   task). Shields do not hide it: cleanup code may ask. */
bool weft_is_cancelled(void);

/* Between push and pop, waits ignore cancellation (for cleanup that must
   finish). Scopes nest. Outside a task both do nothing. Returns 0, or
   -EOVERFLOW past 65535 nested scopes. Popping with no scope open, or
   returning from the task with one open, aborts with a message. */
int weft_shield_push(void);
void weft_shield_pop(void);

/* Between push and pop the task stays on the worker thread it is on (for
   thread-bound state: a pthread mutex, a library's per-thread error queue).
   Same nesting, return values and misuse rules as shields. */
int weft_pin_push(void);
void weft_pin_pop(void);

#ifdef __cplusplus
}
#endif

#endif
