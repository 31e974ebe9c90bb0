/*
 * Fiber context switch for x86-64 (System V ABI).
 *
 * void weft__ctx_switch(void **save_sp, void *load_sp)
 *
 * Saves what the ABI says a callee must preserve -- rbx, rbp, r12-r15, the
 * stack pointer, and the control bits of MXCSR and the x87 control word (a
 * fiber that changes the rounding mode must not leak it to the next one) --
 * on the current stack, stores the stack pointer in *save_sp, then loads
 * load_sp and restores the same frame from there. Everything else is
 * caller-saved, so the C caller has already spilled what it needs.
 *
 * Frame layout, from the saved stack pointer upwards:
 *   [sp+0]  MXCSR (4 bytes), x87 control word (2 bytes), padding
 *   [sp+8]  r15, r14, r13, r12, rbx, rbp
 *   [sp+56] return address
 * weft__ctx_make (fiber.c) builds the same frame for a new fiber, with the
 * return address pointing at weft__fiber_trampoline, r12 = argument and
 * r13 = entry function.
 */
	.text

	.globl weft__ctx_switch
	.hidden weft__ctx_switch
	.type weft__ctx_switch, @function
	.p2align 4
weft__ctx_switch:
	.cfi_startproc
	pushq %rbp
	.cfi_adjust_cfa_offset 8
	pushq %rbx
	.cfi_adjust_cfa_offset 8
	pushq %r12
	.cfi_adjust_cfa_offset 8
	pushq %r13
	.cfi_adjust_cfa_offset 8
	pushq %r14
	.cfi_adjust_cfa_offset 8
	pushq %r15
	.cfi_adjust_cfa_offset 8
	subq $8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr (%rsp)
	fnstcw 4(%rsp)

	movq %rsp, (%rdi)
	movq %rsi, %rsp

	ldmxcsr (%rsp)
	fldcw 4(%rsp)
	addq $8, %rsp
	.cfi_adjust_cfa_offset -8
	popq %r15
	.cfi_adjust_cfa_offset -8
	popq %r14
	.cfi_adjust_cfa_offset -8
	popq %r13
	.cfi_adjust_cfa_offset -8
	popq %r12
	.cfi_adjust_cfa_offset -8
	popq %rbx
	.cfi_adjust_cfa_offset -8
	popq %rbp
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size weft__ctx_switch, .-weft__ctx_switch

/*
 * First code a new fiber runs, entered by the "ret" of weft__ctx_switch with
 * the stack pointer 16-byte aligned. Calls entry(arg); entry never returns.
 * The return address column is undefined here, so unwinders (gdb,
 * backtrace()) stop at the fiber's first frame instead of walking into
 * garbage.
 */
	.globl weft__fiber_trampoline
	.hidden weft__fiber_trampoline
	.type weft__fiber_trampoline, @function
	.p2align 4
weft__fiber_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	xorl %ebp, %ebp
	movq %r12, %rdi
	callq *%r13
	ud2
	.cfi_endproc
	.size weft__fiber_trampoline, .-weft__fiber_trampoline

	.section .note.GNU-stack, "", @progbits
