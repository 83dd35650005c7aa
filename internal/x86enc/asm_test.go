package x86enc

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"

	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// wantInst is what x86dec must decode from one emitted instruction.
// Args are in Intel order; an x86asm.Rel or a Mem with Base RIP stands
// for the operand aimed at target, checked through Target/MemRIPTarget.
type wantInst struct {
	op     x86asm.Op
	args   []x86asm.Arg
	target uint64
}

// encCase is one call (or a few) on an Asm, the same code in GNU as
// syntax, and the instructions it must decode to.
type encCase struct {
	name string
	emit func(a *Asm)
	gnu  string
	want []wantInst
}

// encBase is where the first case is placed: high enough that targets
// 2 GiB below it are valid addresses for ld.
const encBase = 0x100000000

var jccOps = [numCond]x86asm.Op{
	x86asm.JO, x86asm.JNO, x86asm.JB, x86asm.JAE, x86asm.JE, x86asm.JNE, x86asm.JBE, x86asm.JA,
	x86asm.JS, x86asm.JNS, x86asm.JP, x86asm.JNP, x86asm.JL, x86asm.JGE, x86asm.JLE, x86asm.JG,
}

func r64(r Reg) x86asm.Reg { return x86asm.RAX + x86asm.Reg(r) }
func r32(r Reg) x86asm.Reg { return x86asm.EAX + x86asm.Reg(r) }

// gnu32 is the GNU name of the low 32 bits of r.
func gnu32(r Reg) string {
	if r >= R8 {
		return r.String() + "d"
	}
	return "e" + strings.TrimPrefix(r.String(), "r")
}

var ripMem = x86asm.Mem{Base: x86asm.RIP}

