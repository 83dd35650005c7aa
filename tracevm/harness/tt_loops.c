/*
 * tt_loops.c: the test functions, written as interpreter code would be:
 * out-of-line functions whose user-level loops are marked with the
 * annotation API (through the th_* shims). Every test function has the
 * signature tt_fn (th.h): in[] holds the inputs (in[0] is always the base
 * of the loop ids, fresh for every run), out[] receives extra results.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "th.h"

#define ID(k) ((void *)(uintptr_t)(in[0] + (k)))

static inline uint64_t tt_xorshift(uint64_t x)
{
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/* A counted loop: sum of 3i + k. */
TT int64_t tt_sum(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], k = in[2], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		s += 3 * i + k;
		th_backwards_branch(ID(0));
	}
	return s;
}

/* A data-dependent branch on a xorshift sequence: both sides are common,
 * so the root trace's guard exits often and gets a side trace. */
TT int64_t tt_branchy(const int64_t *in, int64_t *out)
{
	int64_t n = in[1];
	uint64_t x = (uint64_t)in[2] | 1;
	int64_t s = 0, odd = 0;
	for (int64_t i = 0; i < n; i++) {
		x = tt_xorshift(x);
		if (x & 1) {
			s += (int64_t)(x >> 40);
			odd++;
		} else {
			s ^= (int64_t)(x >> 20);
		}
		th_backwards_branch(ID(0));
	}
	out[0] = odd;
	out[1] = (int64_t)x;
	return s;
}

/* A chain of conditional branches, each taken the same way every
 * iteration (the empty asm keeps them branches, not cmovs): recorded a
 * second time (fresh ids), the body runs from the recorder's block cache,
 * its blocks chained. */
#define TT_STEP(bit, a, b) \
	do { \
		if (k & (bit)) { \
			a; \
			__asm__ volatile(""); \
		} else { \
			b; \
		} \
	} while (0)
TT int64_t tt_chain(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], k = in[2], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		TT_STEP(1, s += i, s -= i);
		TT_STEP(2, s ^= i << 3, s += 7);
		TT_STEP(4, s += i * 5, s ^= 11);
		TT_STEP(8, s -= i >> 2, s += 13);
		TT_STEP(16, s ^= i, s -= 3);
		th_backwards_branch(ID(0));
	}
	return s;
}

/* An inner loop the annotations do not mark, in the marked loop's own
 * frame: recordings unroll it until their instruction limit. Once its
 * blocks are kept, a recording runs them chained until the chain log is
 * full, and only then learns that it is too long. */
TT int64_t tt_chain_long(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], m = in[2], k = in[3], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		for (int64_t j = 0; j < m; j++)
			TT_STEP(1, s += j ^ k, s -= j);
		th_backwards_branch(ID(0));
	}
	return s;
}

/* A helper whose second branch leads straight to its return: the block
 * before the return is kept, the return is handled by the recorder, and
 * the caller's block after it is kept too; the branch must not be chained
 * to the caller's block (that would skip the return). */
TT_HELPER int64_t tt_h_early(int64_t x, int64_t k)
{
	TT_STEP(2, x += 3, x -= 5);
	if (k & 1)
		return x;
	return (x * 7) ^ k;
}

TT int64_t tt_chain_ret(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], k = in[2], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		s += tt_h_early(i, k);
		TT_STEP(4, s ^= i, s += 9);
		th_backwards_branch(ID(0));
	}
	return s;
}

/* Nested loops: the inner loop (id 1) gets hot first and gets its own
 * trace; the outer loop's (id 0) trace links into it, or, when the inner
 * loop runs a few iterations each time, unrolls it. The inner loop runs m
 * times, or i % m when in[3] is nonzero. */
TT int64_t tt_nested(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], m = in[2], vary = in[3], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		int64_t trips = vary ? i % m : m;
		for (int64_t j = 0; j < trips; j++) {
			s += i * j + j;
			th_backwards_branch(ID(1));
		}
		th_fellthrough_branch(ID(1));
		s += i;
		th_backwards_branch(ID(0));
	}
	return s;
}

/* Small helpers a trace inlines (call, body, ret). */
TT_HELPER int64_t tt_h_mix(int64_t x, int64_t k)
{
	return (x * 31) ^ k;
}

TT_HELPER int64_t tt_h_square(int64_t x)
{
	return x * x;
}

TT int64_t tt_calls(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], k = in[2], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		s += tt_h_mix(i, k) + tt_h_square(i & 255);
		th_backwards_branch(ID(0));
	}
	return s;
}

/* A helper with a loop of its own whose trip count changes with the
 * data (the bits of x): unrolled into a trace it would exit whenever the
 * count differs from the recorded one, so it must be called natively. */
TT_HELPER int64_t tt_h_bits(uint64_t x)
{
	int64_t c = 0;
	while (x) {
		c += x & 1;
		x >>= 1;
	}
	return c;
}

TT int64_t tt_callee_loop(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		s += tt_h_bits((uint64_t)i * 0x9e3779b9u) + tt_h_mix(i, 3);
		th_backwards_branch(ID(0));
	}
	return s;
}

/* A helper whose loop ran once when the trace was recorded (x is 1 or 2
 * for the first half of the iterations) and more often later: the loop's
 * back-branch, not taken, to code the call already ran, is the loop's
 * sign, and the helper must be called natively from the start. */
TT_HELPER int64_t tt_h_pairs(uint64_t x)
{
	int64_t c = 0;
	do {
		c += (x & 3) == 3;
		x >>= 2;
	} while (x);
	return c;
}

TT int64_t tt_callee_once(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		s += tt_h_pairs(i < n / 2 ? 1 + (i & 1) : (uint64_t)i * 0x9e3779b9u) + tt_h_mix(i, 5);
		th_backwards_branch(ID(0));
	}
	return s;
}

