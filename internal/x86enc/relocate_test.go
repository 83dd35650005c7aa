package x86enc

import (
	"bytes"
	"debug/elf"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"

	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

const gib = 1 << 30

// relocKind is how Relocate treated an instruction, for the statistics.
type relocKind int

const (
	kindCopied  relocKind = iota // no relative operand
	kindRIP                      // %rip-relative memory operand
	kindRel32                    // rel32 branch, displacement adjusted
	kindRel8                     // jcc/jmp rel8 made rel32
	kindLoopSeq                  // jrcxz/loop expanded to three instructions
	numKind
)

var kindNames = [numKind]string{"copied", "rip", "rel32", "rel8", "loop-seq"}

// checkRelocated checks, independently of Relocate, that out (placed at
// newAddr) does what code (at from) did: the same opcode, the same branch
// or %rip target, the other bytes preserved.
func checkRelocated(t testing.TB, code []byte, from uint64, out []byte, newAddr uint64) relocKind {
	t.Helper()
	orig, err := x86dec.Decode(code, from)
	require.NoError(t, err)
	msg := fmt.Sprintf("%#x %s [% x] -> %#x [% x]", from, &orig, code, newAddr, out)
	target, isBranch := orig.Target()
	ripTarget, isRIP := orig.MemRIPTarget()
	if !isBranch && !isRIP {
		require.Equal(t, code, out, msg)
		return kindCopied
	}
	if isRIP || orig.PCRel == 4 {
		// Same length, bytes equal outside the displacement.
		require.Len(t, out, len(code), msg)
		off := orig.PCRelOff
		require.Equal(t, code[:off], out[:off], msg)
		require.Equal(t, code[off+4:], out[off+4:], msg)
		got, err := x86dec.Decode(out, newAddr)
		require.NoError(t, err, msg)
		require.Equal(t, orig.Op, got.Op, msg)
		require.Equal(t, orig.Special, got.Special, msg)
		require.Equal(t, len(out), got.Len, msg)
		if isRIP {
			g, ok := got.MemRIPTarget()
			require.True(t, ok, msg)
			require.Equal(t, ripTarget, g, msg)
			return kindRIP
		}
		g, ok := got.Target()
		require.True(t, ok, msg)
		require.Equal(t, target, g, msg)
		return kindRel32
	}
	// rel8: the prefixes stay, the opcode is rewritten.
	pre := code[:orig.PCRelOff-1]
	require.Equal(t, pre, out[:len(pre)], msg)
	var insts []x86dec.Inst
	for off := 0; off < len(out); {
		inst, err := x86dec.Decode(out[off:], newAddr+uint64(off))
		require.NoError(t, err, msg)
		insts = append(insts, inst)
		off += inst.Len
	}
	end := newAddr + uint64(len(out))
	if len(insts) == 1 {
		inst := &insts[0]
		require.Equal(t, orig.Op, inst.Op, msg)
		require.Equal(t, 4, inst.PCRel, msg)
		g, ok := inst.Target()
		require.True(t, ok, msg)
		require.Equal(t, target, g, msg)
		return kindRel8
	}
	// op +2 (to the rel32 jmp); jmp rel8 (past it); jmp rel32 target.
	require.Len(t, insts, 3, msg)
	want := []struct {
		op     x86asm.Op
		target uint64
	}{{orig.Op, insts[2].Addr}, {x86asm.JMP, end}, {x86asm.JMP, target}}
	for k, w := range want {
		require.Equal(t, w.op, insts[k].Op, msg)
		g, ok := insts[k].Target()
		require.True(t, ok, msg)
		require.Equal(t, w.target, g, "%s: instruction %d", msg, k)
	}
	require.Equal(t, code[len(pre)], out[len(pre)], "%s: the opcode (and its %%rcx use) is kept", msg)
	return kindLoopSeq
}

// codeRange is a stretch of executable code of a real binary.
type codeRange struct {
	name string
	addr uint64
	data []byte
	max  int // instructions to take, 0 for all
}

// realCode returns the first 5000 instructions of .text of each binary
// and a few whole functions found through .dynsym.
func realCode(t *testing.T) []codeRange {
	const first = 5000
	var out []codeRange
	for _, b := range []struct {
		path  string
		funcs []string
	}{
		{"/usr/bin/python3.11", []string{"_PyEval_EvalFrameDefault", "PyObject_GetAttr", "PyDict_SetItem"}},
		{"/usr/bin/lua5.4", []string{"lua_getinfo", "lua_gc", "luaL_traceback"}},
		{"/lib/x86_64-linux-gnu/libc.so.6", []string{"qsort_r", "__libc_start_main"}},
	} {
		f, err := elf.Open(b.path)
		require.NoError(t, err)
		text := f.Section(".text")
		require.NotNil(t, text, b.path)
		data, err := text.Data()
		require.NoError(t, err)
		out = append(out, codeRange{name: b.path + " .text", addr: text.Addr, data: data, max: first})
		syms, err := f.DynamicSymbols()
		require.NoError(t, err)
		for _, name := range b.funcs {
			found := false
			for _, s := range syms {
				if s.Name != name || elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Size == 0 {
					continue
				}
				require.True(t, s.Value >= text.Addr && s.Value+s.Size <= text.Addr+text.Size, "%s %s", b.path, name)
				off := s.Value - text.Addr
				out = append(out, codeRange{name: b.path + " " + name, addr: s.Value, data: data[off : off+s.Size]})
				found = true
				break
			}
			require.True(t, found, "%s: no function %s in .dynsym", b.path, name)
		}
		f.Close()
	}
	return out
}

// TestRelocateRealCode relocates every instruction of real code 1 GiB up
// and down and checks the result; 4 GiB away every relative instruction
// must fail with ErrRange and every other one be copied.
func TestRelocateRealCode(t *testing.T) {
	start := time.Now()
	var counts [numKind]int
	total := 0
	for _, r := range realCode(t) {
		n := 0
		for off := 0; off < len(r.data) && (r.max == 0 || n < r.max); {
			addr := r.addr + uint64(off)
			inst, err := x86dec.Decode(r.data[off:], addr)
			if err != nil {
				off++ // data or padding in .text: resynchronise
				continue
			}
			code := r.data[off : off+inst.Len]
			off += inst.Len
			n++
			var lens []int
			var kind relocKind
			for _, delta := range []int64{gib, -gib, 64} {
				newAddr := addr + uint64(delta)
				out, err := Relocate(code, addr, newAddr)
				require.NoError(t, err, "%s %#x %s", r.name, addr, &inst)
				kind = checkRelocated(t, code, addr, out, newAddr)
				lens = append(lens, len(out))
			}
			assert.Equal(t, lens[0], lens[1], "length depends on the address: %#x %s", addr, &inst)
			assert.Equal(t, lens[0], lens[2], "length depends on the address: %#x %s", addr, &inst)
			counts[kind]++
			out, err := Relocate(code, addr, addr+4*gib)
			if kind == kindCopied {
				require.NoError(t, err)
				require.Equal(t, code, out)
			} else {
				require.ErrorIs(t, err, ErrRange, "%#x %s", addr, &inst)
				var re *RelocError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, addr, re.Addr)
				assert.Equal(t, code, re.Bytes)
			}
		}
		total += n
	}
	for k, c := range counts {
		t.Logf("%-8s %6d", kindNames[k], c)
	}
	t.Logf("%d instructions relocated 4 ways in %v", total, time.Since(start))
	// The sample must exercise every path but the loop sequence, which
	// compilers do not emit; TestRelocateForms covers it.
	for k := kindCopied; k < kindLoopSeq; k++ {
		assert.Positive(t, counts[k], kindNames[k])
	}
}

