/*
 * annotvm: switchvm annotated with the redmagic API, the way the original
 * redmagic patched CPython: every taken backward jump calls
 * redmagic_backwards_branch with the user-level pc of its target, a
 * conditional backward jump that falls through calls
 * redmagic_fellthrough_branch, and user calls recurse into vm_eval inside a
 * branchable frame. Linked with the default (empty) implementations, so it
 * runs unchanged without a runtime.
 *
 * Environment: VM_COUNT_BACKEDGES=1 reports the number of
 * redmagic_backwards_branch calls (counted here, not in redmagic.h);
 * VM_REPORT_TRACED=1 reports on stderr how many PRINTs ran while
 * redmagic_is_traced() said so, and how many functions became hot.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDMAGIC_DEFAULTS
#include "redmagic.h"

#include "vm_isa.h"

/* Error paths must never be recorded. */
__attribute__((noreturn, cold)) static void annot_error(int64_t pc,
							const char *msg)
{
	redmagic_ensure_not_traced();
	vm_error(pc, msg);
}

#define VM_ERROR annot_error
#include "vm_ops.h"

enum { HOT_CALLS = 100 };

struct annot_ctx {
	const struct vm_program *p;
	struct vm_value *stack_end;
	uint64_t *calls; /* per function: housekeeping only */
	uint64_t hot_funcs;
	uint64_t traced_prints;
	int report;
};

enum { EVAL_RETURNED, EVAL_HALTED };

/*
 * annot_print keeps output out of traces. Its last call is a tail jump to
 * redmagic_temp_enable: the third call form the patcher must find.
 */
__attribute__((noinline)) static void annot_print(const struct vm_value *v)
{
	redmagic_temp_disable();
	vm_print_value(v);
	redmagic_temp_enable();
}

/*
 * vm_eval runs fn, whose frame (locals initialised, room checked) starts at
 * fp, until it returns (result in fp[0]) or halts. depth counts its callers.
 * noclone keeps one copy named vm_eval.
 */
__attribute__((noinline, noclone)) int vm_eval(struct annot_ctx *c,
					       const struct vm_func *fn,
					       struct vm_value *fp,
					       int64_t depth);

