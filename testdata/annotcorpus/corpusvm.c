/*
 * corpusvm: the annotated test VM (annotvm's ISA, eval loop and
 * annotations) in the shapes real annotated interpreters take. One source,
 * three compile-time switches (see the Makefile for the builds):
 *
 *   ANNOT_DISPATCH  how an instruction is dispatched:
 *     DISPATCH_SWITCH  a switch in a loop (the handler's `break` jumps back
 *                      to the switch);
 *     DISPATCH_GOTO    computed goto: a table of label addresses and an
 *                      indirect jump at the end of every handler, as
 *                      CPython and Lua are built with gcc.
 *   ANNOT_VIA       where the loop annotations (backwards_branch on a taken
 *                   back-edge, fellthrough_branch when a conditional one
 *                   falls through) are called from:
 *     VIA_DIRECT    in the handler: the user pc is updated, the API is
 *                   called, and the handler ends (a jump back to the
 *                   dispatch);
 *     VIA_HELPER    from static helpers the handlers call, left to the
 *                   compiler to inline or not;
 *     VIA_NOINLINE  from the same helpers marked noinline: the API call is
 *                   one call deeper than the eval loop. The taken helper
 *                   returns the new pc after its call; the fall-through
 *                   helper ends in its call (a tail jump at -O2);
 *     VIA_TAILCALL  from noinline helpers that end in their API call
 *                   (tail jumps at -O2), the pc updated before;
 *     VIA_MACRO     through a macro used as an expression: the API is
 *                   called before the pc update, so the handler works on
 *                   after the call.
 *   ANNOT_DEFS      where the redmagic_* functions are defined:
 *     DEFS_HEADER   redmagic.h's defaults (REDMAGIC_DEFAULTS), as annotvm;
 *     DEFS_WEAK     hand-written weak empty functions in this file
 *                   (api_noop.c included with a weak attribute);
 *     DEFS_EXTERN   elsewhere: api_noop.c as a separate object file or as
 *                   a shared library (the Makefile decides which).
 *
 * User calls recurse into vm_eval inside a branchable frame, housekeeping
 * sits in a merge block, printing is kept out of traces by temp_disable and
 * error paths by ensure_not_traced, as in annotvm. Every variant prints
 * exactly what annotvm prints; VM_COUNT_BACKEDGES=1 reports the taken
 * back-edges, counted beside each backwards_branch call.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define DISPATCH_SWITCH 1
#define DISPATCH_GOTO 2

#define VIA_DIRECT 1
#define VIA_HELPER 2
#define VIA_NOINLINE 3
#define VIA_MACRO 4
#define VIA_TAILCALL 5

#define DEFS_HEADER 1
#define DEFS_WEAK 2
#define DEFS_EXTERN 3

#ifndef ANNOT_DISPATCH
#define ANNOT_DISPATCH DISPATCH_SWITCH
#endif
#ifndef ANNOT_VIA
#define ANNOT_VIA VIA_DIRECT
#endif
#ifndef ANNOT_DEFS
#define ANNOT_DEFS DEFS_HEADER
#endif

#if ANNOT_DEFS == DEFS_HEADER
#define REDMAGIC_DEFAULTS
#endif
#include "redmagic.h"

#if ANNOT_DEFS == DEFS_WEAK
#define ANNOT_API_ATTR __attribute__((weak))
#include "api_noop.c"
#elif ANNOT_DEFS != DEFS_HEADER && ANNOT_DEFS != DEFS_EXTERN
#error "ANNOT_DEFS must be DEFS_HEADER, DEFS_WEAK or DEFS_EXTERN"
#endif

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

struct annot_ctx {
	const struct vm_program *p;
	struct vm_value *stack_end;
	uint64_t *calls; /* per function: housekeeping only */
	uint64_t hot_funcs;
};

enum { HOT_CALLS = 100 };
enum { EVAL_RETURNED, EVAL_HALTED };

/* Output runs natively; the call to temp_enable is a tail jump. */
__attribute__((noinline)) static void annot_print(const struct vm_value *v)
{
	redmagic_temp_disable();
	vm_print_value(v);
	redmagic_temp_enable();
}

/*
 * The loop annotations. A back-jump instruction at pc jumps to
 * pc - code[pc + 1]; the id of its loop is the address of that target.
 */
