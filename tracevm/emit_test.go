package tracevm

import (
	"encoding/binary"
	"fmt"
	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
)

// encBase is where the encoding cases are placed, and linked by the GNU
// cross-check: high in the address space as the code cache is, with room
// for targets 2 GiB either side.
const encBase = 0x7f1200000000

// encSlot is the room each encoding case gets: more than any case emits.
const encSlot = 32

// gpr64 maps x86enc's register numbers to x86asm's registers.
var gpr64 = [16]x86asm.Reg{
	x86asm.RAX, x86asm.RCX, x86asm.RDX, x86asm.RBX, x86asm.RSP, x86asm.RBP, x86asm.RSI, x86asm.RDI,
	x86asm.R8, x86asm.R9, x86asm.R10, x86asm.R11, x86asm.R12, x86asm.R13, x86asm.R14, x86asm.R15,
}

// gpr32 maps x86enc's register numbers to x86asm's 32-bit registers.
var gpr32 = [16]x86asm.Reg{
	x86asm.EAX, x86asm.ECX, x86asm.EDX, x86asm.EBX, x86asm.ESP, x86asm.EBP, x86asm.ESI, x86asm.EDI,
	x86asm.R8L, x86asm.R9L, x86asm.R10L, x86asm.R11L, x86asm.R12L, x86asm.R13L, x86asm.R14L, x86asm.R15L,
}

// jccOps maps x86enc's condition codes to x86asm's jcc opcodes.
var jccOps = [16]x86asm.Op{
	x86asm.JO, x86asm.JNO, x86asm.JB, x86asm.JAE, x86asm.JE, x86asm.JNE, x86asm.JBE, x86asm.JA,
	x86asm.JS, x86asm.JNS, x86asm.JP, x86asm.JNP, x86asm.JL, x86asm.JGE, x86asm.JLE, x86asm.JG,
}

// tlsValues are %fs offsets of struct tv_tls as newEmitter receives them:
// zero and small positive ones, and the negative ones of a static TLS
// block (below the thread pointer), both as 64-bit two's complement and
// as their low 32 bits.
var tlsValues = []uint64{0, 0x100, 0xffffff18, 0xffffffffffffff18, 0xffff8000, 0xffffffff80000000}

// fsDisp is the displacement from the %fs base that a tls/offset pair
// stands for: tls is a 32-bit two's complement offset.
func fsDisp(tls uint64, off uint32) int64 { return int64(int32(uint32(tls))) + int64(off) }

func fsMem(tls uint64, off uint32) x86asm.Mem {
	return x86asm.Mem{Segment: x86asm.FS, Disp: fsDisp(tls, off)}
}

// fsText is the AT&T spelling of the same operand: with no base GNU as
// encodes it as x86-64 requires, with a SIB byte (04 25).
func fsText(tls uint64, off uint32) string { return fmt.Sprintf("%%fs:%d", fsDisp(tls, off)) }

func ripMem(dist int64) x86asm.Mem { return x86asm.Mem{Base: x86asm.RIP, Disp: dist} }

func args(a ...x86asm.Arg) []x86asm.Arg { return a }

// wantInst is one instruction as the decoder must see it.
type wantInst struct {
	op        x86asm.Op
	args      []x86asm.Arg
	n         int    // length
	size      int    // operand size (x86asm DataSize), checked when nonzero
	target    uint64 // branch target or %rip operand address, when hasTarget
	hasTarget bool
}

// emitCase is one emitter call placed so that its first instruction sits
// at base+at (padding and labels around it as the case needs).
type emitCase struct {
	name   string
	tls    uint64
	base   uint64
	at     int
	end    int // expected length of the code
	emit   func(e *emitter)
	insts  []wantInst
	check  func(t *testing.T, code []byte) // more checks, on the whole code
	gnu    string                          // AT&T text of insts for GNU as
	disasm []string                        // or objdump's text of them, when as picks another form
	syms   map[string]uint64
}

type caseSet struct{ cases []emitCase }

// next returns the address of the next case's first instruction.
func (s *caseSet) next() uint64 { return encBase + uint64(len(s.cases))*encSlot }

// sym returns the name of the next case's GNU symbol.
func (s *caseSet) sym() string { return fmt.Sprintf("t%d", len(s.cases)) }

// add adds a case that starts at the beginning of its code.
func (s *caseSet) add(c emitCase) {
	c.base = s.next()
	if c.end == 0 {
		for _, w := range c.insts {
			c.end += w.n
		}
	}
	s.cases = append(s.cases, c)
}

// labelled adds a case of one n-byte instruction aimed at a label bound
// dist bytes past its end (-n: the instruction itself), with int3
// padding before or after the instruction to reach the label.
func (s *caseSet) labelled(name string, dist int64, ins func(*emitter, label), w wantInst, gnu string) {
	a, sym := s.next(), s.sym()
	rel := w.n + int(dist) // the label's offset from the instruction
	if rel > 0 && rel < w.n {
		panic("label inside the instruction")
	}
	pre := max(0, -rel)
	w.target, w.hasTarget = a+uint64(rel), true
	s.cases = append(s.cases, emitCase{
		name: name, base: a - uint64(pre), at: pre, end: max(pre+w.n, pre+rel),
		emit: func(e *emitter) {
			l := e.newLabel()
			if rel <= 0 {
				padTo(e, pre+rel)
				e.bind(l)
				padTo(e, pre)
			}
			ins(e, l)
			if rel > 0 {
				padTo(e, pre+rel)
				e.bind(l)
			}
		},
		insts: []wantInst{w},
		gnu:   fmt.Sprintf(gnu, sym),
		syms:  map[string]uint64{sym: w.target},
	})
}

// absolute adds a case of one n-byte instruction aimed at the address
// dist bytes past its end.
func (s *caseSet) absolute(name string, dist int64, ins func(*emitter, uint64), w wantInst, gnu string) {
	a, sym := s.next(), s.sym()
	w.target, w.hasTarget = a+uint64(int64(w.n)+dist), true
	target := w.target
	s.add(emitCase{
		name: name, emit: func(e *emitter) { ins(e, target) }, insts: []wantInst{w},
		gnu: fmt.Sprintf(gnu, sym), syms: map[string]uint64{sym: target},
	})
}

func padTo(e *emitter, n int) {
	for len(e.buf) < n {
		e.bytes(0xcc)
	}
}

// labelDists are distances from the end of an n-byte instruction to its
// label: both ways across the rel8 limits and farther, and the
// instruction itself (-n).
func labelDists(n int) []int64 {
	m := int64(n)
	return []int64{-m - 0x10000, -m - 129, -m - 128, -m - 1, -m, 0, 1, 127, 128, 0x10000}
}

// absDists are distances to absolute targets, out to the ends of rel32.
func absDists(n int) []int64 {
	return []int64{math.MinInt32, -0x10000, -129, -128, -int64(n), 0, 127, 128, 0x10000, math.MaxInt32}
}

var imm32s = []int32{0, 1, -1, 127, 128, -128, -129, 0x12345678, math.MaxInt32, math.MinInt32}

// cmpImmCase is one operand size and immediate of a cmp $imm, mem form
// with a 4-byte displacement: the instruction's length, its immediate's
// bytes, and the operand size and immediate as x86asm shows them.
type cmpImmCase struct {
	size, n, immBytes, dataSize int
	sfx                         string
	v                           int32
	imm                         int64
}

// cmpImmCases lists every size with every immediate of imm32s.
func cmpImmCases() []cmpImmCase {
	var cs []cmpImmCase
	for _, f := range []struct {
		size, n int // n: with a 32-bit (16-bit) immediate
		sfx     string
	}{{1, 7, "b"}, {2, 9, "w"}, {4, 10, "l"}, {8, 11, "q"}} {
		for _, v := range imm32s {
			c := cmpImmCase{size: f.size, n: f.n, immBytes: min(f.size, 4), dataSize: 8 * f.size, sfx: f.sfx, v: v, imm: int64(v)}
			switch f.size {
			case 1:
				c.imm = int64(uint8(v)) // x86asm shows a byte's immediate unsigned
				c.dataSize = 32         // and its operand size as 32
			case 2:
				c.imm = int64(int16(v))
			}
			if f.size > 1 && c.imm == int64(int8(c.imm)) {
				c.n, c.immBytes = f.n-c.immBytes+1, 1
			}
			cs = append(cs, c)
		}
	}
	return cs
}

