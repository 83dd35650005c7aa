package x86dec

import "golang.org/x/arch/x86/x86asm"

// Corrections to what x86asm returns for instructions it does know:
// prefixed VEX, VEX %rip operands, VEX without ModRM, mov %crN, disp32
// sign, and the vendor-dependent branch prefix.

// decodePrefixedVEX decodes a VEX/EVEX instruction preceded by prefixes.
// x86asm recognises VEX only at offset 0 and returns the first prefix as
// a 1-byte instruction otherwise. Segment overrides and 67 are the only
// prefixes the CPU accepts there; they do not change the encoding that
// follows, so the rest is decoded alone and the prefixes put back.
func decodePrefixedVEX(code []byte, p prefixes, inst *Inst) error {
	if !p.onlySeg {
		return ErrPrefixBeforeVEX
	}
	if err := decode(code[p.n:], inst); err != nil {
		return err
	}
	inst.Len += p.n
	if inst.Special != SpecialNone {
		return nil
	}
	// Shift the VEX prefix entries right and put the legacy prefixes first.
	var pre x86asm.Prefixes
	nvex := 0
	for nvex < len(inst.Prefix) && inst.Prefix[nvex] != 0 {
		nvex++
	}
	if p.n+nvex > len(pre) {
		return ErrTooLong
	}
	hasMem := false
	for _, a := range inst.Args {
		if _, ok := a.(x86asm.Mem); ok {
			hasMem = true
		}
	}
	seg := segReg(p.seg)
	for k, b := range code[:p.n] {
		q := x86asm.Prefix(b)
		switch {
		case b == 0x67:
			q = x86asm.PrefixAddr32
			if hasMem {
				q |= x86asm.PrefixImplicit
			}
		case b == p.seg && (seg == x86asm.FS || seg == x86asm.GS) && hasMem:
			q |= x86asm.PrefixImplicit
		default:
			// A repeated or a CS/DS/ES/SS override has no effect in 64-bit mode.
			q |= x86asm.PrefixIgnored
		}
		pre[k] = q
	}
	copy(pre[p.n:], inst.Prefix[:nvex])
	inst.Prefix = pre
	if inst.PCRel != 0 {
		inst.PCRelOff += p.n
	}
	if p.has67 {
		inst.AddrSize = 32
	}
	for k, a := range inst.Args {
		m, ok := a.(x86asm.Mem)
		if !ok {
			continue
		}
		if seg == x86asm.FS || seg == x86asm.GS {
			m.Segment = seg
		}
		if p.has67 {
			m.Base = addr32Reg(m.Base)
			m.Index = addr32Reg(m.Index)
		}
		inst.Args[k] = m
	}
	return nil
}

// addr32Reg maps a 64-bit address register to its 32-bit form (67 prefix).
// Vector index registers (VSIB) are left alone.
func addr32Reg(r x86asm.Reg) x86asm.Reg {
	switch {
	case r == x86asm.RIP:
		return x86asm.EIP
	case r >= x86asm.RAX && r <= x86asm.RDI:
		return x86asm.EAX + (r - x86asm.RAX)
	case r >= x86asm.R8 && r <= x86asm.R15:
		return x86asm.R8L + (r - x86asm.R8)
	}
	return r
}

// fixVEXMem marks the %rip-relative operand of a VEX/EVEX instruction:
// x86asm's VEX decoder leaves Base empty for mod=00 rm=101, printing and
// treating it as an absolute address. code starts at the VEX prefix.
func fixVEXMem(inst *x86asm.Inst, code []byte) {
	n := vexLen(inst)
	if n == 0 || n+1 >= len(code) {
		return
	}
	if modrm := code[n+1]; modrm>>6 != 0 || modrm&7 != 5 {
		return
	}
	for k, a := range inst.Args {
		if m, ok := a.(x86asm.Mem); ok && m.Base == 0 && m.Index == 0 {
			m.Base = x86asm.RIP
			inst.Args[k] = m
			inst.PCRel = 4
			inst.PCRelOff = n + 2
			return
		}
	}
}

// fixDisp32 sign-extends 32-bit displacements. x86asm's legacy decoder
// stores disp32 zero-extended (so -16(%rip) reads 0xfffffff0(%rip)); in
// 64-bit mode the CPU sign-extends it. The 64-bit absolute moffs operand
// of mov A0-A3 is a full address and is left alone.
func fixDisp32(inst *x86asm.Inst) {
	if inst.Op == x86asm.MOV {
		if op := inst.Opcode >> 24; op >= 0xA0 && op <= 0xA3 {
			return
		}
	}
	for k, a := range inst.Args {
		if m, ok := a.(x86asm.Mem); ok && m.Disp >= 1<<31 && m.Disp < 1<<32 {
			m.Disp = int64(int32(m.Disp))
			inst.Args[k] = m
		}
	}
}

// checkBranchPrefix rejects an operand-size prefix (without REX.W) on a
// near branch: Intel ignores it, AMD uses a 16-bit operand, which changes
// the length of rel16/rel32 forms and truncates targets. x86asm follows
// Intel, objdump follows AMD; compilers never emit it.
func checkBranchPrefix(inst *x86asm.Inst, p prefixes) error {
	if !p.has66 || p.rexW() {
		return nil
	}
	switch inst.Op {
	case x86asm.JMP, x86asm.CALL, x86asm.RET,
		x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE, x86asm.JCXZ, x86asm.JECXZ, x86asm.JRCXZ:
		return ErrVendorDependent
	}
	if isJcc(inst.Op) {
		return ErrVendorDependent
	}
	return nil
}

// fixMovControl handles mov to and from control and debug registers
// (0F 20-23), whose ModRM always names a register: the CPU ignores the
// mod bits, x86asm reads a memory operand (and its SIB and displacement)
// when mod != 11. The returned copy has mod forced to 11. It also rejects
// 0F 24 and 0F 26 (mov to/from test registers), which 64-bit mode lacks
// and x86asm accepts.
func fixMovControl(code []byte, p prefixes) ([]byte, error) {
	k := p.n + 1
	if k+1 >= len(code) {
		return code, nil
	}
	switch code[k] {
	case 0x20, 0x21, 0x22, 0x23:
		if code[k+1] < 0xC0 {
			fixed := append([]byte(nil), code...)
			fixed[k+1] |= 0xC0
			return fixed, nil
		}
	case 0x24, 0x26:
		return nil, x86asm.ErrUnrecognized
	}
	return code, nil
}

// vexLen returns the length of the VEX or EVEX prefix x86asm decoded at
// the start of inst, or 0.
func vexLen(inst *x86asm.Inst) int {
	switch inst.Prefix[0] & 0xFF {
	case x86asm.PrefixVEX2Bytes:
		return 2
	case x86asm.PrefixVEX3Bytes:
		return 3
	case x86asm.PrefixEVEX:
		return 4
	}
	return 0
}

// checkVEXModRM rejects a VEX/EVEX instruction that ends before its ModRM
// byte: x86asm decodes one without it when the input runs out there, and
// every VEX form it knows has a ModRM (vzeroupper/vzeroall, which do not,
// are decoded from vexForms).
func checkVEXModRM(inst *x86asm.Inst) error {
	if n := vexLen(inst); n > 0 && inst.Len < n+2 {
		return ErrTruncated
	}
	return nil
}
