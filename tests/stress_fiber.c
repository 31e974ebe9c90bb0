/*
 * The fiber context switch itself (runtime/arch/switch_*.S and the first
 * frame weft__fiber_make builds), through the internal API of
 * runtime/fiber.h, without the scheduler, so that a broken switch shows up
 * here as a precise message instead of as a crash somewhere in the runtime.
 * Written to run natively on x86-64, under qemu-user on aarch64, and under
 * TSan and ASan (the sanitizer fiber hooks are inside weft__fiber_switch).
 *
 *   (a) ping-pong between the thread's context and a fiber, passing values
 *       through shared memory both ways;
 *   (b) every callee-saved register (x86-64: rbx rbp r12-r15; aarch64:
 *       x19-x28 x29 d8-d15) holds its value across a switch to a fiber that
 *       loads other values into all of them -- checked by an assembly helper,
 *       because C cannot name these registers;
 *   (c) the floating-point control state (MXCSR and the x87 control word,
 *       FPCR) is per fiber: a fiber's rounding mode does not leak into the
 *       thread, and the thread's does not leak into the fiber;
 *   (d) a fiber's first run starts on an ABI-aligned stack inside its bounds,
 *       even when the bounds given to weft__fiber_make are not aligned;
 *   (e) many fibers on malloc'd stacks, switching directly from one to the
 *       next in a ring, each keeping its own locals.
 * A plain main() program; exits 0 on success, prints the failure and exits 1.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/fiber.h"
#include "tests/common.h"

#ifdef WEFT__ASAN
#include <sanitizer/asan_interface.h>
#endif

#define STACK_SIZE (64 * 1024)

static struct weft__fiber thread_fiber; /* the main thread's own context */
static const char *volatile current_test = "start-up";

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("stress_fiber: FAIL: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* A stack from malloc; released by stack_free. */
static char *stack_alloc(size_t size)
{
	char *p = malloc(size);
	if (!p)
		fail("out of memory for a %zu-byte stack", size);
	return p;
}

static void stack_free(char *p, size_t size)
{
#ifdef WEFT__ASAN
	/* Frames of fibers that never returned leave their redzones poisoned. */
	ASAN_UNPOISON_MEMORY_REGION(p, size);
#else
	(void)size;
#endif
	free(p);
}

/* ------------------------------------------------------------ (a) ping-pong */

static struct weft__fiber pp_fiber;
static long pp_in, pp_out, pp_runs;
static int pp_stop;

static void pp_entry(void *arg)
{
	weft__fiber_started();
	long expect = (long)(intptr_t)arg; /* lives on this fiber's stack */
	while (!pp_stop) {
		if (pp_in != expect)
			fail("ping-pong: fiber read %ld, expected %ld", pp_in, expect);
		pp_out = pp_in * 2 + 1;
		pp_runs++;
		expect++;
		weft__fiber_switch(&pp_fiber, &thread_fiber);
	}
	weft__fiber_exit_to(&pp_fiber, &thread_fiber);
}

static void test_ping_pong(void)
{
	long n = test_scale(1000000);
	char *stack = stack_alloc(STACK_SIZE);
	weft__fiber_make(&pp_fiber, stack, STACK_SIZE, pp_entry, (void *)(intptr_t)0);
	for (long i = 0; i < n; i++) {
		pp_in = i;
		pp_out = -1;
		weft__fiber_switch(&thread_fiber, &pp_fiber);
		if (pp_out != i * 2 + 1)
			fail("ping-pong: round %ld: thread read %ld, expected %ld", i, pp_out,
			     i * 2 + 1);
	}
	pp_stop = 1;
	weft__fiber_switch(&thread_fiber, &pp_fiber);
	if (pp_runs != n)
		fail("ping-pong: fiber ran %ld times, expected %ld", pp_runs, n);
	weft__fiber_destroy(&pp_fiber);
	stack_free(stack, STACK_SIZE);
	printf("stress_fiber: (a) %ld ping-pong round trips\n", n);
}

/* ---------------------------------------------------- (b) callee-saved regs */

/*
 * int check_callee_saved(switch_fn, from, to, vals): saves the caller's
 * callee-saved registers, loads vals[i] into register i (order of
 * callee_saved_names), calls switch_fn(from, to), and when that returns
 * compares every register with vals[i]. Returns a mask with bit i set for
 * each register that changed, after restoring the caller's registers.
 */
typedef void (*switch_fn)(struct weft__fiber *from, struct weft__fiber *to);
int check_callee_saved(switch_fn fn, struct weft__fiber *from, struct weft__fiber *to,
                       const uint64_t *vals);

#if defined(__x86_64__)

#define NCALLEE 6
static const char *const callee_saved_names[NCALLEE] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};