// encCases builds every form with every register and a spread of
// displacements, immediates and targets (near, far forward and back, up
// to 2 GiB away). syms are the absolute targets the GNU texts name.
func encCases() (cases []encCase, syms map[string]uint64) {
	syms = map[string]uint64{}
	pc := func() uint64 { return encBase + uint64(len(cases))*gnuSlot }
	add := func(name, gnu string, emit func(a *Asm), want ...wantInst) {
		cases = append(cases, encCase{name: name, emit: emit, gnu: gnu, want: want})
	}
	// targets returns targets around the next case with the symbols naming them.
	targets := func() (addrs []uint64, names []string) {
		for _, d := range []int64{0x40, -0x1000, 0x7fff0000, -0x7fff0000} {
			v := pc() + uint64(d)
			name := fmt.Sprintf("T%d", len(syms))
			syms[name] = v
			addrs, names = append(addrs, v), append(names, name)
		}
		return addrs, names
	}
	disps := []int32{0, 1, -1, 127, -128, 128, -129, 0x12345678, math.MaxInt32, math.MinInt32}

	add("pushfq", "pushfq", func(a *Asm) { a.Pushfq() }, wantInst{op: x86asm.PUSHFQ})
	add("popfq", "popfq", func(a *Asm) { a.Popfq() }, wantInst{op: x86asm.POPFQ})
	add("ret", "ret", func(a *Asm) { a.Ret() }, wantInst{op: x86asm.RET})
	add("int3", "int3", func(a *Asm) { a.Int3() }, wantInst{op: x86asm.INT, args: []x86asm.Arg{x86asm.Imm(3)}})

	for r := RAX; r < numReg; r++ {
		add("push "+r.String(), "push %"+r.String(), func(a *Asm) { a.Push(r) }, wantInst{op: x86asm.PUSH, args: []x86asm.Arg{r64(r)}})
		add("pop "+r.String(), "pop %"+r.String(), func(a *Asm) { a.Pop(r) }, wantInst{op: x86asm.POP, args: []x86asm.Arg{r64(r)}})
		add("call *"+r.String(), "call *%"+r.String(), func(a *Asm) { a.CallReg(r) }, wantInst{op: x86asm.CALL, args: []x86asm.Arg{r64(r)}})
		add("jmp *"+r.String(), "jmp *%"+r.String(), func(a *Asm) { a.JmpReg(r) }, wantInst{op: x86asm.JMP, args: []x86asm.Arg{r64(r)}})
		for _, v := range []uint32{0, 1, 0x7fffffff, 0x80000000, 0xffffffff} {
			add(fmt.Sprintf("mov %#x,%s", v, r), fmt.Sprintf("mov $%#x,%%%s", v, gnu32(r)), func(a *Asm) { a.MovImm32(r, v) },
				// x86asm holds a 32-bit operand's immediate sign-extended.
				wantInst{op: x86asm.MOV, args: []x86asm.Arg{r32(r), x86asm.Imm(int32(v))}})
		}
		for _, v := range []uint64{0, 1, 0xffffffff, 1 << 63, 0x123456789abcdef0, math.MaxUint64} {
			add(fmt.Sprintf("movabs %#x,%s", v, r), fmt.Sprintf("movabs $%#x,%%%s", v, r), func(a *Asm) { a.MovImm64(r, v) },
				wantInst{op: x86asm.MOV, args: []x86asm.Arg{r64(r), x86asm.Imm(v)}})
		}
		for _, v := range []int32{0x7fffff80, 128, -129, math.MaxInt32, math.MinInt32} {
			add(fmt.Sprintf("cmp %#x,%s", v, r), fmt.Sprintf("cmp $%d,%%%s", v, gnu32(r)), func(a *Asm) { a.CmpReg32Imm32(r, v) },
				wantInst{op: x86asm.CMP, args: []x86asm.Arg{r32(r), x86asm.Imm(v)}})
		}
		for _, v := range []int8{-16, -128, 0, 1, 127} {
			add(fmt.Sprintf("and %d,%s", v, r), fmt.Sprintf("and $%d,%%%s", v, r), func(a *Asm) { a.AndImm8(r, v) },
				wantInst{op: x86asm.AND, args: []x86asm.Arg{r64(r), x86asm.Imm(v)}})
		}
		for s := RAX; s < numReg; s++ {
			add(fmt.Sprintf("mov %s,%s", s, r), fmt.Sprintf("mov %%%s,%%%s", s, r), func(a *Asm) { a.Mov(r, s) },
				wantInst{op: x86asm.MOV, args: []x86asm.Arg{r64(r), r64(s)}})
			add(fmt.Sprintf("test %s,%s", s, r), fmt.Sprintf("test %%%s,%%%s", s, r), func(a *Asm) { a.Test(r, s) },
				wantInst{op: x86asm.TEST, args: []x86asm.Arg{r64(r), r64(s)}})
		}
		for _, d := range disps {
			m := Mem{Base: r, Disp: d}
			mem := x86asm.Mem{Base: r64(r), Disp: int64(d)}
			at := fmt.Sprintf("%d(%%%s)", d, r)
			// Pair each base with a destination of the other REX half.
			dst := (r + 9) % numReg
			add("lea "+at, fmt.Sprintf("lea %s,%%%s", at, dst), func(a *Asm) { a.Lea(dst, m) },
				wantInst{op: x86asm.LEA, args: []x86asm.Arg{r64(dst), mem}})
			add("load "+at, fmt.Sprintf("mov %s,%%%s", at, dst), func(a *Asm) { a.Load(dst, m) },
				wantInst{op: x86asm.MOV, args: []x86asm.Arg{r64(dst), mem}})
			add("store "+at, fmt.Sprintf("mov %%%s,%s", dst, at), func(a *Asm) { a.Store(m, dst) },
				wantInst{op: x86asm.MOV, args: []x86asm.Arg{mem, r64(dst)}})
			for _, v := range []int32{0x7fffff80, 128, -129, math.MaxInt32, math.MinInt32} {
				add(fmt.Sprintf("cmpl %#x,%s", v, at), fmt.Sprintf("cmpl $%d,%s", v, at), func(a *Asm) { a.CmpMemImm32(m, v) },
					wantInst{op: x86asm.CMP, args: []x86asm.Arg{mem, x86asm.Imm(v)}})
			}
			for _, v := range []uint8{0, 1, 0x7f, 0x80, 0xaf, 0xff} {
				add(fmt.Sprintf("cmpb %#x,%s", v, at), fmt.Sprintf("cmpb $%d,%s", v, at), func(a *Asm) { a.CmpMem8Imm8(m, v) },
					wantInst{op: x86asm.CMP, args: []x86asm.Arg{mem, x86asm.Imm(v)}})
			}
			add("xsave64 "+at, "xsave64 "+at, func(a *Asm) { a.Xsave64(m) },
				wantInst{op: x86asm.XSAVE64, args: []x86asm.Arg{mem}})
			add("xrstor64 "+at, "xrstor64 "+at, func(a *Asm) { a.Xrstor64(m) },
				wantInst{op: x86asm.XRSTOR64, args: []x86asm.Arg{mem}})
		}
		// lea -128(%rsp),%rsp and back: the red-zone step of a trampoline.
		add("lea rsp", fmt.Sprintf("lea -128(%%rsp),%%%s", r), func(a *Asm) { a.Lea(r, Mem{RSP, -128}) },
			wantInst{op: x86asm.LEA, args: []x86asm.Arg{r64(r), x86asm.Mem{Base: x86asm.RSP, Disp: -128}}})
		addrs, names := targets()
		for k, t := range addrs {
			add("lea rip "+r.String(), fmt.Sprintf("lea %s(%%rip),%%%s", names[k], r), func(a *Asm) { a.LeaRIP(r, t) },
				wantInst{op: x86asm.LEA, args: []x86asm.Arg{r64(r), ripMem}, target: t})
			add("load rip "+r.String(), fmt.Sprintf("mov %s(%%rip),%%%s", names[k], r), func(a *Asm) { a.LoadRIP(r, t) },
				wantInst{op: x86asm.MOV, args: []x86asm.Arg{r64(r), ripMem}, target: t})
			add("cmp rip "+r.String(), fmt.Sprintf("cmp %s(%%rip),%%%s", names[k], r), func(a *Asm) { a.CmpRegRIP(r, t) },
				wantInst{op: x86asm.CMP, args: []x86asm.Arg{r64(r), ripMem}, target: t})
			add("store rip "+r.String(), fmt.Sprintf("mov %%%s,%s(%%rip)", r, names[k]), func(a *Asm) { a.StoreRIP(t, r) },
				wantInst{op: x86asm.MOV, args: []x86asm.Arg{ripMem, r64(r)}, target: t})
		}
	}

	addrs, names := targets()
	for k, t := range addrs {
		n := names[k]
		add("call", "call "+n, func(a *Asm) { a.Call(t) }, wantInst{op: x86asm.CALL, args: []x86asm.Arg{x86asm.Rel(0)}, target: t})
		add("jmp", "{disp32} jmp "+n, func(a *Asm) { a.Jmp(t) }, wantInst{op: x86asm.JMP, args: []x86asm.Arg{x86asm.Rel(0)}, target: t})
		add("call rip", fmt.Sprintf("call *%s(%%rip)", n), func(a *Asm) { a.CallRIP(t) }, wantInst{op: x86asm.CALL, args: []x86asm.Arg{ripMem}, target: t})
		add("jmp rip", fmt.Sprintf("jmp *%s(%%rip)", n), func(a *Asm) { a.JmpRIP(t) }, wantInst{op: x86asm.JMP, args: []x86asm.Arg{ripMem}, target: t})
		for _, v := range []int8{0, 1, -1, 127, -128} {
			add("cmpq rip", fmt.Sprintf("cmpq $%d,%s(%%rip)", v, n), func(a *Asm) { a.CmpRIPImm8(t, v) },
				wantInst{op: x86asm.CMP, args: []x86asm.Arg{ripMem, x86asm.Imm(v)}, target: t})
			add("subq rip", fmt.Sprintf("subq $%d,%s(%%rip)", v, n), func(a *Asm) { a.SubRIPImm8(t, v) },
				wantInst{op: x86asm.SUB, args: []x86asm.Arg{ripMem, x86asm.Imm(v)}, target: t})
		}
		for c := O; c < numCond; c++ {
			add("j"+c.String(), fmt.Sprintf("{disp32} j%s %s", c, n), func(a *Asm) { a.Jcc(c, t) },
				wantInst{op: jccOps[c], args: []x86asm.Arg{x86asm.Rel(0)}, target: t})
		}
	}

	// Labels, forward and backward, across an int3.
	int3 := wantInst{op: x86asm.INT, args: []x86asm.Arg{x86asm.Imm(3)}}
	branchTo := func(op x86asm.Op, t uint64) wantInst {
		return wantInst{op: op, args: []x86asm.Arg{x86asm.Rel(0)}, target: t}
	}
	labelForms := []struct {
		name string
		op   x86asm.Op
		gnu  string
		emit func(a *Asm, l Label)
	}{
		{"jmp", x86asm.JMP, "{disp32} jmp", func(a *Asm, l Label) { a.JmpLabel(l) }},
		{"call", x86asm.CALL, "call", func(a *Asm, l Label) { a.CallLabel(l) }},
	}
	for c := O; c < numCond; c++ {
		labelForms = append(labelForms, struct {
			name string
			op   x86asm.Op
			gnu  string
			emit func(a *Asm, l Label)
		}{"j" + c.String(), jccOps[c], "{disp32} j" + c.String(), func(a *Asm, l Label) { a.JccLabel(c, l) }})
	}
	for _, f := range labelForms {
		size := uint64(5)
		if f.op != x86asm.JMP && f.op != x86asm.CALL {
			size = 6
		}
		p := pc()
		add(f.name+" forward", f.gnu+" 1f; int3; 1:", func(a *Asm) {
			l := a.NewLabel()
			f.emit(a, l)
			a.Int3()
			a.Bind(l)
		}, branchTo(f.op, p+size+1), int3)
		p = pc()
		add(f.name+" backward", "1: int3; "+f.gnu+" 1b", func(a *Asm) {
			l := a.NewLabel()
			a.Bind(l)
			a.Int3()
			f.emit(a, l)
		}, int3, branchTo(f.op, p))
	}
	return cases, syms
}