// encodingCases lists every emitter method over its operands.
func encodingCases() []emitCase {
	var s caseSet
	named := []uint32{tlsFlags, tlsNext, tlsExit, tlsScratch, tlsScratch + 8, tlsRef}
	for _, tls := range tlsValues {
		for r := x86enc.RAX; r <= x86enc.R15; r++ {
			offs := []uint32{tlsGPR + 8*uint32(r)}
			if r == x86enc.RAX || r == x86enc.RCX || r == x86enc.R11 {
				offs = append(offs, named...)
			}
			for _, off := range offs {
				s.add(emitCase{
					name: fmt.Sprintf("fsStore/%s/tls=%#x/off=%d", r, tls, off), tls: tls,
					emit:  func(e *emitter) { e.fsStore(r, off) },
					insts: []wantInst{{op: x86asm.MOV, n: 9, size: 64, args: args(fsMem(tls, off), gpr64[r])}},
					gnu:   fmt.Sprintf("mov %%%s, %s", r, fsText(tls, off)),
				})
				s.add(emitCase{
					name: fmt.Sprintf("fsLoad/%s/tls=%#x/off=%d", r, tls, off), tls: tls,
					emit:  func(e *emitter) { e.fsLoad(r, off) },
					insts: []wantInst{{op: x86asm.MOV, n: 9, size: 64, args: args(gpr64[r], fsMem(tls, off))}},
					gnu:   fmt.Sprintf("mov %s, %%%s", fsText(tls, off), r),
				})
			}
		}
		for _, off := range []uint32{tlsExit, tlsRef} {
			for _, v := range imm32s {
				s.add(emitCase{
					name: fmt.Sprintf("fsStoreImm/tls=%#x/off=%d/%d", tls, off, v), tls: tls,
					emit:  func(e *emitter) { e.fsStoreImm(off, v) },
					insts: []wantInst{{op: x86asm.MOV, n: 13, size: 64, args: args(fsMem(tls, off), x86asm.Imm(v))}},
					gnu:   fmt.Sprintf("movq $%d, %s", v, fsText(tls, off)),
				})
			}
		}
		for _, off := range []uint32{tlsNext, tlsExit} {
			s.add(emitCase{
				name: fmt.Sprintf("fsJmp/tls=%#x/off=%d", tls, off), tls: tls,
				emit:  func(e *emitter) { e.fsJmp(off) },
				insts: []wantInst{{op: x86asm.JMP, n: 8, args: args(fsMem(tls, off))}},
				gnu:   fmt.Sprintf("jmp *%s", fsText(tls, off)),
			})
		}
	}

	for _, d := range labelDists(5) {
		s.labelled(fmt.Sprintf("jmpLabel/%d", d), d, func(e *emitter, l label) { e.jmpLabel(l) },
			wantInst{op: x86asm.JMP, n: 5, args: args(x86asm.Rel(d))}, "jmp %s")
	}
	for _, d := range labelDists(6) {
		s.labelled(fmt.Sprintf("callRIP/%d", d), d, func(e *emitter, l label) { e.callRIP(l) },
			wantInst{op: x86asm.CALL, n: 6, args: args(ripMem(d))}, "call *%s(%%rip)")
		s.labelled(fmt.Sprintf("pushRIP/%d", d), d, func(e *emitter, l label) { e.pushRIP(l) },
			wantInst{op: x86asm.PUSH, n: 6, args: args(ripMem(d))}, "pushq %s(%%rip)")
	}
	for c := x86enc.O; c <= x86enc.G; c++ {
		for _, d := range labelDists(6) {
			var start, at int
			s.labelled(fmt.Sprintf("jcc/%s/%d", c, d), d,
				func(e *emitter, l label) { start = len(e.buf); at = e.jcc(c, l) },
				wantInst{op: jccOps[c], n: 6, args: args(x86asm.Rel(d))}, "j"+c.String()+" %s")
			s.cases[len(s.cases)-1].check = func(t *testing.T, code []byte) {
				require.Equal(t, start+2, at, "jcc returns the offset of its rel32 field")
			}
		}
	}
	for _, d := range labelDists(7) {
		s.labelled(fmt.Sprintf("loadR11RIP/%d", d), d, func(e *emitter, l label) { e.loadR11RIP(l) },
			wantInst{op: x86asm.MOV, n: 7, size: 64, args: args(x86asm.R11, ripMem(d))}, "mov %s(%%rip), %%r11")
	}
	for r := x86enc.RAX; r <= x86enc.R15; r++ {
		for _, d := range labelDists(7) {
			s.labelled(fmt.Sprintf("cmpRegRIP/%s/%d", r, d), d, func(e *emitter, l label) { e.cmpRegRIP(r, l) },
				wantInst{op: x86asm.CMP, n: 7, size: 64, args: args(gpr64[r], ripMem(d))}, "cmp %s(%%rip), %%"+r.String())
		}
	}

	for _, d := range absDists(5) {
		s.absolute(fmt.Sprintf("jmpAbs/%d", d), d, func(e *emitter, a uint64) { e.jmpAbs(a) },
			wantInst{op: x86asm.JMP, n: 5, args: args(x86asm.Rel(d))}, "jmp %s")
	}
	for _, d := range absDists(7) {
		s.absolute(fmt.Sprintf("incRIPAbs/%d", d), d, func(e *emitter, a uint64) { e.incRIPAbs(a) },
			wantInst{op: x86asm.INC, n: 7, size: 64, args: args(ripMem(d))}, "incq %s(%%rip)")
	}
	for _, c := range cmpImmCases() {
		for _, d := range absDists(c.n) {
			if d == math.MaxInt32 {
				// GNU ld checks a %rip displacement's reach before
				// the immediate after it: the field's own limit.
				d -= int64(c.immBytes)
			}
			s.absolute(fmt.Sprintf("cmpAbsImm/%d/%d/%d", c.size, c.v, d), d, func(e *emitter, a uint64) { e.cmpAbsImm(a, c.size, c.v) },
				wantInst{op: x86asm.CMP, n: c.n, size: c.dataSize, args: args(ripMem(d), x86asm.Imm(c.imm))},
				fmt.Sprintf("cmp%s $%d, %%s(%%%%rip)", c.sfx, c.imm))
		}
	}
	for _, c := range []struct {
		size int
		want wantInst
		gnu  string
	}{
		{1, wantInst{op: x86asm.MOVZX, n: 3, size: 32, args: args(x86asm.EAX, x86asm.Mem{Base: x86asm.RAX})}, "movzbl (%rax), %eax"},
		{2, wantInst{op: x86asm.MOVZX, n: 3, size: 32, args: args(x86asm.EAX, x86asm.Mem{Base: x86asm.RAX})}, "movzwl (%rax), %eax"},
		{4, wantInst{op: x86asm.MOV, n: 2, size: 32, args: args(x86asm.EAX, x86asm.Mem{Base: x86asm.RAX})}, "mov (%rax), %eax"},
		{8, wantInst{op: x86asm.MOV, n: 3, size: 64, args: args(x86asm.RAX, x86asm.Mem{Base: x86asm.RAX})}, "mov (%rax), %rax"},
	} {
		s.add(emitCase{
			name:  fmt.Sprintf("loadRAXAt/%d", c.size),
			emit:  func(e *emitter) { e.loadRAXAt(c.size) },
			insts: []wantInst{c.want},
			gnu:   c.gnu,
		})
	}
	for _, c := range cmpImmCases() {
		for _, d := range []int32{0, 8, -8, 0x1234, math.MaxInt32, math.MinInt32} {
			s.add(emitCase{
				name:  fmt.Sprintf("cmpRAXDispImm/%d/%d/%d", c.size, c.v, d),
				emit:  func(e *emitter) { e.cmpRAXDispImm(d, c.size, c.v) },
				insts: []wantInst{{op: x86asm.CMP, n: c.n, size: c.dataSize, args: args(x86asm.Mem{Base: x86asm.RAX, Disp: int64(d)}, x86asm.Imm(c.imm))}},
				gnu:   fmt.Sprintf("{disp32} cmp%s $%d, %d(%%rax)", c.sfx, c.imm, d),
			})
		}
	}
	for _, d := range absDists(6) {
		s.absolute(fmt.Sprintf("incbRIPAbs/%d", d), d, func(e *emitter, a uint64) { e.incbRIPAbs(a) },
			wantInst{op: x86asm.INC, n: 6, args: args(ripMem(d))}, "incb %s(%%rip)")
	}
	for _, v := range []uint8{0, 1, 0x7f, 0x80, 0xff} {
		for _, d := range absDists(7) {
			if d == math.MaxInt32 {
				d-- // GNU ld checks the field's own reach (see cmpAbsImm)
			}
			s.absolute(fmt.Sprintf("movbRIPAbs/%d/%d", v, d), d, func(e *emitter, a uint64) { e.movbRIPAbs(a, v) },
				wantInst{op: x86asm.MOV, n: 7, args: args(ripMem(d), x86asm.Imm(v))}, fmt.Sprintf("movb $%d, %%s(%%%%rip)", v))
		}
	}
	for _, d := range absDists(7) {
		s.absolute(fmt.Sprintf("movRCXFromAbs/%d", d), d, func(e *emitter, a uint64) { e.movRCXFromAbs(a) },
			wantInst{op: x86asm.MOV, n: 7, size: 64, args: args(x86asm.RCX, ripMem(d))}, "mov %s(%%rip), %%rcx")
		s.absolute(fmt.Sprintf("movRCXToAbs/%d", d), d, func(e *emitter, a uint64) { e.movRCXToAbs(a) },
			wantInst{op: x86asm.MOV, n: 7, size: 64, args: args(ripMem(d), x86asm.RCX)}, "mov %%rcx, %s(%%rip)")
	}
	{
		a := s.next()
		s.add(emitCase{
			name:  "jmpNext",
			emit:  func(e *emitter) { e.jmpNext() },
			insts: []wantInst{{op: x86asm.JMP, n: 5, args: args(x86asm.Rel(0)), target: a + 5, hasTarget: true}},
			gnu:   "jmp.d32 .+5",
		})
	}
	for _, v := range []uint32{0, 1, 0x7fffffff, 0xffffffff} {
		s.add(emitCase{
			name:  fmt.Sprintf("movlImmAtRCX/%#x", v),
			emit:  func(e *emitter) { e.movlImmAtRCX(v) },
			insts: []wantInst{{op: x86asm.MOV, n: 6, size: 32, args: args(x86asm.Mem{Base: x86asm.RCX}, x86asm.Imm(int64(int32(v))))}},
			gnu:   fmt.Sprintf("movl $%#x, (%%rcx)", v),
		})
	}

	for _, v := range imm32s {
		sym := s.sym()
		s.add(emitCase{
			name:  fmt.Sprintf("pushImm32/%d", v),
			emit:  func(e *emitter) { e.pushImm32(v) },
			insts: []wantInst{{op: x86asm.PUSH, n: 5, args: args(x86asm.Imm(v))}},
			// A symbol makes as keep the imm32 form for small values.
			gnu:  "pushq $" + sym,
			syms: map[string]uint64{sym: uint64(int64(v))},
		})
	}
	for r := x86enc.RAX; r <= x86enc.R15; r++ {
		for _, v := range imm32s {
			sym := s.sym()
			c := emitCase{
				name:  fmt.Sprintf("cmpRegImm32/%s/%d", r, v),
				emit:  func(e *emitter) { e.cmpRegImm32(r, v) },
				insts: []wantInst{{op: x86asm.CMP, n: 7, size: 64, args: args(gpr64[r], x86asm.Imm(v))}},
				gnu:   fmt.Sprintf("cmp $%s, %%%s", sym, r),
				syms:  map[string]uint64{sym: uint64(int64(v))},
			}
			if r == x86enc.RAX {
				// as always picks the accumulator form (48 3d) here.
				c.gnu, c.syms = "", nil
				c.disasm = []string{fmt.Sprintf("cmp $%#x,%%rax", uint64(int64(v)))}
			}
			s.add(c)
		}
	}
	for _, d := range append(imm32s, 8, -8) {
		n, pfx := 8, "{disp32}"
		if d == int32(int8(d)) {
			n, pfx = 5, "{disp8}"
		}
		s.add(emitCase{
			name:  fmt.Sprintf("leaRSP/%d", d),
			emit:  func(e *emitter) { e.leaRSP(d) },
			insts: []wantInst{{op: x86asm.LEA, n: n, size: 64, args: args(x86asm.RSP, x86asm.Mem{Base: x86asm.RSP, Disp: int64(d)})}},
			gnu:   fmt.Sprintf("%s lea %d(%%rsp), %%rsp", pfx, d),
		})
	}
	for r := x86enc.RAX; r <= x86enc.R15; r++ {
		n := 1
		if r >= 8 {
			n = 2
		}
		s.add(emitCase{
			name:  fmt.Sprintf("pushReg/%s", r),
			emit:  func(e *emitter) { e.pushReg(r) },
			insts: []wantInst{{op: x86asm.PUSH, n: n, args: args(gpr64[r])}},
			gnu:   fmt.Sprintf("push %%%s", r),
		})
		s.add(emitCase{
			name:  fmt.Sprintf("popReg/%s", r),
			emit:  func(e *emitter) { e.popReg(r) },
			insts: []wantInst{{op: x86asm.POP, n: n, args: args(gpr64[r])}},
			gnu:   fmt.Sprintf("pop %%%s", r),
		})
		s.add(emitCase{
			name:  fmt.Sprintf("zext32/%s", r),
			emit:  func(e *emitter) { e.zext32(r) },
			insts: []wantInst{{op: x86asm.MOV, n: n + 1, size: 32, args: args(gpr32[r], gpr32[r])}},
			gnu:   fmt.Sprintf("mov %%%s, %%%[1]s", strings.Replace(strings.ToLower(gpr32[r].String()), "l", "d", 1)),
		})
		s.add(emitCase{
			name:  fmt.Sprintf("neg64/%s", r),
			emit:  func(e *emitter) { e.neg64(r) },
			insts: []wantInst{{op: x86asm.NEG, n: 3, size: 64, args: args(gpr64[r])}},
			gnu:   fmt.Sprintf("neg %%%s", r),
		})
		s.add(emitCase{
			name:  fmt.Sprintf("shr32/%s", r),
			emit:  func(e *emitter) { e.shr32(r, 7) },
			insts: []wantInst{{op: x86asm.SHR, n: n + 2, size: 32, args: args(gpr32[r], x86asm.Imm(7))}},
			gnu:   fmt.Sprintf("shr $7, %%%s", strings.Replace(strings.ToLower(gpr32[r].String()), "l", "d", 1)),
		})
		// A register set again from the value it holds: lea d(%r), %r.
		if r != x86enc.RSP && r != x86enc.R12 {
			for _, d := range []int64{8, -8, 0x1000, -0x12345678} {
				n := 4
				if d != int64(int8(d)) {
					n = 7
				}
				s.add(emitCase{
					name: fmt.Sprintf("setConst/lea/%s/%d", r, d),
					emit: func(e *emitter) {
						e.phys[r], e.physKnown = 0x7f0000001000, 1<<r
						e.setConst(r, uint64(0x7f0000001000+d))
					},
					insts: []wantInst{{op: x86asm.LEA, n: n, size: 64, args: args(gpr64[r], x86asm.Mem{Base: gpr64[r], Disp: d})}},
					gnu:   fmt.Sprintf("lea %d(%%%s), %%%[2]s", d, r),
				})
			}
		}
		for _, base := range []x86enc.Reg{x86enc.RAX, x86enc.RBP, x86enc.RSP, x86enc.R13, x86enc.R12, x86enc.R15} {
			index := x86enc.Reg(15 - r)
			if index == x86enc.RSP {
				continue
			}
			for _, d := range []int32{-0x3fffffc, 0} {
				for _, scale := range []int{1, 2, 4, 8} {
					s.add(emitCase{
						name:  fmt.Sprintf("leaScaled/%s/%s/%s/%d/%d", r, base, index, scale, d),
						emit:  func(e *emitter) { e.leaScaled(r, base, index, scale, d) },
						insts: []wantInst{{op: x86asm.LEA, n: 8, size: 64, args: args(gpr64[r], x86asm.Mem{Base: gpr64[base], Index: gpr64[index], Scale: uint8(scale), Disp: int64(d)})}},
						gnu:   fmt.Sprintf("{disp32} lea %d(%%%s,%%%s,%d), %%%s", d, base, index, scale, r),
					})
				}
			}
		}
	}
	for _, d := range imm32s {
		s.add(emitCase{
			name:  fmt.Sprintf("leaRCXDisp/%d", d),
			emit:  func(e *emitter) { e.leaRCXDisp(d) },
			insts: []wantInst{{op: x86asm.LEA, n: 7, size: 64, args: args(x86asm.RCX, x86asm.Mem{Base: x86asm.RCX, Disp: int64(d)})}},
			gnu:   fmt.Sprintf("{disp32} lea %d(%%rcx), %%rcx", d),
		})
	}
	for _, n := range []int{-128, -127, -2, -1, 0, 1, 14, 126, 127} {
		a := s.next()
		s.add(emitCase{
			name: fmt.Sprintf("jrcxz8/%d", n),
			emit: func(e *emitter) { e.jrcxz8(n) },
			insts: []wantInst{{op: x86asm.JRCXZ, n: 2, args: args(x86asm.Rel(n)),
				target: a + 2 + uint64(int64(n)), hasTarget: true}},
			gnu: fmt.Sprintf("jrcxz .%+d", 2+n),
		})
	}
	s.add(emitCase{
		name:  "andRSP16",
		emit:  func(e *emitter) { e.andRSP16() },
		insts: []wantInst{{op: x86asm.AND, n: 4, size: 64, args: args(x86asm.RSP, x86asm.Imm(-16))}},
		gnu:   "and $-16, %rsp",
	})
	s.add(emitCase{
		name:  "movEAX0",
		emit:  func(e *emitter) { e.movEAX0() },
		insts: []wantInst{{op: x86asm.MOV, n: 5, size: 32, args: args(x86asm.EAX, x86asm.Imm(0))}},
		gnu:   "mov $0, %eax",
	})
	s.add(emitCase{
		name: "saveFlags",
		emit: func(e *emitter) { e.saveFlags() },
		insts: []wantInst{
			{op: x86asm.LAHF, n: 1},
			{op: x86asm.SETO, n: 3, args: args(x86asm.AL)},
		},
		gnu: "lahf; seto %al",
	})
	s.add(emitCase{
		name: "restoreFlags",
		emit: func(e *emitter) { e.restoreFlags() },
		insts: []wantInst{
			{op: x86asm.ADD, n: 2, args: args(x86asm.AL, x86asm.Imm(0x7f))},
			{op: x86asm.SAHF, n: 1},
		},
		gnu: "add $0x7f, %al; sahf",
	})
	s.add(emitCase{
		name:  "leaRCXplusRAX",
		emit:  func(e *emitter) { e.leaRCXplusRAX() },
		insts: []wantInst{{op: x86asm.LEA, n: 4, size: 64, args: args(x86asm.RCX, x86asm.Mem{Base: x86asm.RCX, Index: x86asm.RAX, Scale: 1})}},
		gnu:   "lea (%rcx,%rax), %rcx",
	})
	s.add(emitCase{
		name:  "leaRCXplusR11",
		emit:  func(e *emitter) { e.leaRCXplusR11() },
		insts: []wantInst{{op: x86asm.LEA, n: 4, size: 64, args: args(x86asm.RCX, x86asm.Mem{Base: x86asm.RCX, Index: x86asm.R11, Scale: 1})}},
		gnu:   "lea (%rcx,%r11), %rcx",
	})

	for _, tls := range []uint64{0xffffff18, 0x100} {
		for _, ev := range []int32{1, 16, math.MaxInt32} {
			for _, d := range absDists(5) {
				a, sym := s.next(), s.sym()
				sw := a + 18 + uint64(d)
				s.add(emitCase{
					name: fmt.Sprintf("emitEvent/tls=%#x/%d/%d", tls, ev, d), tls: tls,
					emit: func(e *emitter) { emitEvent(e, ev, sw) },
					insts: []wantInst{
						{op: x86asm.MOV, n: 13, size: 64, args: args(fsMem(tls, tlsExit), x86asm.Imm(ev))},
						{op: x86asm.JMP, n: 5, args: args(x86asm.Rel(d)), target: sw, hasTarget: true},
					},
					gnu:  fmt.Sprintf("movq $%d, %s; jmp %s", ev, fsText(tls, tlsExit), sym),
					syms: map[string]uint64{sym: sw},
				})
			}
		}
	}
	for _, tls := range []uint64{0xffffff18, 0x100} {
		for _, below := range []uint64{0, 0x100000, 1<<31 - 33} {
			for _, d := range []int64{-0x1000, 0x1000} {
				for _, resume := range []uint64{0x401000, 0x7fabcdef0123} {
					a, sym := s.next(), s.sym()
					sw := a + 31 + uint64(d)
					// The literal follows the 31 bytes of code, 8-aligned.
					lit := a + 32
					lo := lit - below
					ref := int64(lit - lo)
					s.add(emitCase{
						name: fmt.Sprintf("emitRecEvent/tls=%#x/lo=-%#x/%d/%#x", tls, below, d, resume), tls: tls,
						emit: func(e *emitter) {
							var lits []pendingLit
							emitRecEvent(e, 2, sw, lo, resume, &lits)
							flushLits(e, lits)
						},
						insts: []wantInst{
							{op: x86asm.MOV, n: 13, size: 64, args: args(fsMem(tls, tlsExit), x86asm.Imm(2))},
							{op: x86asm.MOV, n: 13, size: 64, args: args(fsMem(tls, tlsRef), x86asm.Imm(ref))},
							{op: x86asm.JMP, n: 5, args: args(x86asm.Rel(d)), target: sw, hasTarget: true},
						},
						end: 40,
						check: func(t *testing.T, code []byte) {
							assert.Equal(t, byte(0xcc), code[31], "padding before the literal")
							require.Equal(t, resume, binary.LittleEndian.Uint64(code[32:]), "literal")
						},
						gnu: fmt.Sprintf("movq $2, %s; movq $%d, %s; jmp %s",
							fsText(tls, tlsExit), ref, fsText(tls, tlsRef), sym),
						syms: map[string]uint64{sym: sw},
					})
				}
			}
		}
	}
	return s.cases
}

