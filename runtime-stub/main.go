// Command runtime-stub builds the run time of a patched binary: two
// libraries, installed beside it by redmagic-patch.
//
//   - libredmagic.so, the runtime, in C (host/, built by the Makefile): the
//     patched binary loads it through DT_NEEDED. Its constructor finds each
//     patched object's header (DT_REDMAGIC) and fills its slots; site hits
//     are counted per thread and (site, id); statistics are written as JSON
//     at exit (STATS.md). It has no Go in it, so a process that never runs
//     a hot loop starts and runs as the original does.
//   - libredmagic-jit.so, this package (go build -buildmode=c-shared): the
//     tracing JIT (tracevm). The runtime loads it from its own directory at
//     the first hot loop and calls rm_jit_start (rm_jit.c); from then on
//     the runtime reaches the JIT's C side through a table of entry points.
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