// TestEncodeForms encodes every case, decodes it with x86dec and requires
// the same bytes from GNU as.
func TestEncodeForms(t *testing.T) {
	cases, syms := encCases()
	texts := make([]string, len(cases))
	for k, c := range cases {
		texts[k] = c.gnu
	}
	gnu := gnuref.Assemble(t, encBase, gnuSlot, texts, syms)
	for k, c := range cases {
		pc := encBase + uint64(k)*gnuSlot
		a := New(pc)
		c.emit(a)
		code, err := a.Bytes()
		require.NoError(t, err, c.name)
		msg := fmt.Sprintf("case %d %q (%s)", k, c.name, c.gnu)
		gnuref.RequireSlot(t, gnu[k], code, msg)
		checkDecode(t, code, pc, c.want, msg)
	}
	t.Logf("%d cases, %d forms", len(cases), numOp)
}

// checkDecode decodes code at pc instruction by instruction and compares
// each with want.
func checkDecode(t *testing.T, code []byte, pc uint64, want []wantInst, msg string) {
	t.Helper()
	var got []x86dec.Inst
	for off := 0; off < len(code); {
		inst, err := x86dec.Decode(code[off:], pc+uint64(off))
		require.NoError(t, err, msg)
		got = append(got, inst)
		off += inst.Len
	}
	require.Len(t, got, len(want), msg)
	for k, w := range want {
		inst := &got[k]
		require.Equal(t, w.op, inst.Op, "%s: %s", msg, inst)
		n := 0
		for n < len(inst.Args) && inst.Args[n] != nil {
			n++
		}
		require.Equal(t, len(w.args), n, "%s: %s", msg, inst)
		for j, wa := range w.args {
			switch wa := wa.(type) {
			case x86asm.Rel:
				target, ok := inst.Target()
				require.True(t, ok, msg)
				assert.Equal(t, w.target, target, "%s: %s", msg, inst)
			case x86asm.Mem:
				m, ok := inst.Args[j].(x86asm.Mem)
				require.True(t, ok, "%s: %s", msg, inst)
				if wa.Base == x86asm.RIP {
					target, ok := inst.MemRIPTarget()
					require.True(t, ok, msg)
					assert.Equal(t, w.target, target, "%s: %s", msg, inst)
					continue
				}
				// x86asm reports scale 1 with a SIB that has no index.
				assert.Equal(t, [3]any{wa.Base, wa.Index, wa.Disp}, [3]any{m.Base, m.Index, m.Disp}, "%s: %s", msg, inst)
			default:
				assert.Equal(t, wa, inst.Args[j], "%s: %s", msg, inst)
			}
		}
	}
}