// relocCase is one instruction and what Relocate must make of it, in GNU
// as syntax, with T the original target. An empty gnu means: check by
// decoding only (as cannot be told to emit that prefix combination).
type relocCase struct {
	name string
	code []byte
	gnu  string
}

var relocForms = []relocCase{
	{"je rel8", []byte{0x74, 0x10}, "{disp32} je T"},
	{"jg rel8 back", []byte{0x7F, 0x80}, "{disp32} jg T"},
	{"jno rel8", []byte{0x71, 0x00}, "{disp32} jno T"},
	{"jmp rel8 self", []byte{0xEB, 0xFE}, "{disp32} jmp T"},
	{"jmp rel8", []byte{0xEB, 0x7F}, "{disp32} jmp T"},
	{"jrcxz", []byte{0xE3, 0x05}, "jrcxz 1f; jmp 2f; 1: {disp32} jmp T; 2:"},
	{"jecxz", []byte{0x67, 0xE3, 0xF0}, "jecxz 1f; jmp 2f; 1: {disp32} jmp T; 2:"},
	{"loop", []byte{0xE2, 0xF0}, "loop 1f; jmp 2f; 1: {disp32} jmp T; 2:"},
	{"loope", []byte{0xE1, 0x00}, "loope 1f; jmp 2f; 1: {disp32} jmp T; 2:"},
	{"loopne", []byte{0xE0, 0x7F}, "loopne 1f; jmp 2f; 1: {disp32} jmp T; 2:"},
	{"addr32 loop", []byte{0x67, 0xE2, 0x10}, "addr32 loop 1f; jmp 2f; 1: {disp32} jmp T; 2:"},
	{"je,pn rel8", []byte{0x2E, 0x74, 0x10}, "{disp32} je,pn T"},
	{"je,pt rel8", []byte{0x3E, 0x74, 0x10}, "{disp32} je,pt T"},
	{"bnd jmp rel8", []byte{0xF2, 0xEB, 0x10}, "{disp32} bnd jmp T"},
	{"rex jmp rel8", []byte{0x48, 0xEB, 0x10}, ""},
	{"rex jne rel8", []byte{0x41, 0x75, 0x10}, ""},
	{"jmp rel32", []byte{0xE9, 0x00, 0x01, 0x00, 0x00}, "{disp32} jmp T"},
	{"call rel32", []byte{0xE8, 0xF0, 0xFF, 0xFF, 0xFF}, "call T"},
	{"addr32 call", []byte{0x67, 0xE8, 0x10, 0x00, 0x00, 0x00}, ".byte 0x67; call T"},
	{"jne rel32", []byte{0x0F, 0x85, 0x00, 0x00, 0x00, 0x10}, "{disp32} jne T"},
	{"bnd jmp rel32", []byte{0xF2, 0xE9, 0x00, 0x00, 0x00, 0x00}, "{disp32} bnd jmp T"},
	{"xbegin", []byte{0xC7, 0xF8, 0x10, 0x00, 0x00, 0x00}, "xbegin T"},
	{"mov rip", []byte{0x48, 0x8B, 0x05, 0xF0, 0xFF, 0xFF, 0xFF}, "mov T(%rip),%rax"},
	{"lea rip r15", []byte{0x4C, 0x8D, 0x3D, 0x00, 0x10, 0x00, 0x00}, "lea T(%rip),%r15"},
	{"movl imm rip", []byte{0xC7, 0x05, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00}, "movl $2,T(%rip)"},
	{"cmpb imm rip", []byte{0x80, 0x3D, 0x01, 0x00, 0x00, 0x00, 0x02}, "cmpb $2,T(%rip)"},
	{"jmp *rip", []byte{0xFF, 0x25, 0x00, 0x20, 0x00, 0x00}, "jmp *T(%rip)"},
	{"fs mov rip", []byte{0x64, 0x48, 0x8B, 0x05, 0x10, 0x00, 0x00, 0x00}, "mov %fs:T(%rip),%rax"},
	{"vmovdqu rip", []byte{0xC5, 0xFA, 0x6F, 0x05, 0x00, 0x01, 0x00, 0x00}, "vmovdqu T(%rip),%xmm0"},
	{"vpbroadcastd rip", []byte{0xC4, 0xE2, 0x7D, 0x58, 0x0D, 0x00, 0x01, 0x00, 0x00}, "vpbroadcastd T(%rip),%ymm1"},
	{"vmovdqu64 rip", []byte{0x62, 0xE1, 0xFE, 0x48, 0x6F, 0x0D, 0x00, 0x10, 0x00, 0x00}, "vmovdqu64 T(%rip),%zmm17"},
	{"pshufb rip", []byte{0x66, 0x0F, 0x38, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00}, "pshufb T(%rip),%xmm0"},
	{"clflushopt rip", []byte{0x66, 0x0F, 0xAE, 0x3D, 0x00, 0x01, 0x00, 0x00}, "clflushopt T(%rip)"},
	{"prefetchw rip", []byte{0x0F, 0x0D, 0x0D, 0x00, 0x01, 0x00, 0x00}, "prefetchw T(%rip)"},
	{"nopw", []byte{0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00}, "{disp8} nopw 0(%rax,%rax,1)"},
	{"endbr64", []byte{0xF3, 0x0F, 0x1E, 0xFA}, "endbr64"},
	{"jmp *rax", []byte{0xFF, 0xE0}, "jmp *%rax"},
	{"mov abs", []byte{0x48, 0x8B, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00}, "mov 0x1000,%rax"},
	{"ret", []byte{0xC3}, "ret"},
}

