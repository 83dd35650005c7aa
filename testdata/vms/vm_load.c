/*
 * vm_load.c: the assembler and verifier shared by the three VMs.
 *
 * Source format, one statement per line, ';' starts a comment:
 *   func NAME NARGS NLOCALS   starts a function; locals 0..NARGS-1 hold the
 *                             arguments, the rest start as integer 0
 *   LABEL:                    names the next instruction (labels are local
 *                             to their function); may precede an instruction
 *                             on the same line
 *   MNEMONIC OPERAND...       an instruction (see vm_isa.h); jumps name a
 *                             label, call names a function
 *   .word INT...              raw words, to build malformed code for tests
 * Execution starts at func main, which takes no arguments.
 *
 * The verifier walks every path of each function from its entry with the
 * operand stack depth, as a bytecode verifier does: it rejects underflow,
 * unequal depths where paths meet, jumps that do not land on an instruction
 * of the same function, falling off the end, and calls with a wrong argument
 * count, and it records the maximum depth. A word that is not an opcode ends
 * its path: executing it is the run-time error "unknown opcode". Local
 * indexes are left to the run-time check.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm_isa.h"

const struct vm_opinfo vm_opinfo[VM_NUM_OPCODES] = {
#define VM_INFO_(name, mnemonic, operands, pops, pushes)                       \
	[OP_##name] = {mnemonic, operands, pops, pushes},
	VM_OPCODES(VM_INFO_)
#undef VM_INFO_
};

struct asm_label {
	char *name;
	int64_t pc;
};

/* A use of a name resolved later: a label (jump) or a function (call). */
struct asm_ref {
	char *name;
	int64_t insn; /* pc of the instruction */
	int line;
};

struct asm_state {
	const char *file; /* base name, for messages */
	int line;
	struct vm_program *p;
	int64_t code_cap, funcs_cap;
	int64_t cur; /* current function, -1 before the first */
	struct asm_label *labels; /* of the current function */
	int64_t nlabels, labels_cap;
	struct asm_ref *jumps; /* of the current function */
	int64_t njumps, jumps_cap;
	struct asm_ref *calls; /* of the whole program */
	int64_t ncalls, calls_cap;
};

static void *xgrow(void *ptr, int64_t *cap, int64_t need, size_t elem)
{
	if (need <= *cap)
		return ptr;
	int64_t n = *cap ? *cap : 16;
	while (n < need)
		n *= 2;
	void *q = realloc(ptr, (size_t)n * elem);
	if (q == NULL) {
		fprintf(stderr, "error: out of memory\n");
		vm_exit(1);
	}
	*cap = n;
	return q;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (d == NULL) {
		fprintf(stderr, "error: out of memory\n");
		vm_exit(1);
	}
	return d;
}

__attribute__((noreturn, format(printf, 2, 3))) static void
asm_fail(const struct asm_state *s, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "error: %s:%d: ", s->file, s->line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	vm_exit(1);
}

__attribute__((noreturn, format(printf, 4, 5))) static void
verify_fail(const struct asm_state *s, const struct vm_func *f, int64_t pc,
	    const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "error: %s: func %s: pc %lld: ", s->file, f->name,
		(long long)pc);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	vm_exit(1);
}

static int parse_int(const char *tok, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(tok, &end, 10);
	if (errno != 0 || end == tok || *end != '\0')
		return 0;
	*out = v;
	return 1;
}

static int parse_float(const char *tok, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(tok, &end);
	if (errno != 0 || end == tok || *end != '\0')
		return 0;
	*out = v;
	return 1;
}