__asm__("	.text\n"
        "	.macro chk reg, off, bit\n"
        "	cmpq \\off(%rcx), \\reg\n"
        "	je 1f\n"
        "	orl $\\bit, %eax\n"
        "1:\n"
        "	.endm\n"
        "	.globl check_callee_saved\n"
        "	.hidden check_callee_saved\n"
        "	.type check_callee_saved, @function\n"
        "	.p2align 4\n"
        "check_callee_saved:\n"
        "	.cfi_startproc\n"
        "	pushq %rbp\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	.cfi_rel_offset %rbp, 0\n"
        "	pushq %rbx\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	.cfi_rel_offset %rbx, 0\n"
        "	pushq %r12\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	.cfi_rel_offset %r12, 0\n"
        "	pushq %r13\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	.cfi_rel_offset %r13, 0\n"
        "	pushq %r14\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	.cfi_rel_offset %r14, 0\n"
        "	pushq %r15\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	.cfi_rel_offset %r15, 0\n"
        /* vals; the seventh push also aligns the stack for the call */
        "	pushq %rcx\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	movq %rdi, %rax\n"
        "	movq %rsi, %rdi\n"
        "	movq %rdx, %rsi\n"
        "	movq 0(%rcx), %rbx\n"
        "	movq 8(%rcx), %rbp\n"
        "	movq 16(%rcx), %r12\n"
        "	movq 24(%rcx), %r13\n"
        "	movq 32(%rcx), %r14\n"
        "	movq 40(%rcx), %r15\n"
        "	callq *%rax\n"
        "	movq (%rsp), %rcx\n"
        "	xorl %eax, %eax\n"
        "	chk %rbx, 0, 1\n"
        "	chk %rbp, 8, 2\n"
        "	chk %r12, 16, 4\n"
        "	chk %r13, 24, 8\n"
        "	chk %r14, 32, 16\n"
        "	chk %r15, 40, 32\n"
        "	popq %rcx\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	popq %r15\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	popq %r14\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	popq %r13\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	popq %r12\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	popq %rbx\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	popq %rbp\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	ret\n"
        "	.cfi_endproc\n"
        "	.size check_callee_saved, .-check_callee_saved\n"
        "	.purgem chk\n");

#elif defined(__aarch64__)

#define NCALLEE 19
static const char *const callee_saved_names[NCALLEE] = {
        "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28",
        "x29", "d8",  "d9",  "d10", "d11", "d12", "d13", "d14", "d15"};

