package x86enc

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"golang.org/x/arch/x86/x86asm"
)

// Relocate re-encodes the single instruction in code, located at from, so
// that it behaves identically when placed at newAddr:
//   - a %rip-relative memory operand gets its disp32 adjusted;
//   - a direct jmp, jcc, call or xbegin with a rel32 gets the rel32
//     adjusted;
//   - jmp rel8 becomes jmp rel32 (E9) and jcc rel8 becomes jcc rel32
//     (0F 80+cc);
//   - jrcxz, jecxz, loop, loope and loopne, which have only a rel8 form,
//     become the 9-byte sequence "op +2; jmp +5; jmp rel32 target": op
//     keeps its test and its effect on %rcx, and either lands on the
//     rel32 jmp or falls through to the short jmp past it;
//   - everything else is copied unchanged.
//
// Prefixes are kept. The result's length depends only on the instruction,
// never on newAddr, so a caller can lay out code before knowing where it
// goes. A relocated call pushes the address just past its copy: the
// relocated code continues there.
//
// Errors are *RelocError wrapping an *x86dec.Error (the bytes do not
// decode), ErrTrailing (code holds more than one instruction), ErrRange
// (the target is beyond rel32 reach of newAddr) or ErrUnsupported (a rel16
// branch, which only the operand-size prefix on xbegin produces; an
// %eip-relative operand; a rel8 jcc or jmp with so many prefixes that its
// rel32 form would pass 15 bytes). Relocate decodes what it produced and returns
// ErrSelfCheck if that does not reach the original target.
func Relocate(code []byte, from, newAddr uint64) ([]byte, error) {
	out, err := relocate(code, from, newAddr)
	if err != nil {
		return nil, &RelocError{Addr: from, NewAddr: newAddr, Bytes: slices.Clone(code[:min(len(code), x86dec.MaxLen)]), Err: err}
	}
	return out, nil
}

func relocate(code []byte, from, newAddr uint64) ([]byte, error) {
	inst, err := x86dec.Decode(code, from)
	if err != nil {
		return nil, err
	}
	if inst.Len != len(code) {
		return nil, ErrTrailing
	}
	if target, ok := inst.Target(); ok {
		return relocateBranch(code, &inst, target, newAddr)
	}
	if target, ok := inst.MemRIPTarget(); ok {
		// x86asm reports no displacement position for %eip, and the
		// decoder's Specials report one for both: look at the prefixes.
		if inst.PCRel != 4 || hasAddr32(code) {
			return nil, fmt.Errorf("%w: %%eip-relative operand", ErrUnsupported)
		}
		out := slices.Clone(code)
		if err := putRel32(out, inst.PCRelOff, newAddr+uint64(len(out)), target); err != nil {
			return nil, err
		}
		return out, selfCheck(out, newAddr, &inst, target)
	}
	return slices.Clone(code), nil
}

// relocateBranch handles an instruction with a Rel operand.
func relocateBranch(code []byte, inst *x86dec.Inst, target, newAddr uint64) ([]byte, error) {
	switch inst.PCRel {
	case 4:
		out := slices.Clone(code)
		if err := putRel32(out, inst.PCRelOff, newAddr+uint64(len(out)), target); err != nil {
			return nil, err
		}
		return out, selfCheck(out, newAddr, inst, target)
	case 1:
	default:
		return nil, fmt.Errorf("%w: rel%d branch", ErrUnsupported, 8*inst.PCRel)
	}
	// rel8: every such opcode is one byte, just before the rel8.
	pre, opc := code[:inst.PCRelOff-1], code[inst.PCRelOff-1]
	loop := opc >= 0xE0 && opc <= 0xE3
	out := slices.Clone(pre)
	switch {
	case opc >= 0x70 && opc <= 0x7F: // jcc rel8
		out = append(out, 0x0F, 0x80|opc&0x0F, 0, 0, 0, 0)
	case opc == 0xEB: // jmp rel8
		out = append(out, 0xE9, 0, 0, 0, 0)
	case loop: // loopne, loope, loop, jrcxz
		out = append(out, opc, 2, 0xEB, 5, 0xE9, 0, 0, 0, 0)
	default:
		return nil, fmt.Errorf("%w: rel8 opcode %#02x", ErrUnsupported, opc)
	}
	if !loop && len(out) > x86dec.MaxLen {
		// Only junk prefixes get a jcc this long; dropping them would
		// change nothing, but neither does refusing.
		return nil, fmt.Errorf("%w: rel32 form longer than %d bytes", ErrUnsupported, x86dec.MaxLen)
	}
	end := newAddr + uint64(len(out))
	if err := putRel32(out, len(out)-4, end, target); err != nil {
		return nil, err
	}
	if !loop {
		return out, selfCheck(out, newAddr, inst, target)
	}
	// The sequence: op must land on the rel32 jmp, which must reach target.
	head := out[:len(pre)+2]
	if err := selfCheck(head, newAddr, inst, end-5); err != nil {
		return nil, err
	}
	return out, selfCheck(out[len(out)-5:], end-5, nil, target)
}

// putRel32 writes at b[at:] the rel32 from next to target.
func putRel32(b []byte, at int, next, target uint64) error {
	d, err := rel32(next, target)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b[at:], uint32(d))
	return nil
}

// selfCheck decodes out, placed at addr, and checks that it is one
// instruction with orig's opcode (a jmp when orig is nil) reaching target.
func selfCheck(out []byte, addr uint64, orig *x86dec.Inst, target uint64) error {
	inst, err := x86dec.Decode(out, addr)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSelfCheck, err)
	}
	got, ok := inst.Target()
	if !ok {
		got, ok = inst.MemRIPTarget()
	}
	var want x86dec.Inst
	if orig != nil {
		want = *orig
	} else {
		want.Op = x86asm.JMP
	}
	if inst.Len != len(out) || inst.Op != want.Op || inst.Special != want.Special || !ok || got != target {
		return fmt.Errorf("%w: %s", ErrSelfCheck, inst.String())
	}
	return nil
}

// hasAddr32 reports whether the legacy prefixes of code include the
// address-size override 67.
func hasAddr32(code []byte) bool {
	for _, b := range code {
		switch {
		case b == 0x67:
			return true
		case b == 0x66, b == 0xF0, b == 0xF2, b == 0xF3, b == 0x26, b == 0x2E, b == 0x36, b == 0x3E, b == 0x64, b == 0x65, b&0xF0 == 0x40:
		default:
			return false
		}
	}
	return false
}
