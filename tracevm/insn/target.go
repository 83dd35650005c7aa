package insn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"golang.org/x/arch/x86/x86asm"
)

// Errors wrapped by *Error. LoadTarget also wraps x86enc.ErrRange (a
// %rip-relative operand out of reach of the new address) and
// x86enc.ErrBadOperand (a destination register above 15).
var (
	// ErrNotIndirect: the instruction is not an indirect near jmp or call.
	ErrNotIndirect = errors.New("not an indirect near jmp or call")
	// ErrOperand: an operand that is not a 64-bit register or a memory
	// operand with 64-bit (or %rip) addressing, or a lock prefix.
	ErrOperand = errors.New("unsupported target operand")
	// ErrShortCode: the bytes given end before the instruction does.
	ErrShortCode = errors.New("code shorter than the instruction")
	// ErrNoRegs: no register file or Reader was given.
	ErrNoRegs = errors.New("no register values or memory reader")
	// ErrRead: the Reader returned fewer bytes than asked.
	ErrRead = errors.New("short memory read")
)

// Error reports an instruction whose target could not be loaded or evaluated.
type Error struct {
	Addr  uint64
	Inst  string // GNU syntax
	Bytes []byte // the instruction bytes, when the caller gave them
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "insn: %#x %s", e.Addr, e.Inst)
	if len(e.Bytes) > 0 {
		b.WriteString(" [")
		for k, c := range e.Bytes {
			if k > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%02x", c)
		}
		b.WriteByte(']')
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func newError(inst *x86dec.Inst, code []byte, err error) *Error {
	n := min(len(code), inst.Len, x86dec.MaxLen)
	if n < 0 {
		n = 0
	}
	return &Error{Addr: inst.Addr, Inst: inst.String(), Bytes: slices.Clone(code[:n]), Err: err}
}

// indirectOperand returns the target operand of an indirect near jmp or
// call: a 64-bit register, or a memory operand whose base is a 64-bit
// register, %rip or none and whose index is a 64-bit register or none.
func indirectOperand(inst *x86dec.Inst) (x86asm.Arg, error) {
	if inst.Special != x86dec.SpecialNone || inst.Op != x86asm.JMP && inst.Op != x86asm.CALL {
		return nil, ErrNotIndirect
	}
	switch a := inst.Args[0].(type) {
	case x86asm.Reg:
		if !isGPR64(a) {
			return nil, fmt.Errorf("%w: register %v", ErrOperand, a)
		}
	case x86asm.Mem:
		if inst.AddrSize != 64 {
			return nil, fmt.Errorf("%w: %d-bit address", ErrOperand, inst.AddrSize)
		}
		if a.Base != 0 && a.Base != x86asm.RIP && !isGPR64(a.Base) || a.Index != 0 && !isGPR64(a.Index) {
			return nil, fmt.Errorf("%w: address registers %v, %v", ErrOperand, a.Base, a.Index)
		}
	default:
		return nil, ErrNotIndirect
	}
	if hasLock(inst) {
		return nil, fmt.Errorf("%w: lock prefix", ErrOperand)
	}
	return inst.Args[0], nil
}

func isGPR64(r x86asm.Reg) bool { return r >= x86asm.RAX && r <= x86asm.R15 }

// LoadTarget returns the encoding of `mov <operand>, %dst` (64-bit) where
// <operand> is the target operand of the indirect jmp/call inst, placed at
// address at (a %rip-relative operand gets its disp32 adjusted for that
// address; error if out of rel32 reach). For a register operand it is
// `mov %reg, %dst`. An fs or gs override of the original is kept; notrack
// (3E), bnd (F2) and the other prefixes, which mean nothing to a mov, are
// dropped. Errors are *Error.
func LoadTarget(inst *x86dec.Inst, code []byte, dst x86enc.Reg, at uint64) ([]byte, error) {
	out, err := loadTarget(inst, code, dst, at)
	if err != nil {
		return nil, newError(inst, code, err)
	}
	return out, nil
}

// loadTarget rewrites FF /2 or FF /4 into 8B /dst: the ModRM operand, SIB
// and displacement carry over unchanged, with REX.W set, REX.R from dst
// and REX.X/B from the original.
func loadTarget(inst *x86dec.Inst, code []byte, dst x86enc.Reg, at uint64) ([]byte, error) {
	if dst > x86enc.R15 {
		return nil, fmt.Errorf("destination register %d: %w", dst, x86enc.ErrBadOperand)
	}
	arg, err := indirectOperand(inst)
	if err != nil {
		return nil, err
	}
	if len(code) < inst.Len {
		return nil, ErrShortCode
	}
	code = code[:inst.Len]
	// A REX counts only directly before the opcode.
	var rex byte
	k := 0
	for ; k < len(code); k++ {
		b := code[k]
		if b&0xF0 == 0x40 {
			rex = b
			continue
		}
		if !isLegacyPrefix(b) {
			break
		}
		rex = 0
	}
	if k+1 >= len(code) || code[k] != 0xFF {
		return nil, ErrNotIndirect
	}
	modrm := code[k+1]
	if reg := modrm >> 3 & 7; reg != 2 && reg != 4 {
		return nil, ErrNotIndirect
	}
	out := make([]byte, 0, 4+len(code)-k)
	m, isMem := arg.(x86asm.Mem)
	if isMem {
		switch m.Segment {
		case x86asm.FS:
			out = append(out, 0x64)
		case x86asm.GS:
			out = append(out, 0x65)
		}
	}
	d := byte(dst)
	out = append(out, 0x48|d>>3<<2|rex&3, 0x8B, modrm&0xC7|(d&7)<<3)
	out = append(out, code[k+2:]...)
	if isMem && m.Base == x86asm.RIP {
		// FF has no immediate: the disp32 ends the instruction.
		target, _ := inst.MemRIPTarget()
		rel := int64(target - (at + uint64(len(out))))
		if rel != int64(int32(rel)) {
			return nil, fmt.Errorf("%w: %#x from %#x", x86enc.ErrRange, target, at)
		}
		binary.LittleEndian.PutUint32(out[len(out)-4:], uint32(int32(rel)))
	}
	return out, nil
}

func isLegacyPrefix(b byte) bool {
	switch b {
	case 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3:
		return true
	}
	return false
}

// Regs is a saved general-register file, indexed by x86 encoding number
// (0 rax, 1 rcx, 2 rdx, 3 rbx, 4 rsp, 5 rbp, 6 rsi, 7 rdi, 8-15 r8-r15).
type Regs [16]uint64

// Reader reads n bytes of the traced process's memory (the recorder runs
// in the same process).
type Reader func(addr uint64, n int) ([]byte, error)

// IndirectTarget evaluates the target of an indirect jmp/call given the
// register values just before it executes (a %rip-relative operand is
// relative to inst.End()). fsBase/gsBase are the segment bases for
// fs/gs-prefixed operands. Errors are *Error.
func IndirectTarget(inst *x86dec.Inst, r *Regs, fsBase, gsBase uint64, read Reader) (uint64, error) {
	t, err := indirectTarget(inst, r, fsBase, gsBase, read)
	if err != nil {
		return 0, newError(inst, nil, err)
	}
	return t, nil
}

func indirectTarget(inst *x86dec.Inst, r *Regs, fsBase, gsBase uint64, read Reader) (uint64, error) {
	arg, err := indirectOperand(inst)
	if err != nil {
		return 0, err
	}
	if r == nil {
		return 0, ErrNoRegs
	}
	if reg, ok := arg.(x86asm.Reg); ok {
		return r[reg-x86asm.RAX], nil
	}
	addr, err := effectiveAddr(inst, arg.(x86asm.Mem), r, fsBase, gsBase)
	if err != nil {
		return 0, err
	}
	if read == nil {
		return 0, ErrNoRegs
	}
	b, err := read(addr, 8)
	if err != nil {
		return 0, fmt.Errorf("read target at %#x: %w", addr, err)
	}
	if len(b) < 8 {
		return 0, fmt.Errorf("%w: %d of 8 bytes at %#x", ErrRead, len(b), addr)
	}
	return binary.LittleEndian.Uint64(b), nil
}

// EffectiveAddr evaluates the memory operand m of inst: base, scaled
// index and displacement, %rip meaning inst.End(), plus fsBase or gsBase
// for an fs or gs override (the other segments have base 0 in 64-bit
// mode). Operands with 32-bit address registers, %eip, or a vector index
// are errors (*Error wrapping ErrOperand).
func EffectiveAddr(inst *x86dec.Inst, m x86asm.Mem, r *Regs, fsBase, gsBase uint64) (uint64, error) {
	a, err := effectiveAddr(inst, m, r, fsBase, gsBase)
	if err != nil {
		return 0, newError(inst, nil, err)
	}
	return a, nil
}

func effectiveAddr(inst *x86dec.Inst, m x86asm.Mem, r *Regs, fsBase, gsBase uint64) (uint64, error) {
	if r == nil {
		return 0, ErrNoRegs
	}
	var a uint64
	switch {
	case m.Base == 0:
	case m.Base == x86asm.RIP:
		a = inst.End()
	case isGPR64(m.Base):
		a = r[m.Base-x86asm.RAX]
	default:
		return 0, fmt.Errorf("%w: base %v", ErrOperand, m.Base)
	}
	if m.Index != 0 {
		if !isGPR64(m.Index) {
			return 0, fmt.Errorf("%w: index %v", ErrOperand, m.Index)
		}
		switch m.Scale {
		case 1, 2, 4, 8:
		default:
			return 0, fmt.Errorf("%w: scale %d", ErrOperand, m.Scale)
		}
		a += r[m.Index-x86asm.RAX] * uint64(m.Scale)
	}
	a += uint64(m.Disp)
	switch m.Segment {
	case x86asm.FS:
		a += fsBase
	case x86asm.GS:
		a += gsBase
	}
	return a, nil
}
