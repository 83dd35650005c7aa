package tracevm

import (
	"encoding/binary"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"golang.org/x/arch/x86/x86asm"
)

// Known operands become immediates. An instruction that reads a register
// whose value the optimiser knows (or writes a byte or word register with
// a value it knows) is re-encoded so that it no longer reads it:
//
//   - or %eax,%esi with %eax known: or $v,%esi, so that the mov that set
//     %eax can go (a register read as an operand is otherwise set right
//     before its reader);
//   - mov %r9d,0x50(%rsp) with %r9d known: movl $v,0x50(%rsp);
//   - sbb %sil,%sil with the carry known, or any other write of a byte or
//     word register whose result is known: mov $v,%sil, which reads no
//     flags (so the instructions that made the carry can go), or nothing
//     at all when the register already holds v.
//
// Interpreters compute their dispatch this way (CPython 3.11 builds the
// opcode byte in %sil from a carry and ORs the instruction word into
// %esi on every dispatch): the register's upper bytes stay unknown, so
// the instruction cannot simply be dropped.

// rewritten is an instruction the optimiser re-encoded: its code and its
// decoding (for the registers it reads).
type rewritten struct {
	code []byte
	inst *x86dec.Inst
}

// constForm decides op i's re-encoding given the registers known before
// and after it and whether the flags are live after it. drop: the
// instruction changes nothing that matters.
func (o *optimizer) constForm(i int, flagsLive bool) (rw rewritten, drop, ok bool) {
	inst := o.insts[i]
	if inst == nil || inst.Special != x86dec.SpecialNone || inst.AddrSize != 64 {
		return rewritten{}, false, false
	}
	if m, isMem := memArg(inst).(x86asm.Mem); isMem && (m.Base == x86asm.RIP || m.Segment != 0) {
		return rewritten{}, false, false
	}
	if rw, drop, ok := o.knownByteResult(i, inst, flagsLive); ok {
		return rw, drop, true
	}
	before := o.known.ref(i)
	code, folded := o.ops[i].code, false
	if c, d, ok := foldKnownIndex(code, inst, before); ok {
		code, inst, folded = c, d, true
	}
	for k, arg := range inst.Args[:2] {
		r, isReg := arg.(x86asm.Reg)
		if !isReg || (k == 0 && inst.Op != x86asm.TEST) {
			continue
		}
		kv := regOperand(r, before)
		if !kv.known || inst.Args[0] == inst.Args[1] {
			continue
		}
		v := kv.v
		code, ok := immSourceForm(code, inst, r, v)
		if !ok {
			continue
		}
		d, err := x86dec.Decode(code, o.ops[i].addr)
		if err != nil || d.Len != len(code) || d.Op != inst.Op || !sameImm(d.Args[1], v, regSize(r)) {
			continue
		}
		if inst.Op != x86asm.TEST && d.Args[0] != inst.Args[0] {
			continue
		}
		return rewritten{code: code, inst: &d}, false, true
	}
	if folded {
		return rewritten{code: code, inst: inst}, false, true
	}
	return rewritten{}, false, false
}

