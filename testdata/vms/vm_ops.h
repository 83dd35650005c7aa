/*
 * vm_ops.h: the semantics of the value operations, shared by the eval loops
 * so that all three VMs compute bit-identical results.
 *
 * Integers wrap (two's complement) instead of invoking C's undefined
 * behaviour; an operation with a float operand converts the other operand
 * and yields a float. Integer division and modulo truncate toward zero, as in
 * C; integer division by zero is a run-time error, float division by zero
 * gives an IEEE infinity or NaN.
 *
 * An eval loop may define VM_ERROR before including this file to route
 * errors through its own hook.
 */
#ifndef VM_OPS_H
#define VM_OPS_H

#include <math.h>
#include <stdint.h>

#include "vm_isa.h"

#ifndef VM_ERROR
#define VM_ERROR vm_error
#endif

static inline double vm_as_float(const struct vm_value *v)
{
	return v->tag == VM_INT ? (double)v->i : v->f;
}

static inline int vm_both_int(const struct vm_value *a,
			      const struct vm_value *b)
{
	return a->tag == VM_INT && b->tag == VM_INT;
}

static inline void vm_set_int(struct vm_value *v, int64_t i)
{
	v->tag = VM_INT;
	v->i = i;
}

static inline void vm_set_float(struct vm_value *v, double f)
{
	v->tag = VM_FLOAT;
	v->f = f;
}

static inline int vm_truthy(const struct vm_value *v)
{
	return v->tag == VM_INT ? v->i != 0 : v->f != 0.0;
}

/* Each binary operation stores a OP b into a. */

static inline void vm_add(struct vm_value *a, const struct vm_value *b)
{
	if (vm_both_int(a, b))
		a->i = (int64_t)((uint64_t)a->i + (uint64_t)b->i);
	else
		vm_set_float(a, vm_as_float(a) + vm_as_float(b));
}

static inline void vm_sub(struct vm_value *a, const struct vm_value *b)
{
	if (vm_both_int(a, b))
		a->i = (int64_t)((uint64_t)a->i - (uint64_t)b->i);
	else
		vm_set_float(a, vm_as_float(a) - vm_as_float(b));
}

static inline void vm_mul(struct vm_value *a, const struct vm_value *b)
{
	if (vm_both_int(a, b))
		a->i = (int64_t)((uint64_t)a->i * (uint64_t)b->i);
	else
		vm_set_float(a, vm_as_float(a) * vm_as_float(b));
}

static inline void vm_div(struct vm_value *a, const struct vm_value *b,
			  int64_t pc)
{
	if (vm_both_int(a, b)) {
		if (b->i == 0)
			VM_ERROR(pc, "division by zero");
		/* INT64_MIN / -1 overflows in C; wrap like the other ops. */
		a->i = b->i == -1 ? (int64_t)(0 - (uint64_t)a->i) : a->i / b->i;
	} else {
		vm_set_float(a, vm_as_float(a) / vm_as_float(b));
	}
}

static inline void vm_mod(struct vm_value *a, const struct vm_value *b,
			  int64_t pc)
{
	if (vm_both_int(a, b)) {
		if (b->i == 0)
			VM_ERROR(pc, "modulo by zero");
		a->i = b->i == -1 ? 0 : a->i % b->i;
	} else {
		vm_set_float(a, fmod(vm_as_float(a), vm_as_float(b)));
	}
}

static inline void vm_lt(struct vm_value *a, const struct vm_value *b)
{
	vm_set_int(a, vm_both_int(a, b) ? a->i < b->i
					: vm_as_float(a) < vm_as_float(b));
}

static inline void vm_le(struct vm_value *a, const struct vm_value *b)
{
	vm_set_int(a, vm_both_int(a, b) ? a->i <= b->i
					: vm_as_float(a) <= vm_as_float(b));
}

static inline void vm_eq(struct vm_value *a, const struct vm_value *b)
{
	vm_set_int(a, vm_both_int(a, b) ? a->i == b->i
					: vm_as_float(a) == vm_as_float(b));
}

/* vm_arg is ARG index default: the index-th integer argument, if given. */
static inline int64_t vm_arg(const struct vm_program *p, int64_t index,
			     int64_t dflt)
{
	return index < p->nargs ? p->args[index] : dflt;
}

/* vm_zero_locals sets locals [from, to) to integer 0. */
static inline void vm_zero_locals(struct vm_value *fp, int64_t from,
				  int64_t to)
{
	for (int64_t i = from; i < to; i++)
		vm_set_int(&fp[i], 0);
}

#endif /* VM_OPS_H */
