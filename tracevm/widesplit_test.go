package tracevm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

// TestSplitLoad splits loads GNU as assembled and compares the result with
// what GNU as assembles for the two halves (objdump's reading of it).
func TestSplitLoad(t *testing.T) {
	cases := []struct {
		asm    string
		lo, hi string // operands of the halves; "" when there is no split
	}{
		{"movdqu (%rcx,%rax,1),%xmm4", "(%rcx,%rax,1)", "0x8(%rcx,%rax,1)"},
		{"movdqu -0x10(%rbp),%xmm5", "-0x10(%rbp)", "-0x8(%rbp)"},
		{"movups 0x78(%rbx),%xmm0", "0x78(%rbx)", "0x80(%rbx)"},
		{"movaps -0x80(%r12),%xmm9", "-0x80(%r12)", "-0x78(%r12)"},
		{"movdqa 0x7ffffff0(%rdi),%xmm15", "0x7ffffff0(%rdi)", "0x7ffffff8(%rdi)"},
		{"movupd (%r13),%xmm1", "0x0(%r13)", "0x8(%r13)"},
		{"movapd (%rsp),%xmm2", "(%rsp)", "0x8(%rsp)"},
		{"lddqu 0x10(%r8,%r9,8),%xmm11", "0x10(%r8,%r9,8)", "0x18(%r8,%r9,8)"},
		{"movdqu 0x1000(,%rdx,8),%xmm3", "0x1000(,%rdx,8)", "0x1008(,%rdx,8)"},
		{"movdqu 0x7ffffff8(%rax),%xmm0", "", ""}, // the high half's displacement overflows
		{"movdqu 0x10(%rip),%xmm0", "", ""},
		{"movdqu %fs:0x10(%rax),%xmm0", "", ""},
		{"vmovdqu (%rax),%xmm0", "", ""},
	}
	texts := make([]string, len(cases))
	var want []string
	for k, c := range cases {
		texts[k] = c.asm
		if c.lo != "" {
			reg := c.asm[strings.LastIndex(c.asm, ",")+1:]
			want = append(want, fmt.Sprintf("movq %s,%s; movhps %s,%s", c.lo, reg, c.hi, reg))
		}
	}
	const base = 0x401000
	slots := gnuref.Assemble(t, base, 16, texts, nil)
	refs := gnuref.Assemble(t, base, 32, want, nil)
	n := 0
	for k, c := range cases {
		inst, err := x86dec.Decode(slots[k], base)
		require.NoError(t, err, c.asm)
		code := gnuref.TrimSlot(t, slots[k], inst.Len, c.asm)
		out, ok := splitLoad(code)
		if c.lo == "" {
			assert.False(t, ok, "%s: % x", c.asm, out)
			continue
		}
		require.True(t, ok, c.asm)
		at := base + uint64(n*32)
		assert.Equal(t, gnuref.Disasm(t, at, refs[n][:len(out)]), gnuref.Disasm(t, at, out), "%s: % x", c.asm, out)
		n++
	}
}

// TestSpansStores: a 16-byte load is split where its bytes were written
// last by more than one store or by one that covered part of them, at the
// same location (a known address, or a displacement from one version of
// a register); other stores tell nothing.
func TestSpansStores(t *testing.T) {
	abs := fwdAddr{base: -1, index: -1}
	rbx := fwdAddr{base: 3, index: -1, baseVer: 1}
	rbxLater := fwdAddr{base: 3, index: -1, baseVer: 2}
	type st struct {
		at   fwdAddr
		off  int64
		size int
	}
	for _, tc := range []struct {
		name   string
		stores []st
		at     fwdAddr
		off    int64
		want   bool
	}{
		{"none", nil, abs, 0x1000, false},
		{"one whole", []st{{at: abs, off: 0x1000, size: 16}}, abs, 0x1000, false},
		{"whole, then the high word", []st{{at: abs, off: 0x1000, size: 16}, {at: abs, off: 0x1008, size: 8}}, abs, 0x1000, true},
		{"two words", []st{{at: abs, off: 0x1000, size: 8}, {at: abs, off: 0x1008, size: 8}}, abs, 0x1000, true},
		{"a tag byte", []st{{at: abs, off: 0x1008, size: 1}}, abs, 0x1000, true},
		{"word, then whole", []st{{at: abs, off: 0x1008, size: 8}, {at: abs, off: 0x1000, size: 16}}, abs, 0x1000, false},
		{"wider", []st{{at: abs, off: 0xff0, size: 32}}, abs, 0x1000, false},
		{"elsewhere", []st{{at: abs, off: 0x1010, size: 8}, {at: abs, off: 0xff8, size: 8}}, abs, 0x1000, false},
		{"same register", []st{{at: rbx, off: 0x18, size: 8}}, rbx, 0x10, true},
		{"register changed since", []st{{at: rbx, off: 0x18, size: 8}}, rbxLater, 0x10, false},
		{"absolute against register", []st{{at: abs, off: 0x18, size: 8}}, rbx, 0x10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w storeWindow
			for _, s := range tc.stores {
				w.store(s.at, s.off, s.size)
			}
			assert.Equal(t, tc.want, w.spansStores(tc.at, tc.off))
		})
	}
}

// The window keeps the recentStores newest stores.
func TestStoreWindowBound(t *testing.T) {
	var w storeWindow
	abs := fwdAddr{base: -1, index: -1}
	w.store(abs, 0x1008, 8)
	for k := 0; k < recentStores-1; k++ {
		w.store(abs, 0x2000+int64(16*k), 16)
	}
	assert.True(t, w.spansStores(abs, 0x1000))
	w.store(abs, 0x9000, 8)
	assert.False(t, w.spansStores(abs, 0x1000))
}

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
	const base = 0x401000
	slots := gnuref.Assemble(t, base, 16, texts, nil)
	for k, c := range cases {
		inst, err := x86dec.Decode(slots[k], base)
		require.NoError(t, err, c.asm)
		m, ok := parseMemInsn(gnuref.TrimSlot(t, slots[k], inst.Len, c.asm))
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
	const base = 0x401000
	slots := gnuref.Assemble(t, base, 16, texts, nil)
	for k, c := range cases {
		inst, err := x86dec.Decode(slots[k], base)
		require.NoError(t, err, c.asm)
		assert.Equal(t, c.want, touchesVector(&inst, c.x), c.asm)
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
	const base = 0x401000
	slots := gnuref.Assemble(t, base, 16, texts, nil)
	var code [][]byte
	var insts []*x86dec.Inst
	for k, text := range texts {
		inst, err := x86dec.Decode(slots[k], base)
		require.NoError(t, err, text)
		code = append(code, gnuref.TrimSlot(t, slots[k], inst.Len, text))
		insts = append(insts, &inst)
	}
	// The load sits last in the first block of states, and the second
	// block is full (its last state has %rax = 0x99).
	const at = knownEvery - 1
	n := 2*knownEvery + 1
	ops := make([]op, n)
	p := &plan{known: new(knownStates), insts: make([]*x86dec.Inst, n), drop: make([]bool, n),
		replaced: map[int]bool{}, spec: map[int]uint64{}, rewrite: map[int]rewritten{}}
	nop, err := x86dec.Decode([]byte{0x90}, base)
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
