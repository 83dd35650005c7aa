// Package x86dec decodes x86-64 machine code for the CFG builder, the
// patch planner's flag scans and the JIT's recorder. It owns
// the wrapper over golang.org/x/arch/x86/x86asm (v0.32.0) that removes that
// package's silent mis-decodes, and the control-flow classification of an
// instruction (Flow, Target, MemRIPTarget).
//
// What x86asm gets wrong, and where it is handled:
//   - forms it returns as a bare 1-byte prefix (Op == 0), rejects, or takes
//     for another instruction of the same length (endbr64, rdssp, adcx,
//     adox, rdpkru, clwb, the reserved-NOP space, ...): Special forms,
//     decoded from the tables in specials.go;
//   - vzeroupper/vzeroall, 1-6 bytes too long: also Special forms;
//   - VEX/EVEX after a segment or 67 prefix (a 1-byte prefix), VEX
//     %rip-relative operands without a base, VEX input cut before the
//     ModRM, mov to/from %crN/%drN with mod != 11 (reads a displacement),
//     zero-extended disp32: fixups.go;
//   - an operand-size prefix on a near branch, which x86asm decodes the
//     Intel way and objdump the AMD way: ErrVendorDependent.
//
// Any other result with no opcode is an error (ErrNoOpcode). The tests
// compare every instruction boundary, Flow, branch target and
// %rip-relative address with GNU objdump over the whole executable code of
// python3.11, lua5.4 and libc, and over a sweep of the opcode maps.
package x86dec

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// MaxLen is the architectural limit on the length of one instruction.
const MaxLen = 15

// Inst is one decoded instruction. For a Special form x86asm cannot decode,
// Inst.Op is 0, Args are empty and Len is the true length.
type Inst struct {
	x86asm.Inst
	Addr    uint64
	Special Special

	// ops holds the ModRM operands of a Special form, for String and
	// MemRIPTarget (Args stay empty so callers never mistake a Special for
	// an x86asm opcode with operands).
	ops specialOps
}

// End returns the address just past the instruction.
func (i *Inst) End() uint64 { return i.Addr + uint64(i.Len) }

// String returns the instruction in GNU (AT&T) syntax with absolute branch
// targets and no symbols. Special forms print their own mnemonic.
func (i *Inst) String() string {
	if i.Special != SpecialNone {
		return i.specialString()
	}
	return x86asm.GNUSyntax(i.Inst, i.Addr, nil)
}

// Target returns the target of a direct jmp, jcc, call, loop, jrcxz or
// xbegin (an instruction with a Rel operand).
func (i *Inst) Target() (uint64, bool) {
	if i.Special != SpecialNone {
		return 0, false
	}
	for _, a := range i.Args {
		if a == nil {
			break
		}
		if rel, ok := a.(x86asm.Rel); ok {
			return i.End() + uint64(int64(rel)), true
		}
	}
	return 0, false
}

// MemRIPTarget returns the effective address of a %rip-relative memory
// operand, computed from End(). An %eip-relative operand (address-size
// prefix 67) is truncated to 32 bits as the hardware does.
func (i *Inst) MemRIPTarget() (uint64, bool) {
	if i.Special != SpecialNone {
		if m, ok := i.ops.rm.(x86asm.Mem); ok {
			return ripTarget(m, i.End())
		}
		return 0, false
	}
	for _, a := range i.Args {
		if a == nil {
			break
		}
		if m, ok := a.(x86asm.Mem); ok {
			if t, ok := ripTarget(m, i.End()); ok {
				return t, true
			}
		}
	}
	return 0, false
}

func ripTarget(m x86asm.Mem, end uint64) (uint64, bool) {
	// The displacement is a signed 32-bit field whatever x86asm stored.
	switch m.Base {
	case x86asm.RIP:
		return end + uint64(int64(int32(m.Disp))), true
	case x86asm.EIP:
		return uint64(uint32(end + uint64(int64(int32(m.Disp))))), true
	}
	return 0, false
}

