/*
 * vm_isa.h: the bytecode ISA, program model and shared runtime of the three
 * test interpreters (switchvm, gotovm, annotvm). Only the eval loops differ
 * between them; everything here is shared so that one set of programs and
 * expected outputs serves all three.
 *
 * A program is an array of 64-bit words. An instruction is one opcode word
 * followed by its operand words. The machine is a stack machine over tagged
 * values (int64 or double). Each call frame holds nlocals locals followed by
 * at most maxstack operand slots; the loader computes maxstack, so pushes
 * need no overflow check and a call checks the whole frame once.
 */
#ifndef VM_ISA_H
#define VM_ISA_H

#include <stdint.h>

/*
 * X(NAME, mnemonic, operands, pops, pushes)
 *
 * operands has one character per operand word:
 *   i  int64 immediate
 *   f  double immediate (its bit pattern)
 *   l  local index (checked at run time: "bad local index")
 *   j  forward jump: target = pc + operand, operand > 0
 *   b  backward jump: target = pc - operand, operand >= 0
 *   F  function index, followed by
 *   n  its argument count (CALL pops n values)
 * pc is the index of the instruction's opcode word.
 *
 * Backward jumps have opcodes of their own (the assembler picks them from
 * the direction of the label), as CPython 3.11 has JUMP_BACKWARD: each of
 * their taken paths is a user-level loop back-edge.
 *
 * The order fixes the opcode numbers; keep the list dense from 0 so that a
 * switch over it compiles to a jump table.
 */
#define VM_OPCODES(X)                                                          \
	X(HALT, "halt", "", 0, 0)                                              \
	X(PUSH_INT, "push_int", "i", 0, 1)                                     \
	X(PUSH_FLOAT, "push_float", "f", 0, 1)                                 \
	X(POP, "pop", "", 1, 0)                                                \
	X(DUP, "dup", "", 1, 2)                                                \
	X(SWAP, "swap", "", 2, 2)                                              \
	X(LOAD_LOCAL, "load_local", "l", 0, 1)                                 \
	X(STORE_LOCAL, "store_local", "l", 1, 0)                               \
	X(ARG, "arg", "ii", 0, 1)                                              \
	X(ADD, "add", "", 2, 1)                                                \
	X(SUB, "sub", "", 2, 1)                                                \
	X(MUL, "mul", "", 2, 1)                                                \
	X(DIV, "div", "", 2, 1)                                                \
	X(MOD, "mod", "", 2, 1)                                                \
	X(LT, "lt", "", 2, 1)                                                  \
	X(LE, "le", "", 2, 1)                                                  \
	X(EQ, "eq", "", 2, 1)                                                  \
	X(NOT, "not", "", 1, 1)                                                \
	X(JMP, "jmp", "j", 0, 0)                                               \
	X(JMP_IF_FALSE, "jmp_if_false", "j", 1, 0)                             \
	X(JMP_IF_TRUE, "jmp_if_true", "j", 1, 0)                               \
	X(JMP_BACK, "jmp_back", "b", 0, 0)                                     \
	X(JMP_BACK_IF_FALSE, "jmp_back_if_false", "b", 1, 0)                   \
	X(JMP_BACK_IF_TRUE, "jmp_back_if_true", "b", 1, 0)                     \
	X(CALL, "call", "Fn", 0, 1)                                            \
	X(RET, "ret", "", 1, 0)                                                \
	X(PRINT, "print", "", 1, 0)

enum vm_opcode {
#define VM_ENUM_(name, mnemonic, operands, pops, pushes) OP_##name,
	VM_OPCODES(VM_ENUM_)
#undef VM_ENUM_
	VM_NUM_OPCODES
};

struct vm_opinfo {
	const char *mnemonic;
	const char *operands;
	int pops, pushes;
};

extern const struct vm_opinfo vm_opinfo[VM_NUM_OPCODES];

enum vm_tag { VM_INT, VM_FLOAT };

struct vm_value {
	int64_t tag;
	union {
		int64_t i;
		double f;
	};
};

struct vm_func {
	char *name;
	int64_t entry, end; /* code[entry:end] */
	int64_t nargs, nlocals;
	int64_t maxstack; /* operand slots above the locals, from the loader */
};

struct vm_program {
	int64_t *code;
	int64_t ncode;
	struct vm_func *funcs;
	int64_t nfuncs;
	int64_t main; /* index of func main */
	int64_t *args; /* integer command-line arguments, for ARG */
	int64_t nargs;
};

/* Limits shared by all three VMs so that they fail at the same pc. */
enum {
	VM_STACK_VALUES = 1 << 16, /* value stack, all frames */
	VM_MAX_FRAMES = 1000,      /* active functions, main included */
};

/*
 * Back-edges taken (backward jumps, or redmagic_backwards_branch calls in
 * annotvm); printed as "backedges: N" on stderr at exit when the environment
 * has VM_COUNT_BACKEDGES=1.
 */
extern uint64_t vm_backedges;

/*
 * vm_init parses the command line (prog.vm [int...]) and loads, assembles
 * and verifies the program; on failure it reports on stderr and exits with
 * status 1. It returns the value stack.
 */
struct vm_value *vm_init(int argc, char **argv, struct vm_program *p);

/* vm_load assembles and verifies the program in path, or exits with 1. */
void vm_load(const char *path, struct vm_program *p);

/* vm_error reports "error: MSG at pc N" and exits with status 2. */
__attribute__((noreturn, cold)) void vm_error(int64_t pc, const char *msg);

/* vm_exit flushes stdout, reports the back-edge count if asked, exits. */
__attribute__((noreturn)) void vm_exit(int status);

/* vm_print_value writes v and a newline to stdout. */
void vm_print_value(const struct vm_value *v);

#endif /* VM_ISA_H */