// TestEmitEncodings checks every emitter method over its operands: the
// bytes decode to exactly the intended instruction, with rel32 and %rip
// operands aimed at the label or address asked for, and equal what GNU as
// assembles from the AT&T text at the same address.
func TestEmitEncodings(t *testing.T) {
	cases := encodingCases()
	texts := make([]string, len(cases))
	syms := map[string]uint64{}
	for k, c := range cases {
		require.Equal(t, encBase+uint64(k)*encSlot, c.base+uint64(c.at), c.name)
		texts[k] = c.gnu
		for name, v := range c.syms {
			syms[name] = v
		}
	}
	slots := gnuref.Assemble(t, encBase, encSlot, texts, syms)
	for k, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ours := checkCase(t, c)
			switch {
			case c.gnu != "":
				gnuref.RequireSlot(t, slots[k], ours, c.gnu)
			default:
				require.NotEmpty(t, c.disasm, "no GNU oracle")
				require.Equal(t, c.disasm, gnuref.Disasm(t, c.base+uint64(c.at), ours))
			}
		})
	}
}

// checkCase emits c, decodes its instructions against c.insts and
// returns their bytes.
func checkCase(t *testing.T, c emitCase) []byte {
	t.Helper()
	e := newEmitter(c.base, c.tls)
	c.emit(e)
	code, err := e.finish()
	require.NoError(t, err)
	require.Len(t, code, c.end, "code % x", code[:min(len(code), 64)])
	off, addr := c.at, c.base+uint64(c.at)
	for i, w := range c.insts {
		inst, err := x86dec.Decode(code[off:], addr)
		msg := fmt.Sprintf("instruction %d [% x]", i, code[off:min(len(code), off+w.n)])
		require.NoError(t, err, msg)
		requireInst(t, w, inst, msg)
		off += w.n
		addr += uint64(w.n)
	}
	if c.check != nil {
		c.check(t, code)
	}
	return code[c.at:off]
}

