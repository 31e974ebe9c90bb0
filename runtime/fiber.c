/*
 * Fiber set-up: builds the first frame a new fiber resumes from, in the exact
 * layout weft__ctx_switch pops (see runtime/arch/switch_*.S), and keeps the
 * sanitizers' view of fibers in step.
 *
 * Invariant: a new fiber's frame sits just below a 16-byte aligned stack top,
 * so that weft__fiber_trampoline starts with an ABI-aligned stack pointer.
 */
#include "fiber.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

void weft__fiber_trampoline(void);

void weft__fiber_make(struct weft__fiber *f, void *lo, size_t size, void (*entry)(void *),
                      void *arg)
{
	uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;

#if defined(__x86_64__)
	uint64_t *frame = (uint64_t *)(top - 64);
	uint32_t mxcsr;
	uint16_t fpcw;
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(fpcw));
	memset(frame, 0, 64);
	memcpy(&frame[0], &mxcsr, sizeof mxcsr);
	memcpy((char *)&frame[0] + 4, &fpcw, sizeof fpcw);
	frame[3] = (uint64_t)(uintptr_t)entry; /* r13 */
	frame[4] = (uint64_t)(uintptr_t)arg;   /* r12 */
	frame[7] = (uint64_t)(uintptr_t)weft__fiber_trampoline;
#elif defined(__aarch64__)
	uint64_t *frame = (uint64_t *)(top - 176);
	uint64_t fpcr;
	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	memset(frame, 0, 176);
	frame[0] = (uint64_t)(uintptr_t)arg;                     /* x19 */
	frame[1] = (uint64_t)(uintptr_t)entry;                   /* x20 */
	frame[11] = (uint64_t)(uintptr_t)weft__fiber_trampoline; /* x30 */
	frame[20] = fpcr;
#else
#error "weft: no context switch for this architecture"
#endif
	f->sp = frame;
	f->stack_lo = lo;
	f->stack_size = size;
#ifdef WEFT__ASAN
	f->asan_fake = NULL;
#endif
#ifdef WEFT__TSAN
	f->tsan = __tsan_create_fiber(0);
	f->tsan_owned = 1;
#endif
}

void weft__fiber_init_thread(struct weft__fiber *f)
{
	memset(f, 0, sizeof *f);
	pthread_attr_t attr;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		void *lo;
		size_t size;
		if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
			f->stack_lo = lo;
			f->stack_size = size;
		}
		pthread_attr_destroy(&attr);
	}
#ifdef WEFT__TSAN
	f->tsan = __tsan_get_current_fiber();
	f->tsan_owned = 0;
#endif
}

void weft__fiber_destroy(struct weft__fiber *f)
{
#ifdef WEFT__TSAN
	if (f->tsan_owned && f->tsan) {
		__tsan_destroy_fiber(f->tsan);
		f->tsan = NULL;
	}
#else
	(void)f;
#endif
}
