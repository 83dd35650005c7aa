package tracevm

// A file of its own, without exported functions: cgo copies the preamble
// of a file that exports into _cgo_export.h, which tv.c includes before
// the pragma that compiles it for general registers only.

/*
#include <cpuid.h>

static int tv_has_sse41(void)
{
	unsigned a, b, c, d;
	return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_1) != 0;
}
*/
import "C"

// hasSSE41 reports whether the processor has SSE4.1 (ptest: the checks of
// forwarded doubles, xmmfwd.go).
func hasSSE41() bool { return C.tv_has_sse41() != 0 }
