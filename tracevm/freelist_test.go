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
			for i, h := range tc.code {
				code, err := hex.DecodeString(h)
				require.NoError(t, err)
				inst, err := x86dec.Decode(code, addr)
				require.NoError(t, err, h)
				got |= p.after(&inst, i)
				addr += uint64(inst.Len)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// decodeOps decodes hex instructions into ops from 0x1000 on; "call"
// stands for a native call.
func decodeOps(t *testing.T, code []string) ([]op, []*x86dec.Inst) {
	t.Helper()
	var ops []op
	var insts []*x86dec.Inst
	addr := uint64(0x1000)
	for _, h := range code {
		if h == "call" {
			ops, insts = append(ops, op{kind: opCall, addr: addr, target: 0x9000}), append(insts, nil)
			addr += 5
			continue
		}
		b, err := hex.DecodeString(h)
		require.NoError(t, err)
		inst, err := x86dec.Decode(b, addr)
		require.NoError(t, err, h)
		ops, insts = append(ops, op{kind: opInsn, code: b, addr: addr}), append(insts, &inst)
		addr += uint64(inst.Len)
	}
	return ops, insts
}

// freshLoads takes a block as fresh from its load off the list's head
// when the trace pops it before a call, as CPython 2.7's PyInt_FromLong
// fills the block before it moves the head; not when the pop does not
// follow.
func TestFreshLoads(t *testing.T) {
	const (
		loadHead  = "488b0509321600" // mov 0x163209(%rip),%rax (free_list)
		testHead  = "4885c0"         // test %rax,%rax
		loadNext  = "488b5008"       // mov 0x8(%rax),%rdx
		leaType   = "488d0da9f51200" // lea 0x12f5a9(%rip),%rcx
		storeRef  = "48c70001000000" // movq $0x1,(%rax)
		storeType = "48894808"       // mov %rcx,0x8(%rax)
		storeHead = "488915e9311600" // mov %rdx,0x1631e9(%rip) (free_list)
		storeElse = "488915f0311600" // mov %rdx,0x1631f0(%rip)
	)
	const rax = 1 << 0
	for _, tc := range []struct {
		name string
		code []string
		want map[int]uint16
	}{
		{"PyInt_FromLong", []string{loadHead, testHead, loadNext, leaType, storeRef, storeType, storeHead}, map[int]uint16{0: rax}},
		{"head not moved", []string{loadHead, loadNext, storeRef, storeType}, nil},
		{"head moved elsewhere", []string{loadHead, loadNext, storeRef, storeElse}, nil},
		{"a call between", []string{loadHead, loadNext, "call", storeHead}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, insts := decodeOps(t, tc.code)
			assert.Equal(t, tc.want, freshLoads(ops, insts))
		})
	}
}

// linkStores finds the store that links a block onto a free list, with
// the head moved before (CPython 2.7's int_dealloc) or after (pymalloc's
// free) it, and no store that only looks like one.
func TestLinkStores(t *testing.T) {
	const (
		loadHead    = "488b05c9321600" // mov 0x1632c9(%rip),%rax (free_list)
		storeHead   = "48893dc2321600" // mov %rdi,0x1632c2(%rip) (free_list)
		storeOther  = "48893dca321600" // mov %rdi,0x1632ca(%rip)
		link        = "48894708"       // mov %rax,0x8(%rdi)
		linkFar     = "48894710"       // mov %rax,0x10(%rdi)
		loadPool    = "488b4208"       // mov 0x8(%rdx),%rax (pool->freeblock)
		linkAt0     = "488907"         // mov %rax,(%rdi)
		storePool   = "48897a08"       // mov %rdi,0x8(%rdx)
		moveBlock   = "4889f7"         // mov %rsi,%rdi
		movePool    = "4883c210"       // add $0x10,%rdx
		notFromMem  = "4889c8"         // mov %rcx,%rax
		refcountDec = "48832f01"       // subq $0x1,(%rdi)
		// The head's store four bytes later names free_list still.
		storeHeadLater = "48893dbe321600" // mov %rdi,0x1632be(%rip)
	)
	for _, tc := range []struct {
		name string
		code []string
		want map[int]bool
	}{
		{"int_dealloc: head moved first", []string{loadHead, storeHead, link}, map[int]bool{2: true}},
		{"pymalloc free: link first", []string{loadPool, linkAt0, storePool}, map[int]bool{1: true}},
		{"other work between", []string{loadHead, refcountDec, storeHeadLater, link}, map[int]bool{3: true}},
		{"head stored elsewhere", []string{loadHead, storeOther, link}, nil},
		{"link not at 0 or 8", []string{loadHead, storeHead, linkFar}, nil},
		{"old head not loaded", []string{notFromMem, storeHead, link}, nil},
		{"block register changed", []string{loadPool, linkAt0, moveBlock, storePool}, nil},
		{"head's base moved", []string{loadPool, linkAt0, movePool, storePool}, nil},
		{"a call between", []string{loadHead, "call", storeHead, link}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, insts := decodeOps(t, tc.code)
			assert.Equal(t, tc.want, linkStores(ops, insts))
		})
	}
}
