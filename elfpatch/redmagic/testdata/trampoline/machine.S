/*
 * Machine-state probes for the back-edge trampoline test.
 *
 * rm_enter loads every general register, the arithmetic flags and the
 * 128-byte red zone from rm_in and jumps to a trampoline; the trampoline
 * resumes at rm_landing, which stores what it finds into rm_out and returns
 * to rm_enter's caller. rm_hit_fn stands in for the runtime's hit function:
 * it records its arguments and then clobbers everything the SysV ABI lets a
 * callee clobber, so that any state the trampoline fails to save shows up.
 *
 * struct machine (both rm_in and rm_out):
 *   0    gpr[16]     hardware order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15
 *   128  rflags
 *   136  redzone[16] the quadwords at -128(%rsp) .. -8(%rsp)
 * struct hitrec (rm_hit):
 *   0 calls, 8 site, 16 id, 24 aux, 32 rsp mod 16, 40 rflags at entry
 */
	.text

/* void rm_enter(uint64_t trampoline); rm_shift (0 or 8) lowers rsp first. */
	.globl	rm_enter
	.type	rm_enter, @function
rm_enter:
	pushq	%rbx
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rdi, rm_target(%rip)
	movq	%rsp, rm_frame(%rip)
	/* A handler entry is mid-function: rsp may be 0 or 8 mod 16. */
	subq	rm_shift(%rip), %rsp
	/* rsp does not move from here to the jump; rm_landing must see it. */
	movq	%rsp, rm_in+32(%rip)
	/* Flags first: push/popfq use the top of the red zone. mov leaves
	   the flags alone from here on. */
	pushq	rm_in+128(%rip)
	popfq
	.irp	i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movq	rm_in+136+8*\i(%rip), %rax
	movq	%rax, -128+8*\i(%rsp)
	.endr
	movq	rm_in+0(%rip), %rax
	movq	rm_in+8(%rip), %rcx
	movq	rm_in+16(%rip), %rdx
	movq	rm_in+24(%rip), %rbx
	movq	rm_in+40(%rip), %rbp
	movq	rm_in+48(%rip), %rsi
	movq	rm_in+56(%rip), %rdi
	movq	rm_in+64(%rip), %r8
	movq	rm_in+72(%rip), %r9
	movq	rm_in+80(%rip), %r10
	movq	rm_in+88(%rip), %r11
	movq	rm_in+96(%rip), %r12
	movq	rm_in+104(%rip), %r13
	movq	rm_in+112(%rip), %r14
	movq	rm_in+120(%rip), %r15
	jmp	*rm_target(%rip)
	.size	rm_enter, .-rm_enter

/* Where a trampoline continues when the hit function returns this address
   (a trace, in the runtime): notes the way it came, touching neither
   flags nor registers nor stack, and lands like Resume. */
	.globl	rm_cont
	.type	rm_cont, @function
rm_cont:
	movq	$1, rm_via_cont(%rip)
	jmp	rm_landing
	.size	rm_cont, .-rm_cont

/* The trampoline's Resume: entered by jmp with the interpreter's state. */
	.globl	rm_landing
	.type	rm_landing, @function
rm_landing:
	/* Registers first, with stores that touch neither flags nor stack. */
	movq	%rax, rm_out+0(%rip)
	movq	%rcx, rm_out+8(%rip)
	movq	%rdx, rm_out+16(%rip)
	movq	%rbx, rm_out+24(%rip)
	movq	%rsp, rm_out+32(%rip)
	movq	%rbp, rm_out+40(%rip)
	movq	%rsi, rm_out+48(%rip)
	movq	%rdi, rm_out+56(%rip)
	movq	%r8, rm_out+64(%rip)
	movq	%r9, rm_out+72(%rip)
	movq	%r10, rm_out+80(%rip)
	movq	%r11, rm_out+88(%rip)
	movq	%r12, rm_out+96(%rip)
	movq	%r13, rm_out+104(%rip)
	movq	%r14, rm_out+112(%rip)
	movq	%r15, rm_out+120(%rip)
	/* Then the red zone, before pushfq overwrites its top quadword. */
	.irp	i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movq	-128+8*\i(%rsp), %rax
	movq	%rax, rm_out+136+8*\i(%rip)
	.endr
	pushfq
	popq	%rax
	movq	%rax, rm_out+128(%rip)
	cld
	movq	rm_frame(%rip), %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbp
	popq	%rbx
	ret
	.size	rm_landing, .-rm_landing

/* uint64_t rm_hit_fn(uint32_t site, uint64_t id, uint64_t aux): returns
   rm_hit_ret, where the trampoline must continue (0: the site's resume) */
	.globl	rm_hit_fn
	.type	rm_hit_fn, @function
rm_hit_fn:
	pushfq
	popq	rm_hit+40(%rip)
	movq	%rsp, %rax
	andq	$15, %rax
	movq	%rax, rm_hit+32(%rip)
	incq	rm_hit+0(%rip)
	movl	%edi, %eax
	movq	%rax, rm_hit+8(%rip)
	movq	%rsi, rm_hit+16(%rip)
	movq	%rdx, rm_hit+24(%rip)
	/* Scribble over the stack below us, as a real C function may. */
	subq	$512, %rsp
	movq	$0xdeadbeefcafef00d, %rax
	.irp	i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	movq	%rax, 16*\i(%rsp)
	movq	%rax, 16*\i+8(%rsp)
	.endr
	addq	$512, %rsp
	movq	rm_hit_ret(%rip), %rax
	movq	$0xbad0000000000002, %rcx
	movq	$0xbad0000000000003, %rdx
	movq	$0xbad0000000000004, %rsi
	movq	$0xbad0000000000005, %rdi
	movq	$0xbad0000000000006, %r8
	movq	$0xbad0000000000007, %r9
	movq	$0xbad0000000000008, %r10
	movq	$0xbad0000000000009, %r11
	/* Return with every arithmetic flag the opposite of what rm_enter
	   set (CF PF AF ZF SF OF = 0x8d5); DF stays clear as the ABI says. */
	pushq	rm_in+128(%rip)
	xorq	$0x8d5, (%rsp)
	popfq
	ret
	.size	rm_hit_fn, .-rm_hit_fn

	.bss
	.align	8
rm_target:
	.zero	8
rm_frame:
	.zero	8

	.section .note.GNU-stack,"",@progbits