// Errors carried by *Error.
var (
	// ErrTruncated: the bytes end inside an instruction.
	ErrTruncated = errors.New("truncated instruction")
	// ErrNoOpcode: x86asm decoded only a prefix (it does this, silently,
	// for opcodes it does not know).
	ErrNoOpcode = errors.New("prefix without a known opcode")
	// ErrVendorDependent: an encoding Intel and AMD decode differently
	// (operand-size prefix on a near branch); compilers never emit it.
	ErrVendorDependent = errors.New("operand-size prefix on a near branch: length or target differs between Intel and AMD")
	// ErrPrefixBeforeVEX: a lock, rep, operand-size or REX prefix before a
	// VEX or EVEX prefix, which raises #UD.
	ErrPrefixBeforeVEX = errors.New("legacy prefix before VEX/EVEX")
	// ErrTooLong: prefixes push the instruction past 15 bytes.
	ErrTooLong = errors.New("instruction longer than 15 bytes")
)

// Error reports bytes that do not decode to a valid instruction.
type Error struct {
	Addr  uint64
	Bytes []byte // up to 15 bytes at Addr
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "decode %#x [", e.Addr)
	for k, c := range e.Bytes {
		if k > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%02x", c)
	}
	fmt.Fprintf(&b, "]: %v", e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func newError(code []byte, addr uint64, err error) *Error {
	n := min(len(code), MaxLen)
	return &Error{Addr: addr, Bytes: append([]byte(nil), code[:n]...), Err: err}
}

// Decode decodes the instruction at the start of code, which is located at addr.
// An instruction with no opcode (Op == 0 and no Special), a truncated one, or an invalid one returns *Error.
func Decode(code []byte, addr uint64) (inst Inst, err error) {
	if len(code) > MaxLen {
		code = code[:MaxLen]
	}
	if err := decode(code, &inst); err != nil {
		if errors.Is(err, ErrTruncated) || isTruncated(code) {
			err = ErrTruncated
		}
		return Inst{}, newError(code, addr, err)
	}
	inst.Addr = addr
	return inst, nil
}

// decode is Decode without the address and the truncation diagnosis. It
// fills *inst (which must be zero) in place: Inst is large, and copies
// show in the sweep speed.
func decode(code []byte, inst *Inst) error {
	if len(code) == 0 {
		return ErrTruncated
	}
	p := scanPrefixes(code)
	if p.n >= len(code) {
		if p.n >= MaxLen {
			return ErrTooLong
		}
		return ErrTruncated
	}
	switch code[p.n] {
	case 0xC4, 0xC5, 0x62:
		// In 64-bit mode these bytes always start VEX/EVEX.
		if p.n > 0 {
			return decodePrefixedVEX(code, p, inst)
		}
		if ok, err := matchVEXSpecial(code, inst); ok || err != nil {
			return err
		}
	case 0x0F:
		if ok, err := matchLegacySpecial(code, p, inst); ok || err != nil {
			return err
		}
		var err error
		if code, err = fixMovControl(code, p); err != nil {
			return err
		}
	}
	var err error
	inst.Inst, err = x86asm.Decode(code, 64)
	xi := &inst.Inst
	switch {
	case err != nil:
		return err
	case xi.Op == 0:
		return ErrNoOpcode
	case xi.Len < 1 || xi.Len > len(code):
		return ErrTruncated
	}
	if err := checkBranchPrefix(xi, p); err != nil {
		return err
	}
	if err := checkVEXModRM(xi); err != nil {
		return err
	}
	fixVEXMem(xi, code)
	fixDisp32(xi)
	return nil
}

// isTruncated reports whether code is a proper prefix of a valid
// instruction: some continuation decodes to something longer than code.
// Two fills cover the opcode maps: 00 is valid after legacy prefixes and
// opcodes, 10 (movups) after a VEX or EVEX prefix.
func isTruncated(code []byte) bool {
	if len(code) >= MaxLen {
		return false
	}
	for _, fill := range [...]byte{0x00, 0x10} {
		var buf [MaxLen]byte
		copy(buf[:], code)
		for k := len(code); k < MaxLen; k++ {
			buf[k] = fill
		}
		var inst Inst
		if err := decode(buf[:], &inst); err == nil && inst.Len > len(code) {
			return true
		}
	}
	return false
}