// TestNop checks Nop against GNU as's .nops n, 9 and decodes every piece
// as a NOP.
func TestNop(t *testing.T) {
	const maxN = 30
	var texts []string
	for n := 1; n <= maxN; n++ {
		texts = append(texts, fmt.Sprintf(".nops %d, 9", n))
	}
	gnu := gnuref.Assemble(t, encBase, gnuSlot, texts, nil)
	for n := 0; n <= maxN; n++ {
		a := New(encBase)
		a.Nop(n)
		code, err := a.Bytes()
		require.NoError(t, err)
		require.Len(t, code, n)
		if n > 0 {
			gnuref.RequireSlot(t, gnu[n-1], code, fmt.Sprintf("nop %d", n))
		}
		for off := 0; off < n; {
			inst, err := x86dec.Decode(code[off:], encBase)
			require.NoError(t, err)
			// 66 90 is xchg %ax,%ax to x86asm.
			assert.Contains(t, []x86asm.Op{x86asm.NOP, x86asm.XCHG}, inst.Op, "nop %d: %s", n, &inst)
			assert.LessOrEqual(t, inst.Len, 9)
			off += inst.Len
		}
	}
}

// TestTrampolineShape assembles a back-edge trampoline the way the patcher
// lays one out and compares it with GNU as as a whole: labels, fixups and
// forms interleaved.
func TestTrampolineShape(t *testing.T) {
	const base = encBase + 0x10000
	const hitSlot, resume = base + 0x2000, base - 0x3456
	a := New(base)
	skip := a.NewLabel()
	a.Lea(RSP, Mem{RSP, -128})
	a.Pushfq()
	for _, r := range []Reg{RAX, RCX, RDX, RSI, RDI, R8, R9, R10, R11, RBX} {
		a.Push(r)
	}
	a.CmpRIPImm8(hitSlot, 0)
	a.JccLabel(E, skip)
	a.Mov(RBX, RSP)
	a.AndImm8(RSP, -64)
	a.Lea(RSP, Mem{RSP, -4096})
	a.MovImm32(RAX, 0xffffffff)
	a.MovImm32(RDX, 0xffffffff)
	a.Xsave64(Mem{RSP, 0})
	a.MovImm32(RDI, 7)
	a.Load(RSI, Mem{RBX, 8 * 5})
	a.Mov(RDX, R13)
	a.CallRIP(hitSlot)
	a.MovImm32(RAX, 0xffffffff)
	a.MovImm32(RDX, 0xffffffff)
	a.Xrstor64(Mem{RSP, 0})
	a.Mov(RSP, RBX)
	a.Bind(skip)
	for _, r := range []Reg{RBX, R11, R10, R9, R8, RDI, RSI, RDX, RCX, RAX} {
		a.Pop(r)
	}
	a.Popfq()
	a.Lea(RSP, Mem{RSP, 128})
	a.Jmp(resume)
	code, err := a.Bytes()
	require.NoError(t, err)

	src := `lea -128(%rsp),%rsp; pushfq
push %rax; push %rcx; push %rdx; push %rsi; push %rdi; push %r8; push %r9; push %r10; push %r11; push %rbx
cmpq $0,HIT(%rip); {disp32} je 1f
mov %rsp,%rbx; and $-64,%rsp; lea -4096(%rsp),%rsp
mov $0xffffffff,%eax; mov $0xffffffff,%edx; xsave64 (%rsp)
mov $7,%edi; mov 40(%rbx),%rsi; mov %r13,%rdx; call *HIT(%rip)
mov $0xffffffff,%eax; mov $0xffffffff,%edx; xrstor64 (%rsp)
mov %rbx,%rsp
1: pop %rbx; pop %r11; pop %r10; pop %r9; pop %r8; pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rax
popfq; lea 128(%rsp),%rsp; jmp RESUME`
	gnu := gnuref.Assemble(t, base, 256, []string{src}, map[string]uint64{"HIT": hitSlot, "RESUME": resume})
	gnuref.RequireSlot(t, gnu[0], code, "trampoline")
}