// foldKnownIndex re-encodes code (inst, one instruction with a ModRM
// memory operand) with its index register, known to hold a value in
// known, taken into the displacement: CPython 3.11 reads and writes its
// fast locals at 0x48(%rbx,%rax,8) with the oparg in %rax, which the
// trace knows, and would otherwise set %rax from its value before every
// such access. A known base stays (the address becomes %rip-relative
// where the code cache reaches it, compile.go; CPython's frames, in their
// thread's data stack, are mapped out of its reach). General instructions only: vector copies are paired
// through general registers, which folds their index itself (vecpair.go).
func foldKnownIndex(code []byte, inst *x86dec.Inst, known *[16]val) ([]byte, *x86dec.Inst, bool) {
	mem, ok := memArg(inst).(x86asm.Mem)
	if !ok || mem.Index == 0 || mem.Segment != 0 || mem.Base == x86asm.RIP {
		return nil, nil, false
	}
	for _, a := range inst.Args {
		if r, isReg := a.(x86asm.Reg); isReg && (r < x86asm.AL || r > x86asm.R15) {
			return nil, nil, false // a vector, segment or control register
		}
	}
	index, isize, iok := gpr(mem.Index)
	base, bsize, bok := gpr(mem.Base)
	if !iok || isize != 8 || !known[index].known || (mem.Base != 0 && (!bok || bsize != 8)) {
		return nil, nil, false
	}
	d := mem.Disp + int64(known[index].v)*int64(mem.Scale)
	if d != int64(int32(d)) {
		return nil, nil, false
	}
	m, ok := parseMemInsn(code)
	if !ok || m.rip || m.modrm&7 != 4 {
		return nil, nil, false
	}
	// No segment prefix: refused above. REX.X and B go: B is set
	// below for the base alone.
	out := append([]byte(nil), m.prefixes...)
	rex := m.rex &^ 0x03
	var addr []byte
	reg := m.modrm & 0x38
	switch {
	case mem.Base == 0:
		// No base: disp32 alone (SIB: no index, base 101).
		addr = binary.LittleEndian.AppendUint32([]byte{0x04 | reg, 0x25}, uint32(int32(d)))
	default:
		if base >= 8 {
			rex |= 0x41
		}
		addr = x86enc.AppendModRM(nil, reg>>3, base, int32(d))
	}
	if rex != 0 {
		out = append(out, rex)
	}
	out = append(out, m.opcode...)
	out = append(out, addr...)
	out = append(out, m.imm...)
	dec, err := x86dec.Decode(out, inst.Addr)
	if err != nil || dec.Len != len(out) || dec.Op != inst.Op {
		return nil, nil, false
	}
	for k, a := range inst.Args {
		if _, isMem := a.(x86asm.Mem); isMem {
			dm, ok := dec.Args[k].(x86asm.Mem)
			if !ok || dm.Base != mem.Base || dm.Index != 0 || dm.Disp != d || dm.Segment != 0 {
				return nil, nil, false
			}
			continue
		}
		if dec.Args[k] != a {
			return nil, nil, false
		}
	}
	if dec.MemBytes != inst.MemBytes || dec.DataSize != inst.DataSize {
		return nil, nil, false
	}
	return out, &dec, true
}

// knownByteResult: a pure write of a byte or word register whose result
// the optimiser knows becomes mov $v (upper bytes kept, as the original
// write keeps them), or nothing when the register holds v already.
func (o *optimizer) knownByteResult(i int, inst *x86dec.Inst, flagsLive bool) (rewritten, bool, bool) {
	dst, isReg := inst.Args[0].(x86asm.Reg)
	if !isReg || storesMemory(inst) || !(destOnly.has(inst.Op) || readWrite.has(inst.Op)) {
		return rewritten{}, false, false
	}
	r, size, ok := gpr(dst)
	if !ok || size > 2 || (dst >= x86asm.AH && dst <= x86asm.BH) {
		return rewritten{}, false, false
	}
	if w, wall := writes(inst); wall || w != 1<<r {
		return rewritten{}, false, false
	}
	if flagsLive && x86dec.OpFlags(inst.Op) != x86dec.FlagsNone {
		return rewritten{}, false, false
	}
	after, ok := o.known.get(i+1, int(r)).low(size)
	if !ok {
		return rewritten{}, false, false
	}
	if was, ok := o.known.get(i, int(r)).low(size); ok && was.v == after.v {
		return rewritten{}, true, true
	}
	if inst.Op == x86asm.MOV {
		if _, isImm := inst.Args[1].(x86asm.Imm); isImm {
			return rewritten{}, false, false // already one
		}
	}
	code := movImmPartial(r, size, after.v)
	d, err := x86dec.Decode(code, o.ops[i].addr)
	if err != nil || d.Len != len(code) || d.Args[0] != dst {
		return rewritten{}, false, false
	}
	return rewritten{code: code, inst: &d}, false, true
}

// movImmPartial encodes mov $v into the low size (1 or 2) bytes of r.
func movImmPartial(r x86enc.Reg, size int, v uint64) []byte {
	var out []byte
	if size == 2 {
		out = append(out, 0x66)
	}
	rex := byte(0)
	if r >= 8 {
		rex = 0x41
	} else if size == 1 && r >= 4 {
		rex = 0x40 // %spl-%dil, not %ah-%bh
	}
	if rex != 0 {
		out = append(out, rex)
	}
	if size == 1 {
		return append(out, 0xb0+byte(r&7), byte(v))
	}
	out = append(out, 0xb8+byte(r&7))
	return binary.LittleEndian.AppendUint16(out, uint16(v))
}

