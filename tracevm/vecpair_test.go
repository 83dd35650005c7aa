package tracevm

import (
	"fmt"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

// TestGPRMemForm: a vector copy's general loads and stores take its memory
// operand, the high half's 8 bytes on, checked against GNU as.
func TestGPRMemForm(t *testing.T) {
	cases := []struct {
		asm  string // the vector instruction whose operand is taken
		r    x86enc.Reg
		load bool
		d    int64
		want string
	}{
		{"movdqu (%rcx,%rax,1),%xmm4", x86enc.RDX, true, 0, "mov (%rcx,%rax,1),%rdx"},
		{"movdqu (%rcx,%rax,1),%xmm4", x86enc.RBX, true, 8, "mov 0x8(%rcx,%rax,1),%rbx"},
		{"movups %xmm4,-0x10(%rbp)", x86enc.RDX, false, 0, "mov %rdx,-0x10(%rbp)"},
		{"movups %xmm4,-0x10(%rbp)", x86enc.R11, false, 8, "mov %r11,-0x8(%rbp)"},
		{"movaps %xmm9,0x78(%r13)", x86enc.R8, false, 8, "mov %r8,0x80(%r13)"},
		{"movdqa (%r12,%r14,8),%xmm15", x86enc.R15, true, 8, "mov 0x8(%r12,%r14,8),%r15"},
		{"movdqu (%rsp),%xmm0", x86enc.RAX, true, 0, "mov (%rsp),%rax"},
		{"movdqu 0x1000(,%rdx,8),%xmm3", x86enc.RSI, true, 8, "mov 0x1008(,%rdx,8),%rsi"},
	}
	texts := make([]string, len(cases))
	for k, c := range cases {
		texts[k] = c.asm
	}
	_, codes := assembled(t, texts)
	for k, c := range cases {
		m, ok := parseMemInsn(codes[k])
		require.True(t, ok, c.asm)
		opc := byte(0x89)
		if c.load {
			opc = 0x8b
		}
		out, ok := gprMemForm(opc, c.r, m, c.d)
		require.True(t, ok, c.asm)
		assert.Equal(t, []string{c.want}, gnuref.Disasm(t, 0x1000, out), "%s: % x", c.asm, out)
	}
}

// TestTouchesVector: what ends a vector copy's window (the register it
// copies read or written, or every vector register).
func TestTouchesVector(t *testing.T) {
	cases := []struct {
		asm  string
		x    x86asm.Reg
		want bool
	}{
		{"mov %rax,(%rbx)", x86asm.X4, false},
		{"movups %xmm4,(%rbx)", x86asm.X4, true},
		{"movups %xmm5,(%rbx)", x86asm.X4, false},
		{"pxor %xmm4,%xmm4", x86asm.X4, true},
		{"vaddpd %ymm4,%ymm1,%ymm2", x86asm.X4, true},
		{"vzeroupper", x86asm.X4, true},
		{"blendvps %xmm0,%xmm2,%xmm1", x86asm.X0, true},
		{"pcmpistri $0x1a,%xmm2,%xmm1", x86asm.X4, true},
		{"add $0x1,%rcx", x86asm.X0, false},
	}
	texts := make([]string, len(cases))
	for k, c := range cases {
		texts[k] = c.asm
	}
	insts, _ := assembled(t, texts)
	for k, c := range cases {
		assert.Equal(t, c.want, touchesVector(insts[k], c.x), c.asm)
	}
}

// TestPairUsesLoadState: a vector copy's general loads take the load's
// own known index (the optimiser's states come in blocks of knownEvery,
// and a state read later must not change it), its scratch registers are
// known, unread and unwritten between load and store, and the load's
// vector register is kept when an exit follows the store.
func TestPairUsesLoadState(t *testing.T) {
	texts := []string{
		"movdqu (%rsi,%rax,1),%xmm4", // the load
		"mov $0x99,%eax",             // dropped: %rax changes
		"movups %xmm4,-0x10(%rbx)",   // the store
		"cmpq $0x0,-0x20(%rbx)",
	}
	insts, code := assembled(t, texts)
	// The load sits last in the first block of states, and the second
	// block is full (its last state has %rax = 0x99).
	const at = knownEvery - 1
	n := 2*knownEvery + 1
	ops := make([]op, n)
	p := &plan{known: new(knownStates), insts: make([]*x86dec.Inst, n), drop: make([]bool, n),
		replaced: map[int]bool{}, spec: map[int]uint64{}, rewrite: map[int]rewritten{}}
	nop, err := x86dec.Decode([]byte{0x90}, 0x401000)
	require.NoError(t, err)
	for i := range ops {
		ops[i] = op{kind: opInsn, code: []byte{0x90}}
		p.insts[i] = &nop
		if k := i - at; k >= 0 && k < len(texts) {
			ops[i].code, p.insts[i] = code[k], insts[k]
		}
	}
	ops[at+len(texts)] = op{kind: opGuard}
	p.drop[at+1] = true
	known := func(v uint64) val { return val{known: true, v: v} }
	for i := 0; i <= n; i++ {
		var s [16]val
		s[x86enc.RCX], s[x86enc.RDX], s[x86enc.RBX] = known(0x1000), known(0x2000), known(0x3000)
		s[x86enc.RAX] = known(0x30)
		if i > at+1 {
			s[x86enc.RAX] = known(0x99)
		}
		p.known.add(&s)
	}
	require.Equal(t, 1, pairVectorCopies(ops, p))
	ld, st := p.pairs[at], p.pairs[at+2]
	require.False(t, ld.store)
	require.True(t, st.store)
	assert.ElementsMatch(t, []x86enc.Reg{x86enc.RCX, x86enc.RDX}, []x86enc.Reg{ld.a, ld.b})
	assert.Equal(t, uint64(0x1000), map[x86enc.Reg]uint64{ld.a: ld.va, ld.b: ld.vb}[x86enc.RCX])
	a, b := ld.a.String(), ld.b.String()
	assert.Equal(t, []string{
		fmt.Sprintf("mov 0x30(%%rsi),%%%s", a), fmt.Sprintf("mov 0x38(%%rsi),%%%s", b),
	}, gnuref.Disasm(t, 0x1000, ld.code))
	assert.Equal(t, []string{
		fmt.Sprintf("mov %%%s,-0x10(%%rbx)", a), fmt.Sprintf("mov %%%s,-0x8(%%rbx)", b),
	}, gnuref.Disasm(t, 0x1000, st.code))
	assert.True(t, ld.keep, "an exit follows the store")
}