static int is_ident(const char *t)
{
	if (!(*t == '_' || (*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z')))
		return 0;
	for (t++; *t; t++)
		if (!(*t == '_' || (*t >= 'a' && *t <= 'z') ||
		      (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9')))
			return 0;
	return 1;
}

static void emit(struct asm_state *s, int64_t word)
{
	struct vm_program *p = s->p;
	p->code = xgrow(p->code, &s->code_cap, p->ncode + 1, sizeof *p->code);
	p->code[p->ncode++] = word;
}

static int64_t lookup_op(const char *mnemonic)
{
	for (int64_t op = 0; op < VM_NUM_OPCODES; op++)
		if (strcmp(vm_opinfo[op].mnemonic, mnemonic) == 0)
			return op;
	return -1;
}

/* The forward and backward opcode of each jump family. */
static const int64_t jump_pairs[][2] = {
	{OP_JMP, OP_JMP_BACK},
	{OP_JMP_IF_FALSE, OP_JMP_BACK_IF_FALSE},
	{OP_JMP_IF_TRUE, OP_JMP_BACK_IF_TRUE},
};

static int jump_family(int64_t op)
{
	for (int i = 0; i < 3; i++)
		if (jump_pairs[i][0] == op || jump_pairs[i][1] == op)
			return i;
	return -1;
}

/* end_func resolves the current function's jumps and closes it. */
static void end_func(struct asm_state *s)
{
	struct vm_program *p = s->p;
	if (s->cur < 0)
		return;
	for (int64_t i = 0; i < s->njumps; i++) {
		struct asm_ref *r = &s->jumps[i];
		int64_t j;
		for (j = 0; j < s->nlabels; j++)
			if (strcmp(s->labels[j].name, r->name) == 0)
				break;
		if (j == s->nlabels) {
			s->line = r->line;
			asm_fail(s, "undefined label %s", r->name);
		}
		int64_t target = s->labels[j].pc;
		int fam = jump_family(p->code[r->insn]);
		if (target > r->insn) {
			p->code[r->insn] = jump_pairs[fam][0];
			p->code[r->insn + 1] = target - r->insn;
		} else {
			p->code[r->insn] = jump_pairs[fam][1];
			p->code[r->insn + 1] = r->insn - target;
		}
		free(r->name);
	}
	for (int64_t j = 0; j < s->nlabels; j++)
		free(s->labels[j].name);
	s->nlabels = s->njumps = 0;
	p->funcs[s->cur].end = p->ncode;
}

static int64_t find_func(const struct vm_program *p, const char *name)
{
	for (int64_t i = 0; i < p->nfuncs; i++)
		if (strcmp(p->funcs[i].name, name) == 0)
			return i;
	return -1;
}

static void parse_func(struct asm_state *s, char **tok, int ntok)
{
	struct vm_program *p = s->p;
	int64_t nargs, nlocals;
	if (ntok != 4)
		asm_fail(s, "usage: func NAME NARGS NLOCALS");
	if (!is_ident(tok[1]))
		asm_fail(s, "bad function name %s", tok[1]);
	if (find_func(p, tok[1]) >= 0)
		asm_fail(s, "duplicate function %s", tok[1]);
	if (!parse_int(tok[2], &nargs) || !parse_int(tok[3], &nlocals) ||
	    nargs < 0 || nlocals < nargs || nlocals > VM_STACK_VALUES)
		asm_fail(s, "bad argument or local count");
	end_func(s);
	p->funcs = xgrow(p->funcs, &s->funcs_cap, p->nfuncs + 1,
			 sizeof *p->funcs);
	p->funcs[p->nfuncs] = (struct vm_func){
		.name = xstrdup(tok[1]),
		.entry = p->ncode,
		.end = p->ncode,
		.nargs = nargs,
		.nlocals = nlocals,
	};
	s->cur = p->nfuncs++;
}

static void parse_insn(struct asm_state *s, char **tok, int ntok)
{
	int64_t op = lookup_op(tok[0]);
	if (op < 0)
		asm_fail(s, "unknown instruction %s", tok[0]);
	const char *kinds = vm_opinfo[op].operands;
	int want = 0;
	for (const char *k = kinds; *k; k++)
		want += *k != 'n';
	if (ntok - 1 != want)
		asm_fail(s, "%s takes %d operand(s)", tok[0], want);
	int64_t insn = s->p->ncode;
	emit(s, op);
	int t = 1;
	for (const char *k = kinds; *k; k++) {
		int64_t v = 0;
		double f;
		switch (*k) {
		case 'i':
		case 'l':
			if (!parse_int(tok[t], &v))
				asm_fail(s, "bad integer %s", tok[t]);
			t++;
			break;
		case 'f':
			if (!parse_float(tok[t], &f))
				asm_fail(s, "bad number %s", tok[t]);
			memcpy(&v, &f, sizeof v);
			t++;
			break;
		case 'j':
		case 'b':
			if (!is_ident(tok[t]))
				asm_fail(s, "bad label %s", tok[t]);
			s->jumps = xgrow(s->jumps, &s->jumps_cap, s->njumps + 1,
					 sizeof *s->jumps);
			s->jumps[s->njumps++] = (struct asm_ref){
				xstrdup(tok[t]), insn, s->line};
			t++;
			break;
		case 'F':
			if (!is_ident(tok[t]))
				asm_fail(s, "bad function name %s", tok[t]);
			s->calls = xgrow(s->calls, &s->calls_cap, s->ncalls + 1,
					 sizeof *s->calls);
			s->calls[s->ncalls++] = (struct asm_ref){
				xstrdup(tok[t]), insn, s->line};
			t++;
			break;
		case 'n':
			break; /* filled in with the callee's NARGS */
		}
		emit(s, v);
	}
}

static void parse_line(struct asm_state *s, char *line)
{
	char *tok[16];
	int ntok = 0;
	char *save = NULL;
	char *semi = strchr(line, ';');
	if (semi != NULL)
		*semi = '\0';
	for (char *t = strtok_r(line, " \t\r\n", &save); t != NULL;
	     t = strtok_r(NULL, " \t\r\n", &save)) {
		if (ntok == (int)(sizeof tok / sizeof tok[0]))
			asm_fail(s, "too many operands");
		tok[ntok++] = t;
	}
	if (ntok == 0)
		return;
	size_t len = strlen(tok[0]);
	if (tok[0][len - 1] == ':') {
		tok[0][len - 1] = '\0';
		if (!is_ident(tok[0]))
			asm_fail(s, "bad label %s", tok[0]);
		if (s->cur < 0)
			asm_fail(s, "label outside func");
		for (int64_t j = 0; j < s->nlabels; j++)
			if (strcmp(s->labels[j].name, tok[0]) == 0)
				asm_fail(s, "duplicate label %s", tok[0]);
		s->labels = xgrow(s->labels, &s->labels_cap, s->nlabels + 1,
				  sizeof *s->labels);
		s->labels[s->nlabels++] =
			(struct asm_label){xstrdup(tok[0]), s->p->ncode};
		if (ntok == 1)
			return;
		memmove(tok, tok + 1, (size_t)(ntok - 1) * sizeof tok[0]);
		ntok--;
	}
	if (strcmp(tok[0], "func") == 0) {
		parse_func(s, tok, ntok);
		return;
	}
	if (s->cur < 0)
		asm_fail(s, "instruction outside func");
	if (strcmp(tok[0], ".word") == 0) {
		if (ntok < 2)
			asm_fail(s, ".word needs a value");
		for (int i = 1; i < ntok; i++) {
			int64_t v;
			if (!parse_int(tok[i], &v))
				asm_fail(s, "bad integer %s", tok[i]);
			emit(s, v);
		}
		return;
	}
	parse_insn(s, tok, ntok);
}

static int64_t insn_len(int64_t op)
{
	return 1 + (int64_t)strlen(vm_opinfo[op].operands);
}

static int is_valid_op(int64_t op)
{
	return op >= 0 && op < VM_NUM_OPCODES;
}

/* merge records that pc is reached with the given depth. */
static void merge(const struct asm_state *s, const struct vm_func *f,
		  int64_t from, int64_t pc, int64_t depth, int64_t *depths,
		  const char *starts, int64_t *work, int64_t *nwork)
{
	if (pc < f->entry || pc >= f->end || !starts[pc - f->entry])
		verify_fail(s, f, from, "jump to a non-instruction");
	int64_t *d = &depths[pc - f->entry];
	if (*d < 0) {
		*d = depth;
		work[(*nwork)++] = pc;
	} else if (*d != depth) {
		verify_fail(s, f, from,
			    "reaches pc %lld with stack depth %lld, other "
			    "paths with %lld",
			    (long long)pc, (long long)depth, (long long)*d);
	}
}

static void verify_func(const struct asm_state *s, struct vm_func *f)
{
	const struct vm_program *p = s->p;
	const int64_t *code = p->code;
	int64_t n = f->end - f->entry;
	if (n == 0)
		verify_fail(s, f, f->entry, "empty function");
	int64_t *depths = malloc((size_t)n * sizeof *depths);
	int64_t *work = malloc((size_t)n * sizeof *work);
	char *starts = calloc((size_t)n, 1);
	if (depths == NULL || work == NULL || starts == NULL) {
		fprintf(stderr, "error: out of memory\n");
		vm_exit(1);
	}
	/* Instruction boundaries by linear decoding; a non-opcode is 1 word. */
	for (int64_t pc = f->entry; pc < f->end;) {
		starts[pc - f->entry] = 1;
		depths[pc - f->entry] = -1;
		pc += is_valid_op(code[pc]) ? insn_len(code[pc]) : 1;
	}
	int64_t nwork = 0, max = 0;
	depths[0] = 0;
	work[nwork++] = f->entry;
	while (nwork > 0) {
		int64_t pc = work[--nwork];
		int64_t depth = depths[pc - f->entry];
		int64_t op = code[pc];
		if (!is_valid_op(op))
			continue;
		int64_t len = insn_len(op);
		if (pc + len > f->end)
			verify_fail(s, f, pc, "truncated instruction");
		int64_t pops = vm_opinfo[op].pops, pushes = vm_opinfo[op].pushes;
		if (op == OP_CALL) {
			int64_t callee = code[pc + 1];
			if (callee < 0 || callee >= p->nfuncs ||
			    code[pc + 2] != p->funcs[callee].nargs)
				verify_fail(s, f, pc, "bad call");
			pops = code[pc + 2];
		}
		if (op == OP_ARG && code[pc + 1] < 0)
			verify_fail(s, f, pc, "bad argument index");
		if (depth < pops)
			verify_fail(s, f, pc, "stack underflow");
		depth += pushes - pops;
		if (depth > max)
			max = depth;
		int falls = 1;
		switch (op) {
		case OP_HALT:
		case OP_RET:
			falls = 0;
			break;
		case OP_JMP:
		case OP_JMP_BACK:
			falls = 0;
			/* fall through */
		case OP_JMP_IF_FALSE:
		case OP_JMP_IF_TRUE:
		case OP_JMP_BACK_IF_FALSE:
		case OP_JMP_BACK_IF_TRUE: {
			int64_t d = code[pc + 1];
			int back = op == OP_JMP_BACK || op == OP_JMP_BACK_IF_FALSE ||
				   op == OP_JMP_BACK_IF_TRUE;
			/* Bounded first, so that pc +- d cannot overflow. */
			if (d > n || (back ? d < 0 : d <= 0))
				verify_fail(s, f, pc, "bad jump distance");
			merge(s, f, pc, back ? pc - d : pc + d, depth, depths,
			      starts, work, &nwork);
			break;
		}
		default:
			break;
		}
		if (falls) {
			if (pc + len >= f->end)
				verify_fail(s, f, pc, "falls off the end");
			merge(s, f, pc, pc + len, depth, depths, starts, work,
			      &nwork);
		}
	}
	f->maxstack = max;
	free(depths);
	free(work);
	free(starts);
}

void vm_load(const char *path, struct vm_program *p)
{
	const char *base = strrchr(path, '/');
	struct asm_state s = {.file = base ? base + 1 : path, .p = p, .cur = -1};
	FILE *in = fopen(path, "r");
	if (in == NULL) {
		fprintf(stderr, "error: %s: %s\n", s.file, strerror(errno));
		vm_exit(1);
	}
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, in) >= 0) {
		s.line++;
		parse_line(&s, line);
	}
	if (ferror(in)) {
		fprintf(stderr, "error: %s: read error\n", s.file);
		vm_exit(1);
	}
	free(line);
	fclose(in);
	end_func(&s);
	for (int64_t i = 0; i < s.ncalls; i++) {
		struct asm_ref *r = &s.calls[i];
		int64_t fi = find_func(p, r->name);
		if (fi < 0) {
			s.line = r->line;
			asm_fail(&s, "undefined function %s", r->name);
		}
		p->code[r->insn + 1] = fi;
		p->code[r->insn + 2] = p->funcs[fi].nargs;
		free(r->name);
	}
	p->main = find_func(p, "main");
	if (p->main < 0 || p->funcs[p->main].nargs != 0) {
		fprintf(stderr, "error: %s: no func main with 0 arguments\n",
			s.file);
		vm_exit(1);
	}
	for (int64_t i = 0; i < p->nfuncs; i++)
		verify_func(&s, &p->funcs[i]);
	free(s.labels);
	free(s.jumps);
	free(s.calls);
}
