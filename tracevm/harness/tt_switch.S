/*
 * tt_switch.S: a switch whose table leads into two functions (two FDEs,
 * as a compiler's cold part is): case 1 lies in the second, case 2, after
 * it in the table, writes the output. tracevm's scan of functions that
 * write no memory must read the whole table (three entries, by its
 * bounds check), not stop at the first entry outside the function.
 * Never run.
 */
	.text
	.globl tt_w_switch_split
	.hidden tt_w_switch_split
	.type tt_w_switch_split, @function
	.p2align 4
tt_w_switch_split:
	.cfi_startproc
	movq 8(%rdi), %rax
	cmpq $2, %rax
	ja 1f
	leaq .Ltt_switch_table(%rip), %rdx
	movslq (%rdx,%rax,4), %rax
	addq %rdx, %rax
	jmp *%rax
.Ltt_case0:
	xorl %eax, %eax
	ret
.Ltt_case2:
	movq 16(%rdi), %rax
	movq %rax, (%rsi)
	ret
1:	movl $1, %eax
	ret
	.cfi_endproc
	.size tt_w_switch_split, . - tt_w_switch_split

	.type tt_w_switch_split_part, @function
	.p2align 4
tt_w_switch_split_part:
	.cfi_startproc
.Ltt_case1:
	movl $2, %eax
	ret
	.cfi_endproc
	.size tt_w_switch_split_part, . - tt_w_switch_split_part

	.section .rodata
	.p2align 2
.Ltt_switch_table:
	.long .Ltt_case0 - .Ltt_switch_table
	.long .Ltt_case1 - .Ltt_switch_table
	.long .Ltt_case2 - .Ltt_switch_table

	.section .note.GNU-stack, "", @progbits
