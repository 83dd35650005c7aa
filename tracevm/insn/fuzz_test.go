package insn

import (
	"errors"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

var fuzzSeeds = [][]byte{
	{0xFF, 0xE0},                               // jmp *%rax
	{0x3E, 0xFF, 0x24, 0xC8},                   // notrack jmp *(%rax,%rcx,8)
	{0x41, 0xFF, 0x24, 0x24},                   // jmp *(%r12)
	{0x41, 0xFF, 0x65, 0x00},                   // jmp *0x0(%r13)
	{0xFF, 0x25, 0x10, 0, 0, 0},                // jmp *0x10(%rip)
	{0x64, 0xFF, 0x24, 0x25, 0x10, 0, 0, 0},    // jmp *%fs:0x10
	{0xF2, 0x41, 0xFF, 0xD3},                   // bnd call *%r11
	{0x67, 0xFF, 0x20},                         // jmp *(%eax)
	{0x67, 0xFF, 0x25, 0x10, 0, 0, 0},          // jmp *0x10(%eip)
	{0xF0, 0xFF, 0x20},                         // lock jmp *(%rax)
	{0xFF, 0x28},                               // ljmp *(%rax)
	{0x0F, 0x84, 0xF0, 0xFF, 0xFF, 0xFF},       // je back
	{0x74, 0x02},                               // je +2
	{0xE8, 0x10, 0, 0, 0},                      // call
	{0xF3, 0xC3},                               // rep ret
	{0xC2, 0x08, 0x00},                         // ret $8
	{0x0F, 0x05},                               // syscall
	{0xCC},                                     // int3
	{0xC7, 0xF8, 0, 0, 0, 0},                   // xbegin
	{0xF3, 0x0F, 0x1E, 0xFA},                   // endbr64
	{0xF3, 0x48, 0x0F, 0x1E, 0xC8},             // rdsspq %rax
	{0x48, 0x8B, 0x05, 0xF0, 0xFF, 0xFF, 0xFF}, // mov -16(%rip),%rax
	{0x0F, 0x20, 0xC0},                         // mov %cr0,%rax
}

// FuzzClassify: no input makes Classify, LoadTarget, IndirectTarget or
// EffectiveAddr panic, and every instruction Classify calls an indirect
// branch loads into a mov that decodes.
func FuzzClassify(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, code []byte, dst uint8) {
		const addr = 0x400000
		inst, err := x86dec.Decode(code, addr)
		if err != nil {
			return
		}
		info := Classify(&inst)
		require.Less(t, info.Kind, numKind)
		require.Equal(t, info.Kind == Unsupported, info.Reason != "")

		var r Regs
		for k := range r {
			r[k] = uint64(k) << 12
		}
		zeros := func(_ uint64, n int) ([]byte, error) { return make([]byte, n), nil }
		_, terr := IndirectTarget(&inst, &r, 1<<40, 2<<40, zeros)
		for _, a := range inst.Args {
			if m, ok := a.(x86asm.Mem); ok {
				_, _ = EffectiveAddr(&inst, m, &r, 1<<40, 2<<40)
			}
		}
		out, lerr := LoadTarget(&inst, code, x86enc.Reg(dst), addr)
		if info.Kind != IndirectJump && info.Kind != IndirectCall {
			return
		}
		require.NoError(t, terr)
		if dst > 15 {
			require.Error(t, lerr)
			return
		}
		if errors.Is(lerr, x86enc.ErrRange) {
			// A disp32 at the edge of its range, with a load longer
			// than the branch.
			return
		}
		require.NoError(t, lerr)
		mov, err := x86dec.Decode(out, addr)
		require.NoError(t, err)
		require.Equal(t, x86asm.MOV, mov.Op)
		require.Equal(t, len(out), mov.Len)
		require.Equal(t, x86asm.RAX+x86asm.Reg(dst), mov.Args[0])
	})
}
