/*
 * harness_call.S: how patched code calls the runtime, for harness.c.
 */
	.text

/* uint64_t rmt_call_api(uint64_t fn, uint64_t arg, uint32_t site):
 * what an API call-site trampoline does: the argument in place, the site
 * in %r11d, a jump to the slot with the caller's return address on the
 * stack. */
	.globl rmt_call_api
	.type rmt_call_api, @function
rmt_call_api:
	movq %rdi, %rax
	movq %rsi, %rdi
	movl %edx, %r11d
	jmp *%rax
	.size rmt_call_api, . - rmt_call_api

/*
 * void rmt_call_hit_zmm(fn, site, id, aux, const void *in, void *out)
 * Loads zmm0-31, k0-7 and MXCSR from in, calls fn(site, id, aux) as a
 * back-edge trampoline would (which saves no vector state), stores them
 * to out. Layout: 32 x 64 bytes, 8 x 8 bytes, MXCSR.
 */
	.globl rmt_call_hit_zmm
	.type rmt_call_hit_zmm, @function
rmt_call_hit_zmm:
	pushq %rbx
	pushq %r12
	pushq %r13
	movq %rdi, %rbx
	movq %r8, %r12
	movq %r9, %r13
	movl %esi, %edi
	movq %rdx, %rsi
	movq %rcx, %rdx
	ldmxcsr 2112(%r12)
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	vmovdqu64 \n*64(%r12), %zmm\n
	.endr
	.irp n, 0,1,2,3,4,5,6,7
	kmovq 2048+\n*8(%r12), %k\n
	.endr
	call *%rbx
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	vmovdqu64 %zmm\n, \n*64(%r13)
	.endr
	.irp n, 0,1,2,3,4,5,6,7
	kmovq %k\n, 2048+\n*8(%r13)
	.endr
	stmxcsr 2112(%r13)
	pushq $0x1f80
	ldmxcsr (%rsp)
	popq %rax
	vzeroupper
	popq %r13
	popq %r12
	popq %rbx
	ret
	.size rmt_call_hit_zmm, . - rmt_call_hit_zmm

/* The same with ymm0-15 and MXCSR, for machines without AVX-512. */
	.globl rmt_call_hit_ymm
	.type rmt_call_hit_ymm, @function
rmt_call_hit_ymm:
	pushq %rbx
	pushq %r12
	pushq %r13
	movq %rdi, %rbx
	movq %r8, %r12
	movq %r9, %r13
	movl %esi, %edi
	movq %rdx, %rsi
	movq %rcx, %rdx
	ldmxcsr 2112(%r12)
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	vmovdqu \n*32(%r12), %ymm\n
	.endr
	call *%rbx
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	vmovdqu %ymm\n, \n*32(%r13)
	.endr
	stmxcsr 2112(%r13)
	pushq $0x1f80
	ldmxcsr (%rsp)
	popq %rax
	vzeroupper
	popq %r13
	popq %r12
	popq %rbx
	ret
	.size rmt_call_hit_ymm, . - rmt_call_hit_ymm

	.section .note.GNU-stack, "", @progbits