/* A loop that calls a native lookup (tn_lookup, which writes no memory)
 * and reads a mode word of its input each iteration (in[2], volatile: as
 * an interpreter reads its program), compared twice: the call does not
 * keep the loop from being peeled, and the second copy takes the word as
 * known. */
static const int64_t tt_lookup_tab[8] = { 5, 3, 9, 1, 7, 2, 8, 6 };

TT int64_t tt_lookup_loop(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		int64_t mode = *(volatile const int64_t *)&in[2];
		if (mode > 2)
			s ^= 5;
		if (mode == 1)
			s += tn_lookup(tt_lookup_tab, 8, i & 7) * 3;
		else
			s -= i;
		th_backwards_branch(ID(0));
	}
	return s;
}

/* A loop that dispatches on the kind of what a native lookup returns
 * (tn_find, passed nothing that changes): one object until iteration
 * in[2], then one of four by the iteration. What the call returned is in the recording's call log; the
 * optimiser takes the object's kind as known behind a guard after its
 * load, and the switch's jump through its table folds. Once the object
 * changes that guard fails: the trace is retired and the loop recorded
 * again. */
TT int64_t tt_find_loop(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], from = in[2], s = 0;
	out[0] = 0;
	for (int64_t i = 0; i < n; i++) {
		const struct tn_obj *o = tn_find(&out[0], from);
		switch (o->kind) {
		case 0: s += 1; break;
		case 1: s += o->val; break;
		case 2: s -= o->val * 3; break;
		case 3: s ^= o->val; break;
		case 4: s += o->val << 1; break;
		case 5: s -= 7; break;
		default: s = -s; break;
		}
		th_backwards_branch(ID(0));
	}
	return s;
}

/* For tracevm's scan of functions that write no memory (never run): a
 * loop, a switch through a table, stores into its own frame, calls of
 * those; and functions that write their output, a global, or call one
 * that does. */
TT int64_t tt_nw_sum(const int64_t *in, int64_t *out)
{
	int64_t s = 0;
	(void)out;
	for (int64_t i = 0; i < in[1]; i++)
		s += in[2 + (i & 3)];
	return s;
}

TT int64_t tt_nw_switch(const int64_t *in, int64_t *out)
{
	(void)out;
	switch (in[1]) {
	case 0: return in[2] * 3;
	case 1: return in[3] + 7;
	case 2: return in[2] ^ in[3];
	case 3: return in[4] - 1;
	case 4: return in[2] << 3;
	case 5: return in[3] >> 2;
	case 6: return in[4] * in[2];
	case 7: return -in[3];
	case 8: return in[2] | 9;
	case 9: return in[4] & 0x55;
	case 10: return in[2] / 7;
	case 11: return in[3] % 5;
	default: return 0;
	}
}

TT int64_t tt_nw_frame(const int64_t *in, int64_t *out)
{
	volatile int64_t a = in[1], b = in[2];
	(void)out;
	return a * b;
}

TT int64_t tt_nw_calls(const int64_t *in, int64_t *out)
{
	return tt_nw_sum(in, out) + tt_nw_switch(in, out) + tt_nw_frame(in, out);
}

TT int64_t tt_w_out(const int64_t *in, int64_t *out)
{
	out[0] = in[1];
	return 0;
}

TT int64_t tt_w_calls(const int64_t *in, int64_t *out)
{
	return tt_nw_sum(in, out) + tt_w_out(in, out);
}

static int64_t tt_w_global_word;

TT int64_t tt_w_global(const int64_t *in, int64_t *out)
{
	(void)out;
	tt_w_global_word += in[1];
	return tt_w_global_word;
}

/* A user-level call made as a C call inside a branchable frame: the
 * function runs its loop again, one level down, as an interpreter runs a
 * called user function. Each level's loop has an id of its own (level d
 * is loop id d, as the loops of different user functions would be); the
 * top level runs in[2] iterations, the levels below in[3] each. out[0]
 * counts the activations. */
TT int64_t tt_recurse(const int64_t *in, int64_t *out)
{
	int64_t depth = in[1], n = in[2], s = 0;
	for (int64_t i = 0; i < n; i++) {
		s += i + depth * 1000;
		if (depth > 0) {
			int64_t sub[4] = { in[0], depth - 1, in[3], in[3] };
			uint_fast64_t frame = 0;
			th_begin_branchable_frame(&frame);
			s += tt_recurse(sub, out) % 100003;
			th_end_branchable_frame(&frame);
		}
		th_backwards_branch(ID(depth));
	}
	out[0]++;
	return s;
}

/* A switch-dispatched register machine: a jump table, so every
 * instruction ends in an indirect jump. The backwards jump of the user
 * program is the loop, named by its target pc. */
enum {
	VM_LI, VM_MOV, VM_ADD, VM_SUB, VM_MUL, VM_XOR, VM_ADDI, VM_SHR,
	VM_AND, VM_JNZ, VM_NOP, VM_HALT,
	VM_XORK, /* r[a] = r[b] ^ constant c (tt_tagged) */
};

struct vm_ins {
	uint8_t op, a, b, c;
	int32_t imm;
};

/* The switch interpreter's loop over prog, with in and out in scope: a
 * macro, so that each interpreter below is one function with its own jump
 * table, as a real interpreter's eval loop is. */
