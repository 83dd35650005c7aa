package cfg

import "golang.org/x/arch/x86/x86asm"

// regFamily maps any general-purpose register view (AL, AH, AX, EAX, RAX...)
// to its 64-bit register, so that data flow can follow partial writes such
// as `movzbl %al,%eax` between views of one register. Other registers map to
// themselves.
func regFamily(r x86asm.Reg) x86asm.Reg {
	switch {
	case r >= x86asm.AL && r <= x86asm.R15B:
		// AL CL DL BL, then AH CH DH BH (high bytes of the same four),
		// then SPB BPB SIB DIB and R8B..R15B.
		i := r - x86asm.AL
		if i >= 4 {
			i -= 4
		}
		return x86asm.RAX + i
	case r >= x86asm.AX && r <= x86asm.R15W:
		return x86asm.RAX + (r - x86asm.AX)
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return x86asm.RAX + (r - x86asm.EAX)
	}
	return r
}

// regWidthBound is the number of distinct values a register view can hold
// as an unsigned index, or 0 when it is too wide to bound a table.
func regWidthBound(r x86asm.Reg) uint64 {
	if r >= x86asm.AL && r <= x86asm.R15B {
		return 256
	}
	return 0
}

// isGPR reports whether r is a general-purpose register view.
func isGPR(r x86asm.Reg) bool {
	return r >= x86asm.AL && r <= x86asm.R15
}

// writesReg reports whether inst writes (any view of) the register family
// fam as its destination operand. x86asm keeps operands in Intel order, so the
// destination is Args[0]. Instructions with implicit outputs that matter for
// index computations (div, mul, cpuid...) are counted conservatively.
func writesReg(inst *instInfo, fam x86asm.Reg) bool {
	switch inst.Op {
	case x86asm.CMP, x86asm.TEST, x86asm.PUSH, x86asm.JMP, x86asm.CALL, x86asm.RET,
		x86asm.NOP, x86asm.BT:
		return false
	case x86asm.XCHG, x86asm.XADD, x86asm.CMPXCHG:
		for _, a := range inst.Args {
			if r, ok := a.(x86asm.Reg); ok && regFamily(r) == fam {
				return true
			}
		}
		return inst.Op == x86asm.CMPXCHG && fam == x86asm.RAX
	case x86asm.MUL, x86asm.IMUL, x86asm.DIV, x86asm.IDIV, x86asm.CQO, x86asm.CDQ, x86asm.CWD:
		if fam == x86asm.RAX || fam == x86asm.RDX {
			return true
		}
	case x86asm.CPUID, x86asm.RDTSC, x86asm.RDTSCP, x86asm.SYSCALL:
		return fam == x86asm.RAX || fam == x86asm.RDX || fam == x86asm.RCX || fam == x86asm.RBX || fam == x86asm.R11
	}
	if r, ok := inst.Args[0].(x86asm.Reg); ok && regFamily(r) == fam {
		return true
	}
	return false
}