int vm_eval(struct annot_ctx *c, const struct vm_func *fn, struct vm_value *fp,
	    int64_t depth)
{
	const struct vm_program *p = c->p;
	const int64_t *code = p->code;
	struct vm_value *sp = fp + fn->nlocals;
	int64_t pc = fn->entry;

	for (;;) {
		switch (code[pc]) {
		case OP_HALT:
			return EVAL_HALTED;
		case OP_PUSH_INT:
			vm_set_int(sp++, code[pc + 1]);
			pc += 2;
			break;
		case OP_PUSH_FLOAT:
			sp->tag = VM_FLOAT;
			sp->i = code[pc + 1]; /* the double's bit pattern */
			sp++;
			pc += 2;
			break;
		case OP_POP:
			sp--;
			pc += 1;
			break;
		case OP_DUP:
			sp[0] = sp[-1];
			sp++;
			pc += 1;
			break;
		case OP_SWAP: {
			struct vm_value t = sp[-1];
			sp[-1] = sp[-2];
			sp[-2] = t;
			pc += 1;
			break;
		}
		case OP_LOAD_LOCAL: {
			int64_t n = code[pc + 1];
			if ((uint64_t)n >= (uint64_t)fn->nlocals)
				annot_error(pc, "bad local index");
			*sp++ = fp[n];
			pc += 2;
			break;
		}
		case OP_STORE_LOCAL: {
			int64_t n = code[pc + 1];
			if ((uint64_t)n >= (uint64_t)fn->nlocals)
				annot_error(pc, "bad local index");
			fp[n] = *--sp;
			pc += 2;
			break;
		}
		case OP_ARG:
			vm_set_int(sp++, vm_arg(p, code[pc + 1], code[pc + 2]));
			pc += 3;
			break;
		case OP_ADD:
			vm_add(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			break;
		case OP_SUB:
			vm_sub(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			break;
		case OP_MUL:
			vm_mul(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			break;
		case OP_DIV:
			vm_div(&sp[-2], &sp[-1], pc);
			sp--;
			pc += 1;
			break;
		case OP_MOD:
			vm_mod(&sp[-2], &sp[-1], pc);
			sp--;
			pc += 1;
			break;
		case OP_LT:
			vm_lt(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			break;
		case OP_LE:
			vm_le(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			break;
		case OP_EQ:
			vm_eq(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			break;
		case OP_NOT:
			vm_set_int(&sp[-1], !vm_truthy(&sp[-1]));
			pc += 1;
			break;
		case OP_JMP:
			pc += code[pc + 1];
			break;
		case OP_JMP_IF_FALSE:
			sp--;
			pc += vm_truthy(sp) ? 2 : code[pc + 1];
			break;
		case OP_JMP_IF_TRUE:
			sp--;
			pc += vm_truthy(sp) ? code[pc + 1] : 2;
			break;
		case OP_JMP_BACK:
			pc -= code[pc + 1];
			vm_backedges++;
			redmagic_backwards_branch((void *)&code[pc]);
			break;
		case OP_JMP_BACK_IF_FALSE:
			sp--;
			if (vm_truthy(sp)) {
				redmagic_fellthrough_branch(
					(void *)&code[pc - code[pc + 1]]);
				pc += 2;
			} else {
				pc -= code[pc + 1];
				vm_backedges++;
				redmagic_backwards_branch((void *)&code[pc]);
			}
			break;
		case OP_JMP_BACK_IF_TRUE:
			sp--;
			if (vm_truthy(sp)) {
				pc -= code[pc + 1];
				vm_backedges++;
				redmagic_backwards_branch((void *)&code[pc]);
			} else {
				redmagic_fellthrough_branch(
					(void *)&code[pc - code[pc + 1]]);
				pc += 2;
			}
			break;
		case OP_CALL: {
			int64_t fi = code[pc + 1];
			const struct vm_func *callee = &p->funcs[fi];
			struct vm_value *nfp = sp - code[pc + 2];
			if (depth + 1 >= VM_MAX_FRAMES ||
			    callee->nlocals + callee->maxstack >
				    c->stack_end - nfp)
				annot_error(pc, "stack overflow");
			/* A branch that never changes the user's control flow. */
			redmagic_begin_merge_block();
			if (++c->calls[fi] == HOT_CALLS)
				c->hot_funcs++;
			redmagic_end_merge_block();
			vm_zero_locals(nfp, callee->nargs, callee->nlocals);
			uint_fast64_t frame_id;
			redmagic_begin_branchable_frame(&frame_id);
			int status = vm_eval(c, callee, nfp, depth + 1);
			redmagic_end_branchable_frame(&frame_id);
			if (status == EVAL_HALTED)
				return EVAL_HALTED;
			sp = nfp + 1;
			pc += 3;
			break;
		}
		case OP_RET:
			fp[0] = sp[-1];
			return EVAL_RETURNED;
		case OP_PRINT:
			if (c->report && redmagic_is_traced())
				c->traced_prints++;
			annot_print(--sp);
			pc += 1;
			break;
		default:
			annot_error(pc, "unknown opcode");
		}
	}
}

int main(int argc, char **argv)
{
	struct vm_program p;
	struct vm_value *stack = vm_init(argc, argv, &p);
	const char *env = getenv("VM_REPORT_TRACED");
	struct annot_ctx c = {
		.p = &p,
		.stack_end = stack + VM_STACK_VALUES,
		.calls = calloc((size_t)p.nfuncs, sizeof *c.calls),
		.report = env != NULL && strcmp(env, "1") == 0,
	};
	if (c.calls == NULL) {
		fprintf(stderr, "error: out of memory\n");
		vm_exit(1);
	}
	redmagic_start();
	redmagic_do_not_trace_function((void *)vm_print_value);

	const struct vm_func *fn = &p.funcs[p.main];
	if (fn->nlocals + fn->maxstack > VM_STACK_VALUES)
		annot_error(fn->entry, "stack overflow");
	vm_zero_locals(stack, 0, fn->nlocals);
	vm_eval(&c, fn, stack, 0);
	if (c.report)
		fprintf(stderr,
			"annotvm: traced prints %llu, hot functions %llu\n",
			(unsigned long long)c.traced_prints,
			(unsigned long long)c.hot_funcs);
	vm_exit(0);
}