func TestRel32Helpers(t *testing.T) {
	tests := []struct {
		from, to uint64
		ok       bool
	}{
		{0x401000, 0x401000, true},
		{0x401000, 0x401005 + math.MaxInt32, true},
		{0x401000, 0x401006 + math.MaxInt32, false},
		{0x80401000, 0x80401005 - 1<<31, true},
		{0x80401000, 0x80401004 - 1<<31, false},
		{0, math.MaxUint64, true}, // wraps to -6 from the end, as the CPU computes
		{0x7ffff000, 0xfffffffff0000000, false},
	}
	for _, tt := range tests {
		for _, f := range []struct {
			name string
			fn   func(from, to uint64) ([]byte, error)
			op   x86asm.Op
		}{{"jmp", JmpRel32, x86asm.JMP}, {"call", CallRel32, x86asm.CALL}} {
			code, err := f.fn(tt.from, tt.to)
			if !tt.ok {
				require.ErrorIs(t, err, ErrRange, "%s %#x -> %#x", f.name, tt.from, tt.to)
				var e *Error
				require.ErrorAs(t, err, &e)
				assert.Equal(t, tt.from, e.PC)
				continue
			}
			require.NoError(t, err)
			require.Len(t, code, 5)
			checkDecode(t, code, tt.from, []wantInst{{op: f.op, args: []x86asm.Arg{x86asm.Rel(0)}, target: tt.to}}, f.name)
		}
	}
}

