// Package tracevm is the tracing JIT's machine: it records the
// interpreter's own machine instructions for one iteration of a hot loop,
// compiles the recording into a native trace whose every assumption is a
// guard, and runs it; any guard failure resumes the original code at the
// matching address with the machine state the original code would have.
//
// The parts, as in DynamoRIO: the code cache (package codecache), the
// instruction classes the recorder needs (package insn), the recorder
// (record.go), the trace compiler (compile.go), and the switch between the
// interpreter's state and the runtime's (tv.c and the generated
// switch-out stub, emit.go). The embedding runtime (runtime-stub) feeds it
// loop hits and annotation calls; tests drive it through harness.go.
//
// A machine serves one process: C entry points (tv.c) reach it through
// the package's active machine, set once by Start.
package tracevm
