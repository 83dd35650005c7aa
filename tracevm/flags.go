package tracevm

import (
	"github.com/redmagic-patch/redmagic-patch/cfg/x86dec"
	"golang.org/x/arch/x86/x86asm"
)

// flagEffect is what an instruction does with the arithmetic flags (CF,
// PF, AF, ZF, SF, OF), for the liveness scan that lets a guard use cmp.
type flagEffect uint8

const (
	flagsUnknown  flagEffect = iota // assume it reads them
	flagsNone                       // neither reads nor writes them
	flagsWriteAll                   // writes all six, reads none
)

var flagEffects = map[x86asm.Op]flagEffect{
	x86asm.ADD: flagsWriteAll, x86asm.SUB: flagsWriteAll, x86asm.CMP: flagsWriteAll,
	x86asm.TEST: flagsWriteAll, x86asm.AND: flagsWriteAll, x86asm.OR: flagsWriteAll,
	x86asm.XOR: flagsWriteAll, x86asm.NEG: flagsWriteAll,
	x86asm.UCOMISD: flagsWriteAll, x86asm.UCOMISS: flagsWriteAll,
	x86asm.COMISD: flagsWriteAll, x86asm.COMISS: flagsWriteAll,

	x86asm.MOV: flagsNone, x86asm.MOVZX: flagsNone, x86asm.MOVSX: flagsNone,
	x86asm.MOVSXD: flagsNone, x86asm.LEA: flagsNone, x86asm.PUSH: flagsNone,
	x86asm.POP: flagsNone, x86asm.NOP: flagsNone, x86asm.MOVUPS: flagsNone,
	x86asm.MOVAPS: flagsNone, x86asm.MOVDQU: flagsNone, x86asm.MOVDQA: flagsNone,
	x86asm.MOVQ: flagsNone, x86asm.MOVD: flagsNone, x86asm.MOVSD_XMM: flagsNone,
	x86asm.MOVSS: flagsNone, x86asm.CDQE: flagsNone, x86asm.CQO: flagsNone,
	x86asm.CDQ: flagsNone, x86asm.BSWAP: flagsNone, x86asm.MOVAPD: flagsNone,
	x86asm.MOVUPD: flagsNone, x86asm.PXOR: flagsNone, x86asm.XORPS: flagsNone,
}

// shiftKillsFlags: a shift by a nonzero immediate sets CF, PF, ZF and SF
// and leaves OF and AF undefined: nothing may read the old flags after it.
func shiftKillsFlags(inst *x86dec.Inst) bool {
	switch inst.Op {
	case x86asm.SHL, x86asm.SHR, x86asm.SAR:
		n, ok := inst.Args[1].(x86asm.Imm)
		return ok && n&63 != 0
	}
	return false
}

// flagsDeadAfter reports whether the arithmetic flags are dead after op i
// on the trace's own path: the ops that follow write them all before
// anything could read them. Native calls and annotation points kill them
// (the C ABI does not pass flags); an exit or anything unknown keeps them.
func flagsDeadAfter(ops []op, i int) bool {
	for j := i + 1; j < len(ops) && j < i+64; j++ {
		o := &ops[j]
		switch o.kind {
		case opPush, opPop, opIsTraced:
			continue
		case opCall, opClose, opLink:
			return true
		case opInsn:
			inst, err := x86dec.Decode(o.code, o.addr)
			if err != nil || inst.Special != x86dec.SpecialNone {
				return false
			}
			if shiftKillsFlags(&inst) {
				return true
			}
			switch flagEffects[inst.Op] {
			case flagsWriteAll:
				return true
			case flagsNone:
				continue
			}
			return false
		default:
			return false
		}
	}
	return false
}