func requireInst(t *testing.T, w wantInst, inst x86dec.Inst, msg string) {
	t.Helper()
	msg = fmt.Sprintf("%s: %s", msg, &inst)
	require.Equal(t, w.op, inst.Op, msg)
	require.Equal(t, w.n, inst.Len, msg)
	var got []x86asm.Arg
	wantFS := false
	for _, a := range inst.Args {
		if a == nil {
			break
		}
		got = append(got, a)
	}
	require.Len(t, got, len(w.args), msg)
	for k, want := range w.args {
		requireArg(t, want, got[k], fmt.Sprintf("%s: operand %d", msg, k))
		if m, ok := want.(x86asm.Mem); ok && m.Segment == x86asm.FS {
			wantFS = true
		}
	}
	hasFS := false
	for _, p := range inst.Prefix {
		if p == 0 {
			break
		}
		if p&0xff == x86asm.PrefixFS {
			hasFS = true
		}
	}
	require.Equal(t, wantFS, hasFS, "%s: %%fs prefix", msg)
	if w.size != 0 {
		require.Equal(t, w.size, inst.DataSize, "%s: operand size", msg)
	}
	if w.hasTarget {
		tgt, ok := inst.Target()
		if !ok {
			tgt, ok = inst.MemRIPTarget()
		}
		require.True(t, ok, "%s: no target", msg)
		require.Equal(t, fmt.Sprintf("%#x", w.target), fmt.Sprintf("%#x", tgt), "%s: target", msg)
	}
}

func requireArg(t *testing.T, want, got x86asm.Arg, msg string) {
	t.Helper()
	wm, ok := want.(x86asm.Mem)
	if !ok {
		require.Equal(t, want, got, msg)
		return
	}
	// Compared field by field: x86asm's Scale without an index is noise.
	gm, ok := got.(x86asm.Mem)
	require.True(t, ok, "%s: %v is not a memory operand", msg, got)
	require.Equal(t, wm.Segment, gm.Segment, "%s: segment", msg)
	require.Equal(t, wm.Base, gm.Base, "%s: base", msg)
	require.Equal(t, wm.Index, gm.Index, "%s: index", msg)
	if wm.Index != 0 {
		require.Equal(t, wm.Scale, gm.Scale, "%s: scale", msg)
	}
	require.Equal(t, wm.Disp, gm.Disp, "%s: displacement", msg)
}

// TestEmitFinishUnbound: a reference to a label never bound is an error,
// and binding it is enough to make the same code finish.
func TestEmitFinishUnbound(t *testing.T) {
	tests := []struct {
		name string
		emit func(e *emitter) []label // returns the labels it leaves unbound
		msg  string
	}{
		{"jmpLabel", func(e *emitter) []label { l := e.newLabel(); e.jmpLabel(l); return []label{l} }, "not bound"},
		{"jcc", func(e *emitter) []label { l := e.newLabel(); e.jcc(x86enc.NE, l); return []label{l} }, "not bound"},
		{"callRIP", func(e *emitter) []label { l := e.newLabel(); e.callRIP(l); return []label{l} }, "not bound"},
		{"pushRIP", func(e *emitter) []label { l := e.newLabel(); e.pushRIP(l); return []label{l} }, "not bound"},
		{"loadR11RIP", func(e *emitter) []label { l := e.newLabel(); e.loadR11RIP(l); return []label{l} }, "not bound"},
		{"cmpRegRIP", func(e *emitter) []label { l := e.newLabel(); e.cmpRegRIP(x86enc.R12, l); return []label{l} }, "not bound"},
		{"second of two", func(e *emitter) []label {
			a, b := e.newLabel(), e.newLabel()
			e.jmpLabel(a)
			e.jmpLabel(b)
			e.bind(a)
			return []label{b}
		}, "not bound"},
		{"bound before, used after, other unbound", func(e *emitter) []label {
			a, b := e.newLabel(), e.newLabel()
			e.bind(a)
			e.jmpLabel(a)
			e.callRIP(b)
			return []label{b}
		}, "not bound"},
		// The imm32 of a recorder event names a literal's offset: a
		// literal never flushed has no offset to name.
		{"recorder event literal never flushed", func(e *emitter) []label {
			var lits []pendingLit
			emitRecEvent(e, 2, e.base+0x1000, e.base-0x1000, 0x401000, &lits)
			return []label{lits[0].l}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEmitter(encBase, 0xffffff18)
			tt.emit(e)
			code, err := e.finish()
			require.Error(t, err, "finished with an unbound label: % x", code)
			assert.Nil(t, code)
			if tt.msg != "" {
				assert.ErrorContains(t, err, tt.msg)
			}

			e = newEmitter(encBase, 0xffffff18)
			for _, l := range tt.emit(e) {
				e.bind(l)
				e.u64(0)
			}
			_, err = e.finish()
			require.NoError(t, err, "with the labels bound")
		})
	}
}