#define TT_VM_RUN(prog) \
	int64_t r[8] = { 0 }; \
	int64_t steps = 0; \
	for (uint32_t pc = 0;;) { \
		const struct vm_ins *p = &prog[pc++]; \
		steps++; \
		switch (p->op) { \
		case VM_LI: \
			r[p->a] = p->imm; \
			break; \
		case VM_MOV: \
			r[p->a] = r[p->b]; \
			break; \
		case VM_ADD: \
			r[p->a] = r[p->b] + r[p->c]; \
			break; \
		case VM_SUB: \
			r[p->a] = r[p->b] - r[p->c]; \
			break; \
		case VM_MUL: \
			r[p->a] = r[p->b] * r[p->c]; \
			break; \
		case VM_XOR: \
			r[p->a] = r[p->b] ^ r[p->c]; \
			break; \
		case VM_ADDI: \
			r[p->a] = r[p->b] + p->imm; \
			break; \
		case VM_SHR: \
			r[p->a] = (int64_t)((uint64_t)r[p->b] >> p->imm); \
			break; \
		case VM_AND: \
			r[p->a] = r[p->b] & r[p->c]; \
			break; \
		case VM_JNZ: \
			if (r[p->a]) { \
				uint32_t to = (uint32_t)p->imm; \
				int back = to < pc; \
				pc = to; \
				if (back) \
					th_backwards_branch(ID(to)); \
			} \
			break; \
		case VM_NOP: \
			break; \
		case VM_HALT: \
			out[0] = steps; \
			return r[p->a]; \
		default: \
			th_ensure_not_traced(); \
			return -1; \
		} \
	}

TT int64_t tt_interp(const int64_t *in, int64_t *out)
{
	/* r1 = sum over c = n..1 of (c*c ^ k) + ((c >> 1) & 7) */
	const struct vm_ins prog[] = {
		{ VM_LI, 0, 0, 0, (int32_t)in[1] },   /* 0: r0 = n */
		{ VM_LI, 1, 0, 0, 0 },                /* 1: r1 = 0 */
		{ VM_LI, 2, 0, 0, (int32_t)in[2] },   /* 2: r2 = k */
		{ VM_MUL, 3, 0, 0, 0 },               /* 3: r3 = r0 * r0 */
		{ VM_XOR, 3, 3, 2, 0 },               /* 4: r3 ^= r2 */
		{ VM_ADD, 1, 1, 3, 0 },               /* 5: r1 += r3 */
		{ VM_MOV, 4, 0, 0, 0 },               /* 6: r4 = r0 */
		{ VM_SHR, 4, 4, 0, 1 },               /* 7: r4 >>= 1 */
		{ VM_LI, 5, 0, 0, 7 },                /* 8: r5 = 7 */
		{ VM_AND, 4, 4, 5, 0 },               /* 9: r4 &= r5 */
		{ VM_ADD, 1, 1, 4, 0 },               /* 10: r1 += r4 */
		{ VM_NOP, 0, 0, 0, 0 },               /* 11 */
		{ VM_ADDI, 0, 0, 0, -1 },             /* 12: r0-- */
		{ VM_JNZ, 0, 0, 0, 3 },               /* 13: if r0 goto 3 */
		{ VM_HALT, 1, 0, 0, 0 },              /* 14: return r1 */
	};
	TT_VM_RUN(prog);
}

/* The same interpreter on a loop with a branch in its body: every third
 * iteration takes a forward jump over two instructions, so the loop has a
 * root trace and a side trace that closes it:
 * r1 = sum over c = n..1 of (c*c ^ k) + (c % 3 ? 7 : 0). */
TT int64_t tt_interp_branch(const int64_t *in, int64_t *out)
{
	const struct vm_ins prog[] = {
		{ VM_LI, 0, 0, 0, (int32_t)in[1] },   /* 0: r0 = n */
		{ VM_LI, 1, 0, 0, 0 },                /* 1: r1 = 0 */
		{ VM_LI, 2, 0, 0, (int32_t)in[2] },   /* 2: r2 = k */
		{ VM_LI, 6, 0, 0, 0 },                /* 3: r6 = 0 (c % 3) */
		{ VM_MUL, 3, 0, 0, 0 },               /* 4: r3 = r0 * r0 */
		{ VM_XOR, 3, 3, 2, 0 },               /* 5: r3 ^= r2 */
		{ VM_ADD, 1, 1, 3, 0 },               /* 6: r1 += r3 */
		{ VM_JNZ, 6, 0, 0, 10 },              /* 7: if r6 goto 10 */
		{ VM_LI, 6, 0, 0, 3 },                /* 8: r6 = 3 */
		{ VM_ADDI, 1, 1, 0, -7 },             /* 9: r1 -= 7 */
		{ VM_ADDI, 1, 1, 0, 7 },              /* 10: r1 += 7 */
		{ VM_ADDI, 6, 6, 0, -1 },             /* 11: r6-- */
		{ VM_ADDI, 0, 0, 0, -1 },             /* 12: r0-- */
		{ VM_JNZ, 0, 0, 0, 4 },               /* 13: if r0 goto 4 */
		{ VM_HALT, 1, 0, 0, 0 },              /* 14: return r1 */
	};
	TT_VM_RUN(prog);
}

/* The same interpreter with its state in memory, as interpreters that keep
 * the pc in a frame or VM struct do: each step stores the next pc and the
 * next step loads it back, and the program is read-only data. A trace that
 * forwards the stored pc to the load knows every instruction it
 * dispatches on, and the instruction pointer it stores and reads back (64
 * bits: guarded after its load): r1 = sum over c = n..1 of (c*c ^ k). */
static const struct vm_ins tt_mem_prog[] = {
	{ VM_MUL, 3, 0, 0, 0 },   /* 0: r3 = r0 * r0 */
	{ VM_XOR, 3, 3, 2, 0 },   /* 1: r3 ^= r2 */
	{ VM_ADD, 1, 1, 3, 0 },   /* 2: r1 += r3 */
	{ VM_ADDI, 0, 0, 0, -1 }, /* 3: r0-- */
	{ VM_JNZ, 0, 0, 0, 0 },   /* 4: if r0 goto 0 */
	{ VM_HALT, 1, 0, 0, 0 },  /* 5: return r1 */
};

static struct {
	volatile uint32_t pc;
	const struct vm_ins *volatile cur; /* the instruction being run */
	volatile int64_t steps;
} tt_mem_vm;

