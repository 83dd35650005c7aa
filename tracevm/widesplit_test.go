package tracevm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	_, codes := assembled(t, texts)
	refs := gnuref.Assemble(t, base, 32, want, nil)
	n := 0
	for k, c := range cases {
		out, ok := splitLoad(codes[k])
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

// assembled assembles each of texts with GNU as and returns it decoded
// (at address 0x401000) and its bytes.
func assembled(t *testing.T, texts []string) ([]*x86dec.Inst, [][]byte) {
	t.Helper()
	const base = 0x401000
	slots := gnuref.Assemble(t, base, 16, texts, nil)
	insts := make([]*x86dec.Inst, len(texts))
	codes := make([][]byte, len(texts))
	for k, text := range texts {
		inst, err := x86dec.Decode(slots[k], base)
		require.NoError(t, err, text)
		insts[k], codes[k] = &inst, gnuref.TrimSlot(t, slots[k], inst.Len, text)
	}
	return insts, codes
}
