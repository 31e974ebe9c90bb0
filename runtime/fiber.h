/*
 * Fibers: an execution context (a stack pointer) and the switch between two.
 *
 * A fiber is either a task's context on a pooled stack or a worker thread's
 * own scheduler context on the thread's native stack. weft__fiber_switch()
 * saves the running context into `from` and resumes `to`; it returns when
 * something switches back to `from`, possibly on another OS thread.
 *
 * The sanitizers need to be told about every switch (ASan keeps a fake stack
 * per context and must know the bounds of the stack it lands on; TSan keeps
 * a shadow call stack and a clock per fiber), so the switch wraps the
 * assembly with their fiber hooks when built with them.
 */
#ifndef WEFT_RUNTIME_FIBER_H
#define WEFT_RUNTIME_FIBER_H

#include <stddef.h>

#include "sanitize.h"

#ifdef WEFT__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT__TSAN
#include <sanitizer/tsan_interface.h>
#endif

struct weft__fiber {
	void *sp;          /* saved stack pointer while not running */
	void *stack_lo;    /* lowest usable address of the stack */
	size_t stack_size; /* usable bytes above stack_lo */
#ifdef WEFT__ASAN
	void *asan_fake; /* ASan's fake stack of this context while suspended */
#endif
#ifdef WEFT__TSAN
	void *tsan;     /* TSan's fiber object */
	int tsan_owned; /* created by us (task fiber), destroyed with it */
#endif
};

void weft__ctx_switch(void **save_sp, void *load_sp);

/* Prepares f to run entry(arg) on [lo, lo + size) at its first switch-in. */
void weft__fiber_make(struct weft__fiber *f, void *lo, size_t size, void (*entry)(void *),
                      void *arg);

/* Describes the calling thread's own stack as a fiber (a scheduler context). */
void weft__fiber_init_thread(struct weft__fiber *f);

/* Releases sanitizer state of a task fiber that will never run again. */
void weft__fiber_destroy(struct weft__fiber *f);

/* Must be the first call of a fiber's entry function. */
static inline void weft__fiber_started(void)
{
#ifdef WEFT__ASAN
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

static inline void weft__fiber_switch(struct weft__fiber *from, struct weft__fiber *to)
{
#ifdef WEFT__ASAN
	__sanitizer_start_switch_fiber(&from->asan_fake, to->stack_lo, to->stack_size);
#endif
#ifdef WEFT__TSAN
	__tsan_switch_to_fiber(to->tsan, 0);
#endif
	weft__ctx_switch(&from->sp, to->sp);
#ifdef WEFT__ASAN
	__sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
}

/* The last switch out of a fiber that has finished: its ASan fake stack is
   released instead of saved. */
static inline void weft__fiber_exit_to(struct weft__fiber *from, struct weft__fiber *to)
{
#ifdef WEFT__ASAN
	__sanitizer_start_switch_fiber(NULL, to->stack_lo, to->stack_size);
#endif
#ifdef WEFT__TSAN
	__tsan_switch_to_fiber(to->tsan, 0);
#endif
	weft__ctx_switch(&from->sp, to->sp);
	__builtin_unreachable();
}

#endif