TT int64_t tt_mem_interp(const int64_t *in, int64_t *out)
{
	int64_t r[8] = { in[1], 0, in[2] };
	tt_mem_vm.pc = 0;
	tt_mem_vm.steps = 0;
	for (;;) {
		uint32_t pc = tt_mem_vm.pc;
		const struct vm_ins *p = &tt_mem_prog[pc];
		tt_mem_vm.pc = pc + 1;
		tt_mem_vm.cur = p;
		tt_mem_vm.steps = tt_mem_vm.steps + 1;
		switch (p->op) {
		case VM_MUL:
			p = tt_mem_vm.cur; /* a pointer read back: 64 bits */
			r[p->a] = r[p->b] * r[p->c];
			break;
		case VM_XOR:
			r[p->a] = r[p->b] ^ r[p->c];
			break;
		case VM_ADD:
			r[p->a] = r[p->b] + r[p->c];
			break;
		case VM_ADDI:
			p = tt_mem_vm.cur;
			r[p->a] = r[p->b] + p->imm;
			break;
		case VM_JNZ:
			if (r[p->a]) {
				uint32_t to = (uint32_t)p->imm;
				tt_mem_vm.pc = to;
				if (to <= pc)
					th_backwards_branch(ID(to));
			}
			break;
		case VM_HALT:
			out[0] = tt_mem_vm.steps;
			return r[p->a];
		default:
			th_ensure_not_traced();
			return -1;
		}
	}
}

/* The memory-pc interpreter run twice, each time with its state in
 * another frame (a VM struct elsewhere), as a Lua or Python function's
 * loop runs with its frame wherever the call that entered it put it: the
 * root trace, specialised on the first frame, leaves at its head guard on
 * the second; a variant of it (compile.go, variantEntry) is specialised on
 * that one. out[0]: the steps of both runs; returns the sum of their r1.
 * The frame is chosen by an outer loop, unmarked. */
struct tt_fvm {
	volatile uint32_t pc;
	const struct vm_ins *volatile cur;
	volatile int64_t steps;
	volatile int64_t r[4];
};

static struct tt_fvm tt_fvms[2];

static volatile int tt_nframes = 2; /* not unrolled: one loop, two frames */

TT int64_t tt_frames(const int64_t *in, int64_t *out)
{
	int64_t sum = 0, steps = 0;
	for (int f = 0; f < tt_nframes; f++) {
		struct tt_fvm *vm = &tt_fvms[f];
		vm->pc = 0;
		vm->steps = 0;
		vm->r[0] = in[1];
		vm->r[1] = 0;
		vm->r[2] = in[2];
		for (;;) {
			uint32_t pc = vm->pc;
			const struct vm_ins *p = &tt_mem_prog[pc];
			vm->pc = pc + 1;
			vm->cur = p;
			vm->steps = vm->steps + 1;
			if (p->op == VM_HALT) {
				sum += vm->r[p->a];
				steps += vm->steps;
				break;
			}
			switch (p->op) {
			case VM_MUL:
				p = vm->cur;
				vm->r[p->a] = vm->r[p->b] * vm->r[p->c];
				break;
			case VM_XOR:
				vm->r[p->a] = vm->r[p->b] ^ vm->r[p->c];
				break;
			case VM_ADD:
				vm->r[p->a] = vm->r[p->b] + vm->r[p->c];
				break;
			case VM_ADDI:
				p = vm->cur;
				vm->r[p->a] = vm->r[p->b] + p->imm;
				break;
			case VM_JNZ:
				if (vm->r[p->a]) {
					uint32_t to = (uint32_t)p->imm;
					vm->pc = to;
					if (to <= pc)
						th_backwards_branch(ID(to));
				}
				break;
			default:
				th_ensure_not_traced();
				return -1;
			}
		}
	}
	out[0] = steps;
	return sum;
}

/* A tagged register machine, as Lua's and other dynamic languages' VMs
 * are: each register holds a type tag beside its value, each instruction
 * checks its operands' tags against the integer tag and stores its result
 * with that tag, and the frame says how many registers there are. The
 * registers and the frame are static data far from the program (not beside
 * a word the trace guards, not in the C frame), and so are the function's
 * constants: a peeled copy takes their tags, the frame's size and the
 * constant k as known (the loop stores each tag back unchanged), and
 * checks none of them per iteration. r1 = sum over c = n..1 of
 * (c*c ^ k); out[1], out[2], out[3] and out[4] are the addresses of the
 * register file, the register count, the constants and the pointer to
 * them. */
enum { TT_TAG_INT = 3, TT_TAG_STR = 4 };
struct tt_tval {
	int64_t v;
	uint8_t tag;
};
static const struct vm_ins tt_tagged_prog[] = {
	{ VM_MUL, 3, 0, 0, 0 },   /* 0: r3 = r0 * r0 */
	{ VM_XORK, 3, 3, 0, 0 },  /* 1: r3 ^= K[0] */
	{ VM_ADD, 1, 1, 3, 0 },   /* 2: r1 += r3 */
	{ VM_ADDI, 0, 0, 0, -1 }, /* 3: r0-- */
	{ VM_JNZ, 0, 0, 0, 0 },   /* 4: if r0 goto 0 */
	{ VM_HALT, 1, 0, 0, 0 },  /* 5: return r1 */
};
/* The function's constants, as Lua keeps them apart from its code, read
 * through a pointer as a Lua closure reaches its prototype's: the pointer
 * lies above them, so that a peeled copy's close, which checks its
 * assumptions in the order the loop loads them, reads it before them. */
static struct {
	char far_from_the_rest[4096];
	struct tt_tval k[2];
	char far_from_the_constants[4096];
	struct tt_tval *kp;
} tt_tagged_consts;
static struct {
	char far_from_the_program[4096];
	struct tt_tval r[8];
	char far_from_the_registers[4096];
	uint64_t nregs;
} tt_tagged_vm;

