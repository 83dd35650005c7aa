// Package abi is the Go side's one copy of what runtime-stub/include/
// redmagic_patch.h defines for both sides of a patch: the redmagic API
// functions in the order of enum rm_api, and where a CPython comparison
// site finds the jump it takes. The patcher (cfg/sites,
// elfpatch/redmagic), the JIT (tracevm) and the runtime's statistics
// (runtime-stub) take them from here; tests in those packages compare
// them with the C header and the runtime's assembly.
package abi

// NumAPI is RM_API_COUNT.
const NumAPI = 16

// APINames are the API functions without their "redmagic_" prefix,
// indexed by enum rm_api.
var APINames = [NumAPI]string{
	"start",
	"backwards_branch",
	"fellthrough_branch",
	"begin_branchable_frame",
	"end_branchable_frame",
	"force_begin_trace",
	"force_end_trace",
	"force_jump_to_trace",
	"ensure_not_traced",
	"temp_disable",
	"temp_enable",
	"do_not_trace_function",
	"disable_branch",
	"is_traced",
	"begin_merge_block",
	"end_merge_block",
}

// Prefix starts every API function's C name.
const Prefix = "redmagic_"

// CPy311JumpAt is RM_CPY311_JUMP_AT: a CPython 3.11 combined
// compare-and-jump (COMPARE_OP_INT_JUMP ...) takes the POP_JUMP_* code
// unit this many bytes past it, past its two inline cache entries.
const CPy311JumpAt = 6

// CPy311JumpBackMin is RM_CPY311_JUMP_BACK_MIN: that jump goes back when
// its opcode is at least this (POP_JUMP_BACKWARD_IF_FALSE; _IF_TRUE is
// 176, the forward ones 114 and 115).
const CPy311JumpBackMin = 175
