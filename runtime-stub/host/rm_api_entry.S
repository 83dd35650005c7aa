/*
 * rm_api_entry.S: entry points written into api_fn[] of patched objects.
 *
 * An API call-site trampoline jumps here with the API function's C
 * arguments in place (the interpreter's own call put its return address on
 * the stack) and the site index in %r11d. Each stub calls
 *   rm_api_call(arg, site, object << 8 | api, return address)
 * whose result is 0 (return to the interpreter as the call would; %rax is
 * the API function's result) or an address to continue at as if the API
 * call had returned there: a compiled trace, or the stub that starts a
 * recording. The first argument register is untouched: it is the id, or
 * unused by API functions without arguments. The interpreter's
 * callee-saved registers survive rm_api_call (a C function), and its
 * caller-saved ones are dead at a call, so either way the state is the one
 * the original call would return with.
 *
 * rm_api_<name>_entry_<k> serves object k; rm_api_<name>_entry is object
 * 0's. The order of the names is enum rm_api in include/redmagic_patch.h
 * (rm_fast.c asserts the counts; a Go test checks the order).
 */
	.text

.macro RM_STUB name, api, k
	.globl rm_api_\name\()_entry_\k
	.hidden rm_api_\name\()_entry_\k
	.type rm_api_\name\()_entry_\k, @function
	.p2align 4
rm_api_\name\()_entry_\k:
	movl %r11d, %esi
	movl $(\k * 256 + \api), %edx
	movq (%rsp), %rcx
	subq $8, %rsp
	call rm_api_call
	addq $8, %rsp
	testq %rax, %rax
	jnz 1f
	ret
1:	addq $8, %rsp
	jmp *%rax
	.size rm_api_\name\()_entry_\k, . - rm_api_\name\()_entry_\k
.endm

.macro RM_NAMES m, k
	\m start, 0, \k
	\m backwards_branch, 1, \k
	\m fellthrough_branch, 2, \k
	\m begin_branchable_frame, 3, \k
	\m end_branchable_frame, 4, \k
	\m force_begin_trace, 5, \k
	\m force_end_trace, 6, \k
	\m force_jump_to_trace, 7, \k
	\m ensure_not_traced, 8, \k
	\m temp_disable, 9, \k
	\m temp_enable, 10, \k
	\m do_not_trace_function, 11, \k
	\m disable_branch, 12, \k
	\m is_traced, 13, \k
	\m begin_merge_block, 14, \k
	\m end_merge_block, 15, \k
.endm

.irp k, 0, 1, 2, 3, 4, 5, 6, 7
	RM_NAMES RM_STUB, \k
.endr

.macro RM_ALIAS name, api, k
	.globl rm_api_\name\()_entry
	.hidden rm_api_\name\()_entry
	.type rm_api_\name\()_entry, @function
	.set rm_api_\name\()_entry, rm_api_\name\()_entry_0
.endm
	RM_NAMES RM_ALIAS, 0

/* rm_api_entries[k][api]: read by the constructor to fill api_fn[]. */
.macro RM_QUAD name, api, k
	.quad rm_api_\name\()_entry_\k
.endm
	.section .data.rel.ro, "aw"
	.p2align 3
	.globl rm_api_entries
	.hidden rm_api_entries
	.type rm_api_entries, @object
rm_api_entries:
.irp k, 0, 1, 2, 3, 4, 5, 6, 7
	RM_NAMES RM_QUAD, \k
.endr
	.size rm_api_entries, . - rm_api_entries

	.section .note.GNU-stack, "", @progbits