TT int64_t tt_tagged(const int64_t *in, int64_t *out)
{
	struct tt_tval *r = tt_tagged_vm.r;
	tt_tagged_vm.nregs = 8;
	for (int i = 0; i < 8; i++)
		r[i] = (struct tt_tval){ 0, TT_TAG_INT };
	r[0].v = in[1];
	tt_tagged_consts.k[0] = (struct tt_tval){ in[2], TT_TAG_INT };
	tt_tagged_consts.kp = tt_tagged_consts.k;
	int64_t steps = 0;
	for (uint32_t pc = 0;;) {
		const struct vm_ins *p = &tt_tagged_prog[pc++];
		steps++;
		if (p->a >= tt_tagged_vm.nregs || p->b >= tt_tagged_vm.nregs ||
		    p->c >= tt_tagged_vm.nregs)
			return -2;
		switch (p->op) {
		case VM_MUL:
		case VM_XOR:
		case VM_ADD:
			if (r[p->b].tag != TT_TAG_INT || r[p->c].tag != TT_TAG_INT)
				return -3;
			if (p->op == VM_MUL)
				r[p->a].v = r[p->b].v * r[p->c].v;
			else if (p->op == VM_XOR)
				r[p->a].v = r[p->b].v ^ r[p->c].v;
			else
				r[p->a].v = r[p->b].v + r[p->c].v;
			r[p->a].tag = TT_TAG_INT;
			break;
		case VM_ADDI:
			if (r[p->b].tag != TT_TAG_INT)
				return -3;
			r[p->a].v = r[p->b].v + p->imm;
			r[p->a].tag = TT_TAG_INT;
			break;
		case VM_XORK:
			if (r[p->b].tag != TT_TAG_INT ||
			    tt_tagged_consts.kp[p->c].tag != TT_TAG_INT)
				return -3;
			r[p->a].v = r[p->b].v ^ tt_tagged_consts.kp[p->c].v;
			r[p->a].tag = TT_TAG_INT;
			break;
		case VM_JNZ:
			if (r[p->a].tag == TT_TAG_STR || r[p->a].v) {
				uint32_t to = (uint32_t)p->imm;
				int back = to < pc;
				pc = to;
				if (back)
					th_backwards_branch(ID(to));
			}
			break;
		case VM_HALT:
			out[0] = steps;
			out[1] = (int64_t)(uintptr_t)r;
			out[2] = (int64_t)(uintptr_t)&tt_tagged_vm.nregs;
			out[3] = (int64_t)(uintptr_t)tt_tagged_consts.k;
			out[4] = (int64_t)(uintptr_t)&tt_tagged_consts.kp;
			return r[p->a].v;
		default:
			th_ensure_not_traced();
			return -1;
		}
	}
}

/* A stack machine whose values are 16-byte tagged structs, as a C
 * interpreter with struct values is: a push and a pop copy a value whole
 * (gcc: one SSE load and store), an add updates the payload beneath the
 * top in place (an 8-byte store), and the pop that follows copies out
 * what the two wrote. out[1] = sum over c = 1..n of c; 11 bytecodes an
 * iteration. When c reaches in[2] (0: never) the accumulator takes a
 * second integer tag, which the adds keep from then on: the trace's tag
 * guards fail mid-iteration from there. out[2] is the accumulator's
 * final tag. */
enum { TS_PUSHL, TS_PUSHI, TS_ADD, TS_STOREL, TS_JNZ, TS_RETAG, TS_HALT };
enum { TT_TAG_INT2 = 5 };
static const struct vm_ins tt_tvstack_prog[] = {
	{ TS_RETAG, 1, 0, 0, 0 },   /* 0: retag acc when c == in[2] */
	{ TS_PUSHL, 1, 0, 0, 0 },   /* 1: push acc */
	{ TS_PUSHL, 0, 0, 0, 0 },   /* 2: push c */
	{ TS_ADD, 0, 0, 0, 0 },     /* 3: add */
	{ TS_STOREL, 1, 0, 0, 0 },  /* 4: acc = pop */
	{ TS_PUSHL, 0, 0, 0, 0 },   /* 5: push c */
	{ TS_PUSHI, 0, 0, 0, -1 },  /* 6: push -1 */
	{ TS_ADD, 0, 0, 0, 0 },     /* 7: add */
	{ TS_STOREL, 0, 0, 0, 0 },  /* 8: c = pop */
	{ TS_PUSHL, 0, 0, 0, 0 },   /* 9: push c */
	{ TS_JNZ, 0, 0, 0, 0 },     /* 10: if pop goto 0 */
	{ TS_HALT, 1, 0, 0, 0 },    /* 11: return acc */
};
static struct tt_tval tt_tvstack_stack[16], tt_tvstack_locals[4];

static int tt_int_tag(uint8_t tag)
{
	return tag == TT_TAG_INT || tag == TT_TAG_INT2;
}

TT int64_t tt_tvstack(const int64_t *in, int64_t *out)
{
	struct tt_tval *sp = tt_tvstack_stack, *l = tt_tvstack_locals;
	l[0] = (struct tt_tval){ in[1], TT_TAG_INT };
	l[1] = (struct tt_tval){ 0, TT_TAG_INT };
	int64_t steps = 0;
	for (uint32_t pc = 0;;) {
		const struct vm_ins *p = &tt_tvstack_prog[pc++];
		steps++;
		switch (p->op) {
		case TS_PUSHL:
			*sp++ = l[p->a];
			break;
		case TS_PUSHI:
			*sp++ = (struct tt_tval){ p->imm, TT_TAG_INT };
			break;
		case TS_ADD:
			if (sp[-1].tag != TT_TAG_INT || sp[-2].tag != TT_TAG_INT) {
				if (!tt_int_tag(sp[-1].tag) || !tt_int_tag(sp[-2].tag))
					return -3;
				sp[-2].tag = TT_TAG_INT2;
			}
			sp[-2].v += sp[-1].v;
			sp--;
			break;
		case TS_STOREL:
			l[p->a] = *--sp;
			break;
		case TS_JNZ:
			if ((--sp)->v) {
				uint32_t to = (uint32_t)p->imm;
				int back = to < pc;
				pc = to;
				if (back)
					th_backwards_branch(ID(to));
			}
			break;
		case TS_RETAG:
			if (l[0].v == in[2])
				l[p->a].tag = TT_TAG_INT2;
			break;
		case TS_HALT:
			out[0] = steps;
			out[1] = l[p->a].v;
			out[2] = l[p->a].tag;
			return sp - tt_tvstack_stack;
		default:
			th_ensure_not_traced();
			return -1;
		}
	}
}

