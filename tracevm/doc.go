// Package tracevm is the tracing JIT that libredmagic-jit.so (runtime-stub)
// starts in a patched interpreter at its first hot loop: it records the
// interpreter's own machine instructions for one iteration of the loop,
// optimises the recording, compiles it into a native trace whose every
// assumption is a guard, and runs it; any guard failure resumes the
// original code at the matching address with the machine state the
// original code would have.
//
// The package owns, as separate parts in the manner of DynamoRIO: the
// recorder (record.go), the optimiser (optimize.go, with the register and
// flag effects of instructions in effects.go and flags.go; loop peeling in
// peel.go; values behind pointers from a concrete run of the recording,
// concrete.go, with native calls' results from the recorder's call log,
// calls.go, and traces retired when such a value changes, respec.go;
// vector copies through general registers and split wide loads,
// vecpair.go and widesplit.go, which serve the processor's store
// forwarding; native functions found to write no memory, nowrites.go),
// the trace
// compiler and its instruction emitter (compile.go, emit.go), the code
// cache and its generations (package codecache, with data areas near it in
// data.go), the switch between the interpreter's state and the machine's,
// the exit stubs, the recording budget and the governor's per-trace
// verdicts (tv.c), and the JIT's statistics (stats.go). The instruction
// classes the recorder needs are package insn; tests drive the machine
// without patching anything through package harness.
//
// Counting back-edges, deciding that a loop is hot and measuring the
// interpreter's cost for the governor belong to the C runtime
// (runtime-stub/host), which calls the machine through its C entry points.
// A machine serves one process: those entry points (tv.c) reach it through
// the package's active machine, set once by Start.
package tracevm
