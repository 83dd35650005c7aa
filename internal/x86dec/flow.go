package x86dec

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// Flow is how control leaves an instruction.
type Flow uint8

const (
	FlowNone         Flow = iota // falls through to the next instruction
	FlowJump                     // direct unconditional jmp
	FlowCondJump                 // jcc, loop*, jrcxz/jecxz, xbegin
	FlowIndirectJump             // jmp *reg / jmp *mem (incl. notrack/bnd prefixes), ljmp
	FlowCall                     // direct call
	FlowIndirectCall             // call *reg / call *mem, lcall
	FlowReturn                   // ret, ret imm16, lret, iret*, sysret, sysexit
	FlowHalt                     // never falls through: hlt, ud0, ud1, ud2
	numFlow
)

var flowNames = [numFlow]string{
	FlowNone:         "none",
	FlowJump:         "jump",
	FlowCondJump:     "cond-jump",
	FlowIndirectJump: "indirect-jump",
	FlowCall:         "call",
	FlowIndirectCall: "indirect-call",
	FlowReturn:       "return",
	FlowHalt:         "halt",
}

func (f Flow) String() string {
	if f < numFlow {
		return flowNames[f]
	}
	return fmt.Sprintf("Flow(%d)", uint8(f))
}

// Flow classifies the instruction's control transfer.
//
// Choices made where the hardware leaves room:
//   - int3, int1, int n, into, syscall and sysenter are FlowNone: the
//     kernel or a debugger resumes at the next instruction. Code that uses
//     int3 as padding after a terminator is unreachable anyway.
//   - xbegin is FlowCondJump: it falls through, or on abort continues at
//     its Rel target, which Target returns.
//   - hlt is FlowHalt: in user mode it faults and never falls through.
//   - Every Special form is FlowNone.
func (i *Inst) Flow() Flow {
	if i.Special != SpecialNone {
		return FlowNone
	}
	switch i.Op {
	case x86asm.JMP:
		if _, ok := i.Args[0].(x86asm.Rel); ok {
			return FlowJump
		}
		return FlowIndirectJump
	case x86asm.LJMP:
		return FlowIndirectJump
	case x86asm.CALL:
		if _, ok := i.Args[0].(x86asm.Rel); ok {
			return FlowCall
		}
		return FlowIndirectCall
	case x86asm.LCALL:
		return FlowIndirectCall
	case x86asm.RET, x86asm.LRET, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.SYSRET, x86asm.SYSEXIT:
		return FlowReturn
	case x86asm.HLT, x86asm.UD0, x86asm.UD1, x86asm.UD2:
		return FlowHalt
	case x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE, x86asm.JCXZ, x86asm.JECXZ, x86asm.JRCXZ, x86asm.XBEGIN:
		return FlowCondJump
	}
	if isJcc(i.Op) {
		return FlowCondJump
	}
	return FlowNone
}

func isJcc(op x86asm.Op) bool {
	switch op {
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE,
		x86asm.JL, x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO,
		x86asm.JP, x86asm.JS:
		return true
	}
	return false
}
