package insn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"strings"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

// testAt is where the loads are placed: far from testBase, where the
// originals sit, so that %rip displacements must change.
const testAt = 0x10000000

// loadForms are indirect branches and the GNU text of their target operand.
var loadForms = []struct{ branch, operand string }{
	{"jmp *%rax", "%rax"},
	{"call *%rcx", "%rcx"},
	{"jmp *%rsp", "%rsp"},
	{"jmp *%r8", "%r8"},
	{"call *%r15", "%r15"},
	{"jmp *%r12", "%r12"},
	{"jmp *%r13", "%r13"},
	{".byte 0x48, 0xff, 0xe3", "%rbx"}, // rex.W jmp *%rbx
	{"jmp *(%rax)", "(%rax)"},
	{"call *(%r9)", "(%r9)"},
	{"jmp *0x10(%rbx)", "0x10(%rbx)"},
	{"call *-0x8(%r10)", "-0x8(%r10)"},
	{"jmp *0x12345(%rcx)", "0x12345(%rcx)"},
	{"jmp *-0x1000(%r11)", "-0x1000(%r11)"},
	{"jmp *0x8(%rax,%rcx,8)", "0x8(%rax,%rcx,8)"},
	{"call *0x40(%r8,%r9,2)", "0x40(%r8,%r9,2)"},
	{"jmp *-0x200(%rdx,%r14,4)", "-0x200(%rdx,%r14,4)"},
	{"jmp *(%rsi,%rdi,1)", "(%rsi,%rdi,1)"},
	{"jmp *0x12345678(,%rax,8)", "0x12345678(,%rax,8)"},
	{"call *0x100(,%r10,4)", "0x100(,%r10,4)"},
	{"jmp *(%rsp)", "(%rsp)"},
	{"jmp *0x18(%rsp)", "0x18(%rsp)"},
	{"call *(%r12)", "(%r12)"},
	{"jmp *0x8(%r12)", "0x8(%r12)"},
	{"jmp *(%rbp)", "(%rbp)"},
	{"call *(%r13)", "(%r13)"},
	{"jmp *0x20(%r13,%rax,8)", "0x20(%r13,%rax,8)"},
	{"jmp *far(%rip)", "far(%rip)"},
	{"call *far+0x40(%rip)", "far+0x40(%rip)"},
	{"jmp *%fs:0x10", "%fs:0x10"},
	{"call *%gs:0x28", "%gs:0x28"},
	{"jmp *%fs:(%rax)", "%fs:(%rax)"},
	{"jmp *%fs:0x8(%r12,%rcx,8)", "%fs:0x8(%r12,%rcx,8)"},
	{"notrack jmp *(%rax,%rcx,8)", "(%rax,%rcx,8)"},
	{"notrack call *%r11", "%r11"},
	{"bnd jmp *%rdx", "%rdx"},
	{"bnd call *0x8(%rbx)", "0x8(%rbx)"},
	{"notrack bnd jmp *0x10(%r15)", "0x10(%r15)"},
}

// normMem is m as the load must reproduce it: only fs and gs overrides
// matter in 64-bit mode, and %rip operands are compared by address.
func normMem(m x86asm.Mem) x86asm.Mem {
	if m.Segment != x86asm.FS && m.Segment != x86asm.GS {
		m.Segment = 0
	}
	if m.Base == x86asm.RIP {
		m.Disp = 0
	}
	return m
}