/* A stack machine of doubles, as an interpreter keeps floats: every
 * operation loads its operands from memory slots and stores its result
 * to one, the next loads it back (xmmfwd.go). An iteration computes
 * x = x * 0.5 + 1.25 and s += x * x; c counts down from in[1]. When c
 * equals in[2] (0: never), FS_POKE adds 1 to x through a pointer the
 * machine keeps in memory, between x's store and its next loads. out[0]:
 * steps; out[1], out[2]: the bits of x and s. */
enum { FS_PUSHL, FS_PUSHK, FS_MUL, FS_ADD, FS_STOREL, FS_POKE, FS_DEC, FS_JNZ, FS_HALT };
static const struct vm_ins tt_fstack_prog[] = {
	{ FS_PUSHL, 1, 0, 0, 0 },  /* 0: push x */
	{ FS_PUSHK, 0, 0, 0, 0 },  /* 1: push 0.5 */
	{ FS_MUL, 0, 0, 0, 0 },    /* 2 */
	{ FS_PUSHK, 1, 0, 0, 0 },  /* 3: push 1.25 */
	{ FS_ADD, 0, 0, 0, 0 },    /* 4 */
	{ FS_STOREL, 1, 0, 0, 0 }, /* 5: x = pop */
	{ FS_POKE, 0, 0, 0, 0 },   /* 6: x += 1 through the pointer, once */
	{ FS_PUSHL, 1, 0, 0, 0 },  /* 7: push x */
	{ FS_PUSHL, 1, 0, 0, 0 },  /* 8: push x */
	{ FS_MUL, 0, 0, 0, 0 },    /* 9 */
	{ FS_PUSHL, 2, 0, 0, 0 },  /* 10: push s */
	{ FS_ADD, 0, 0, 0, 0 },    /* 11 */
	{ FS_STOREL, 2, 0, 0, 0 }, /* 12: s = pop */
	{ FS_DEC, 0, 0, 0, 0 },    /* 13: c -= 1 */
	{ FS_JNZ, 0, 0, 0, 0 },    /* 14: if c goto 0 */
	{ FS_HALT, 0, 0, 0, 0 },
};
static double tt_fstack_stack[16], tt_fstack_locals[4];
static const double tt_fstack_k[2] = { 0.5, 1.25 };
static double *volatile tt_fstack_poke;

TT int64_t tt_fstack(const int64_t *in, int64_t *out)
{
	double *sp = tt_fstack_stack, *l = tt_fstack_locals;
	int64_t c = in[1], steps = 0;
	/* The program on the stack, as tt_interp's: its loads are guarded,
	 * and the trace is peeled (its loop copy carries x and s). */
	struct vm_ins prog[sizeof tt_fstack_prog / sizeof tt_fstack_prog[0]];
	memcpy(prog, tt_fstack_prog, sizeof prog);
	l[1] = 0;
	l[2] = 0;
	tt_fstack_poke = &l[1];
	for (uint32_t pc = 0;;) {
		const struct vm_ins *p = &prog[pc++];
		steps++;
		switch (p->op) {
		case FS_PUSHL:
			*sp++ = l[p->a];
			break;
		case FS_PUSHK:
			*sp++ = tt_fstack_k[p->a];
			break;
		case FS_MUL:
			sp[-2] *= sp[-1];
			sp--;
			break;
		case FS_ADD:
			sp[-2] += sp[-1];
			sp--;
			break;
		case FS_STOREL:
			l[p->a] = *--sp;
			break;
		case FS_POKE:
			if (c == in[2])
				*tt_fstack_poke += 1.0;
			break;
		case FS_DEC:
			c--;
			break;
		case FS_JNZ:
			if (c) {
				pc = 0;
				th_backwards_branch(ID(0));
			}
			break;
		case FS_HALT:
			out[0] = steps;
			memcpy(&out[1], &l[1], 8);
			memcpy(&out[2], &l[2], 8);
			return sp - tt_fstack_stack;
		default:
			th_ensure_not_traced();
			return -1;
		}
	}
}

/* A store at an address the trace knows, then a store through a pointer
 * it does not know that writes the same slot once in 97 iterations (the
 * recorded one almost surely does not), then the load: the first store's
 * value is not certain any more. */
int64_t tt_alias_slots[2];
int64_t *tt_alias_ptrs[2] = { &tt_alias_slots[1], &tt_alias_slots[0] };

/* A call on one side keeps the branch a branch (no cmov). */
TT_HELPER int64_t tt_alias_mix(int64_t v)
{
	return v ^ 1;
}

TT int64_t tt_alias(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0;
	for (int64_t i = 0; i < n; i++) {
		tt_alias_slots[0] = 7;
		*tt_alias_ptrs[i % 97 == 96] = i;
		if (tt_alias_slots[0] == 7)
			s += 3;
		else
			s += tt_alias_mix(tt_alias_slots[0]);
		th_backwards_branch(ID(0));
	}
	out[0] = tt_alias_slots[1];
	return s;
}

/* A frame with a slot whose address leaves it (escaped: a global points
 * at it and a helper writes through that pointer now and then) beside one
 * only the function addresses (mode, volatile so that it stays a stack
 * slot): what the trace stores in mode stays known across the helper's
 * store through an unknown pointer, and the branch on it folds; what it
 * stores in escaped must not. */
int64_t *volatile tt_escaped;