// TestErrors: misuse and unreachable targets give typed errors from
// Bytes, never a panic, and the first error wins.
func TestErrors(t *testing.T) {
	const base = 0x401000
	far := uint64(base + 1<<32)
	other := New(base)
	tests := []struct {
		name string
		emit func(a *Asm)
		err  error
	}{
		{"jmp far", func(a *Asm) { a.Jmp(far) }, ErrRange},
		{"jcc far", func(a *Asm) { a.Jcc(NE, far) }, ErrRange},
		{"call far", func(a *Asm) { a.Call(far) }, ErrRange},
		{"call rip far", func(a *Asm) { a.CallRIP(far) }, ErrRange},
		{"jmp rip far", func(a *Asm) { a.JmpRIP(far) }, ErrRange},
		{"cmp rip far", func(a *Asm) { a.CmpRIPImm8(far, 0) }, ErrRange},
		{"lea rip far", func(a *Asm) { a.LeaRIP(RAX, far) }, ErrRange},
		{"load rip below", func(a *Asm) { a.Nop(3); a.LoadRIP(RAX, a.PC()-1<<31) }, ErrRange},
		{"unbound", func(a *Asm) { a.JmpLabel(a.NewLabel()) }, ErrUnbound},
		{"unbound jcc", func(a *Asm) { l := a.NewLabel(); a.JccLabel(E, l); a.Bind(a.NewLabel()) }, ErrUnbound},
		{"rebound", func(a *Asm) { l := a.NewLabel(); a.Bind(l); a.Ret(); a.Bind(l) }, ErrRebound},
		{"zero label", func(a *Asm) { a.JmpLabel(Label{}) }, ErrForeignLabel},
		{"zero label bind", func(a *Asm) { a.Bind(Label{}) }, ErrForeignLabel},
		{"foreign label", func(a *Asm) { a.CallLabel(other.NewLabel()) }, ErrForeignLabel},
		{"foreign bind", func(a *Asm) { a.Bind(other.NewLabel()) }, ErrForeignLabel},
		{"bad reg", func(a *Asm) { a.Push(16) }, ErrBadOperand},
		{"bad rm", func(a *Asm) { a.Lea(RAX, Mem{Base: 200}) }, ErrBadOperand},
		{"bad mov", func(a *Asm) { a.Mov(RAX, 16) }, ErrBadOperand},
		{"bad cond", func(a *Asm) { a.Jcc(16, base) }, ErrBadOperand},
		{"bad nop", func(a *Asm) { a.Nop(-1) }, ErrBadOperand},
		{"first wins", func(a *Asm) { a.Push(99); a.JmpLabel(Label{}) }, ErrBadOperand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(base)
			require.NotPanics(t, func() { tt.emit(a) })
			code, err := a.Bytes()
			require.ErrorIs(t, err, tt.err)
			require.Nil(t, code)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.NotEmpty(t, e.Inst)
			assert.GreaterOrEqual(t, e.PC, uint64(base))
			assert.Contains(t, err.Error(), fmt.Sprintf("%#x", e.PC))
		})
	}
}

