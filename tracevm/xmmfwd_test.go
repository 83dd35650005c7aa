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