// TestEmitFinishReach: rel32 fields reach exactly ±2 GiB from the end of
// their instruction, and a recorder event's literal offset must be a
// positive int32.
func TestEmitFinishReach(t *testing.T) {
	const base = encBase
	const gib4 = 1 << 32
	tests := []struct {
		name string
		emit func(e *emitter)
		at   int    // offset of the instruction with the target, when ok
		want uint64 // its target
		msg  string // "" when finish must succeed
	}{
		{"jmp +4GiB", func(e *emitter) { e.jmpAbs(base + 5 + gib4) }, 0, 0, "out of rel32 reach"},
		{"jmp -4GiB", func(e *emitter) { e.jmpAbs(base + 5 - gib4) }, 0, 0, "out of rel32 reach"},
		{"jmp max", func(e *emitter) { e.jmpAbs(base + 5 + math.MaxInt32) }, 0, base + 5 + math.MaxInt32, ""},
		{"jmp max+1", func(e *emitter) { e.jmpAbs(base + 5 + math.MaxInt32 + 1) }, 0, 0, "out of rel32 reach"},
		{"jmp min", func(e *emitter) { e.jmpAbs(base + 5 - 1<<31) }, 0, base + 5 - 1<<31, ""},
		{"jmp min-1", func(e *emitter) { e.jmpAbs(base + 5 - 1<<31 - 1) }, 0, 0, "out of rel32 reach"},
		{"jmp after code", func(e *emitter) { e.movEAX0(); e.jmpAbs(base + 10 + math.MaxInt32) }, 5, base + 10 + math.MaxInt32, ""},
		{"jmp after code max+1", func(e *emitter) { e.movEAX0(); e.jmpAbs(base + 10 + 1<<31) }, 0, 0, "out of rel32 reach"},
		{"incq +4GiB", func(e *emitter) { e.incRIPAbs(base + 7 + gib4) }, 0, 0, "out of rel32 reach"},
		{"incq -4GiB", func(e *emitter) { e.incRIPAbs(base + 7 - gib4) }, 0, 0, "out of rel32 reach"},
		{"incq max", func(e *emitter) { e.incRIPAbs(base + 7 + math.MaxInt32) }, 0, base + 7 + math.MaxInt32, ""},
		{"incq min-1", func(e *emitter) { e.incRIPAbs(base + 7 - 1<<31 - 1) }, 0, 0, "out of rel32 reach"},
		{"event +4GiB", func(e *emitter) { emitEvent(e, 1, base+18+gib4) }, 0, 0, "out of rel32 reach"},
		{"event min", func(e *emitter) { emitEvent(e, 1, base+18-1<<31) }, 13, base + 18 - 1<<31, ""},
		{"recorder event 4GiB", func(e *emitter) { recEvent(e, base+31+gib4, base) }, 0, 0, "out of rel32 reach"},
		// The literal lands at base+32.
		{"ref below cache start", func(e *emitter) { recEvent(e, base, base+33) }, 0, 0, "too far"},
		{"ref at cache start", func(e *emitter) { recEvent(e, base, base+32) }, 26, base, ""},
		{"ref 2GiB", func(e *emitter) { recEvent(e, base, base+32-1<<31) }, 0, 0, "too far"},
		{"ref 2GiB-1", func(e *emitter) { recEvent(e, base, base+32-(1<<31-1)) }, 26, base, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEmitter(base, 0xffffff18)
			tt.emit(e)
			code, err := e.finish()
			if tt.msg != "" {
				require.ErrorContains(t, err, tt.msg, "code % x", code)
				return
			}
			require.NoError(t, err)
			inst, err := x86dec.Decode(code[tt.at:], base+uint64(tt.at))
			require.NoError(t, err)
			tgt, ok := inst.Target()
			if !ok {
				tgt, ok = inst.MemRIPTarget()
			}
			require.True(t, ok, "%s", &inst)
			require.Equal(t, fmt.Sprintf("%#x", tt.want), fmt.Sprintf("%#x", tgt), "%s", &inst)
		})
	}
}

// recEvent emits a recorder event with its literal flushed.
func recEvent(e *emitter, switchOut, cacheLo uint64) {
	var lits []pendingLit
	emitRecEvent(e, 2, switchOut, cacheLo, 0x401000, &lits)
	flushLits(e, lits)
}

// TestEmitLiteralAlign: literal pads with int3 to the next 8-byte
// boundary (of an 8-aligned base, as the code cache hands out), and a
// %rip operand aimed at it reads its value.
func TestEmitLiteralAlign(t *testing.T) {
	for _, base := range []uint64{encBase, encBase + 8, encBase + 0x40} {
		for start := range 16 {
			t.Run(fmt.Sprintf("%#x/%d", base, start), func(t *testing.T) {
				const v1, v2 = 0x1122334455667788, 0xfedcba9876543210
				e := newEmitter(base, 0)
				for range start {
					e.bytes(0x90)
				}
				fwd := e.newLabel()
				e.loadR11RIP(fwd)
				at := len(e.buf)
				l1 := e.literal(v1)
				l2 := e.literal(v2)
				e.bind(fwd)
				e.u64(v2)
				back := len(e.buf)
				e.loadR11RIP(l1)
				code, err := e.finish()
				require.NoError(t, err)

				off1, off2 := e.labels[l1], e.labels[l2]
				require.Zero(t, (base+uint64(off1))%8, "literal at %#x", base+uint64(off1))
				require.Less(t, off1-at, 8, "more padding than alignment needs")
				require.Equal(t, off1+8, off2, "consecutive literals")
				for k := at; k < off1; k++ {
					require.Equal(t, byte(0xcc), code[k], "padding at %d", k)
				}
				require.Equal(t, uint64(v1), binary.LittleEndian.Uint64(code[off1:]))
				require.Equal(t, uint64(v2), binary.LittleEndian.Uint64(code[off2:]))

				for _, ref := range []struct {
					at   int
					want uint64
				}{{start, v2}, {back, v1}} {
					inst, err := x86dec.Decode(code[ref.at:], base+uint64(ref.at))
					require.NoError(t, err)
					a, ok := inst.MemRIPTarget()
					require.True(t, ok, "%s", &inst)
					require.Equal(t, ref.want, binary.LittleEndian.Uint64(code[a-base:]), "%s", &inst)
				}
			})
		}
	}
}

// TestEmitAlignRel32: after alignRel32(prefix) the rel32 field of a jcc
// (prefix 2) or jmp (prefix 1) starts on a 4-byte boundary, so it can be
// patched with one aligned store, for every starting alignment; the
// padding is the fewest bytes that do it, as one nop, the one GNU as
// emits for .nops of that size.
func TestEmitAlignRel32(t *testing.T) {
	gnuNops := gnuref.Assemble(t, encBase, encSlot, []string{".nops 1", ".nops 2", ".nops 3"}, nil)
	kinds := []struct {
		name   string
		prefix int
		n      int
		op     x86asm.Op
		emit   func(e *emitter, l label) int // returns the rel32 field's offset
	}{
		{"jcc", 2, 6, x86asm.JE, func(e *emitter, l label) int { return e.jcc(x86enc.E, l) }},
		{"jmp", 1, 5, x86asm.JMP, func(e *emitter, l label) int { at := len(e.buf) + 1; e.jmpLabel(l); return at }},
	}
	for _, k := range kinds {
		for _, s := range []int{0, 1, 2, 3, 16, 55, 56, 57, 58, 59, 60, 61, 62, 63} {
			for _, layout := range []string{"base", "code"} {
				t.Run(fmt.Sprintf("%s/%s+%d", k.name, layout, s), func(t *testing.T) {
					var e *emitter
					if layout == "base" {
						e = newEmitter(encBase+uint64(s), 0)
					} else {
						e = newEmitter(encBase, 0)
						for range s {
							e.bytes(0xcc)
						}
					}
					start := len(e.buf)
					l := e.newLabel()
					e.alignRel32(k.prefix)
					pad := len(e.buf) - start
					br := len(e.buf)
					at := k.emit(e, l)
					e.bind(l)
					code, err := e.finish()
					require.NoError(t, err)

					require.Equal(t, br+k.prefix, at)
					// The field stays within one 64-byte line (atomic
					// to patch), with padding only where it would not.
					field := (e.base + uint64(at)) % 64
					require.LessOrEqual(t, field, uint64(60), "rel32 field at %#x", e.base+uint64(at))
					want := 0
					if f0 := (e.base + uint64(start+k.prefix)) % 64; f0 > 60 {
						want = int(64 - f0)
					}
					require.Equal(t, want, pad, "padding")
					if pad > 0 {
						inst, err := x86dec.Decode(code[start:], e.base+uint64(start))
						require.NoError(t, err)
						require.Equal(t, x86asm.NOP, inst.Op, "padding % x", code[start:br])
						require.Equal(t, pad, inst.Len, "padding % x is one instruction", code[start:br])
						gnuref.RequireSlot(t, gnuNops[pad-1], code[start:br], fmt.Sprintf(".nops %d", pad))
					}
					inst, err := x86dec.Decode(code[br:], e.base+uint64(br))
					require.NoError(t, err)
					requireInst(t, wantInst{op: k.op, n: k.n, args: args(x86asm.Rel(0)),
						target: e.base + uint64(br+k.n), hasTarget: true}, inst, k.name)
				})
			}
		}
	}
}

