/*
 * th_shims.S: the annotation functions test code calls. Each one is
 * runtime-stub's rm_api_<name>_entry without the trampoline: it calls
 *   th_api(arg, unused, api, return address)
 * and either returns (result 0, %rax = 0) or pops its return address and
 * continues at the address th_api returned (a trace head or the stub that
 * starts a recording), as if the call had returned there. %rdi, the first
 * argument, is left in place.
 */
	.text

.macro TH_SHIM name, api
	.globl th_\name
	.hidden th_\name
	.type th_\name, @function
	.p2align 4
th_\name:
	movq (%rsp), %rcx
	movl $\api, %edx
	subq $8, %rsp
	call th_api
	addq $8, %rsp
	testq %rax, %rax
	jnz 1f
	ret
1:	addq $8, %rsp
	jmp *%rax
	.size th_\name, . - th_\name
.endm

	TH_SHIM start, 0
	TH_SHIM backwards_branch, 1
	TH_SHIM fellthrough_branch, 2
	TH_SHIM begin_branchable_frame, 3
	TH_SHIM end_branchable_frame, 4
	TH_SHIM force_begin_trace, 5
	TH_SHIM force_end_trace, 6
	TH_SHIM force_jump_to_trace, 7
	TH_SHIM ensure_not_traced, 8
	TH_SHIM temp_disable, 9
	TH_SHIM temp_enable, 10
	TH_SHIM do_not_trace_function, 11
	TH_SHIM disable_branch, 12
	TH_SHIM is_traced, 13
	TH_SHIM begin_merge_block, 14
	TH_SHIM end_merge_block, 15

	.section .note.GNU-stack, "", @progbits