#if ANNOT_VIA == VIA_HELPER || ANNOT_VIA == VIA_NOINLINE
#if ANNOT_VIA == VIA_NOINLINE
#define ANNOT_HELPER __attribute__((noinline)) static
#else
#define ANNOT_HELPER static inline
#endif

/* A taken back-edge: returns the new pc. */
ANNOT_HELPER int64_t annot_jump_back(const int64_t *code, int64_t pc)
{
	int64_t target = pc - code[pc + 1];
	vm_backedges++;
	redmagic_backwards_branch((void *)&code[target]);
	return target;
}

/* A conditional back-edge that fell through. */
ANNOT_HELPER void annot_fell_through(const int64_t *code, int64_t pc)
{
	redmagic_fellthrough_branch((void *)&code[pc - code[pc + 1]]);
}

#define BACK_TAKEN() (pc = annot_jump_back(code, pc))
#define BACK_FELL() (annot_fell_through(code, pc), pc += 2)

#elif ANNOT_VIA == VIA_TAILCALL
/* Both helpers end in their API call. */
__attribute__((noinline)) static void annot_back_edge(const int64_t *target)
{
	vm_backedges++;
	redmagic_backwards_branch((void *)target);
}

__attribute__((noinline)) static void annot_fell_through(const int64_t *target)
{
	redmagic_fellthrough_branch((void *)target);
}

#define BACK_TAKEN() (pc -= code[pc + 1], annot_back_edge(&code[pc]), pc)
#define BACK_FELL() (annot_fell_through(&code[pc - code[pc + 1]]), pc += 2)

#elif ANNOT_VIA == VIA_MACRO
/* The call first, as an operand of a comma expression; the pc after it. */
#define BACK_TARGET_() ((void *)&code[pc - code[pc + 1]])
#define BACK_TAKEN()                                                           \
	(redmagic_backwards_branch(BACK_TARGET_()), vm_backedges++,            \
	 pc -= code[pc + 1])
#define BACK_FELL() (redmagic_fellthrough_branch(BACK_TARGET_()), pc += 2)

#elif ANNOT_VIA != VIA_DIRECT
#error "ANNOT_VIA must be VIA_DIRECT, VIA_HELPER, VIA_NOINLINE, VIA_TAILCALL or VIA_MACRO"
#endif

/* noclone (gcc's) keeps one copy of vm_eval, under that name. */
#if defined(__has_attribute)
#if __has_attribute(noclone)
#define ANNOT_NOCLONE_ __attribute__((noclone))
#endif
#endif
#ifndef ANNOT_NOCLONE_
#define ANNOT_NOCLONE_
#endif

/*
 * vm_eval runs fn, whose frame (locals initialised, room checked) starts at
 * fp, until it returns (result in fp[0]) or halts. depth counts its callers.
 */