__asm__("	.text\n"
        "	.macro chk_x reg, off, bit\n"
        "	ldr x10, [x3, #\\off]\n"
        "	cmp \\reg, x10\n"
        "	cset w11, ne\n"
        "	orr w0, w0, w11, lsl #\\bit\n"
        "	.endm\n"
        "	.macro chk_d reg, off, bit\n"
        "	fmov x12, \\reg\n"
        "	ldr x10, [x3, #\\off]\n"
        "	cmp x12, x10\n"
        "	cset w11, ne\n"
        "	orr w0, w0, w11, lsl #\\bit\n"
        "	.endm\n"
        "	.globl check_callee_saved\n"
        "	.hidden check_callee_saved\n"
        "	.type check_callee_saved, %function\n"
        "	.p2align 4\n"
        "check_callee_saved:\n"
        "	.cfi_startproc\n"
        "	stp x29, x30, [sp, #-176]!\n"
        "	.cfi_def_cfa_offset 176\n"
        "	.cfi_offset x29, -176\n"
        "	.cfi_offset x30, -168\n"
        "	stp x19, x20, [sp, #16]\n"
        "	stp x21, x22, [sp, #32]\n"
        "	stp x23, x24, [sp, #48]\n"
        "	stp x25, x26, [sp, #64]\n"
        "	stp x27, x28, [sp, #80]\n"
        "	.cfi_offset x19, -160\n"
        "	.cfi_offset x20, -152\n"
        "	.cfi_offset x21, -144\n"
        "	.cfi_offset x22, -136\n"
        "	.cfi_offset x23, -128\n"
        "	.cfi_offset x24, -120\n"
        "	.cfi_offset x25, -112\n"
        "	.cfi_offset x26, -104\n"
        "	.cfi_offset x27, -96\n"
        "	.cfi_offset x28, -88\n"
        "	stp d8, d9, [sp, #96]\n"
        "	stp d10, d11, [sp, #112]\n"
        "	stp d12, d13, [sp, #128]\n"
        "	stp d14, d15, [sp, #144]\n"
        "	.cfi_offset d8, -80\n"
        "	.cfi_offset d9, -72\n"
        "	.cfi_offset d10, -64\n"
        "	.cfi_offset d11, -56\n"
        "	.cfi_offset d12, -48\n"
        "	.cfi_offset d13, -40\n"
        "	.cfi_offset d14, -32\n"
        "	.cfi_offset d15, -24\n"
        "	str x3, [sp, #160]\n"
        "	mov x9, x0\n"
        "	mov x0, x1\n"
        "	mov x1, x2\n"
        "	ldp x19, x20, [x3, #0]\n"
        "	ldp x21, x22, [x3, #16]\n"
        "	ldp x23, x24, [x3, #32]\n"
        "	ldp x25, x26, [x3, #48]\n"
        "	ldp x27, x28, [x3, #64]\n"
        "	ldr x29, [x3, #80]\n"
        "	ldp d8, d9, [x3, #88]\n"
        "	ldp d10, d11, [x3, #104]\n"
        "	ldp d12, d13, [x3, #120]\n"
        "	ldp d14, d15, [x3, #136]\n"
        "	blr x9\n"
        "	ldr x3, [sp, #160]\n"
        "	mov w0, #0\n"
        "	chk_x x19, 0, 0\n"
        "	chk_x x20, 8, 1\n"
        "	chk_x x21, 16, 2\n"
        "	chk_x x22, 24, 3\n"
        "	chk_x x23, 32, 4\n"
        "	chk_x x24, 40, 5\n"
        "	chk_x x25, 48, 6\n"
        "	chk_x x26, 56, 7\n"
        "	chk_x x27, 64, 8\n"
        "	chk_x x28, 72, 9\n"
        "	chk_x x29, 80, 10\n"
        "	chk_d d8, 88, 11\n"
        "	chk_d d9, 96, 12\n"
        "	chk_d d10, 104, 13\n"
        "	chk_d d11, 112, 14\n"
        "	chk_d d12, 120, 15\n"
        "	chk_d d13, 128, 16\n"
        "	chk_d d14, 136, 17\n"
        "	chk_d d15, 144, 18\n"
        "	ldp d8, d9, [sp, #96]\n"
        "	ldp d10, d11, [sp, #112]\n"
        "	ldp d12, d13, [sp, #128]\n"
        "	ldp d14, d15, [sp, #144]\n"
        "	ldp x19, x20, [sp, #16]\n"
        "	ldp x21, x22, [sp, #32]\n"
        "	ldp x23, x24, [sp, #48]\n"
        "	ldp x25, x26, [sp, #64]\n"
        "	ldp x27, x28, [sp, #80]\n"
        "	ldp x29, x30, [sp], #176\n"
        "	.cfi_def_cfa_offset 0\n"
        "	ret\n"
        "	.cfi_endproc\n"
        "	.size check_callee_saved, .-check_callee_saved\n"
        "	.purgem chk_x\n"
        "	.purgem chk_d\n");