// switchOutWant is the switch-out stub instruction by instruction; lit is
// the address of the handler's literal.
func switchOutWant(tls, lit uint64) []wantInst {
	var w []wantInst
	// The interpreter's registers first, %rax before lahf clobbers it.
	for r := range 16 {
		w = append(w, wantInst{op: x86asm.MOV, n: 9, size: 64, args: args(fsMem(tls, tlsGPR+8*uint32(r)), gpr64[r])})
	}
	w = append(w,
		wantInst{op: x86asm.LAHF, n: 1},
		wantInst{op: x86asm.SETO, n: 3, args: args(x86asm.AL)},
		wantInst{op: x86asm.MOV, n: 9, size: 64, args: args(fsMem(tls, tlsFlags), x86asm.RAX)},
		// Below the red zone, 16-byte aligned for the C call.
		wantInst{op: x86asm.LEA, n: 5, size: 64, args: args(x86asm.RSP, x86asm.Mem{Base: x86asm.RSP, Disp: -128})},
		wantInst{op: x86asm.AND, n: 4, size: 64, args: args(x86asm.RSP, x86asm.Imm(-16))},
		wantInst{op: x86asm.CALL, n: 6, target: lit, hasTarget: true},
		// The flags come back before the registers (they need %rax);
		// after sahf only movs and the jmp, which leave them alone.
		wantInst{op: x86asm.MOV, n: 9, size: 64, args: args(x86asm.RAX, fsMem(tls, tlsFlags))},
		wantInst{op: x86asm.ADD, n: 2, args: args(x86asm.AL, x86asm.Imm(0x7f))},
		wantInst{op: x86asm.SAHF, n: 1},
	)
	for r := range 16 {
		w = append(w, wantInst{op: x86asm.MOV, n: 9, size: 64, args: args(gpr64[r], fsMem(tls, tlsGPR+8*uint32(r)))})
	}
	return append(w, wantInst{op: x86asm.JMP, n: 8, args: args(fsMem(tls, tlsNext))})
}

// switchOutText is the same stub in AT&T syntax.
func switchOutText(tls, handler uint64) string {
	var b strings.Builder
	for r := x86enc.RAX; r <= x86enc.R15; r++ {
		fmt.Fprintf(&b, "mov %%%s, %s; ", r, fsText(tls, tlsGPR+8*uint32(r)))
	}
	fmt.Fprintf(&b, "lahf; seto %%al; mov %%rax, %s; ", fsText(tls, tlsFlags))
	fmt.Fprintf(&b, "lea -128(%%rsp), %%rsp; and $-16, %%rsp; call *1f(%%rip); ")
	fmt.Fprintf(&b, "mov %s, %%rax; add $0x7f, %%al; sahf; ", fsText(tls, tlsFlags))
	for r := x86enc.RAX; r <= x86enc.R15; r++ {
		fmt.Fprintf(&b, "mov %s, %%%s; ", fsText(tls, tlsGPR+8*uint32(r)), r)
	}
	fmt.Fprintf(&b, "jmp *%s; .balign 8, 0xcc; 1: .quad %#x", fsText(tls, tlsNext), handler)
	return b.String()
}

// TestEmitSwitchOut decodes the whole switch-out stub: every general
// register saved to its tv_tls slot, the flags saved with lahf/seto, the
// handler called through a %rip literal below the red zone, the flags
// restored with add $0x7f,%al; sahf before the registers are, every
// register reloaded, and a jmp through tls.next; GNU as must assemble the
// same text to the same bytes.
func TestEmitSwitchOut(t *testing.T) {
	const swBase, swSlot = 0x7f1300000000, 512
	tests := []struct {
		name         string
		tls, handler uint64
	}{
		{"negative tls", 0xffffffffffffff18, 0x7f00deadbe40},
		{"tls low 32 bits", 0xffffff18, 0x401000},
		{"tls zero", 0, 0xffffffffff600000},
		{"tls -2GiB", 0xffffffff80000000, 0x7fffffffffff},
		{"tls positive", 0x1000, 0x1},
	}
	texts := make([]string, len(tests))
	for k, tt := range tests {
		texts[k] = switchOutText(tt.tls, tt.handler)
	}
	slots := gnuref.Assemble(t, swBase, swSlot, texts, nil)
	for k, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := uint64(swBase + k*swSlot)
			e := newEmitter(base, tt.tls)
			emitSwitchOut(e, tt.handler)
			code, err := e.finish()
			require.NoError(t, err)

			want := switchOutWant(tt.tls, 0)
			end := 0
			for _, w := range want {
				end += w.n
			}
			litOff := (end + 7) &^ 7
			off := 0
			for i, w := range want {
				if w.op == x86asm.CALL {
					w.args = args(ripMem(int64(litOff - (off + w.n))))
					w.target = base + uint64(litOff)
				}
				inst, err := x86dec.Decode(code[off:], base+uint64(off))
				msg := fmt.Sprintf("instruction %d at +%d [% x]", i, off, code[off:min(len(code), off+w.n)])
				require.NoError(t, err, msg)
				requireInst(t, w, inst, msg)
				off += w.n
			}
			require.Len(t, code, litOff+8, "code then the literal")
			for i := end; i < litOff; i++ {
				require.Equal(t, byte(0xcc), code[i], "padding at %d", i)
			}
			require.Equal(t, tt.handler, binary.LittleEndian.Uint64(code[litOff:]), "handler literal")
			gnuref.RequireSlot(t, slots[k], code, texts[k])
		})
	}
}

// TestEmitOffsets: the tv_tls offsets the generated code uses are the
// TV_OFF_* of tv.h, which name the fields of struct tv_tls as the C
// compiler lays it out.
func TestEmitOffsets(t *testing.T) {
	ours := map[string]int64{
		"GPR": tlsGPR, "FLAGS": tlsFlags, "NEXT": tlsNext,
		"EXIT": tlsExit, "SCRATCH": tlsScratch, "REF": tlsRef,
	}
	src, err := os.ReadFile("tv.h")
	require.NoError(t, err)
	defs := map[string]int64{}
	for _, m := range regexp.MustCompile(`(?m)^#define\s+TV_OFF_(\w+)\s+(\S+)\s*$`).FindAllStringSubmatch(string(src), -1) {
		v, err := strconv.ParseInt(m[2], 0, 64)
		require.NoError(t, err, "TV_OFF_%s %s", m[1], m[2])
		require.NotContains(t, defs, m[1], "TV_OFF_%s defined twice", m[1])
		defs[m[1]] = v
	}
	require.Equal(t, ours, defs, "emit.go's offsets against tv.h's TV_OFF_*")

	t.Run("layout", func(t *testing.T) {
		dir := t.TempDir()
		inc, err := filepath.Abs(".")
		require.NoError(t, err)
		c := filepath.Join(dir, "off.c")
		exe := filepath.Join(dir, "off")
		require.NoError(t, os.WriteFile(c, []byte(`#include <stddef.h>
#include <stdio.h>
#include "tv.h"
#define F(f) offsetof(struct tv_tls, f)
#define S(f) sizeof(((struct tv_tls *)0)->f)
int main(void)
{
	printf("%zu %zu %zu %zu %zu %zu %zu %zu\n", F(gpr), F(flags), F(next), F(exit),
	       F(scratch), F(ref), S(gpr), S(scratch));
	return 0;
}
`), 0o644))
		gnuref.Run(t, "gcc", "-I", inc, "-o", exe, c)
		out, err := exec.Command(exe).Output()
		require.NoError(t, err)
		var got [8]int64
		fields := strings.Fields(string(out))
		require.Len(t, fields, len(got), "%s", out)
		for k, f := range fields {
			got[k], err = strconv.ParseInt(f, 10, 64)
			require.NoError(t, err)
		}
		assert.Equal(t, [6]int64{tlsGPR, tlsFlags, tlsNext, tlsExit, tlsScratch, tlsRef}, [6]int64(got[:6]),
			"offsets of gpr, flags, next, exit, scratch, ref")
		assert.Equal(t, int64(16*8), got[6], "gpr holds the 16 registers the stub saves")
		assert.GreaterOrEqual(t, got[7], int64(2*8), "scratch holds the two registers a guard spills")
	})
}

// fzPiece is one instruction (op != 0) or literal (op == 0) the fuzz
// model expects at off.
type fzPiece struct {
	off, n   int
	op       x86asm.Op
	label    int    // label a rel32 or %rip operand aims at, or -1
	abs      uint64 // else its absolute target, when hasAbs
	hasAbs   bool
	refLabel int // a recorder event's literal, or -1: the imm32 is its offset from refLo
	refLo    uint64
	val      uint64 // a literal's value
}

// fzModel tracks, beside the emitter and independently of its bytes,
// where each instruction must start and what it must be.
type fzModel struct {
	t       *testing.T
	e       *emitter
	base    uint64
	pos     int
	pieces  []fzPiece
	labels  []int // offset of each label, -1 while unbound
	lits    []pendingLit
	wantErr bool
}

