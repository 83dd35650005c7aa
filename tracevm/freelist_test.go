package tracevm

import (
	"encoding/hex"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// popRegs finds the free-list pop as gcc inlines pymalloc's (python3.11's
// rangeiter_next: the block from pool->freeblock, its next pointer stored
// back) and nothing that only looks like it.
func TestFreeListPop(t *testing.T) {
	const (
		loadHead   = "488b4208" // mov 0x8(%rdx),%rax
		countPool  = "830201"   // addl $0x1,(%rdx)
		loadNext   = "488b08"   // mov (%rax),%rcx
		storeHead  = "48894a08" // mov %rcx,0x8(%rdx)
		moveBase   = "4883c210" // add $0x10,%rdx
		overwriteR = "4889f0"   // mov %rsi,%rax
		storeOther = "48894a10" // mov %rcx,0x10(%rdx)
		loadFar    = "488b4810" // mov 0x10(%rax),%rcx
		loadSelf   = "488b00"   // mov (%rax),%rax
		callNative = "e800000000"
		// A static list head, as CPython's float free list: the load
		// at 0x1000 and the store at 0x100b name the same address.
		loadStatic  = "488b0500010000" // mov 0x100(%rip),%rax -> 0x1107
		loadNext8   = "488b5008"       // mov 0x8(%rax),%rdx
		storeStatic = "488915f5000000" // mov %rdx,0xf5(%rip) -> 0x1107
	)
	const rax = 1 << 0
	for _, tc := range []struct {
		name string
		code []string
		want uint16
	}{
		{"pymalloc", []string{loadHead, countPool, loadNext, storeHead}, rax},
		{"static head, next at 8", []string{loadStatic, loadNext8, storeStatic}, rax},
		{"head's base moved", []string{loadHead, loadNext, moveBase, storeHead}, 0},
		{"block register overwritten", []string{loadHead, loadNext, overwriteR, storeHead}, 0},
		{"stored elsewhere", []string{loadHead, loadNext, storeOther}, 0},
		{"next not at 0 or 8", []string{loadHead, loadFar, storeHead}, 0},
		{"loaded through itself", []string{loadHead, loadSelf, storeHead}, 0},
		{"a call between", []string{loadHead, loadNext, callNative, storeHead}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p popRegs
			var got uint16
			addr := uint64(0x1000)
			for _, h := range tc.code {
				code, err := hex.DecodeString(h)
				require.NoError(t, err)
				inst, err := x86dec.Decode(code, addr)
				require.NoError(t, err, h)
				got |= p.after(&inst)
				addr += uint64(inst.Len)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