// aluDigit maps the register forms of the eight arithmetic instructions
// (00-3b: op r/m,r and op r,r/m) to their /digit in 80/81/83.
func aluDigit(opc byte) (digit byte, ok bool) {
	if opc > 0x3b || opc&7 > 3 {
		return 0, false
	}
	return opc >> 3, true
}

// immSourceForm re-encodes inst (code, one instruction: an arithmetic op,
// mov or test whose register operand src is known to hold v) with v as an
// immediate. ok is false for other instructions, for a value that does
// not fit the immediate, and for prefixes it does not handle.
func immSourceForm(code []byte, inst *x86dec.Inst, src x86asm.Reg, v uint64) ([]byte, bool) {
	i := 0
	var pre []byte
	for ; i < len(code); i++ {
		b := code[i]
		if b != 0x66 && b != 0xf0 {
			break
		}
		pre = append(pre, b)
	}
	rex := byte(0)
	if i < len(code) && code[i]&0xf0 == 0x40 {
		rex = code[i]
		i++
	}
	if i+2 > len(code) {
		return nil, false
	}
	opc, modrm := code[i], code[i+1]
	rest := code[i+2:]
	size := inst.DataSize / 8
	if opc&1 == 0 {
		size = 1
	}
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return nil, false
	}
	if size == 8 && int64(v) != int64(int32(v)) {
		return nil, false
	}
	// srcInRM: src is the r/m operand (a register: mod 3), and the
	// other operand, in reg, becomes r/m; else src is in reg and r/m
	// stays.
	var newOp, digit byte
	var srcInRM bool
	switch {
	case opc == 0x88 || opc == 0x89:
		if inst.Args[1] != src {
			return nil, false
		}
		newOp, digit = 0xc6|opc&1, 0
	case opc == 0x84 || opc == 0x85:
		newOp, digit, srcInRM = 0xf6|opc&1, 0, inst.Args[0] == src
	default:
		d, ok := aluDigit(opc)
		if !ok || inst.Args[1] != src {
			return nil, false
		}
		newOp, digit, srcInRM = 0x80|opc&1, d, opc&2 != 0
	}
	out := append([]byte{}, pre...)
	var opAt int
	// bare: a REX that only made src a byte register %spl-%dil, or only
	// extended src, is left out when the destination does not need it.
	bare := func(r byte, rm byte) bool {
		return r == 0x40 && !(size == 1 && modrm>>6 == 3 && rm >= 4)
	}
	if !srcInRM {
		if r := rex &^ 0x04; rex != 0 && !bare(r, modrm&7) {
			out = append(out, r)
		}
		opAt = len(out)
		out = append(out, newOp, modrm&0xc7|digit<<3)
		out = append(out, rest...)
	} else {
		if modrm>>6 != 3 || len(rest) != 0 {
			return nil, false
		}
		if r := rex&^0x05 | rex>>2&1; rex != 0 && !bare(r, modrm>>3&7) {
			out = append(out, r)
		}
		opAt = len(out)
		out = append(out, newOp, 0xc0|digit<<3|modrm>>3&7)
	}
	switch {
	case size == 1:
		out = append(out, byte(v))
	case newOp == 0x81 && int64(signExtend(v, size)) == int64(int8(v)):
		out[opAt] = 0x83
		out = append(out, byte(v))
	case size == 2:
		out = binary.LittleEndian.AppendUint16(out, uint16(v))
	default:
		out = binary.LittleEndian.AppendUint32(out, uint32(v))
	}
	return out, true
}

// sameImm: a is an immediate whose low size bytes are v's.
func sameImm(a x86asm.Arg, v uint64, size int) bool {
	imm, ok := a.(x86asm.Imm)
	if !ok {
		return false
	}
	if size < 1 || size > 8 {
		size = 8
	}
	return truncate(uint64(int64(imm)), size) == truncate(v, size)
}

func regSize(r x86asm.Reg) int {
	_, size, _ := gpr(r)
	return size
}