#else
#error "stress_fiber: no callee-saved register check for this architecture"
#endif

/* The switch as a real function, so the assembly helper can call it. */
__attribute__((noinline)) static void do_switch(struct weft__fiber *from, struct weft__fiber *to)
{
	weft__fiber_switch(from, to);
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Distinct values for every register, side (0 thread, 1 fiber) and round. */
static void fill_vals(uint64_t *vals, int side, long round)
{
	for (int i = 0; i < NCALLEE; i++)
		vals[i] = mix64(((uint64_t)round << 16) ^ ((uint64_t)side << 8) ^ (uint64_t)i);
}

static void report_regs(const char *who, long round, int mask)
{
	char buf[256] = "";
	for (int i = 0; i < NCALLEE; i++)
		if (mask & (1 << i)) {
			strncat(buf, " ", sizeof buf - strlen(buf) - 1);
			strncat(buf, callee_saved_names[i], sizeof buf - strlen(buf) - 1);
		}
	fail("callee-saved: round %ld: the %s's registers changed across a switch:%s", round, who,
	     buf);
}

static struct weft__fiber cs_fiber;
static int cs_stop;

static void cs_entry(void *arg)
{
	(void)arg;
	weft__fiber_started();
	uint64_t vals[NCALLEE];
	for (long round = 0; !cs_stop; round++) {
		fill_vals(vals, 1, round);
		int mask = check_callee_saved(do_switch, &cs_fiber, &thread_fiber, vals);
		if (mask)
			report_regs("fiber", round, mask);
	}
	weft__fiber_exit_to(&cs_fiber, &thread_fiber);
}

static void test_callee_saved(void)
{
	long rounds = test_scale(10000);
	char *stack = stack_alloc(STACK_SIZE);
	uint64_t vals[NCALLEE];
	weft__fiber_make(&cs_fiber, stack, STACK_SIZE, cs_entry, NULL);
	for (long round = 0; round < rounds; round++) {
		fill_vals(vals, 0, round);
		int mask = check_callee_saved(do_switch, &thread_fiber, &cs_fiber, vals);
		if (mask)
			report_regs("thread", round, mask);
	}
	/* Resume the fiber once more so that it checks its last round too. */
	cs_stop = 1;
	weft__fiber_switch(&thread_fiber, &cs_fiber);
	weft__fiber_destroy(&cs_fiber);
	stack_free(stack, STACK_SIZE);
	printf("stress_fiber: (b) %d callee-saved registers kept over %ld round trips\n", NCALLEE,
	       rounds);
}

/* ---------------------------------------------------- (c) FP control state */

enum { RND_NEAREST, RND_UP, RND_TOWARD_ZERO };

/* Sets the rounding mode, and checks it (describing what was found), in every
   control register the switch keeps per fiber: MXCSR and the x87 control
   word on x86-64, FPCR on aarch64. */
#if defined(__x86_64__)
static const unsigned x86_rc[] = {[RND_NEAREST] = 0, [RND_UP] = 2, [RND_TOWARD_ZERO] = 3};
static const char *const rnd_names[] = {"nearest", "down", "up", "toward-zero"};

static void fp_set_mode(int mode)
{
	uint32_t mxcsr;
	uint16_t cw;
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	mxcsr = (mxcsr & ~(3u << 13)) | x86_rc[mode] << 13;
	cw = (uint16_t)((cw & ~(3u << 10)) | x86_rc[mode] << 10);
	__asm__ volatile("ldmxcsr %0" ::"m"(mxcsr));
	__asm__ volatile("fldcw %0" ::"m"(cw));
}

static int fp_mode_is(int mode, char *desc, size_t len)
{
	uint32_t mxcsr;
	uint16_t cw;
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	unsigned sse = (mxcsr >> 13) & 3, x87 = (cw >> 10) & 3;
	snprintf(desc, len, "sse=%s x87=%s", rnd_names[sse], rnd_names[x87]);
	return sse == x86_rc[mode] && x87 == x86_rc[mode];
}

/* 1/3 in the current mode, in each unit whose rounding is per fiber. */
struct third {
	double d;
	long double ld; /* x87 */
};
#elif defined(__aarch64__)
static const unsigned a64_rmode[] = {[RND_NEAREST] = 0, [RND_UP] = 1, [RND_TOWARD_ZERO] = 3};
static const char *const rnd_names[] = {"nearest", "up", "down", "toward-zero"};

static void fp_set_mode(int mode)
{
	uint64_t fpcr;
	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	fpcr = (fpcr & ~(3ull << 22)) | (uint64_t)a64_rmode[mode] << 22;
	__asm__ volatile("msr fpcr, %0" ::"r"(fpcr));
}

static int fp_mode_is(int mode, char *desc, size_t len)
{
	uint64_t fpcr;
	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	unsigned rm = (fpcr >> 22) & 3;
	snprintf(desc, len, "fpcr=%s", rnd_names[rm]);
	return rm == a64_rmode[mode];
}

struct third {
	double d;
	long double ld; /* IEEE quad in software, rounds by FPCR too */
};
#endif

static struct third third_now(void)
{
	volatile double one = 1.0, three = 3.0;
	volatile long double lone = 1.0L, lthree = 3.0L;
	struct third t = {one / three, lone / lthree};
	return t;
}

static void expect_mode(const char *who, int mode)
{
	char desc[64];
	if (!fp_mode_is(mode, desc, sizeof desc))
		fail("fp control: %s should round %s, has %s", who,
		     mode == RND_UP            ? "up"
		     : mode == RND_TOWARD_ZERO ? "toward zero"
		                               : "to nearest",
		     desc);
}

static struct weft__fiber fp_fiber;
static struct third fp_fiber_third;

static void fp_entry(void *arg)
{
	(void)arg;
	weft__fiber_started();
	expect_mode("a new fiber (made while the thread rounded to nearest)", RND_NEAREST);
	fp_set_mode(RND_TOWARD_ZERO);
	fp_fiber_third = third_now();
	weft__fiber_switch(&fp_fiber, &thread_fiber);

	expect_mode("the fiber after it was resumed", RND_TOWARD_ZERO);
	struct third t = third_now();
	if (t.d != fp_fiber_third.d || t.ld != fp_fiber_third.ld)
		fail("fp control: the fiber's 1/3 changed across a switch");
	weft__fiber_exit_to(&fp_fiber, &thread_fiber);
}

static void test_fp_control(void)
{
	char desc[64];
	if (!fp_mode_is(RND_NEAREST, desc, sizeof desc))
		fail("fp control: the thread does not start rounding to nearest (%s)", desc);

	/* Made in the default mode, so that it starts in it whether new fibers
	   copy their creator's mode or the one captured at start-up. */
	char *stack = stack_alloc(STACK_SIZE);
	weft__fiber_make(&fp_fiber, stack, STACK_SIZE, fp_entry, NULL);
	fp_set_mode(RND_UP);
	weft__fiber_switch(&thread_fiber, &fp_fiber);

	/* The fiber switched to toward-zero and back to us. */
	expect_mode("the thread after its fiber changed the mode", RND_UP);
	struct third up = third_now();
	/* 1/3 is inexact: rounding up gives the upper neighbour, toward zero the
	   lower, so the two computations must really have run in their modes. */
	if (!(up.d > fp_fiber_third.d) || !(up.ld > fp_fiber_third.ld))
		fail("fp control: 1/3 rounded up (%a, %La) is not above 1/3 rounded toward zero "
		     "(%a, %La)",
		     up.d, up.ld, fp_fiber_third.d, fp_fiber_third.ld);

	weft__fiber_switch(&thread_fiber, &fp_fiber);
	expect_mode("the thread after its fiber finished", RND_UP);
	fp_set_mode(RND_NEAREST);
	expect_mode("the thread after restoring its mode", RND_NEAREST);

	weft__fiber_destroy(&fp_fiber);
	stack_free(stack, STACK_SIZE);
	printf("stress_fiber: (c) rounding mode kept per fiber\n");
}

/* ------------------------------------------- (d) first-run stack alignment */

/* What a fiber found about its first frames; reported by the thread, since
   printing on a misaligned stack can itself crash. */
struct frame_report {
	uintptr_t frame, local; /* frame address, address of an _Alignas(16) local */
};

struct align_case {
	struct weft__fiber f;
	char *lo;
	size_t size;
	int ran;
	struct frame_report entry, callee;
};

/* Keeps the compiler from proving anything about an address. */
static inline uintptr_t opaque_addr(uintptr_t a)
{
	__asm__ volatile("" : "+r"(a));
	return a;
}

/* The frame of a function called from a fiber's entry function. The
   compiler does not realign for _Alignas(16) (the ABI promises that much),
   so the local's address shows the real alignment. */
__attribute__((noinline)) static struct frame_report probe_frame(void)
{
	_Alignas(16) char probe[16];
	struct frame_report r = {opaque_addr((uintptr_t)__builtin_frame_address(0)),
	                         opaque_addr((uintptr_t)probe)};
	return r;
}

/* NULL if the report is what the ABI promises on [lo, lo + size). */
static const char *frame_error(struct frame_report r, const char *lo, size_t size)
{
	if (r.frame % 16)
		return "frame address not 16-byte aligned";
	if (r.local % 16)
		return "_Alignas(16) local not 16-byte aligned";
	if (r.frame < (uintptr_t)lo || r.frame >= (uintptr_t)lo + size)
		return "frame outside the fiber's stack";
	return NULL;
}

static void check_frame(const char *who, struct frame_report r, const char *lo, size_t size)
{
	const char *err = frame_error(r, lo, size);
	if (err)
		fail("alignment: %s on [%p, +%zu): %s (frame %#lx, local %#lx)", who,
		     (const void *)lo, size, err, (unsigned long)r.frame, (unsigned long)r.local);
}

static void align_entry(void *arg)
{
	struct align_case *c = arg;
	weft__fiber_started();
	/* The entry's own frame, as the trampoline left it, and a callee's. */
	_Alignas(16) char probe[16];
	c->entry.frame = opaque_addr((uintptr_t)__builtin_frame_address(0));
	c->entry.local = opaque_addr((uintptr_t)probe);
	c->callee = probe_frame();
	c->ran = 1;
	weft__fiber_exit_to(&c->f, &thread_fiber);
}

static void test_alignment(void)
{
	/* Every misalignment of the bottom and of the size. */
	enum { CASES = 32 };
	static struct align_case cases[CASES];
	for (int i = 0; i < CASES; i++) {
		struct align_case *c = &cases[i];
		char *mem = stack_alloc(STACK_SIZE);
		c->lo = mem + (i % 16);
		c->size = STACK_SIZE - 16 - (size_t)(i * 7 % 16);
		weft__fiber_make(&c->f, c->lo, c->size, align_entry, c);
		weft__fiber_switch(&thread_fiber, &c->f);
		if (!c->ran)
			fail("alignment: case %d did not run", i);
		check_frame("a fiber's entry function", c->entry, c->lo, c->size);
		check_frame("a function called by a fiber's entry", c->callee, c->lo, c->size);
		weft__fiber_destroy(&c->f);
		stack_free(mem, STACK_SIZE);
	}
	printf("stress_fiber: (d) %d fibers started on aligned stacks\n", CASES);
}

/* ---------------------------------------------------------- (e) many fibers */

struct ring_fiber {
	struct weft__fiber f;
	char *stack;
	long id;
};

static struct ring_fiber *ring;
static long ring_n, ring_rounds, ring_turn;

static void ring_entry(void *arg)
{
	struct ring_fiber *me = arg;
	weft__fiber_started();
	check_frame("a ring fiber", probe_frame(), me->stack, STACK_SIZE);
	/* Locals that must survive on this fiber's own stack. */
	long id = me->id;
	uint64_t mine[4] = {mix64((uint64_t)id), ~(uint64_t)id, (uint64_t)id * 3, 0};
	struct weft__fiber *next = id + 1 < ring_n ? &ring[id + 1].f : &thread_fiber;
	for (long r = 0; r < ring_rounds; r++) {
		if (ring_turn != r * ring_n + id)
			fail("ring: fiber %ld in round %ld saw turn %ld, expected %ld", id, r,
			     ring_turn, r * ring_n + id);
		if (mine[0] != mix64((uint64_t)id) || mine[1] != ~(uint64_t)id ||
		    mine[2] != (uint64_t)id * 3 || mine[3] != (uint64_t)r)
			fail("ring: fiber %ld: its locals changed by round %ld", id, r);
		ring_turn++;
		mine[3]++;
		if (r + 1 == ring_rounds)
			weft__fiber_exit_to(&me->f, next);
		weft__fiber_switch(&me->f, next);
	}
	fail("ring: fiber %ld resumed after its last round", id);
}

static void test_many_fibers(void)
{
	ring_n = test_scale(1000);
	if (ring_n < 16)
		ring_n = 16;
	ring_rounds = test_scale(100);
	if (ring_rounds < 4)
		ring_rounds = 4;
	ring = calloc((size_t)ring_n, sizeof *ring);
	if (!ring)
		fail("out of memory for %ld fibers", ring_n);
	for (long i = 0; i < ring_n; i++) {
		ring[i].id = i;
		ring[i].stack = stack_alloc(STACK_SIZE);
		weft__fiber_make(&ring[i].f, ring[i].stack, STACK_SIZE, ring_entry, &ring[i]);
	}
	/* Each round: thread -> fiber 0 -> fiber 1 -> ... -> fiber n-1 -> thread. */
	for (long r = 0; r < ring_rounds; r++) {
		weft__fiber_switch(&thread_fiber, &ring[0].f);
		if (ring_turn != (r + 1) * ring_n)
			fail("ring: after round %ld the turn is %ld, expected %ld", r, ring_turn,
			     (r + 1) * ring_n);
	}
	for (long i = 0; i < ring_n; i++) {
		weft__fiber_destroy(&ring[i].f);
		stack_free(ring[i].stack, STACK_SIZE);
	}
	free(ring);
	printf("stress_fiber: (e) %ld fibers x %ld rounds in a ring\n", ring_n, ring_rounds);
}

/* A broken switch usually crashes rather than failing a check: name the
   part that was running. Not under the sanitizers, whose own reports say
   more. */
#if !defined(WEFT__ASAN) && !defined(WEFT__TSAN)
static void on_crash(int sig)
{
	static const char msg[] = "stress_fiber: FAIL: crashed with signal ";
	char num[4] = {(char)('0' + sig / 10 % 10), (char)('0' + sig % 10), ' ', 0};
	const char *t = current_test;
	if (write(2, msg, sizeof msg - 1) < 0 || write(2, num, 3) < 0 || write(2, "in ", 3) < 0 ||
	    write(2, t, strlen(t)) < 0 || write(2, "\n", 1) < 0)
		_exit(1);
	_exit(1);
}

static void catch_crashes(void)
{
	static char alt[64 * 1024];
	stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
	sigaltstack(&ss, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_crash;
	sa.sa_flags = SA_ONSTACK;
	int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
}
#else
static void catch_crashes(void)
{
}
#endif

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	catch_crashes();
	weft__fiber_init_thread(&thread_fiber);
	/* The two most precise checks first: a broken frame layout tends to
	   crash the others. */
	current_test = "(b) callee-saved registers";
	test_callee_saved();
	current_test = "(d) first-run stack alignment";
	test_alignment();
	current_test = "(a) ping-pong";
	test_ping_pong();
	current_test = "(c) fp control state";
	test_fp_control();
	current_test = "(e) many fibers";
	test_many_fibers();
	printf("stress_fiber: ok\n");
	return 0;
}
