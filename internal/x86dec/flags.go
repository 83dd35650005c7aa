package x86dec

import "golang.org/x/arch/x86/x86asm"

// FlagEffect is what an instruction does with the arithmetic flags (CF,
// PF, AF, ZF, SF, OF), for liveness scans: the trace compiler's (may a
// guard use cmp here?) and the patcher's (may a trampoline use sub?).
type FlagEffect uint8

const (
	FlagsUnknown  FlagEffect = iota // assume it reads them
	FlagsNone                       // neither reads nor writes them
	FlagsWriteAll                   // writes all six, reads none
)

// flagEffects lists the opcodes whose effect is known; any other opcode
// is FlagsUnknown. (inc and dec keep CF: unknown. adc, sbb, cmov*, set*
// and j* read them: unknown.)
var flagEffects = map[x86asm.Op]FlagEffect{
	x86asm.ADD: FlagsWriteAll, x86asm.SUB: FlagsWriteAll, x86asm.CMP: FlagsWriteAll,
	x86asm.TEST: FlagsWriteAll, x86asm.AND: FlagsWriteAll, x86asm.OR: FlagsWriteAll,
	x86asm.XOR: FlagsWriteAll, x86asm.NEG: FlagsWriteAll,
	x86asm.UCOMISD: FlagsWriteAll, x86asm.UCOMISS: FlagsWriteAll,
	x86asm.COMISD: FlagsWriteAll, x86asm.COMISS: FlagsWriteAll,

	x86asm.MOV: FlagsNone, x86asm.MOVZX: FlagsNone, x86asm.MOVSX: FlagsNone,
	x86asm.MOVSXD: FlagsNone, x86asm.LEA: FlagsNone, x86asm.PUSH: FlagsNone,
	x86asm.POP: FlagsNone, x86asm.NOP: FlagsNone, x86asm.MOVUPS: FlagsNone,
	x86asm.MOVAPS: FlagsNone, x86asm.MOVDQU: FlagsNone, x86asm.MOVDQA: FlagsNone,
	x86asm.MOVQ: FlagsNone, x86asm.MOVD: FlagsNone, x86asm.MOVSD_XMM: FlagsNone,
	x86asm.MOVSS: FlagsNone, x86asm.CDQE: FlagsNone, x86asm.CQO: FlagsNone,
	x86asm.CDQ: FlagsNone, x86asm.BSWAP: FlagsNone, x86asm.MOVAPD: FlagsNone,
	x86asm.MOVUPD: FlagsNone, x86asm.PXOR: FlagsNone, x86asm.XORPS: FlagsNone,

	// SSE arithmetic, logic and conversions leave the arithmetic flags
	// alone: a float chain between a compare and its jump, or a guard's
	// compare placed among them, must see past them.
	x86asm.ADDSD: FlagsNone, x86asm.SUBSD: FlagsNone, x86asm.MULSD: FlagsNone,
	x86asm.DIVSD: FlagsNone, x86asm.SQRTSD: FlagsNone, x86asm.MINSD: FlagsNone,
	x86asm.MAXSD: FlagsNone, x86asm.ADDSS: FlagsNone, x86asm.SUBSS: FlagsNone,
	x86asm.MULSS: FlagsNone, x86asm.DIVSS: FlagsNone, x86asm.ANDPD: FlagsNone,
	x86asm.ANDPS: FlagsNone, x86asm.ANDNPD: FlagsNone, x86asm.ORPD: FlagsNone,
	x86asm.ORPS: FlagsNone, x86asm.XORPD: FlagsNone, x86asm.CVTSI2SD: FlagsNone,
	x86asm.CVTTSD2SI: FlagsNone, x86asm.CVTSD2SS: FlagsNone, x86asm.CVTSS2SD: FlagsNone,
	x86asm.UNPCKLPD: FlagsNone, x86asm.PUNPCKLQDQ: FlagsNone, x86asm.MOVHPS: FlagsNone,
	x86asm.MOVLPD: FlagsNone, x86asm.MOVHPD: FlagsNone, x86asm.PADDQ: FlagsNone,
}

// OpFlags returns what opcode op does with the arithmetic flags whatever
// its operands (a shift's depends on its count: see Flags).
func OpFlags(op x86asm.Op) FlagEffect { return flagEffects[op] }

// Flags returns what inst does with the arithmetic flags. A shift by a
// nonzero immediate sets CF, PF, ZF and SF and leaves OF and AF
// undefined: nothing may read the old flags after it.
func Flags(inst *Inst) FlagEffect {
	if inst.Special != SpecialNone {
		return FlagsUnknown
	}
	switch inst.Op {
	case x86asm.SHL, x86asm.SHR, x86asm.SAR:
		if n, ok := inst.Args[1].(x86asm.Imm); ok && n&63 != 0 {
			return FlagsWriteAll
		}
		return FlagsUnknown
	}
	return flagEffects[inst.Op]
}

// FlagsDeadAt reports whether the arithmetic flags are dead on entry to
// the code at addr: along the straight-line path from there (following
// direct jumps, at most limit instructions) something writes all of them
// before anything could read them, or a call or return ends their life
// (the C ABI passes no flags). A conditional branch, an indirect jump, an
// unknown instruction or unreadable code means they may be live.
func FlagsDeadAt(read func(addr uint64, n int) ([]byte, error), addr uint64, limit int) bool {
	for n := 0; n < limit; n++ {
		code, err := read(addr, MaxLen)
		if err != nil || len(code) == 0 {
			return false
		}
		inst, err := Decode(code, addr)
		if err != nil {
			return false
		}
		switch inst.Flow() {
		case FlowJump:
			t, ok := inst.Target()
			if !ok {
				return false
			}
			addr = t
			continue
		case FlowCall, FlowIndirectCall, FlowReturn:
			return true
		case FlowNone:
		default:
			return false
		}
		switch Flags(&inst) {
		case FlagsWriteAll:
			return true
		case FlagsNone:
			addr = inst.End()
		default:
			return false
		}
	}
	return false
}