func (m *fzModel) inst(n int, op x86asm.Op) *fzPiece {
	m.pieces = append(m.pieces, fzPiece{off: m.pos, n: n, op: op, label: -1, refLabel: -1})
	m.pos += n
	return &m.pieces[len(m.pieces)-1]
}

func (m *fzModel) toLabel(n int, op x86asm.Op, l label) { m.inst(n, op).label = int(l) }

// toAbs adds an instruction with a rel32 field aimed at a; finish must
// fail if a is out of its reach.
func (m *fzModel) toAbs(n int, op x86asm.Op, a uint64) {
	p := m.inst(n, op)
	p.abs, p.hasAbs = a, true
	if d := int64(a - (m.base + uint64(m.pos))); d != int64(int32(d)) {
		m.wantErr = true
	}
}

func (m *fzModel) newLabel() label {
	l := m.e.newLabel()
	require.Equal(m.t, len(m.labels), int(l), "label numbers")
	m.labels = append(m.labels, -1)
	return l
}

// internalLabel accounts for a label a composite emitter call makes.
func (m *fzModel) internalLabel() int {
	m.labels = append(m.labels, -1)
	return len(m.labels) - 1
}

func (m *fzModel) bind(l int) {
	m.labels[l] = m.pos
}

// pad8 is the int3 padding before literals.
func (m *fzModel) pad8() {
	for m.pos%8 != 0 {
		m.inst(1, x86asm.INT) // int3
	}
}

func (m *fzModel) data(v uint64) { m.inst(8, 0).val = v }

// pick returns an existing label or, now and then, a new one.
func (m *fzModel) pick(r *fzReader) label {
	if len(m.labels) == 0 || r.u8()%4 == 0 {
		return m.newLabel()
	}
	return label(int(r.u32()) % len(m.labels))
}

// far returns a target for an instruction ending n bytes from here,
// within rel32 reach or up to four times beyond it.
func (m *fzModel) far(r *fzReader, n int) uint64 {
	d := int64(int32(r.u32())) << (r.u8() % 3)
	return m.base + uint64(m.pos+n) + uint64(d)
}

type fzReader struct{ b []byte }

func (r *fzReader) u8() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *fzReader) u32() uint32 {
	return uint32(r.u8()) | uint32(r.u8())<<8 | uint32(r.u8())<<16 | uint32(r.u8())<<24
}

func (r *fzReader) u64() uint64 { return uint64(r.u32()) | uint64(r.u32())<<32 }

func (r *fzReader) reg() x86enc.Reg { return x86enc.Reg(r.u8() % 16) }

// fzOps are the emitter calls the fuzzer strings together, each with the
// instructions it must produce.
var fzOps = []struct {
	name string
	run  func(m *fzModel, r *fzReader)
}{
	{"fsStore", func(m *fzModel, r *fzReader) { m.e.fsStore(r.reg(), r.u32()); m.inst(9, x86asm.MOV) }},
	{"fsLoad", func(m *fzModel, r *fzReader) { m.e.fsLoad(r.reg(), r.u32()); m.inst(9, x86asm.MOV) }},
	{"fsStoreImm", func(m *fzModel, r *fzReader) { m.e.fsStoreImm(r.u32(), int32(r.u32())); m.inst(13, x86asm.MOV) }},
	{"fsJmp", func(m *fzModel, r *fzReader) { m.e.fsJmp(r.u32()); m.inst(8, x86asm.JMP) }},
	{"jmpLabel", func(m *fzModel, r *fzReader) { l := m.pick(r); m.e.jmpLabel(l); m.toLabel(5, x86asm.JMP, l) }},
	{"jmpAbs", func(m *fzModel, r *fzReader) { a := m.far(r, 5); m.e.jmpAbs(a); m.toAbs(5, x86asm.JMP, a) }},
	{"callRIP", func(m *fzModel, r *fzReader) { l := m.pick(r); m.e.callRIP(l); m.toLabel(6, x86asm.CALL, l) }},
	{"pushRIP", func(m *fzModel, r *fzReader) { l := m.pick(r); m.e.pushRIP(l); m.toLabel(6, x86asm.PUSH, l) }},
	{"jcc", func(m *fzModel, r *fzReader) {
		c, l := x86enc.Cond(r.u8()%16), m.pick(r)
		at := m.e.jcc(c, l)
		require.Equal(m.t, m.pos+2, at, "jcc's rel32 offset")
		m.toLabel(6, jccOps[c], l)
	}},
	{"alignRel32", func(m *fzModel, r *fzReader) {
		prefix := int(r.u8() % 4)
		m.e.alignRel32(prefix)
		if f := (m.base + uint64(m.pos+prefix)) % 64; f > 60 {
			m.inst(int(64-f), x86asm.NOP)
		}
	}},
	{"pushImm32", func(m *fzModel, r *fzReader) { m.e.pushImm32(int32(r.u32())); m.inst(5, x86asm.PUSH) }},
	{"leaRSP", func(m *fzModel, r *fzReader) {
		d := int32(r.u32()) >> (r.u8() % 32)
		m.e.leaRSP(d)
		if d == int32(int8(d)) {
			m.inst(5, x86asm.LEA)
		} else {
			m.inst(8, x86asm.LEA)
		}
	}},
	{"andRSP16", func(m *fzModel, r *fzReader) { m.e.andRSP16(); m.inst(4, x86asm.AND) }},
	{"movEAX0", func(m *fzModel, r *fzReader) { m.e.movEAX0(); m.inst(5, x86asm.MOV) }},
	{"saveFlags", func(m *fzModel, r *fzReader) { m.e.saveFlags(); m.inst(1, x86asm.LAHF); m.inst(3, x86asm.SETO) }},
	{"restoreFlags", func(m *fzModel, r *fzReader) { m.e.restoreFlags(); m.inst(2, x86asm.ADD); m.inst(1, x86asm.SAHF) }},
	{"leaRCXDisp", func(m *fzModel, r *fzReader) { m.e.leaRCXDisp(int32(r.u32())); m.inst(7, x86asm.LEA) }},
	{"loadR11RIP", func(m *fzModel, r *fzReader) { l := m.pick(r); m.e.loadR11RIP(l); m.toLabel(7, x86asm.MOV, l) }},
	{"leaRCXplusR11", func(m *fzModel, r *fzReader) { m.e.leaRCXplusR11(); m.inst(4, x86asm.LEA) }},
	{"cmpRegRIP", func(m *fzModel, r *fzReader) {
		reg, l := r.reg(), m.pick(r)
		m.e.cmpRegRIP(reg, l)
		m.toLabel(7, x86asm.CMP, l)
	}},
	{"cmpRegImm32", func(m *fzModel, r *fzReader) { m.e.cmpRegImm32(r.reg(), int32(r.u32())); m.inst(7, x86asm.CMP) }},
	{"jrcxz8", func(m *fzModel, r *fzReader) {
		n := int(int8(r.u8()))
		m.e.jrcxz8(n)
		p := m.inst(2, x86asm.JRCXZ)
		p.abs, p.hasAbs = m.base+uint64(m.pos+n), true
	}},
	{"incRIPAbs", func(m *fzModel, r *fzReader) { a := m.far(r, 7); m.e.incRIPAbs(a); m.toAbs(7, x86asm.INC, a) }},
	{"incbRIPAbs", func(m *fzModel, r *fzReader) { a := m.far(r, 6); m.e.incbRIPAbs(a); m.toAbs(6, x86asm.INC, a) }},
	{"movbRIPAbs", func(m *fzModel, r *fzReader) {
		v := r.u8()
		a := m.far(r, 7)
		m.e.movbRIPAbs(a, v)
		m.toAbs(7, x86asm.MOV, a)
	}},
	{"cmpAbsImm", func(m *fzModel, r *fzReader) {
		size := []int{1, 2, 4, 8}[r.u8()%4]
		v := int32(r.u32())
		n := map[int]int{1: 7, 2: 9, 4: 10, 8: 11}[size]
		switch {
		case size == 1:
		case size == 2 && int16(v) == int16(int8(v)), size > 2 && v == int32(int8(v)):
			n = map[int]int{2: 8, 4: 7, 8: 8}[size]
		}
		a := m.far(r, n)
		m.e.cmpAbsImm(a, size, v)
		m.toAbs(n, x86asm.CMP, a)
	}},
	{"literal", func(m *fzModel, r *fzReader) {
		v := r.u64()
		l := m.e.literal(v)
		require.Equal(m.t, len(m.labels), int(l), "label numbers")
		m.labels = append(m.labels, -1)
		m.pad8()
		m.bind(int(l))
		m.data(v)
	}},
	{"newLabel", func(m *fzModel, r *fzReader) { m.newLabel() }},
	{"bind", func(m *fzModel, r *fzReader) {
		var free []int
		for l, off := range m.labels {
			if off < 0 {
				free = append(free, l)
			}
		}
		l := int(m.newLabel())
		if len(free) > 0 {
			l = free[int(r.u8())%len(free)]
		}
		m.e.bind(label(l))
		m.bind(l)
	}},
	{"emitSwitchOut", func(m *fzModel, r *fzReader) {
		h := r.u64()
		lit := m.internalLabel()
		emitSwitchOut(m.e, h)
		for range 16 {
			m.inst(9, x86asm.MOV)
		}
		m.inst(1, x86asm.LAHF)
		m.inst(3, x86asm.SETO)
		m.inst(9, x86asm.MOV)
		m.inst(5, x86asm.LEA)
		m.inst(4, x86asm.AND)
		m.toLabel(6, x86asm.CALL, label(lit))
		m.inst(9, x86asm.MOV)
		m.inst(2, x86asm.ADD)
		m.inst(1, x86asm.SAHF)
		for range 16 {
			m.inst(9, x86asm.MOV)
		}
		m.inst(8, x86asm.JMP)
		m.pad8()
		m.bind(lit)
		m.data(h)
	}},
	{"emitEvent", func(m *fzModel, r *fzReader) {
		ev, sw := int32(r.u32()), m.far(r, 18)
		emitEvent(m.e, ev, sw)
		m.inst(13, x86asm.MOV)
		m.toAbs(5, x86asm.JMP, sw)
	}},
	{"emitRecEvent", func(m *fzModel, r *fzReader) {
		ev, sw := int32(r.u32()), m.far(r, 31)
		lo, resume := m.base-uint64(r.u32()), r.u64()
		lit := m.internalLabel()
		emitRecEvent(m.e, ev, sw, lo, resume, &m.lits)
		require.Equal(m.t, pendingLit{label(lit), resume}, m.lits[len(m.lits)-1], "pending literal")
		m.inst(13, x86asm.MOV)
		p := m.inst(13, x86asm.MOV)
		p.refLabel, p.refLo = lit, lo
		m.toAbs(5, x86asm.JMP, sw)
	}},
}

