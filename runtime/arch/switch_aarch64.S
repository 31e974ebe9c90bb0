/*
 * Fiber context switch for AArch64 (AAPCS64).
 *
 * void weft__ctx_switch(void **save_sp, void *load_sp)
 *
 * Saves the callee-saved state -- x19-x28, the frame pointer x29, the link
 * register x30, d8-d15 and FPCR (rounding mode and traps must not leak
 * between fibers) -- in a 176-byte frame on the current stack, stores sp in
 * *save_sp, loads load_sp and restores the same frame from there, then
 * returns through the restored x30.
 *
 * Frame layout from the saved sp:
 *   [0]   x19 x20 ... x28, x29, x30   (12 x 8 bytes)
 *   [96]  d8 ... d15                  (8 x 8 bytes)
 *   [160] fpcr, padding
 * weft__ctx_make (fiber.c) builds the same frame for a new fiber, with
 * x30 = weft__fiber_trampoline, x19 = argument and x20 = entry function.
 */
	.text

	.globl weft__ctx_switch
	.hidden weft__ctx_switch
	.type weft__ctx_switch, %function
	.p2align 4
weft__ctx_switch:
	.cfi_startproc
	sub sp, sp, #176
	.cfi_adjust_cfa_offset 176
	stp x19, x20, [sp, #0]
	stp x21, x22, [sp, #16]
	stp x23, x24, [sp, #32]
	stp x25, x26, [sp, #48]
	stp x27, x28, [sp, #64]
	stp x29, x30, [sp, #80]
	stp d8, d9, [sp, #96]
	stp d10, d11, [sp, #112]
	stp d12, d13, [sp, #128]
	stp d14, d15, [sp, #144]
	mrs x9, fpcr
	str x9, [sp, #160]

	mov x9, sp
	str x9, [x0]
	mov sp, x1

	ldr x9, [sp, #160]
	msr fpcr, x9
	ldp x19, x20, [sp, #0]
	ldp x21, x22, [sp, #16]
	ldp x23, x24, [sp, #32]
	ldp x25, x26, [sp, #48]
	ldp x27, x28, [sp, #64]
	ldp x29, x30, [sp, #80]
	ldp d8, d9, [sp, #96]
	ldp d10, d11, [sp, #112]
	ldp d12, d13, [sp, #128]
	ldp d14, d15, [sp, #144]
	add sp, sp, #176
	.cfi_adjust_cfa_offset -176
	ret
	.cfi_endproc
	.size weft__ctx_switch, .-weft__ctx_switch

/*
 * First code a new fiber runs: calls entry(arg), which never returns. The
 * link register is marked undefined so unwinders stop here.
 */
	.globl weft__fiber_trampoline
	.hidden weft__fiber_trampoline
	.type weft__fiber_trampoline, %function
	.p2align 4
weft__fiber_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	mov x29, #0
	mov x0, x19
	blr x20
	brk #0
	.cfi_endproc
	.size weft__fiber_trampoline, .-weft__fiber_trampoline

	.section .note.GNU-stack, "", %progbits
