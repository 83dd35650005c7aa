package tracevm

import (
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"golang.org/x/arch/x86/x86asm"
)

// Register effects of instructions, for the optimiser's liveness. Forms
// not listed are taken to read and write every general register, the
// flags and memory: the optimiser then leaves everything around them as
// it is.

// destOnly: the first operand is written and not read (when it is a
// 32- or 64-bit register), the others are read.
var destOnly = opSetOf(map[x86asm.Op]bool{
	x86asm.MOV: true, x86asm.MOVZX: true, x86asm.MOVSX: true, x86asm.MOVSXD: true,
	x86asm.LEA: true, x86asm.MOVQ: true, x86asm.MOVD: true, x86asm.CVTTSD2SI: true,
	x86asm.CVTSD2SI: true, x86asm.CVTTSS2SI: true, x86asm.POPCNT: true,
	x86asm.MOVDQU: true, x86asm.MOVUPS: true, x86asm.MOVAPS: true, x86asm.MOVDQA: true,
	x86asm.MOVSD_XMM: true, x86asm.MOVSS: true, x86asm.MOVAPD: true, x86asm.MOVUPD: true,
	x86asm.CVTSI2SD: true, x86asm.CVTSI2SS: true,
})

// readWrite: the first operand is read and written, the others read; no
// implicit registers.
var readWrite = opSetOf(map[x86asm.Op]bool{
	x86asm.ADD: true, x86asm.SUB: true, x86asm.AND: true, x86asm.OR: true, x86asm.XOR: true,
	x86asm.SHL: true, x86asm.SHR: true, x86asm.SAR: true, x86asm.ROL: true, x86asm.ROR: true,
	x86asm.NEG: true, x86asm.NOT: true, x86asm.INC: true, x86asm.DEC: true, x86asm.ADC: true,
	x86asm.SBB: true, x86asm.BSWAP: true,
	x86asm.CMOVA: true, x86asm.CMOVAE: true, x86asm.CMOVB: true, x86asm.CMOVBE: true,
	x86asm.CMOVE: true, x86asm.CMOVNE: true, x86asm.CMOVG: true, x86asm.CMOVGE: true,
	x86asm.CMOVL: true, x86asm.CMOVLE: true, x86asm.CMOVS: true, x86asm.CMOVNS: true,
	x86asm.SETA: true, x86asm.SETAE: true, x86asm.SETB: true, x86asm.SETBE: true,
	x86asm.SETE: true, x86asm.SETNE: true, x86asm.SETG: true, x86asm.SETGE: true,
	x86asm.SETL: true, x86asm.SETLE: true, x86asm.SETS: true, x86asm.SETNS: true,
	x86asm.SETP: true, x86asm.SETNP: true, x86asm.SETO: true, x86asm.SETNO: true,
	x86asm.CMOVP: true, x86asm.CMOVNP: true, x86asm.CMOVO: true, x86asm.CMOVNO: true,
	x86asm.ADDSD: true, x86asm.SUBSD: true, x86asm.MULSD: true, x86asm.DIVSD: true,
	x86asm.ADDSS: true, x86asm.SUBSS: true, x86asm.MULSS: true, x86asm.DIVSS: true,
	x86asm.PXOR: true, x86asm.XORPS: true, x86asm.XORPD: true, x86asm.ANDPD: true,
	x86asm.ANDPS: true, x86asm.ORPS: true, x86asm.PADDQ: true, x86asm.PADDD: true,
})

// readOnlyOps read every operand and write none (flags aside).
var readOnlyOps = opSetOf(map[x86asm.Op]bool{
	x86asm.CMP: true, x86asm.TEST: true, x86asm.BT: true, x86asm.UCOMISD: true,
	x86asm.UCOMISS: true, x86asm.COMISD: true, x86asm.COMISS: true, x86asm.NOP: true,
})

const allRegs = 0xffff

// opSet and opRegs are the tables above as slices indexed by opcode: the
// recorder and the optimiser ask them for every instruction, and a map
// lookup cost more than the rest of the question.
type opSet []bool

func opSetOf(m map[x86asm.Op]bool) opSet {
	n := 0
	for op := range m {
		n = max(n, int(op)+1)
	}
	s := make(opSet, n)
	for op, v := range m {
		s[op] = v
	}
	return s
}

func (s opSet) has(op x86asm.Op) bool { return int(op) < len(s) && s[op] }

// opRegs holds a non-empty register set per listed opcode: an empty one
// means not listed.
type opRegs []uint16