// TestRelocateForms relocates each case 1 GiB up or down and compares the
// result with GNU as's encoding of the expected text at the new address.
func TestRelocateForms(t *testing.T) {
	const newBase = 0x200000000
	var texts []string
	syms := map[string]uint64{}
	type result struct {
		out     []byte
		newAddr uint64
	}
	var results []result
	for k, c := range relocForms {
		newAddr := newBase + uint64(k)*gnuSlot
		from := newAddr + gib
		if k%2 == 1 {
			from = newAddr - gib
		}
		inst, err := x86dec.Decode(c.code, from)
		require.NoError(t, err, c.name)
		require.Equal(t, len(c.code), inst.Len, c.name)
		target, ok := inst.Target()
		if !ok {
			target, _ = inst.MemRIPTarget()
		}
		name := fmt.Sprintf("T%d", k)
		syms[name] = target
		texts = append(texts, replaceT(c.gnu, name))
		out, err := Relocate(c.code, from, newAddr)
		require.NoError(t, err, c.name)
		checkRelocated(t, c.code, from, out, newAddr)
		results = append(results, result{out, newAddr})
	}
	gnu := gnuref.Assemble(t, newBase, gnuSlot, texts, syms)
	for k, c := range relocForms {
		if c.gnu == "" {
			continue
		}
		gnuref.RequireSlot(t, gnu[k], results[k].out, fmt.Sprintf("%s: %s", c.name, texts[k]))
	}
}

