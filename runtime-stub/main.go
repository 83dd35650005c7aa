// Command runtime-stub is libredmagic-jit.so, one of the two libraries
// that make up the run time of a patched binary; redmagic-patch installs
// both beside it.
//
//   - libredmagic.so, the runtime, in C (host/, built by the Makefile): the
//     patched binary loads it through DT_NEEDED. Its constructor finds each
//     patched object's header (DT_REDMAGIC), validates it and fills its
//     slots, or puts the original dispatch entries back where counting
//     cannot pay. It counts site hits per thread and (site, id), measures
//     the interpreter for the governor, goes quiet when no trace pays,
//     loads the JIT at the first hot loop and writes the statistics at exit
//     (STATS.md). It has no Go in it, so a process that never runs a hot
//     loop starts and runs as the original does.
//   - libredmagic-jit.so, this package (go build -buildmode=c-shared): when
//     the runtime calls rm_jit_start (rm_jit.c), it reads what the tracing
//     JIT (tracevm) needs of each patched object's file and starts it
//     (jit.go); at exit it hands the runtime's statistics writer the JIT's
//     part of the report (stats.go). It reads and writes files with plain
//     system calls and keeps none open (rawfile.go). validate.go and
//     statsc.go compile the runtime's header validator and statistics
//     writer into the package, for its tests and fuzz target.
//
// The contract with patched binaries is include/redmagic_patch.h; the one
// between the two libraries is rm_internal.h. Per-hit work stays in C: an
// exported Go function costs about 50 ns a call, a counter update 1-2 ns.
//
// The Go runtime must leave no trace in the host process: since Go 1.25 it
// would keep the cgroup CPU quota files open (two descriptors the
// interpreter never opened, which CPython's own tests see) and re-read
// them in the background. GOMAXPROCS is not worth that here.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

/*
#cgo CFLAGS: -O2 -fno-stack-protector -Wall -I${SRCDIR}/../tracevm
#include "rm_internal.h"
*/
import "C"

// main is never run: the package is built as a c-shared library. It exists
// because a c-shared build needs package main.
func main() {}