func TestLabelAddr(t *testing.T) {
	a := New(0x1000)
	l, u := a.NewLabel(), a.NewLabel()
	a.Nop(7)
	a.Bind(l)
	got, ok := a.LabelAddr(l)
	require.True(t, ok)
	assert.Equal(t, uint64(0x1007), got)
	assert.Equal(t, a.PC(), got)
	_, ok = a.LabelAddr(u)
	assert.False(t, ok)
	_, ok = a.LabelAddr(Label{})
	assert.False(t, ok)
	_, ok = a.LabelAddr(New(0).NewLabel())
	assert.False(t, ok)
}

// TestFromDWARF checks the mapping against GNU as: .cfi_offset with each
// register name, decoded back by readelf, gives its DWARF number.
func TestFromDWARF(t *testing.T) {
	var src strings.Builder
	src.WriteString(".text\n.cfi_startproc\n")
	for r := RAX; r < numReg; r++ {
		fmt.Fprintf(&src, "nop\n.cfi_offset %%%s, -%d\n", r, 8*(int(r)+2))
	}
	src.WriteString(".cfi_endproc\n")
	dir := t.TempDir()
	s, o := dir+"/cfi.s", dir+"/cfi.o"
	require.NoError(t, os.WriteFile(s, []byte(src.String()), 0o644))
	gnuref.Run(t, "as", "--64", "-o", o, s)
	out, err := exec.Command("readelf", "--debug-dump=frames", o).CombinedOutput()
	require.NoError(t, err, string(out))
	// "DW_CFA_offset: r7 (rsp) at cfa-48"
	re := regexp.MustCompile(`DW_CFA_offset(?:_extended)?: r(\d+) \((\w+)\)`)
	seen := 0
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		if m[2] == "rip" {
			continue // the CIE's return-address column, 16
		}
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		r, err := FromDWARF(n)
		require.NoError(t, err)
		assert.Equal(t, m[2], r.String(), "DWARF %d", n)
		seen++
	}
	require.Equal(t, int(numReg), seen, string(out))
	for _, n := range []int{-1, 16, 17, 33, math.MaxInt} {
		_, err := FromDWARF(n)
		require.ErrorIs(t, err, ErrNotGPR, "DWARF %d", n)
	}
}

func TestNames(t *testing.T) {
	assert.Equal(t, "r13", R13.String())
	assert.Equal(t, "Reg(16)", Reg(16).String())
	assert.Equal(t, "ne", NE.String())
	assert.Equal(t, "Cond(16)", Cond(16).String())
	for _, p := range [][2]Cond{{O, NO}, {B, AE}, {E, NE}, {BE, A}, {S, NS}, {P, NP}, {L, GE}, {LE, G}} {
		assert.Equal(t, p[1], p[0].Invert())
		assert.Equal(t, p[0], p[1].Invert())
	}
	err := &Error{PC: 0x10, Inst: "jmp", Err: ErrRange}
	assert.True(t, errors.Is(err, ErrRange))
}
