// Package insn owns what the trace recorder needs to know about each
// instruction of the interpreter it copies into traces: whether it can be
// copied and run natively (Classify), how to load the target of an
// indirect jmp or call into a register (LoadTarget), and where such a
// branch goes given the register values before it (IndirectTarget,
// EffectiveAddr).
//
// Traces run in user mode at another address with DF=0 and without the
// original's shadow-stack and transaction state, so everything that enters
// the kernel, faults on purpose, transfers control in a way the recorder
// cannot follow, or depends on those states is Unsupported.
package insn

import (
	"fmt"
	"strings"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"golang.org/x/arch/x86/x86asm"
)

// Kind is what the recorder must do with an instruction.
type Kind uint8

const (
	Plain        Kind = iota // copy and run natively (may be %rip-relative: see Info.RIPRelative)
	CondJump                 // jcc rel8/rel32 (not loop*/jrcxz/jecxz/xbegin: Unsupported)
	Jump                     // direct jmp rel8/rel32
	IndirectJump             // jmp *reg / jmp *mem (notrack/bnd prefixes allowed); far jmp is Unsupported
	Call                     // direct call rel32
	IndirectCall             // call *reg / call *mem; far call is Unsupported
	Return                   // plain ret (C3, also with a bnd or rep prefix); ret imm16, lret, iret are Unsupported
	Unsupported
	numKind
)

var kindNames = [numKind]string{"plain", "cond-jump", "jump", "indirect-jump", "call", "indirect-call", "return", "unsupported"}

