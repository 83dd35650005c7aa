/*
 * vm_runtime.c: start-up, printing, errors and exit, shared by the VMs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm_isa.h"

uint64_t vm_backedges;

/* Set once by vm_init from VM_COUNT_BACKEDGES. */
static int count_backedges;

struct vm_value *vm_init(int argc, char **argv, struct vm_program *p)
{
	const char *env = getenv("VM_COUNT_BACKEDGES");
	count_backedges = env != NULL && strcmp(env, "1") == 0;
	if (argc < 2) {
		fprintf(stderr, "usage: %s program.vm [integer...]\n",
			argc > 0 ? argv[0] : "vm");
		vm_exit(1);
	}
	memset(p, 0, sizeof *p);
	p->nargs = argc - 2;
	p->args = calloc((size_t)p->nargs + 1, sizeof *p->args);
	struct vm_value *stack = calloc(VM_STACK_VALUES, sizeof *stack);
	if (p->args == NULL || stack == NULL) {
		fprintf(stderr, "error: out of memory\n");
		vm_exit(1);
	}
	for (int64_t i = 0; i < p->nargs; i++) {
		char *end;
		p->args[i] = strtoll(argv[i + 2], &end, 10);
		if (end == argv[i + 2] || *end != '\0') {
			fprintf(stderr, "error: argument %s is not an integer\n",
				argv[i + 2]);
			vm_exit(1);
		}
	}
	vm_load(argv[1], p);
	return stack;
}

void vm_exit(int status)
{
	fflush(stdout);
	if (count_backedges)
		fprintf(stderr, "backedges: %" PRIu64 "\n", vm_backedges);
	exit(status);
}

void vm_error(int64_t pc, const char *msg)
{
	/* stdout first, so that a terminal shows the error after the output. */
	fflush(stdout);
	fprintf(stderr, "error: %s at pc %" PRId64 "\n", msg, pc);
	vm_exit(2);
}

void vm_print_value(const struct vm_value *v)
{
	char buf[64];
	if (v->tag == VM_INT) {
		printf("%" PRId64 "\n", v->i);
		return;
	}
	/* %.9g, plus ".0" when it would read as an integer. */
	snprintf(buf, sizeof buf, "%.9g", v->f);
	if (strspn(buf, "-0123456789") == strlen(buf))
		strcat(buf, ".0");
	puts(buf);
}
