// Package abi is the Go side's one copy of what runtime-stub/include/
// redmagic_patch.h defines for both sides of a patch: the redmagic API
// functions in the order of enum rm_api. The patcher (cfg/sites,
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
