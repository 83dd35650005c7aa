/*
 * redmagic.h: the annotation API of the redmagic tracing JIT.
 *
 * An interpreter marks its user-level control flow with these calls. With no
 * runtime present they do nothing; redmagic-patch later finds every call to
 * them in the compiled binary (direct, through the PLT, or by tail jump) and
 * redirects it into the tracing runtime.
 *
 * Meaning of each call:
 *   redmagic_start()                    the interpreter is initialised; tracing
 *                                       may begin from now on.
 *   redmagic_backwards_branch(id)       a user-level loop back-edge was taken;
 *                                       id names the loop (the user-level pc
 *                                       of the jump target). Hot ids start
 *                                       traces, and a trace closes when it
 *                                       comes back to its own id.
 *   redmagic_fellthrough_branch(id)     the loop id was left (its conditional
 *                                       back-edge fell through): a trace of
 *                                       that loop ends here.
 *   redmagic_begin_branchable_frame(f)  the interpreter is about to run a
 *   redmagic_end_branchable_frame(f)    nested instance of its loop (a user
 *                                       call made as a C call); *f is scratch
 *                                       storage owned by the runtime, so that
 *                                       loops in the nested frame trace apart
 *                                       from the caller's trace.
 *   redmagic_force_begin_trace(id)      start recording a trace for id now.
 *   redmagic_force_end_trace()          end the trace being recorded now.
 *   redmagic_force_jump_to_trace(id)    enter the compiled trace of id, if any.
 *   redmagic_ensure_not_traced()        the code that follows must run natively
 *                                       (e.g. error paths): abort any recording.
 *   redmagic_temp_disable()             suspend recording until the matching
 *   redmagic_temp_enable()              enable: calls in between run natively
 *                                       (e.g. I/O), never inlined into a
 *                                       trace; the code around them is
 *                                       still recorded.
 *   redmagic_do_not_trace_function(fp)  calls to function fp are never inlined
 *                                       into a trace; they run natively.
 *   redmagic_disable_branch(id)         never trace loop id.
 *   redmagic_is_traced()                0, inside traces too: a trace runs
 *                                       what the original code runs when
 *                                       it returns 0, so periodic work that
 *                                       a caller skips while it returns
 *                                       nonzero (a GIL hand-off, signal
 *                                       checks) is never skipped and no
 *                                       thread can wait forever on it.
 *   redmagic_begin_merge_block()        the branches between begin and end do
 *   redmagic_end_merge_block()          not change user-level control flow
 *                                       (housekeeping such as reference counts):
 *                                       the trace may merge their paths instead
 *                                       of guarding each one.
 *
 * Calls that act only while a trace is recorded (merge blocks, temp
 * disable/enable, branchable frames, fellthrough_branch, ensure_not_traced,
 * force_end_trace, is_traced) cost nothing at run time: the patcher
 * replaces each direct call by an instruction with the default's effect
 * and the recorder finds them by address.
 *
 * Default implementations: exactly one translation unit of the interpreter
 * defines REDMAGIC_DEFAULTS before including this header. It then gets weak,
 * externally visible, empty definitions that must stay real out-of-line calls
 * at -O2, because the patcher looks for the call sites:
 *   weak      a runtime linked in later may override them;
 *   noinline  every use stays a call instruction;
 *   noipa     the compiler may not look inside them, so callers neither drop
 *             the calls (pure/const discovery), fold redmagic_is_traced() to 0,
 *             nor keep values in call-clobbered registers across the call
 *             (IPA register allocation): the runtime that replaces them is
 *             free to use the whole calling convention;
 *   used      the definitions are emitted even when a call site is removed;
 *   asm ""    an opaque body, a second guard against all of the above.
 * Without REDMAGIC_DEFAULTS the header only declares the functions.
 * The argument of each default is an asm input so that it counts as used.
 */
#ifndef REDMAGIC_H
#define REDMAGIC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void redmagic_start(void);
void redmagic_backwards_branch(void *id);
void redmagic_fellthrough_branch(void *id);
void redmagic_begin_branchable_frame(uint_fast64_t *frame_id);
void redmagic_end_branchable_frame(uint_fast64_t *frame_id);
void redmagic_force_begin_trace(void *id);
void redmagic_force_end_trace(void);
void redmagic_force_jump_to_trace(void *id);
void redmagic_ensure_not_traced(void);
void redmagic_temp_disable(void);
void redmagic_temp_enable(void);
void redmagic_do_not_trace_function(void *function_pointer);
void redmagic_disable_branch(void *id);
int redmagic_is_traced(void);
void redmagic_begin_merge_block(void);
void redmagic_end_merge_block(void);

#ifdef REDMAGIC_DEFAULTS

#if defined(__has_attribute)
#if __has_attribute(noipa)
#define REDMAGIC_NOIPA_ __attribute__((noipa))
#endif
#endif
#ifndef REDMAGIC_NOIPA_
#define REDMAGIC_NOIPA_
#endif

#define REDMAGIC_DEFAULT_                                                      \
	__attribute__((weak, noinline, used, visibility("default")))           \
	REDMAGIC_NOIPA_

REDMAGIC_DEFAULT_ void redmagic_start(void)
{
	__asm__ volatile("");
}

REDMAGIC_DEFAULT_ void redmagic_backwards_branch(void *id)
{
	__asm__ volatile("" : : "r"(id));
}

REDMAGIC_DEFAULT_ void redmagic_fellthrough_branch(void *id)
{
	__asm__ volatile("" : : "r"(id));
}

REDMAGIC_DEFAULT_ void redmagic_begin_branchable_frame(uint_fast64_t *frame_id)
{
	__asm__ volatile("" : : "r"(frame_id));
}

REDMAGIC_DEFAULT_ void redmagic_end_branchable_frame(uint_fast64_t *frame_id)
{
	__asm__ volatile("" : : "r"(frame_id));
}

REDMAGIC_DEFAULT_ void redmagic_force_begin_trace(void *id)
{
	__asm__ volatile("" : : "r"(id));
}

REDMAGIC_DEFAULT_ void redmagic_force_end_trace(void)
{
	__asm__ volatile("");
}

REDMAGIC_DEFAULT_ void redmagic_force_jump_to_trace(void *id)
{
	__asm__ volatile("" : : "r"(id));
}

REDMAGIC_DEFAULT_ void redmagic_ensure_not_traced(void)
{
	__asm__ volatile("");
}

REDMAGIC_DEFAULT_ void redmagic_temp_disable(void)
{
	__asm__ volatile("");
}

REDMAGIC_DEFAULT_ void redmagic_temp_enable(void)
{
	__asm__ volatile("");
}

REDMAGIC_DEFAULT_ void redmagic_do_not_trace_function(void *function_pointer)
{
	__asm__ volatile("" : : "r"(function_pointer));
}

REDMAGIC_DEFAULT_ void redmagic_disable_branch(void *id)
{
	__asm__ volatile("" : : "r"(id));
}

REDMAGIC_DEFAULT_ void redmagic_begin_merge_block(void)
{
	__asm__ volatile("");
}

REDMAGIC_DEFAULT_ void redmagic_end_merge_block(void)
{
	__asm__ volatile("");
}

REDMAGIC_DEFAULT_ int redmagic_is_traced(void)
{
	int traced = 0;
	/* The asm output hides the constant from the caller's optimiser. */
	__asm__ volatile("" : "+r"(traced));
	return traced;
}

#undef REDMAGIC_DEFAULT_
#undef REDMAGIC_NOIPA_

#endif /* REDMAGIC_DEFAULTS */

#ifdef __cplusplus
}
#endif

#endif /* REDMAGIC_H */