func TestLoadTarget(t *testing.T) {
	syms := map[string]uint64{"far": testFar}
	branches := make([]string, len(loadForms))
	var movs []string
	for k, f := range loadForms {
		branches[k] = f.branch
		for dst := x86enc.RAX; dst <= x86enc.R15; dst++ {
			movs = append(movs, fmt.Sprintf("{load} mov %s,%%%v", f.operand, dst))
		}
	}
	orig := gnuref.Assemble(t, testBase, gnuSlot, branches, syms)
	gnu := gnuref.Assemble(t, testAt, gnuSlot, movs, syms)
	for k, f := range loadForms {
		addr := uint64(testBase + k*gnuSlot)
		inst, err := x86dec.Decode(orig[k], addr)
		require.NoError(t, err, f.branch)
		code := gnuref.TrimSlot(t, orig[k], inst.Len, f.branch)
		kind := Classify(&inst).Kind
		require.True(t, kind == IndirectJump || kind == IndirectCall, "%s is %v", f.branch, kind)
		for dst := x86enc.RAX; dst <= x86enc.R15; dst++ {
			n := k*16 + int(dst)
			at := uint64(testAt + n*gnuSlot)
			msg := fmt.Sprintf("%s [% x] -> %s", f.branch, code, movs[n])
			out, err := LoadTarget(&inst, code, dst, at)
			require.NoError(t, err, msg)

			mov, err := x86dec.Decode(out, at)
			require.NoError(t, err, msg)
			msg += fmt.Sprintf(": [% x] %s", out, mov.String())
			require.Equal(t, len(out), mov.Len, msg)
			require.Equal(t, x86asm.MOV, mov.Op, msg)
			require.Equal(t, 64, mov.DataSize, msg)
			require.Equal(t, x86asm.RAX+x86asm.Reg(dst), mov.Args[0], msg)
			switch a := inst.Args[0].(type) {
			case x86asm.Reg:
				require.Equal(t, a, mov.Args[1], msg)
			case x86asm.Mem:
				m, ok := mov.Args[1].(x86asm.Mem)
				require.True(t, ok, msg)
				require.Equal(t, normMem(a), normMem(m), msg)
				want, wok := inst.MemRIPTarget()
				got, gok := mov.MemRIPTarget()
				require.Equal(t, wok, gok, msg)
				require.Equal(t, want, got, msg)
			}

			require.Equal(t, fmt.Sprintf("% x", gnuref.TrimSlot(t, gnu[n], mov.Len, msg)), fmt.Sprintf("% x", out), "%s: GNU as", msg)
		}
	}
}

func TestLoadTargetErrors(t *testing.T) {
	cases := []struct {
		text  string
		dst   x86enc.Reg
		at    uint64
		cut   int // bytes removed from the end of the code
		want  error
		wantS string // in the message
	}{
		{text: "jmp far", want: ErrNotIndirect},
		{text: "call far", want: ErrNotIndirect},
		{text: "mov %rax,%rbx", want: ErrNotIndirect},
		{text: "ljmp *(%rax)", want: ErrNotIndirect},
		{text: "ret", want: ErrNotIndirect},
		{text: "endbr64", want: ErrNotIndirect},
		{text: "jmp *(%eax)", want: ErrOperand, wantS: "32-bit address"},
		{text: ".byte 0xf0, 0xff, 0x20", want: ErrOperand, wantS: "lock"},
		{text: "jmp *%rax", dst: 16, want: x86enc.ErrBadOperand},
		{text: "jmp *far(%rip)", at: testFar + 1<<33, want: x86enc.ErrRange},
		{text: "call *far(%rip)", at: 1 << 48, want: x86enc.ErrRange},
		{text: "jmp *0x10(%rax)", cut: 1, want: ErrShortCode},
	}
	texts := make([]string, len(cases))
	for k, c := range cases {
		texts[k] = c.text
	}
	slots := gnuref.Assemble(t, testBase, gnuSlot, texts, map[string]uint64{"far": testFar})
	for k, c := range cases {
		addr := uint64(testBase + k*gnuSlot)
		inst, err := x86dec.Decode(slots[k], addr)
		require.NoError(t, err, c.text)
		code := slots[k][:inst.Len-c.cut]
		at := c.at
		if at == 0 {
			at = testAt
		}
		out, err := LoadTarget(&inst, code, c.dst, at)
		require.Error(t, err, c.text)
		assert.Nil(t, out, c.text)
		assert.ErrorIs(t, err, c.want, c.text)
		var e *Error
		require.ErrorAs(t, err, &e, c.text)
		assert.Equal(t, addr, e.Addr, c.text)
		assert.Equal(t, code, e.Bytes, c.text)
		assert.Contains(t, err.Error(), fmt.Sprintf("%#x", addr), c.text)
		assert.Contains(t, err.Error(), fmt.Sprintf("% x", code), c.text)
		assert.Contains(t, err.Error(), c.wantS, c.text)
	}
}