func (k Kind) String() string {
	if k < numKind {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Reasons an instruction is Unsupported. They are stable: the recorder
// uses them as statistics keys.
const (
	ReasonSyscall     = "syscall"      // syscall
	ReasonSysenter    = "sysenter"     // sysenter
	ReasonInt3        = "int3"         // int3 (CC)
	ReasonInt1        = "int1"         // int1/icebp (F1)
	ReasonInt         = "int"          // int $n (CD n, including int $3), and into
	ReasonHlt         = "hlt"          // hlt
	ReasonUD          = "ud"           // ud0, ud1, ud2, and a lock prefix on a branch (#UD)
	ReasonStd         = "std"          // std: traces assume DF=0
	ReasonFarBranch   = "far-branch"   // ljmp, lcall, lret (with or without imm16)
	ReasonIret        = "iret"         // iret, iretd, iretq
	ReasonRetImm      = "ret-imm"      // ret $imm16
	ReasonLoop        = "loop-jrcxz"   // loop, loope, loopne, jrcxz, jecxz
	ReasonXbegin      = "xbegin"       // xbegin: a transaction abort jumps to the original fallback
	ReasonXabortXend  = "xabort-xend"  // xabort, xend: meaningless (or #GP) outside the transaction
	ReasonEIPRelative = "eip-relative" // a memory operand relative to %eip (addr32 + rip)
	ReasonPrivileged  = "privileged"   // kernel-only (cli, in/out, rdmsr, mov %crN, swapgs, sysret, ...)
	ReasonShadowStack = "shadow-stack" // CET shadow-stack instructions: traces do not keep the shadow stack in step
	ReasonIndirectArg = "indirect-arg" // indirect jmp/call whose target operand LoadTarget cannot load (32-bit address)
	ReasonUndecoded   = "undecoded"    // an Inst with neither an opcode nor a Special form
	ReasonUnknownFlow = "unknown-flow" // a control-flow class this package does not know
)

// Reasons lists every Reason Classify returns.
var Reasons = []string{
	ReasonSyscall, ReasonSysenter, ReasonInt3, ReasonInt1, ReasonInt,
	ReasonHlt, ReasonUD, ReasonStd, ReasonFarBranch, ReasonIret, ReasonRetImm,
	ReasonLoop, ReasonXbegin, ReasonXabortXend, ReasonEIPRelative, ReasonPrivileged,
	ReasonShadowStack, ReasonIndirectArg, ReasonUndecoded, ReasonUnknownFlow,
}

// Info is the classification of one instruction.
type Info struct {
	Kind        Kind
	Reason      string      // for Unsupported: one of the Reason constants
	Cond        x86enc.Cond // for CondJump: the condition under which the branch is taken
	Target      uint64      // for CondJump, Jump and Call: the absolute target
	RIPRelative bool        // Plain with a %rip-relative memory operand (must be relocated when copied)
}

// unsupportedOps are the x86asm opcodes that are Unsupported whatever
// their operands. int (CC vs CD) and ret (imm16) are told apart in Classify.
var unsupportedOps = map[x86asm.Op]string{
	x86asm.SYSCALL:  ReasonSyscall,
	x86asm.SYSENTER: ReasonSysenter,
	x86asm.ICEBP:    ReasonInt1,
	x86asm.INTO:     ReasonInt, // invalid in 64-bit mode: x86dec rejects it
	x86asm.HLT:      ReasonHlt,
	x86asm.UD0:      ReasonUD,
	x86asm.UD1:      ReasonUD,
	x86asm.UD2:      ReasonUD,
	x86asm.STD:      ReasonStd,
	x86asm.LJMP:     ReasonFarBranch,
	x86asm.LCALL:    ReasonFarBranch,
	x86asm.LRET:     ReasonFarBranch,
	x86asm.IRET:     ReasonIret,
	x86asm.IRETD:    ReasonIret,
	x86asm.IRETQ:    ReasonIret,
	x86asm.LOOP:     ReasonLoop,
	x86asm.LOOPE:    ReasonLoop,
	x86asm.LOOPNE:   ReasonLoop,
	x86asm.JCXZ:     ReasonLoop,
	x86asm.JECXZ:    ReasonLoop,
	x86asm.JRCXZ:    ReasonLoop,
	x86asm.XBEGIN:   ReasonXbegin,
	x86asm.XABORT:   ReasonXabortXend,
	x86asm.XEND:     ReasonXabortXend,

	// Kernel-only, or needing I/O privilege the interpreter does not have.
	x86asm.CLI: ReasonPrivileged, x86asm.STI: ReasonPrivileged, x86asm.CLTS: ReasonPrivileged,
	x86asm.IN: ReasonPrivileged, x86asm.OUT: ReasonPrivileged,
	x86asm.INSB: ReasonPrivileged, x86asm.INSW: ReasonPrivileged, x86asm.INSD: ReasonPrivileged,
	x86asm.OUTSB: ReasonPrivileged, x86asm.OUTSW: ReasonPrivileged, x86asm.OUTSD: ReasonPrivileged,
	x86asm.INVD: ReasonPrivileged, x86asm.INVLPG: ReasonPrivileged, x86asm.INVPCID: ReasonPrivileged,
	x86asm.LGDT: ReasonPrivileged, x86asm.LIDT: ReasonPrivileged, x86asm.LLDT: ReasonPrivileged,
	x86asm.LMSW: ReasonPrivileged, x86asm.LTR: ReasonPrivileged,
	x86asm.MONITOR: ReasonPrivileged, x86asm.MWAIT: ReasonPrivileged,
	x86asm.RDMSR: ReasonPrivileged, x86asm.WRMSR: ReasonPrivileged, x86asm.RSM: ReasonPrivileged,
	x86asm.SWAPGS: ReasonPrivileged, x86asm.SYSRET: ReasonPrivileged, x86asm.SYSEXIT: ReasonPrivileged,
	x86asm.WBINVD: ReasonPrivileged, x86asm.XSETBV: ReasonPrivileged,
	x86asm.XRSTORS: ReasonPrivileged, x86asm.XRSTORS64: ReasonPrivileged,
	x86asm.XSAVES: ReasonPrivileged, x86asm.XSAVES64: ReasonPrivileged,
}

// unsupportedSpecials are the x86dec Special forms a trace cannot run.
// The others (endbr64, vzeroupper, adcx, the NOP hints, ...) neither read
// %rip except through a memory operand nor transfer control.
var unsupportedSpecials = map[x86dec.Special]string{
	x86dec.SpecialRdssp:       ReasonShadowStack,
	x86dec.SpecialIncssp:      ReasonShadowStack,
	x86dec.SpecialSaveprevssp: ReasonShadowStack,
	x86dec.SpecialRstorssp:    ReasonShadowStack,
	x86dec.SpecialSetssbsy:    ReasonShadowStack,
	x86dec.SpecialClrssbsy:    ReasonShadowStack,
	x86dec.SpecialWrss:        ReasonShadowStack,
	x86dec.SpecialWruss:       ReasonShadowStack,
	x86dec.SpecialWbnoinvd:    ReasonPrivileged,
	x86dec.SpecialEnqcmds:     ReasonPrivileged,
}

// jccConds maps each jcc opcode to the condition under which it branches.
var jccConds = map[x86asm.Op]x86enc.Cond{
	x86asm.JO: x86enc.O, x86asm.JNO: x86enc.NO, x86asm.JB: x86enc.B, x86asm.JAE: x86enc.AE,
	x86asm.JE: x86enc.E, x86asm.JNE: x86enc.NE, x86asm.JBE: x86enc.BE, x86asm.JA: x86enc.A,
	x86asm.JS: x86enc.S, x86asm.JNS: x86enc.NS, x86asm.JP: x86enc.P, x86asm.JNP: x86enc.NP,
	x86asm.JL: x86enc.L, x86asm.JGE: x86enc.GE, x86asm.JLE: x86enc.LE, x86asm.JG: x86enc.G,
}

func unsupported(reason string) Info { return Info{Kind: Unsupported, Reason: reason} }

// Classify says what the recorder must do with inst. Instructions that
// use fs or gs (TLS), pushf/popf, cld, xtest and endbr64 are Plain; cs, ds,
// es and ss overrides mean nothing in 64-bit mode and change nothing.
func Classify(inst *x86dec.Inst) Info {
	if inst.Special != x86dec.SpecialNone {
		return classifySpecial(inst)
	}
	if inst.Op == 0 {
		return unsupported(ReasonUndecoded)
	}
	if r, ok := unsupportedOps[inst.Op]; ok {
		return unsupported(r)
	}
	switch inst.Op {
	case x86asm.INT:
		if inst.Opcode>>24 == 0xCC {
			return unsupported(ReasonInt3)
		}
		return unsupported(ReasonInt)
	case x86asm.RET:
		if inst.Args[0] != nil {
			return unsupported(ReasonRetImm)
		}
	}
	if hasEIPOperand(inst) {
		return unsupported(ReasonEIPRelative)
	}
	if hasControlReg(inst) {
		return unsupported(ReasonPrivileged)
	}
	flow := inst.Flow()
	if flow != x86dec.FlowNone && hasLock(inst) {
		return unsupported(ReasonUD)
	}
	switch flow {
	case x86dec.FlowNone:
		_, rip := inst.MemRIPTarget()
		return Info{Kind: Plain, RIPRelative: rip}
	case x86dec.FlowCondJump:
		cond, ok := jccConds[inst.Op]
		target, tok := inst.Target()
		if !ok || !tok {
			return unsupported(ReasonUnknownFlow)
		}
		return Info{Kind: CondJump, Cond: cond, Target: target}
	case x86dec.FlowJump, x86dec.FlowCall:
		target, ok := inst.Target()
		if !ok {
			return unsupported(ReasonUnknownFlow)
		}
		k := Jump
		if flow == x86dec.FlowCall {
			k = Call
		}
		return Info{Kind: k, Target: target}
	case x86dec.FlowIndirectJump, x86dec.FlowIndirectCall:
		if _, err := indirectOperand(inst); err != nil {
			return unsupported(ReasonIndirectArg)
		}
		if flow == x86dec.FlowIndirectCall {
			return Info{Kind: IndirectCall}
		}
		return Info{Kind: IndirectJump}
	case x86dec.FlowReturn:
		if inst.Op == x86asm.RET {
			return Info{Kind: Return}
		}
	}
	return unsupported(ReasonUnknownFlow)
}

// classifySpecial classifies an x86dec Special form. None transfers
// control; a memory operand may be %rip- or %eip-relative.
func classifySpecial(inst *x86dec.Inst) Info {
	if r, ok := unsupportedSpecials[inst.Special]; ok {
		return unsupported(r)
	}
	if _, ok := inst.MemRIPTarget(); ok {
		// x86dec keeps a Special's operands private; its GNU text is the
		// one place that tells %eip from %rip.
		if strings.Contains(inst.String(), "%eip") {
			return unsupported(ReasonEIPRelative)
		}
		return Info{Kind: Plain, RIPRelative: true}
	}
	return Info{Kind: Plain}
}

func hasEIPOperand(inst *x86dec.Inst) bool {
	for _, a := range inst.Args {
		if a == nil {
			break
		}
		if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.EIP {
			return true
		}
	}
	return false
}

// hasControlReg reports a mov to or from a control or debug register.
func hasControlReg(inst *x86dec.Inst) bool {
	for _, a := range inst.Args {
		if a == nil {
			break
		}
		if r, ok := a.(x86asm.Reg); ok && (r >= x86asm.CR0 && r <= x86asm.CR15 || r >= x86asm.DR0 && r <= x86asm.DR15) {
			return true
		}
	}
	return false
}

// hasLock reports a lock prefix, which raises #UD on any branch.
func hasLock(inst *x86dec.Inst) bool {
	for _, p := range inst.Prefix {
		if p == 0 {
			break
		}
		if p&0xFF == x86asm.PrefixLOCK {
			return true
		}
	}
	return false
}