// replaceT substitutes the symbol name for the word T.
func replaceT(gnu, name string) string {
	var b bytes.Buffer
	for k := 0; k < len(gnu); k++ {
		isWord := func(i int) bool {
			if i < 0 || i >= len(gnu) {
				return false
			}
			c := gnu[i]
			return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		}
		if gnu[k] == 'T' && !isWord(k-1) && !isWord(k+1) {
			b.WriteString(name)
			continue
		}
		b.WriteByte(gnu[k])
	}
	return b.String()
}

func TestRelocateErrors(t *testing.T) {
	const from = 0x401000
	tests := []struct {
		name    string
		code    []byte
		newAddr uint64
		err     error
	}{
		{"xbegin rel16", []byte{0x66, 0xC7, 0xF8, 0x10, 0x00}, from + 0x100, ErrUnsupported},
		{"eip-relative", []byte{0x67, 0x48, 0x8B, 0x05, 0x10, 0x00, 0x00, 0x00}, from + 0x100, ErrUnsupported},
		{"eip-relative special", []byte{0x67, 0x66, 0x0F, 0xAE, 0x3D, 0x00, 0x01, 0x00, 0x00}, from + 0x100, ErrUnsupported},
		{"trailing", []byte{0x90, 0x90}, from + 0x100, ErrTrailing},
		{"jmp far", []byte{0xE9, 0, 0, 0, 0}, from + 4*gib, ErrRange},
		{"je rel8 far", []byte{0x74, 0x10}, from + 1<<63, ErrRange},
		{"loop far", []byte{0xE2, 0x10}, from + 3*gib, ErrRange},
		{"rip far", []byte{0x48, 0x8B, 0x05, 0, 0, 0, 0}, from + 3*gib, ErrRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Relocate(tt.code, from, tt.newAddr)
			require.ErrorIs(t, err, tt.err)
			require.Nil(t, out)
			var re *RelocError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, [3]any{uint64(from), tt.newAddr, tt.code}, [3]any{re.Addr, re.NewAddr, re.Bytes})
			assert.Contains(t, err.Error(), fmt.Sprintf("% x", tt.code))
		})
	}
	// Bytes that do not decode carry the decoder's error.
	for _, code := range [][]byte{nil, {0x0F}, {0xFF, 0xFF}, {0xF3}, {0x48, 0x8B}} {
		_, err := Relocate(code, from, from+8)
		var de *x86dec.Error
		require.ErrorAs(t, err, &de, "% x", code)
	}
}