// memReader is a Reader over a sparse byte map.
func memReader(mem map[uint64]byte) Reader {
	return func(addr uint64, n int) ([]byte, error) {
		out := make([]byte, n)
		for k := range out {
			b, ok := mem[addr+uint64(k)]
			if !ok {
				return nil, fmt.Errorf("unmapped %#x", addr+uint64(k))
			}
			out[k] = b
		}
		return out, nil
	}
}

func put64(mem map[uint64]byte, addr, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	for k, c := range b {
		mem[addr+uint64(k)] = c
	}
}

// testRegs returns a register file with distinct values, and the fs and
// gs bases.
func testRegs() (r Regs, fs, gs uint64) {
	r[x86enc.RAX] = 0x100000
	r[x86enc.RCX] = 3
	r[x86enc.RBX] = 0x200000
	r[x86enc.RSI] = 5
	r[x86enc.RBP] = 0x7ffff000
	r[x86enc.R9] = 0xdeadbeef
	r[x86enc.R12] = 0x300000
	r[x86enc.R13] = 7
	return r, 0x7f0000000000, 0x7e0000000000
}

func TestIndirectTarget(t *testing.T) {
	r, fs, gs := testRegs()
	cases := []struct {
		text string
		reg  uint64 // register operand: the target; else 0
		addr uint64 // memory operand: where the target is read
	}{
		{text: "jmp *%r9", reg: 0xdeadbeef},
		{text: "call *%rax", reg: 0x100000},
		{text: "bnd jmp *%rbp", reg: 0x7ffff000},
		{text: "jmp *(%rax)", addr: 0x100000},
		{text: "call *0x10(%rbx,%rsi,4)", addr: 0x200000 + 0x10 + 5*4},
		{text: "jmp *-0x8(%rbp)", addr: 0x7ffff000 - 8},
		{text: "jmp *0x100(,%rcx,8)", addr: 0x100 + 3*8},
		{text: "jmp *(%r12,%r13,8)", addr: 0x300000 + 7*8},
		{text: "jmp *far(%rip)", addr: testFar},
		{text: "call *far-0x10(%rip)", addr: testFar - 0x10},
		{text: "jmp *%fs:0x28", addr: 0x7f0000000000 + 0x28},
		{text: "call *%gs:0x8(%rax)", addr: 0x7e0000000000 + 0x100000 + 8},
		{text: "notrack jmp *(%rax,%rcx,8)", addr: 0x100000 + 3*8},
	}
	texts := make([]string, len(cases))
	for k, c := range cases {
		texts[k] = c.text
	}
	slots := gnuref.Assemble(t, testBase, gnuSlot, texts, map[string]uint64{"far": testFar})
	for k, c := range cases {
		inst, err := x86dec.Decode(slots[k], uint64(testBase+k*gnuSlot))
		require.NoError(t, err, c.text)
		mem := map[uint64]byte{}
		want := c.reg
		if c.reg == 0 {
			want = 0x5555000000 + uint64(k)*0x1234
			put64(mem, c.addr, want)
		}
		got, err := IndirectTarget(&inst, &r, fs, gs, memReader(mem))
		require.NoError(t, err, c.text)
		assert.Equal(t, want, got, "%s: %#x", c.text, got)
		if m, ok := inst.Args[0].(x86asm.Mem); ok {
			a, err := EffectiveAddr(&inst, m, &r, fs, gs)
			require.NoError(t, err, c.text)
			assert.Equal(t, c.addr, a, "%s: %#x", c.text, a)
		}
	}
}