func opRegsOf(m map[x86asm.Op]uint16) opRegs {
	n := 0
	for op := range m {
		n = max(n, int(op)+1)
	}
	t := make(opRegs, n)
	for op, r := range m {
		t[op] = r
	}
	return t
}

func (t opRegs) get(op x86asm.Op) (uint16, bool) {
	if int(op) >= len(t) || t[op] == 0 {
		return 0, false
	}
	return t[op], true
}

func regBits(a x86asm.Arg) uint16 {
	switch a := a.(type) {
	case x86asm.Reg:
		if a >= x86asm.AH && a <= x86asm.BH {
			// Bits 8-15 of %rax-%rbx (gpr does not map them: no
			// value is tracked for them, but their register is
			// read and written).
			return 1 << (a - x86asm.AH)
		}
		if r, _, ok := gpr(a); ok {
			return 1 << r
		}
	case x86asm.Mem:
		var b uint16
		if r, _, ok := gpr(a.Base); ok {
			b |= 1 << r
		}
		if r, _, ok := gpr(a.Index); ok {
			b |= 1 << r
		}
		return b
	}
	return 0
}

// fullWrite: writing this register operand replaces the whole register.
func fullWrite(a x86asm.Arg) bool {
	r, ok := a.(x86asm.Reg)
	if !ok {
		return false
	}
	_, sz, ok := gpr(r)
	return ok && sz >= 4
}

// implicitRegs: registers some listed instructions use besides their
// operands (read and written).
var implicitRegs = opRegsOf(map[x86asm.Op]uint16{
	x86asm.CQO: 1<<0 | 1<<2, x86asm.CDQ: 1<<0 | 1<<2, x86asm.CDQE: 1 << 0,
	x86asm.IDIV: 1<<0 | 1<<2, x86asm.DIV: 1<<0 | 1<<2, x86asm.MUL: 1<<0 | 1<<2,
	x86asm.IMUL: 1<<0 | 1<<2, // the one-operand form (%rdx:%rax = %rax * src)
	x86asm.PUSH: 1 << 4, x86asm.POP: 1 << 4,
})

// implicitVector: SSE instructions that use general registers their
// operands do not name (string compares: %rcx, %rax, %rdx; maskmovdqu:
// %rdi).
var implicitVector = opSetOf(map[x86asm.Op]bool{
	x86asm.PCMPISTRI: true, x86asm.PCMPESTRI: true, x86asm.PCMPISTRM: true, x86asm.PCMPESTRM: true,
	x86asm.MASKMOVDQU: true,
})

// vectorOnly reports whether inst is an SSE instruction that touches
// general registers only through its operands: one it names as its
// destination is written, the others and an address's registers are
// read. Counted as unknown, every one of them (punpcklqdq, sqrtsd,
// movhps: hundreds in a float-heavy CPython trace) made the optimiser
// forget every register, %rsp included, and all memory.
func vectorOnly(inst *x86dec.Inst) bool {
	if inst.Special != x86dec.SpecialNone || implicitVector.has(inst.Op) {
		return false
	}
	vec := false
	for _, a := range inst.Args {
		if a == nil {
			break
		}
		r, ok := a.(x86asm.Reg)
		if !ok {
			continue
		}
		switch {
		case r >= x86asm.X0 && r <= x86asm.X15:
			vec = true
		case regBits(r) != 0:
		default:
			return false // MMX, segment, control or wider vector registers
		}
	}
	return vec
}

// writeMask returns the general registers inst may write, every one when
// writes does not know.
func writeMask(inst *x86dec.Inst) uint16 {
	w, all := writes(inst)
	if all {
		return allRegs
	}
	return w
}

// writes returns the general registers inst may write; all when unknown.
func writes(inst *x86dec.Inst) (uint16, bool) {
	if inst.Special != x86dec.SpecialNone {
		return 0, inst.Special != x86dec.SpecialEndbr64
	}
	op := inst.Op
	switch {
	case destOnly.has(op), readWrite.has(op):
		if _, ok := inst.Args[0].(x86asm.Reg); ok {
			return regBits(inst.Args[0]), false
		}
		return 0, false
	case readOnlyOps.has(op):
		return 0, false
	case op == x86asm.IMUL && inst.Args[1] != nil:
		return regBits(inst.Args[0]), false
	case vectorOnly(inst):
		if r, ok := inst.Args[0].(x86asm.Reg); ok {
			return regBits(r), false
		}
		return 0, false
	}
	if m, ok := implicitRegs.get(op); ok {
		w := m
		if op == x86asm.POP {
			w |= regBits(inst.Args[0])
		}
		return w, false
	}
	return allRegs, true
}

