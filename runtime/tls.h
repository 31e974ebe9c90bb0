/*
 * The runtime's thread-local state, read through one accessor.
 *
 * A task may park on one thread and resume on another. Within one C function
 * the compiler assumes the thread never changes, so it may compute the
 * address of a thread-local once and keep it across a call that switches
 * fibers -- and then read the old thread's variable. weft__tls() is
 * noinline/noipa with an asm barrier, so every call really recomputes the
 * address; runtime code calls it again after every suspension point and
 * never keeps the pointer across one.
 */
#ifndef WEFT_RUNTIME_TLS_H
#define WEFT_RUNTIME_TLS_H

struct weft_runtime;
struct weft_task;
struct weft__thread;
struct weft_deadline;

struct weft__tls {
	struct weft__thread *thread; /* the worker thread, or NULL */
	struct weft_task *task;      /* the running task, or NULL */
	struct weft_task *job;       /* the blocking job this pool thread runs, or NULL */
	struct weft_runtime *rt;     /* the runtime this thread serves, or NULL */
	struct weft_deadline *scope; /* a plain thread's innermost deadline scope */
	unsigned deep_spawns;        /* a plain thread's spawns into a deep injector (task.c) */
};

#if defined(__has_attribute)
#if __has_attribute(noipa)
#define WEFT__NOIPA __attribute__((noipa))
#endif
#endif
#ifndef WEFT__NOIPA
#define WEFT__NOIPA
#endif

__attribute__((noinline)) WEFT__NOIPA struct weft__tls *weft__tls(void);

/* errno of the calling thread. glibc declares __errno_location() const, so
   a compiler may compute &errno once and reuse it after a fiber switch; the
   runtime saves and restores errno across switches only through this. */
__attribute__((noinline)) WEFT__NOIPA int *weft__errno(void);

#endif