var errFault = errors.New("fault")

func TestIndirectTargetErrors(t *testing.T) {
	r, fs, gs := testRegs()
	texts := []string{"jmp *(%rax)", "jmp far", "jmp *(%eax)", "jmp *%rax"}
	slots := gnuref.Assemble(t, testBase, gnuSlot, texts, map[string]uint64{"far": testFar})
	var insts []x86dec.Inst
	for k := range texts {
		inst, err := x86dec.Decode(slots[k], uint64(testBase+k*gnuSlot))
		require.NoError(t, err, texts[k])
		insts = append(insts, inst)
	}
	fault := func(uint64, int) ([]byte, error) { return nil, errFault }
	short := func(uint64, int) ([]byte, error) { return []byte{1, 2, 3}, nil }
	cases := []struct {
		name string
		inst int
		regs *Regs
		read Reader
		want error
	}{
		{"read fault", 0, &r, fault, errFault},
		{"short read", 0, &r, short, ErrRead},
		{"nil reader", 0, &r, nil, ErrNoRegs},
		{"nil regs", 3, nil, short, ErrNoRegs},
		{"direct jmp", 1, &r, short, ErrNotIndirect},
		{"addr32", 2, &r, short, ErrOperand},
	}
	for _, c := range cases {
		_, err := IndirectTarget(&insts[c.inst], c.regs, fs, gs, c.read)
		require.ErrorIs(t, err, c.want, c.name)
		var e *Error
		require.ErrorAs(t, err, &e, c.name)
		assert.Equal(t, insts[c.inst].Addr, e.Addr, c.name)
		assert.Contains(t, err.Error(), strings.Fields(insts[c.inst].String())[0], c.name)
	}
}

func TestEffectiveAddr(t *testing.T) {
	r, fs, gs := testRegs()
	cases := []struct {
		text string
		arg  int    // which operand is the memory one
		want uint64 // 0: error wanted
	}{
		{"lea 0x10(%rax,%rbx,2),%rcx", 1, 0x100000 + 0x10 + 0x200000*2},
		{"lea far(%rip),%rax", 1, testFar},
		{"mov %fs:0x28,%rax", 1, 0x7f0000000000 + 0x28},
		{"mov %rax,%gs:-0x8(%r12)", 0, 0x7e0000000000 + 0x300000 - 8},
		{"mov %rax,%ds:0x8(%rsi)", 0, 5 + 8}, // ds has base 0
		{"movq $1,-0x10(%rbp,%r13,1)", 0, 0x7ffff000 - 0x10 + 7},
		{"mov 0x10(%eax),%ecx", 1, 0},
		{"mov 0x10(%eip),%ecx", 1, 0},
		{"vpgatherdd %xmm2,(%rax,%xmm1,4),%xmm0", 1, 0},
	}
	texts := make([]string, len(cases))
	for k, c := range cases {
		texts[k] = c.text
	}
	slots := gnuref.Assemble(t, testBase, gnuSlot, texts, map[string]uint64{"far": testFar})
	for k, c := range cases {
		inst, err := x86dec.Decode(slots[k], uint64(testBase+k*gnuSlot))
		require.NoError(t, err, c.text)
		m, ok := inst.Args[c.arg].(x86asm.Mem)
		require.True(t, ok, "%s: %v", c.text, inst.Args)
		got, err := EffectiveAddr(&inst, m, &r, fs, gs)
		if c.want == 0 {
			assert.ErrorIs(t, err, ErrOperand, c.text)
			continue
		}
		require.NoError(t, err, c.text)
		assert.Equal(t, c.want, got, "%s: %#x", c.text, got)
	}
	_, err := EffectiveAddr(&x86dec.Inst{}, x86asm.Mem{Base: x86asm.RAX}, nil, 0, 0)
	assert.ErrorIs(t, err, ErrNoRegs)
}