// reads returns the general registers inst may read; all when unknown.
func reads(inst *x86dec.Inst) (uint16, bool) {
	if inst.Special != x86dec.SpecialNone {
		return allRegs, true
	}
	op := inst.Op
	var r uint16
	// A vector instruction's named general destination is written whole
	// or zero-extended (movq, movd, pextr*, movmskp*): not read.
	vector := vectorOnly(inst)
	known := destOnly.has(op) || readWrite.has(op) || readOnlyOps.has(op) || (op == x86asm.IMUL && inst.Args[1] != nil) || vector
	m, implicit := implicitRegs.get(op)
	if op == x86asm.IMUL && inst.Args[1] != nil {
		m = 0
	}
	if !known && !implicit {
		return allRegs, true
	}
	if (op == x86asm.XOR || op == x86asm.SUB) && inst.Args[0] == inst.Args[1] && fullWrite(inst.Args[0]) {
		return m, false // the zeroing idiom reads nothing
	}
	for k, a := range inst.Args {
		if a == nil {
			break
		}
		if k == 0 {
			if _, isMem := a.(x86asm.Mem); isMem {
				r |= regBits(a)
				continue
			}
			if (destOnly.has(op) || vector) && fullWrite(a) {
				continue
			}
			if op == x86asm.POP {
				continue
			}
		}
		r |= regBits(a)
	}
	return r | m, false
}

// registerOnly: instructions that never write memory, whatever their
// operands (a memory operand of one is read).
var registerOnly = opSetOf(map[x86asm.Op]bool{
	x86asm.CQO: true, x86asm.CDQ: true, x86asm.CDQE: true, x86asm.CWDE: true, x86asm.CWD: true,
	x86asm.CBW: true, x86asm.IDIV: true, x86asm.DIV: true, x86asm.MUL: true,
	x86asm.CLC: true, x86asm.STC: true, x86asm.CMC: true, x86asm.LAHF: true,
	x86asm.BSF: true, x86asm.BSR: true, x86asm.TZCNT: true, x86asm.LZCNT: true,
	x86asm.PREFETCHT0: true, x86asm.PREFETCHT1: true, x86asm.PREFETCHT2: true, x86asm.PREFETCHNTA: true,
})

// storesMemory: inst may write memory.
func storesMemory(inst *x86dec.Inst) bool {
	if inst.Special != x86dec.SpecialNone {
		return inst.Special != x86dec.SpecialEndbr64
	}
	if readOnlyOps.has(inst.Op) || registerOnly.has(inst.Op) {
		return false
	}
	if inst.Op == x86asm.IMUL && inst.Args[1] == nil {
		return false // the one-operand form reads its operand
	}
	if destOnly.has(inst.Op) || readWrite.has(inst.Op) || inst.Op == x86asm.IMUL || vectorOnly(inst) {
		_, isMem := inst.Args[0].(x86asm.Mem)
		return isMem
	}
	return true
}

// flagsRead: inst may read the arithmetic flags.
func flagsRead(inst *x86dec.Inst) bool {
	if inst.Special != x86dec.SpecialNone {
		return true
	}
	switch x86dec.OpFlags(inst.Op) {
	case x86dec.FlagsNone, x86dec.FlagsWriteAll:
		return false
	}
	switch inst.Op {
	case x86asm.SHL, x86asm.SHR, x86asm.SAR, x86asm.IMUL, x86asm.MUL, x86asm.IDIV, x86asm.DIV,
		x86asm.BT, x86asm.MOVDQU, x86asm.MOVUPS, x86asm.MOVAPS, x86asm.MOVDQA, x86asm.ADDSD,
		x86asm.SUBSD, x86asm.MULSD, x86asm.DIVSD, x86asm.CVTSI2SD, x86asm.CVTTSD2SI, x86asm.NOT,
		x86asm.POPCNT, x86asm.MOVAPD, x86asm.MOVUPD, x86asm.ADDSS, x86asm.SUBSS, x86asm.MULSS,
		x86asm.DIVSS, x86asm.XORPD, x86asm.ANDPD, x86asm.ANDPS, x86asm.ORPS, x86asm.PADDQ, x86asm.PADDD:
		// Write flags without reading them (shift counts of 0 leave them:
		// treated as a read by flagsKill instead), or leave them alone.
		return false
	}
	return true
}

// flagsKill: inst sets all six arithmetic flags whatever they were.
func flagsKill(inst *x86dec.Inst) bool {
	return inst.Special == x86dec.SpecialNone && x86dec.OpFlags(inst.Op) == x86dec.FlagsWriteAll
}