TT_HELPER void tt_frame_poke(int64_t i)
{
	if (i % 5 == 4)
		*tt_escaped += i;
}

TT int64_t tt_frame(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0;
	volatile int64_t mode;
	int64_t escaped;
	tt_escaped = &escaped;
	for (int64_t i = 0; i < n; i++) {
		mode = 3;
		escaped = 1;
		tt_frame_poke(i);
		if (mode == 3)
			s += escaped * 3;
		else
			s += tt_alias_mix(escaped);
		th_backwards_branch(ID(0));
	}
	out[0] = escaped;
	tt_escaped = 0;
	return s;
}

/* Calls through a table of function pointers: indirect calls whose target
 * changes every iteration. The table is writable so that gcc cannot
 * resolve the calls. */
TT_HELPER int64_t tt_f0(int64_t x, int64_t k) { return x + k; }
TT_HELPER int64_t tt_f1(int64_t x, int64_t k) { return x * 3 - k; }
TT_HELPER int64_t tt_f2(int64_t x, int64_t k) { return (x ^ k) >> 1; }
TT_HELPER int64_t tt_f3(int64_t x, int64_t k) { return x * x % 1009 + k; }

int64_t (*tt_fptrs[4])(int64_t, int64_t) = { tt_f0, tt_f1, tt_f2, tt_f3 };

TT int64_t tt_fptr(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], k = in[2], mask = in[3], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		s += tt_fptrs[i & mask](i, k);
		th_backwards_branch(ID(0));
	}
	return s;
}

/* Global data read and written in the loop: the volatile ones are read
 * and written %rip-relative in every iteration. out[0..15] = the
 * histogram; the result is the total; tt_g_ticks and tt_g_last are
 * returned through tt_globals_extra. */
static int64_t tt_g_hist[16];
int64_t tt_g_total;
static volatile int64_t tt_g_scale = 5;
static volatile int64_t tt_g_ticks;
static volatile int64_t tt_g_last;

TT int64_t tt_globals(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], k = in[2];
	for (int i = 0; i < 16; i++)
		tt_g_hist[i] = 0;
	tt_g_total = 0;
	tt_g_ticks = 0;
	tt_g_last = -1;
	for (int64_t i = 0; i < n; i++) {
		tt_g_hist[(i * 7) & 15] += i;
		tt_g_total += (i ^ k) * tt_g_scale;
		tt_g_ticks += 2;
		tt_g_last = i;
		th_backwards_branch(ID(0));
	}
	for (int i = 0; i < 16; i++)
		out[i] = tt_g_hist[i];
	return tt_g_total;
}

/* Not a test function: reads the volatile globals after tt_globals. */
void th_globals_extra(int64_t *ticks, int64_t *last)
{
	*ticks = tt_g_ticks;
	*last = tt_g_last;
}

/* redmagic_is_traced() inside the loop: out[0] counts the iterations
 * that ran in a trace (tn_in_trace), out[1] those where it returned
 * nonzero. */
TT int64_t tt_is_traced(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0, traced = 0, said = 0;
	for (int64_t i = 0; i < n; i++) {
		s += i;
		if (th_is_traced())
			said++;
		if (tn_in_trace())
			traced++;
		th_backwards_branch(ID(0));
	}
	out[1] = said;
	out[0] = traced;
	return s;
}

/* An error path that must never be traced, taken every period-th
 * iteration. */
TT int64_t tt_ensure(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], period = in[2], s = 0, errs = 0;
	for (int64_t i = 0; i < n; i++) {
		s += i;
		if (__builtin_expect(i % period == period - 1, 0)) {
			th_ensure_not_traced();
			errs++;
			s ^= i << 3;
		}
		th_backwards_branch(ID(0));
	}
	out[0] = errs;
	return s;
}

/* Housekeeping inside a merge block: a reference count that goes up or
 * down with the data. */
struct tt_obj {
	int64_t rc;
	int64_t freed;
};

TT_HELPER void tt_release(struct tt_obj *o)
{
	o->freed++;
	o->rc = 1;
}

TT int64_t tt_merge(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0;
	uint64_t x = (uint64_t)in[2] | 1;
	struct tt_obj o = { 1, 0 };
	for (int64_t i = 0; i < n; i++) {
		x = tt_xorshift(x);
		s += (int64_t)(x & 0xff);
		th_begin_merge_block();
		if (x & 0x100)
			o.rc++;
		else if (--o.rc == 0)
			tt_release(&o);
		th_end_merge_block();
		th_backwards_branch(ID(0));
	}
	out[0] = o.rc;
	out[1] = o.freed;
	return s;
}

/* The loop annotation inside an out-of-line helper that then branches on
 * the data and returns, called from two sites of the loop: a recording
 * starts in the helper, whose return address it does not know (it
 * guards it), and side traces start inside the helper too. */
TT_HELPER uint64_t tt_step(const int64_t *in, uint64_t x, int64_t *acc)
{
	th_backwards_branch(ID(0));
	x = tt_xorshift(x);
	if (x & 2)
		*acc += (int64_t)(x >> 50);
	else
		*acc ^= (int64_t)(x >> 30);
	return x;
}

TT int64_t tt_helper_ret(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0, a = 0, b = 0;
	uint64_t x = (uint64_t)in[2] | 1;
	for (int64_t i = 0; i < n; i++) {
		if (x & 1) {
			x = tt_step(in, x, &s);
			a++;
		} else {
			x = tt_step(in, x + 2, &s); /* another call site */
			b += (int64_t)(x & 7);
		}
	}
	out[0] = a;
	out[1] = b;
	return s;
}

/* An instruction the recorder cannot copy: a raw getpid system call. */
TT int64_t tt_syscall(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], pid = in[2], s = 0, same = 0;
	for (int64_t i = 0; i < n; i++) {
		long r;
		__asm__ volatile("syscall"
				 : "=a"(r)
				 : "a"(39L)
				 : "rcx", "r11", "memory");
		same += r == pid;
		s += i;
		th_backwards_branch(ID(0));
	}
	out[0] = same;
	return s;
}

