#include "textflag.h"

// func callRaw(fn uintptr) uint64
TEXT ·callRaw(SB), NOSPLIT, $0-16
	MOVQ fn+0(FP), AX
	CALL AX
	MOVQ AX, ret+8(FP)
	RET
