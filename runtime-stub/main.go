// Command runtime-stub is the runtime shared object (libredmagic.so) that
// binaries patched by redmagic-patch load through DT_NEEDED. Build it with
//
//	go build -buildmode=c-shared -o libredmagic.so ./runtime-stub
//
// It owns what happens at run time behind the slots of a patched binary: a
// C constructor finds each patched object's header (DT_REDMAGIC) and fills
// its slots; site hits are counted in C per thread and (site, id); a
// counter crossing the hot threshold calls Go once, with the vector state
// saved (the hook where the trace recorder will start); statistics are
// written as JSON at exit. The contract with patched binaries is
// include/redmagic_patch.h; STATS.md documents the statistics.
//
// Per-hit work stays in C (rm_fast.c): an exported Go function costs about
// 50 ns a call, a counter update about 1-2 ns.
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
