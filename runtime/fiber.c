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

/* The floating-point control state new fibers start with: the ABI defaults
   until the first scheduler thread captures its own (reading it per fiber
   would cost more than the rest of the set-up: fnstcw is slow). */
#if defined(__x86_64__)
static uint32_t initial_mxcsr = 0x1f80;
static uint16_t initial_fpcw = 0x037f;
#elif defined(__aarch64__)
static uint64_t initial_fpcr;
#endif
static pthread_once_t capture_once = PTHREAD_ONCE_INIT;

static void capture_fp_control(void)
{
#if defined(__x86_64__)
	__asm__ volatile("stmxcsr %0" : "=m"(initial_mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(initial_fpcw));
#elif defined(__aarch64__)
	__asm__ volatile("mrs %0, fpcr" : "=r"(initial_fpcr));
#endif
}

void weft__fiber_make(struct weft__fiber *f, void *lo, size_t size, void (*entry)(void *),
                      void *arg)
{
	uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;

#if defined(__x86_64__)
	uint64_t *frame = (uint64_t *)(top - 64);
	frame[0] = initial_mxcsr | (uint64_t)initial_fpcw << 32;
	frame[1] = frame[2] = frame[5] = frame[6] = 0; /* r15, r14, rbx, rbp */
	frame[3] = (uint64_t)(uintptr_t)entry;         /* r13 */
	frame[4] = (uint64_t)(uintptr_t)arg;           /* r12 */
	frame[7] = (uint64_t)(uintptr_t)weft__fiber_trampoline;
#elif defined(__aarch64__)
	uint64_t *frame = (uint64_t *)(top - 176);
	memset(frame, 0, 176);
	frame[0] = (uint64_t)(uintptr_t)arg;                     /* x19 */
	frame[1] = (uint64_t)(uintptr_t)entry;                   /* x20 */
	frame[11] = (uint64_t)(uintptr_t)weft__fiber_trampoline; /* x30 */
	frame[20] = initial_fpcr;
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
	pthread_once(&capture_once, capture_fp_control);
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
