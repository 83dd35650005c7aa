/*
 * api_noop.c: the redmagic API as an interpreter might define it by hand
 * when it does not use redmagic.h's defaults: empty functions, nothing
 * else. corpusvm builds it as a separate object file and as a shared
 * library (libannotapi.so), and includes it with ANNOT_API_ATTR defined
 * to a weak attribute for weak definitions in the interpreter's own file.
 */
#include <stdint.h>

#include "redmagic.h"

#ifndef ANNOT_API_ATTR
#define ANNOT_API_ATTR
#endif

ANNOT_API_ATTR void redmagic_start(void)
{
}

ANNOT_API_ATTR void redmagic_backwards_branch(void *id)
{
	(void)id;
}

ANNOT_API_ATTR void redmagic_fellthrough_branch(void *id)
{
	(void)id;
}

ANNOT_API_ATTR void redmagic_begin_branchable_frame(uint_fast64_t *frame_id)
{
	(void)frame_id;
}

ANNOT_API_ATTR void redmagic_end_branchable_frame(uint_fast64_t *frame_id)
{
	(void)frame_id;
}

ANNOT_API_ATTR void redmagic_force_begin_trace(void *id)
{
	(void)id;
}

ANNOT_API_ATTR void redmagic_force_end_trace(void)
{
}

ANNOT_API_ATTR void redmagic_force_jump_to_trace(void *id)
{
	(void)id;
}

ANNOT_API_ATTR void redmagic_ensure_not_traced(void)
{
}

ANNOT_API_ATTR void redmagic_temp_disable(void)
{
}

ANNOT_API_ATTR void redmagic_temp_enable(void)
{
}

ANNOT_API_ATTR void redmagic_do_not_trace_function(void *function_pointer)
{
	(void)function_pointer;
}

ANNOT_API_ATTR void redmagic_disable_branch(void *id)
{
	(void)id;
}

ANNOT_API_ATTR int redmagic_is_traced(void)
{
	return 0;
}

ANNOT_API_ATTR void redmagic_begin_merge_block(void)
{
}

ANNOT_API_ATTR void redmagic_end_merge_block(void)
{
}
