package tracevm

import (
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestForwardEncodings: the forwarding's register forms, checked against
// GNU as, low and high registers.
func TestForwardEncodings(t *testing.T) {
	cases := []struct {
		code []byte
		want string
	}{
		{movqXX(14, 0), "movq %xmm0,%xmm14"},
		{movqXX(1, 9), "movq %xmm9,%xmm1"},
		{movqXX(2, 3), "movq %xmm3,%xmm2"},
		{pxorXX(15, 14), "pxor %xmm14,%xmm15"},
		{pxorXX(4, 5), "pxor %xmm5,%xmm4"},
		{ptestXX(15, 15), "ptest %xmm15,%xmm15"},
		{ptestXX(3, 3), "ptest %xmm3,%xmm3"},
	}
	for _, c := range cases {
		assert.Equal(t, []string{c.want}, gnuref.Disasm(t, 0x1000, c.code), "% x", c.code)
	}
}

// TestForwardedCode: a double's load or arithmetic from memory becomes
// the check's load into the temporary (its memory operand as it was, or
// %rip-relative where its address is known) and the register form that
// reads the spare.
func TestForwardedCode(t *testing.T) {
	cases := []struct {
		asm         string
		addr        uint64
		known       bool
		check, used string
	}{
		{"movsd 0x10(%rbp),%xmm0", 0, false, "movq 0x10(%rbp),%xmm15", "movq %xmm14,%xmm0"},
		{"mulsd 0x10(%r14),%xmm0", 0, false, "movq 0x10(%r14),%xmm15", "mulsd %xmm14,%xmm0"},
		{"addsd (%rcx,%rax,8),%xmm9", 0, false, "movq (%rcx,%rax,8),%xmm15", "addsd %xmm14,%xmm9"},
		{"ucomisd 0x8(%rdx),%xmm1", 0, false, "movq 0x8(%rdx),%xmm15", "ucomisd %xmm14,%xmm1"},
		{"subsd 0x18(%rbx),%xmm2", 0x402000, true, "movq 0xff7(%rip),%xmm15 # 0x402000", "subsd %xmm14,%xmm2"},
		{"movq 0x20(%rsi),%xmm3", 0, false, "movq 0x20(%rsi),%xmm15", "movq %xmm14,%xmm3"},
	}
	texts := make([]string, len(cases))
	for k, c := range cases {
		texts[k] = c.asm
	}
	insts, codes := assembled(t, texts)
	for k, c := range cases {
		const at = 0x401000
		check, used, ok := forwardedCode(codes[k], insts[k], c.addr, c.known, 14, 15, at)
		require.True(t, ok, c.asm)
		assert.Equal(t, []string{c.check}, gnuref.Disasm(t, at, check), "%s: % x", c.asm, check)
		assert.Equal(t, []string{c.used}, gnuref.Disasm(t, 0x1000, used), "%s: % x", c.asm, used)
	}
}

// TestMayAlias: which writes the analysis takes to change a remembered
// place: known addresses by overlap; through the same base register
// (same value number) by displacement; through another base, unless one
// is a block allocated after the other pointer existed, or the write is
// a reference count (an object's first word); never a known address
// through a pointer and back (optimistic: the loads are checked).
func TestMayAlias(t *testing.T) {
	s := &fwdState{fresh: map[uint32]bool{9: true}}
	at := func(a uint64) memKey { return memKey{disp: a} }
	via := func(base uint32, d int64) memKey { return memKey{sym: true, base: base, disp: uint64(d)} }
	cases := []struct {
		name     string
		w        memKey
		size     int
		e        memKey
		esize    int
		refcount bool
		want     bool
	}{
		{"same known address", at(0x5000), 8, at(0x5000), 8, false, true},
		{"known, overlapping", at(0x5004), 4, at(0x5000), 8, false, true},
		{"known, apart", at(0x5008), 8, at(0x5000), 8, false, false},
		{"same base, same field", via(3, 0x10), 8, via(3, 0x10), 8, false, true},
		{"same base, other field", via(3, 0x18), 8, via(3, 0x10), 8, false, false},
		{"other base", via(4, 0x10), 8, via(3, 0x10), 8, false, true},
		{"a count, field beyond", via(4, 0), 8, via(3, 0x10), 8, true, false},
		{"a count, first word", via(4, 0), 8, via(3, 0), 8, true, true},
		{"into a newer block", via(9, 0x10), 8, via(3, 0x10), 8, false, false},
		{"older pointer into a block", via(3, 0x10), 8, via(9, 0x10), 8, false, false},
		{"newer pointer, block older", via(12, 0x10), 8, via(9, 0x10), 8, false, true},
		{"known against a pointer", at(0x5000), 8, via(3, 0x10), 8, false, false},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, s.mayAlias(c.w, c.size, c.e, c.esize, c.refcount), c.name)
	}
}

// TestForwardDoublesPlan: a double pushed through a stack pointer that
// then moves is found again through it (value numbers plus offsets) and
// taken from a spare; a store through another pointer, or a native call,
// makes the analysis forget; a store to the same place gives the next
// load the new value.
func TestForwardDoublesPlan(t *testing.T) {
	ops, insts := decodeOps(t, []string{
		"f20f1103",   // 0: movsd %xmm0,(%rbx)
		"4883c308",   // 1: add $0x8,%rbx
		"f20f594bf8", // 2: mulsd -0x8(%rbx),%xmm1: forwarded from 0
		"f20f110b",   // 3: movsd %xmm1,(%rbx)
		"f20f1013",   // 4: movsd (%rbx),%xmm2: forwarded from 3
		"488901",     // 5: mov %rax,(%rcx): through another pointer
		"f20f101b",   // 6: movsd (%rbx),%xmm3: not forwarded
		"f20f1123",   // 7: movsd %xmm4,(%rbx)
		"call",       // 8
		"f20f102b",   // 9: movsd (%rbx),%xmm5: not forwarded
		"f20f1133",   // 10: movsd %xmm6,(%rbx)
		"f20f103b",   // 11: movsd (%rbx),%xmm7: forwarded from 10
		"4883c001",   // 12: add $0x1,%rax: the flags are dead before it
	})
	ops = append(ops, op{kind: opExit, addr: 0x2000, exit: 0x2000})
	// A plan that emits every op as recorded, knowing no register.
	p := &plan{known: new(knownStates), drop: make([]bool, len(ops)), insts: insts}
	var none [16]val
	for range len(ops) + 1 {
		p.known.add(&none)
	}
	assert.Equal(t, 3, forwardDoubles(ops, p, false))
	fw := p.forwards
	require.NotNil(t, fw)
	for use, def := range map[int]int{2: 0, 4: 3, 11: 10} {
		k, ok := fw.from[use]
		require.True(t, ok, "op %d forwarded", use)
		assert.Equal(t, fw.to[def], k, "op %d takes op %d's spare", use, def)
		assert.NotEqual(t, fw.temp, k)
	}
	for _, i := range []int{6, 9} {
		assert.NotContains(t, fw.from, i, "op %d", i)
	}
	// The spares are registers no op names: xmm8 and up here.
	for _, k := range fw.to {
		assert.GreaterOrEqual(t, k, uint8(8))
	}
}
