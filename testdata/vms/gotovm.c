/*
 * gotovm: the test ISA run with computed goto, as CPython and Lua are built
 * with gcc: a static table of label addresses (dispatch_table) and an
 * indirect jump replicated at the end of every handler (DISPATCH), so each
 * handler has its own `jmp *` site. Calls do not recurse in C.
 */
#include <stdint.h>

#include "vm_isa.h"
#include "vm_ops.h"

struct frame {
	int64_t ret_pc;
	struct vm_value *fp;
	const struct vm_func *fn;
};

/* noclone keeps one copy named vm_eval for tests and the patcher to find. */
__attribute__((noinline, noclone)) void
vm_eval(const struct vm_program *p, struct vm_value *stack);

void vm_eval(const struct vm_program *p, struct vm_value *stack)
{
	static const void *const dispatch_table[VM_NUM_OPCODES] = {
#define VM_LABEL_(name, mnemonic, operands, pops, pushes) &&L_OP_##name,
		VM_OPCODES(VM_LABEL_)
#undef VM_LABEL_
	};
	struct frame frames[VM_MAX_FRAMES];
	const int64_t *code = p->code;
	struct vm_value *const stack_end = stack + VM_STACK_VALUES;
	const struct vm_func *fn = &p->funcs[p->main];
	struct vm_value *fp = stack, *sp;
	int64_t depth = 0; /* callers of fn */
	int64_t pc = fn->entry;
	int64_t op;

/* The bounds check stands for the table of a byte-sized opcode. */
#define DISPATCH()                                                             \
	do {                                                                   \
		op = code[pc];                                                 \
		if ((uint64_t)op >= VM_NUM_OPCODES)                            \
			goto L_unknown;                                        \
		goto *dispatch_table[op];                                      \
	} while (0)

	if (fn->nlocals + fn->maxstack > stack_end - fp)
		vm_error(pc, "stack overflow");
	vm_zero_locals(fp, 0, fn->nlocals);
	sp = fp + fn->nlocals;
	DISPATCH();

L_OP_HALT:
	return;
L_OP_PUSH_INT:
	vm_set_int(sp++, code[pc + 1]);
	pc += 2;
	DISPATCH();
L_OP_PUSH_FLOAT:
	sp->tag = VM_FLOAT;
	sp->i = code[pc + 1]; /* the double's bit pattern */
	sp++;
	pc += 2;
	DISPATCH();
L_OP_POP:
	sp--;
	pc += 1;
	DISPATCH();
L_OP_DUP:
	sp[0] = sp[-1];
	sp++;
	pc += 1;
	DISPATCH();
L_OP_SWAP: {
	struct vm_value t = sp[-1];
	sp[-1] = sp[-2];
	sp[-2] = t;
	pc += 1;
	DISPATCH();
}
L_OP_LOAD_LOCAL: {
	int64_t n = code[pc + 1];
	if ((uint64_t)n >= (uint64_t)fn->nlocals)
		vm_error(pc, "bad local index");
	*sp++ = fp[n];
	pc += 2;
	DISPATCH();
}
L_OP_STORE_LOCAL: {
	int64_t n = code[pc + 1];
	if ((uint64_t)n >= (uint64_t)fn->nlocals)
		vm_error(pc, "bad local index");
	fp[n] = *--sp;
	pc += 2;
	DISPATCH();
}
L_OP_ARG:
	vm_set_int(sp++, vm_arg(p, code[pc + 1], code[pc + 2]));
	pc += 3;
	DISPATCH();
L_OP_ADD:
	vm_add(&sp[-2], &sp[-1]);
	sp--;
	pc += 1;
	DISPATCH();
L_OP_SUB:
	vm_sub(&sp[-2], &sp[-1]);
	sp--;
	pc += 1;
	DISPATCH();
L_OP_MUL:
	vm_mul(&sp[-2], &sp[-1]);
	sp--;
	pc += 1;
	DISPATCH();
L_OP_DIV:
	vm_div(&sp[-2], &sp[-1], pc);
	sp--;
	pc += 1;
	DISPATCH();
L_OP_MOD:
	vm_mod(&sp[-2], &sp[-1], pc);
	sp--;
	pc += 1;
	DISPATCH();
L_OP_LT:
	vm_lt(&sp[-2], &sp[-1]);
	sp--;
	pc += 1;
	DISPATCH();
L_OP_LE:
	vm_le(&sp[-2], &sp[-1]);
	sp--;
	pc += 1;
	DISPATCH();
L_OP_EQ:
	vm_eq(&sp[-2], &sp[-1]);
	sp--;
	pc += 1;
	DISPATCH();
L_OP_NOT:
	vm_set_int(&sp[-1], !vm_truthy(&sp[-1]));
	pc += 1;
	DISPATCH();
L_OP_JMP:
	pc += code[pc + 1];
	DISPATCH();
L_OP_JMP_IF_FALSE:
	sp--;
	pc += vm_truthy(sp) ? 2 : code[pc + 1];
	DISPATCH();
L_OP_JMP_IF_TRUE:
	sp--;
	pc += vm_truthy(sp) ? code[pc + 1] : 2;
	DISPATCH();
L_OP_JMP_BACK:
	vm_backedges++;
	pc -= code[pc + 1];
	DISPATCH();
L_OP_JMP_BACK_IF_FALSE:
	sp--;
	if (vm_truthy(sp)) {
		pc += 2;
	} else {
		vm_backedges++;
		pc -= code[pc + 1];
	}
	DISPATCH();
L_OP_JMP_BACK_IF_TRUE:
	sp--;
	if (vm_truthy(sp)) {
		vm_backedges++;
		pc -= code[pc + 1];
	} else {
		pc += 2;
	}
	DISPATCH();
L_OP_CALL: {
	const struct vm_func *callee = &p->funcs[code[pc + 1]];
	struct vm_value *nfp = sp - code[pc + 2];
	if (depth + 1 >= VM_MAX_FRAMES ||
	    callee->nlocals + callee->maxstack > stack_end - nfp)
		vm_error(pc, "stack overflow");
	frames[depth++] = (struct frame){pc + 3, fp, fn};
	fp = nfp;
	fn = callee;
	vm_zero_locals(fp, fn->nargs, fn->nlocals);
	sp = fp + fn->nlocals;
	pc = fn->entry;
	DISPATCH();
}
L_OP_RET:
	if (depth == 0)
		return;
	fp[0] = sp[-1];
	sp = fp + 1;
	depth--;
	pc = frames[depth].ret_pc;
	fp = frames[depth].fp;
	fn = frames[depth].fn;
	DISPATCH();
L_OP_PRINT:
	vm_print_value(--sp);
	pc += 1;
	DISPATCH();
L_unknown:
	vm_error(pc, "unknown opcode");
#undef DISPATCH
}

int main(int argc, char **argv)
{
	struct vm_program p;
	struct vm_value *stack = vm_init(argc, argv, &p);
	vm_eval(&p, stack);
	vm_exit(0);
}