// FuzzEmitter strings random emitter calls with random operands together:
// finish must fail exactly when a label is left unbound or a target is out
// of reach, and otherwise produce code that decodes linearly with every
// instruction where the calls put it, rel32 and %rip operands aimed where
// asked, and literals holding their values.
func FuzzEmitter(f *testing.F) {
	every := []byte{}
	for op := range fzOps {
		every = append(every, byte(op), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	}
	for op := range fzOps {
		f.Add(uint64(encBase), uint32(0xffffff18), true, []byte{byte(op), 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0})
	}
	f.Add(uint64(encBase), uint32(0xffffff18), true, every)
	f.Add(uint64(encBase), uint32(0xffffff18), false, every)
	f.Add(uint64(encBase+3), uint32(0), true, []byte{24, 4, 0, 0, 25, 0, 9, 2, 8, 4, 0, 1})
	f.Add(uint64(0xfffffffffffff000), uint32(0x80000000), false, []byte{5, 0xff, 0xff, 0xff, 0x7f, 1, 26, 0})
	f.Add(uint64(0x1000), uint32(0x100), true, []byte{28, 1, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0})
	f.Fuzz(func(t *testing.T, base uint64, tls uint32, bindRest bool, prog []byte) {
		m := &fzModel{t: t, e: newEmitter(base, uint64(tls)), base: base}
		r := &fzReader{b: prog}
		for k := 0; len(r.b) > 0 && k < 256; k++ {
			op := fzOps[int(r.u8())%len(fzOps)]
			op.run(m, r)
			require.Len(t, m.e.labels, len(m.labels), "labels after %s", op.name)
		}
		if bindRest {
			// So that most inputs get past finish.
			for l, off := range m.labels {
				if off < 0 {
					m.e.bind(label(l))
					m.bind(l)
				}
			}
		}
		// As block and trace generation do, whether or not there are any.
		flushLits(m.e, m.lits)
		m.pad8()
		for _, p := range m.lits {
			m.bind(int(p.l))
			m.data(p.v)
		}
		for _, p := range m.pieces {
			switch {
			case p.label >= 0 && m.labels[p.label] < 0:
				m.wantErr = true
			case p.refLabel >= 0 && m.base+uint64(m.labels[p.refLabel])-p.refLo >= 1<<31:
				m.wantErr = true
			}
		}

		code, err := m.e.finish()
		if m.wantErr {
			require.Error(t, err, "finish should fail")
			return
		}
		require.NoError(t, err)
		require.Len(t, code, m.pos)
		for i, p := range m.pieces {
			at := m.base + uint64(p.off)
			msg := fmt.Sprintf("piece %d at +%d [% x]", i, p.off, code[p.off:min(len(code), p.off+p.n)])
			if p.op == 0 {
				require.Equal(t, p.val, binary.LittleEndian.Uint64(code[p.off:]), "%s: literal", msg)
				continue
			}
			inst, err := x86dec.Decode(code[p.off:], at)
			require.NoError(t, err, msg)
			msg += ": " + inst.String()
			require.Equal(t, p.op, inst.Op, msg)
			require.Equal(t, p.n, inst.Len, msg)
			want, check := p.abs, p.hasAbs
			if p.label >= 0 {
				want, check = m.base+uint64(m.labels[p.label]), true
			}
			if check {
				tgt, ok := inst.Target()
				if !ok {
					tgt, ok = inst.MemRIPTarget()
				}
				require.True(t, ok, "%s: no target", msg)
				require.Equal(t, want, tgt, "%s: target", msg)
			}
			if p.refLabel >= 0 {
				ref := m.base + uint64(m.labels[p.refLabel]) - p.refLo
				require.Equal(t, x86asm.Imm(ref), inst.Args[1], "%s: literal offset", msg)
			}
		}
	})
}

// TestLoadJumpTarget checks, against the decoder, that the load made from
// an indirect jump reads the jump's own operand into %rcx (a %rip-relative
// one moved to the load's address), and that the forms it cannot take are
// refused.
func TestLoadJumpTarget(t *testing.T) {
	const from, at = 0x401000, 0x7f0000
	tests := []struct {
		name string
		code []byte
		ok   bool
	}{
		{"jmp *%rax", []byte{0xff, 0xe0}, true},
		{"jmp *%r11", []byte{0x41, 0xff, 0xe3}, true},
		{"jmp *(%rdx,%rax,8)", []byte{0xff, 0x24, 0xc2}, true},
		{"jmp *0x10(%r12,%r13,8)", []byte{0x43, 0xff, 0x64, 0xec, 0x10}, true},
		{"jmp *0x12345678(,%rcx,8)", []byte{0xff, 0x24, 0xcd, 0x78, 0x56, 0x34, 0x12}, true},
		{"jmp *(%rsp)", []byte{0xff, 0x24, 0x24}, true},
		{"notrack jmp *%rax", []byte{0x3e, 0xff, 0xe0}, true},
		{"bnd jmp *(%rax)", []byte{0xf2, 0xff, 0x20}, true},
		{"jmp *0x100(%rip)", []byte{0xff, 0x25, 0x00, 0x01, 0x00, 0x00}, true},
		{"jmp *%fs:(%rax)", []byte{0x64, 0xff, 0x20}, false},
		{"jmp *%ax", []byte{0x66, 0xff, 0xe0}, false},
		{"call *%rax", []byte{0xff, 0xd0}, false},
		{"truncated", []byte{0xff}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := loadJumpTarget(tt.code, from, at)
			require.Equal(t, tt.ok, ok)
			if !ok {
				return
			}
			jmp, err := x86asm.Decode(tt.code, 64)
			require.NoError(t, err)
			require.Equal(t, x86asm.JMP, jmp.Op)
			mov, err := x86asm.Decode(got, 64)
			require.NoError(t, err)
			require.Equal(t, len(got), mov.Len, "one instruction")
			require.Equal(t, x86asm.MOV, mov.Op)
			require.Equal(t, x86asm.RCX, mov.Args[0])
			want, have := jmp.Args[0], mov.Args[1]
			if m, isMem := want.(x86asm.Mem); isMem && m.Base == x86asm.RIP {
				// The same absolute address from the new place.
				hm := have.(x86asm.Mem)
				require.Equal(t, x86asm.RIP, hm.Base)
				require.Equal(t, int64(from)+int64(len(tt.code))+int64(int32(m.Disp)), int64(at)+int64(len(got))+int64(int32(hm.Disp)))
				return
			}
			if m, isMem := have.(x86asm.Mem); isMem {
				m.Segment = 0
				have = m
			}
			require.Equal(t, want, have)
		})
	}
}

// setConst sets a register by lea only from a value it still holds: a
// write declared (physWrote) or a label (where a jump may land) forgets it.
func TestSetConstForgets(t *testing.T) {
	const v = 0x7f0000001000
	for _, c := range []struct {
		name    string
		between func(e *emitter)
		lea     bool
	}{
		{"held", func(e *emitter) {}, true},
		{"other register written", func(e *emitter) { e.physWrote(1 << x86enc.RAX) }, true},
		{"written", func(e *emitter) { e.physWrote(1 << x86enc.R13) }, false},
		{"label", func(e *emitter) { e.bind(e.newLabel()) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEmitter(0x1000, 0)
			e.setConst(x86enc.R13, v)
			require.Len(t, e.buf, 10, "movabs first")
			c.between(e)
			mark := len(e.buf)
			e.setConst(x86enc.R13, v+8)
			inst, err := x86dec.Decode(e.buf[mark:], 0x2000)
			require.NoError(t, err)
			if c.lea {
				assert.Equal(t, x86asm.LEA, inst.Op)
			} else {
				assert.Equal(t, x86asm.MOV, inst.Op)
			}
		})
	}
}
