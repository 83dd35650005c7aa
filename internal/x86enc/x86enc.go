// Package x86enc encodes the few x86-64 instructions the patcher's
// trampolines need (save and restore machine state, call through a slot and
// jump back) and relocates an instruction to a new address, as the JIT does
// when it copies the interpreter's code into a trace. Its register and
// condition names are shared with the JIT's trace compiler.
//
// Encoding is driven by one table of instruction forms (forms, in asm.go)
// walked by one emitter; the tests assemble every form with GNU as and
// require identical bytes. Every branch is emitted in its rel32 form, never
// shortened, so that the length of a sequence does not depend on where it
// is placed or where it jumps.
package x86enc

import (
	"errors"
	"fmt"
	"strings"
)

// Reg is a 64-bit general register, numbered as in the encoding (the ModRM,
// SIB and opcode register fields, with REX supplying bit 3).
type Reg uint8

const (
	RAX Reg = iota
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
	numReg
)

var regNames = [numReg]string{
	"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
}

// String returns the GNU name of the register, without the %.
func (r Reg) String() string {
	if r < numReg {
		return regNames[r]
	}
	return fmt.Sprintf("Reg(%d)", uint8(r))
}

// dwarfRegs maps DWARF x86-64 register numbers 0-15 (System V psABI,
// "DWARF Register Number Mapping") to encoding numbers: DWARF orders the
// first eight rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp.
var dwarfRegs = [numReg]Reg{RAX, RDX, RCX, RBX, RSI, RDI, RBP, RSP, R8, R9, R10, R11, R12, R13, R14, R15}

// FromDWARF returns the general register with DWARF number n. Numbers
// outside 0-15 (the return address column 16, vector and other registers)
// are not general registers and give an error wrapping ErrNotGPR.
func FromDWARF(n int) (Reg, error) {
	if n < 0 || n >= len(dwarfRegs) {
		return 0, fmt.Errorf("x86enc: DWARF register %d: %w", n, ErrNotGPR)
	}
	return dwarfRegs[n], nil
}

// Cond is a condition code, as encoded in the low 4 bits of jcc.
type Cond uint8

const (
	O  Cond = iota // overflow
	NO             // not overflow
	B              // below (CF=1)
	AE             // above or equal (CF=0)
	E              // equal (ZF=1)
	NE             // not equal (ZF=0)
	BE             // below or equal
	A              // above
	S              // sign
	NS             // not sign
	P              // parity
	NP             // not parity
	L              // less (signed)
	GE             // greater or equal (signed)
	LE             // less or equal (signed)
	G              // greater (signed)
	numCond
)

var condNames = [numCond]string{"o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"}

// String returns the GNU suffix of the condition ("e" for je).
func (c Cond) String() string {
	if c < numCond {
		return condNames[c]
	}
	return fmt.Sprintf("Cond(%d)", uint8(c))
}

// Invert returns the opposite condition: the encoding pairs them in the
// lowest bit.
func (c Cond) Invert() Cond { return c ^ 1 }

// Errors wrapped by *Error, *RelocError and FromDWARF.
var (
	// ErrRange: a rel32 branch or %rip displacement cannot reach its target.
	ErrRange = errors.New("target out of rel32 range")
	// ErrUnbound: a branch refers to a label never bound.
	ErrUnbound = errors.New("label not bound")
	// ErrRebound: a label is bound twice.
	ErrRebound = errors.New("label already bound")
	// ErrForeignLabel: a label is the zero Label or comes from another Asm.
	ErrForeignLabel = errors.New("label not made by this assembler")
	// ErrBadOperand: a register or condition number out of range, or a
	// negative NOP length.
	ErrBadOperand = errors.New("invalid operand")
	// ErrNotGPR: a DWARF register number that is not a general register.
	ErrNotGPR = errors.New("not a general register")
	// ErrUnsupported: an instruction Relocate does not move (a rel16
	// branch, an %eip-relative operand).
	ErrUnsupported = errors.New("instruction cannot be relocated")
	// ErrTrailing: the bytes given to Relocate hold more than one
	// instruction.
	ErrTrailing = errors.New("bytes after the instruction")
	// ErrSelfCheck: the relocated instruction does not decode to the
	// original target (a decoder report of where the displacement sits
	// was wrong).
	ErrSelfCheck = errors.New("relocated instruction decodes differently")
)

// Error reports an instruction the assembler could not encode or resolve.
type Error struct {
	PC   uint64 // address of the instruction
	Inst string // its mnemonic
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("x86enc: %s at %#x: %v", e.Inst, e.PC, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// RelocError reports an instruction Relocate could not move.
type RelocError struct {
	Addr    uint64 // original address
	NewAddr uint64 // where it was to be placed
	Bytes   []byte // the instruction bytes (at most 15)
	Err     error
}

func (e *RelocError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "x86enc: relocate %#x -> %#x [", e.Addr, e.NewAddr)
	for k, c := range e.Bytes {
		if k > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%02x", c)
	}
	fmt.Fprintf(&b, "]: %v", e.Err)
	return b.String()
}

func (e *RelocError) Unwrap() error { return e.Err }

// rel32 returns the displacement from next (the address just past the
// field's instruction) to target, checking that it fits in a signed 32-bit
// field. Addresses wrap modulo 2^64 as the processor's do.
func rel32(next, target uint64) (int32, error) {
	d := int64(target - next)
	if d != int64(int32(d)) {
		return 0, fmt.Errorf("%w: %#x from %#x", ErrRange, target, next)
	}
	return int32(d), nil
}