/* A loop for the signal test: integer and floating-point work. */
TT int64_t tt_spin(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0;
	uint64_t x = (uint64_t)in[2] | 1;
	double d = 0;
	for (int64_t i = 0; i < n; i++) {
		x = tt_xorshift(x);
		s += (int64_t)(x >> 48);
		d += (double)(x & 0xffff) * 0.5;
		th_backwards_branch(ID(0));
	}
	out[0] = (int64_t)d;
	return s;
}

/* Fork inside the traced loop: tn_fork_at (a native helper) forks at
 * iteration at; the child goes on with the loop (in the trace), sends its
 * results through a pipe and exits. out[0] = the child's sum, out[1] =
 * iterations the child saw traced after the fork, out[2] = same for the
 * parent, out[3] = the child's wait status, out[4] = the child's pid. */
TH_HIDDEN __attribute__((noinline)) void tn_fork_at(int64_t i, int64_t at,
						   int64_t *pid)
{
	if (i == at)
		*pid = fork();
}

TT int64_t tt_fork(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], at = in[2], s = 0, after = 0;
	int64_t pid = -2;
	int fd[2];
	if (pipe(fd) != 0)
		return -1;
	for (int64_t i = 0; i < n; i++) {
		s += 3 * i + 1;
		tn_fork_at(i, at, &pid);
		if (tn_in_trace())
			after += i > at;
		th_backwards_branch(ID(0));
	}
	return th_fork_finish(pid, fd, s, after, out);
}

/* Floating-point work beside a branch on a loop-invariant value (mode,
 * which gcc keeps in a callee-saved register): a trace specialised on
 * mode must still run the conversions and the multiply, whose results
 * live in %xmm registers. */
static volatile int64_t tt_inv_sink;

TT int64_t tt_invariant_fp(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], mode = in[2], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		double d = (double)(i & 1023) * 1.5;
		s += (int64_t)d;
		if (mode)
			s += i;
		else
			tt_inv_sink = i;
		th_backwards_branch(ID(0));
	}
	return s;
}

/* An annotation that acts outside traces (disable_branch, of a loop that
 * does not exist) called in the loop: a trace calls it natively, so
 * th_api sees a return address in the code cache. */
TT int64_t tt_native_api(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0;
	(void)out;
	for (int64_t i = 0; i < n; i++) {
		s += i ^ 0x55;
		th_disable_branch(ID(99));
		th_backwards_branch(ID(0));
	}
	return s;
}

/* A register machine whose program is 64-bit words in writable global
 * memory, and which rewrites itself: instruction 3's immediate is poked
 * by instruction 5 in every iteration. A trace that speculates on the
 * words it loads must check them where they are loaded.
 * word = op | a << 8 | b << 12 | c << 16 | imm << 20 (imm < 2048). */
enum {
	SM_MUL, SM_XOR, SM_ADD, SM_ADDI, SM_AND, SM_POKE, SM_DEC, SM_JNZ,
	SM_HALT, SM_NOP, SM_MOV,
};

#define SM_W(op, a, b, c, imm)                                                 \
	((uint64_t)(op) | (uint64_t)(a) << 8 | (uint64_t)(b) << 12 |           \
	 (uint64_t)(c) << 16 | (uint64_t)(imm) << 20)

uint64_t tt_smc_code[16];

TT int64_t tt_smc(const int64_t *in, int64_t *out)
{
	uint64_t *code = tt_smc_code;
	/* r1 = sum over c = n..1 of (c*c ^ k) + imm, imm = 5 at first and
	 * then the previous c & 7. */
	code[0] = SM_W(SM_MUL, 2, 0, 0, 0);
	code[1] = SM_W(SM_XOR, 2, 2, 3, 0);
	code[2] = SM_W(SM_ADD, 1, 1, 2, 0);
	code[3] = SM_W(SM_ADDI, 1, 1, 0, 5);
	code[4] = SM_W(SM_AND, 4, 0, 5, 0);
	code[5] = SM_W(SM_POKE, 4, 0, 0, 3);
	code[6] = SM_W(SM_DEC, 0, 0, 0, 0);
	code[7] = SM_W(SM_JNZ, 0, 0, 0, 0);
	code[8] = SM_W(SM_HALT, 1, 0, 0, 0);
	int64_t r[16] = { 0 };
	r[0] = in[1];
	r[3] = in[2];
	r[5] = 7;
	int64_t steps = 0;
	for (uint64_t pc = 0;;) {
		uint64_t w = code[pc++];
		unsigned a = (w >> 8) & 15, b = (w >> 12) & 15, c = (w >> 16) & 15;
		int64_t imm = (int64_t)(w >> 20);
		steps++;
		switch (w & 0xff) {
		case SM_MUL:
			r[a] = r[b] * r[b];
			break;
		case SM_XOR:
			r[a] = r[b] ^ r[c];
			break;
		case SM_ADD:
			r[a] = r[b] + r[c];
			break;
		case SM_ADDI:
			r[a] = r[b] + imm;
			break;
		case SM_AND:
			r[a] = r[b] & r[c];
			break;
		case SM_POKE:
			code[imm] = (code[imm] & ~((uint64_t)0x7ff << 20)) |
				    (uint64_t)(r[a] & 0x7ff) << 20;
			break;
		case SM_DEC:
			r[a]--;
			break;
		case SM_JNZ:
			if (r[a]) {
				pc = (uint64_t)imm;
				th_backwards_branch(ID(pc));
			}
			break;
		case SM_NOP:
			break;
		case SM_MOV:
			r[a] = r[b];
			break;
		case SM_HALT:
			out[0] = steps;
			out[1] = (int64_t)(code[3] >> 20);
			return r[a];
		default:
			th_ensure_not_traced();
			return -1;
		}
	}
}