__attribute__((noinline)) ANNOT_NOCLONE_ int vm_eval(struct annot_ctx *c,
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

#if ANNOT_DISPATCH == DISPATCH_SWITCH
#define TARGET(name) case OP_##name:
#define NEXT() break
	for (;;) {
		switch (code[pc]) {
#elif ANNOT_DISPATCH == DISPATCH_GOTO
	static const void *const dispatch_table[VM_NUM_OPCODES] = {
#define VM_LABEL_(name, mnemonic, operands, pops, pushes) &&L_OP_##name,
		VM_OPCODES(VM_LABEL_)
#undef VM_LABEL_
	};
#define TARGET(name) L_OP_##name:
/* The bounds check stands for the table of a byte-sized opcode. */
#define NEXT()                                                                 \
	do {                                                                   \
		if ((uint64_t)code[pc] >= VM_NUM_OPCODES)                      \
			goto L_unknown;                                        \
		goto *dispatch_table[code[pc]];                                \
	} while (0)
	NEXT();
	{
		{
#else
#error "ANNOT_DISPATCH must be DISPATCH_SWITCH or DISPATCH_GOTO"
#endif
		TARGET(HALT)
			return EVAL_HALTED;
		TARGET(PUSH_INT)
			vm_set_int(sp++, code[pc + 1]);
			pc += 2;
			NEXT();
		TARGET(PUSH_FLOAT)
			sp->tag = VM_FLOAT;
			sp->i = code[pc + 1]; /* the double's bit pattern */
			sp++;
			pc += 2;
			NEXT();
		TARGET(POP)
			sp--;
			pc += 1;
			NEXT();
		TARGET(DUP)
			sp[0] = sp[-1];
			sp++;
			pc += 1;
			NEXT();
		TARGET(SWAP)
		{
			struct vm_value t = sp[-1];
			sp[-1] = sp[-2];
			sp[-2] = t;
			pc += 1;
			NEXT();
		}
		TARGET(LOAD_LOCAL)
		{
			int64_t n = code[pc + 1];
			if ((uint64_t)n >= (uint64_t)fn->nlocals)
				annot_error(pc, "bad local index");
			*sp++ = fp[n];
			pc += 2;
			NEXT();
		}
		TARGET(STORE_LOCAL)
		{
			int64_t n = code[pc + 1];
			if ((uint64_t)n >= (uint64_t)fn->nlocals)
				annot_error(pc, "bad local index");
			fp[n] = *--sp;
			pc += 2;
			NEXT();
		}
		TARGET(ARG)
			vm_set_int(sp++, vm_arg(p, code[pc + 1], code[pc + 2]));
			pc += 3;
			NEXT();
		TARGET(ADD)
			vm_add(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			NEXT();
		TARGET(SUB)
			vm_sub(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			NEXT();
		TARGET(MUL)
			vm_mul(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			NEXT();
		TARGET(DIV)
			vm_div(&sp[-2], &sp[-1], pc);
			sp--;
			pc += 1;
			NEXT();
		TARGET(MOD)
			vm_mod(&sp[-2], &sp[-1], pc);
			sp--;
			pc += 1;
			NEXT();
		TARGET(LT)
			vm_lt(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			NEXT();
		TARGET(LE)
			vm_le(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			NEXT();
		TARGET(EQ)
			vm_eq(&sp[-2], &sp[-1]);
			sp--;
			pc += 1;
			NEXT();
		TARGET(NOT)
			vm_set_int(&sp[-1], !vm_truthy(&sp[-1]));
			pc += 1;
			NEXT();
		TARGET(JMP)
			pc += code[pc + 1];
			NEXT();
		TARGET(JMP_IF_FALSE)
			sp--;
			pc += vm_truthy(sp) ? 2 : code[pc + 1];
			NEXT();
		TARGET(JMP_IF_TRUE)
			sp--;
			pc += vm_truthy(sp) ? code[pc + 1] : 2;
			NEXT();
#if ANNOT_VIA == VIA_DIRECT
		TARGET(JMP_BACK)
			pc -= code[pc + 1];
			vm_backedges++;
			redmagic_backwards_branch((void *)&code[pc]);
			NEXT();
		TARGET(JMP_BACK_IF_FALSE)
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
			NEXT();
		TARGET(JMP_BACK_IF_TRUE)
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
			NEXT();
#else
		TARGET(JMP_BACK)
			(void)BACK_TAKEN();
			NEXT();
		TARGET(JMP_BACK_IF_FALSE)
			sp--;
			(void)(vm_truthy(sp) ? BACK_FELL() : BACK_TAKEN());
			NEXT();
		TARGET(JMP_BACK_IF_TRUE)
			sp--;
			(void)(vm_truthy(sp) ? BACK_TAKEN() : BACK_FELL());
			NEXT();
#endif
		TARGET(CALL)
		{
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
			NEXT();
		}
		TARGET(RET)
			fp[0] = sp[-1];
			return EVAL_RETURNED;
		TARGET(PRINT)
			annot_print(--sp);
			pc += 1;
			NEXT();
#if ANNOT_DISPATCH == DISPATCH_SWITCH
		default:
			annot_error(pc, "unknown opcode");
#else
		L_unknown:
			annot_error(pc, "unknown opcode");
#endif
		}
	}
#undef TARGET
#undef NEXT
}

int main(int argc, char **argv)
{
	struct vm_program p;
	struct vm_value *stack = vm_init(argc, argv, &p);
	struct annot_ctx c = {
		.p = &p,
		.stack_end = stack + VM_STACK_VALUES,
		.calls = calloc((size_t)p.nfuncs, sizeof *c.calls),
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
	vm_exit(0);
}
