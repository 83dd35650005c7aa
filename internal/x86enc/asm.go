package x86enc

import (
	"encoding/binary"
	"slices"
)

// op names one entry of forms.
type op uint8

const (
	opPush op = iota
	opPop
	opPushfq
	opPopfq
	opLea
	opLeaRIP
	opLoad
	opLoadRIP
	opStore
	opMov
	opMovImm32
	opMovImm64
	opAndImm8
	opTest
	opCmpRIPImm8
	opCmpRegRIP
	opCmpMemImm32
	opCmpMem8Imm8
	opCmpReg32Imm32
	opCmpEAXImm32
	opSubRIPImm8
	opStoreRIP
	opCall
	opCallRIP
	opCallReg
	opJmp
	opJmpRIP
	opJmpReg
	opJcc
	opXsave64
	opXrstor64
	opRet
	opInt3
	numOp
)

// modrmKind is what the ModRM byte encodes, if there is one.
type modrmKind uint8

const (
	mrNone modrmKind = iota // no ModRM byte
	mrReg                   // mod=11: r/m is the register operands.rm
	mrMem                   // disp(base): base is operands.rm, disp operands.disp
	mrRIP                   // disp32(%rip) aimed at operands.target
)

// regOp marks a form whose ModRM.reg field holds the register operands.reg
// rather than an opcode extension.
const regOp = -1

// form is one instruction form: REX.W, opcode bytes, then the ModRM
// operand, the immediate and the rel32. The emitter derives the rest of
// REX from the register numbers.
type form struct {
	name   string // GNU mnemonic, for errors
	rexW   bool
	opcode []byte
	opReg  bool      // operands.reg is added to the last opcode byte (50+r, B8+r)
	cond   bool      // operands.cond is added to the last opcode byte (0F 80+cc)
	modrm  modrmKind //
	digit  int8      // ModRM.reg: opcode extension /digit, or regOp
	imm    int       // immediate bytes (1, 4 or 8) after the ModRM operand
	rel    bool      // a rel32 to operands.target follows the opcode
}

// forms: encodings from the Intel SDM volume 2, in the form GNU as chooses
// for the same AT&T text (mov %r,%r as 89 /r, disp8 whenever it fits).
var forms = [numOp]form{
	opPush:       {name: "push", opcode: []byte{0x50}, opReg: true},
	opPop:        {name: "pop", opcode: []byte{0x58}, opReg: true},
	opPushfq:     {name: "pushfq", opcode: []byte{0x9C}},
	opPopfq:      {name: "popfq", opcode: []byte{0x9D}},
	opLea:        {name: "lea", rexW: true, opcode: []byte{0x8D}, modrm: mrMem, digit: regOp},
	opLeaRIP:     {name: "lea", rexW: true, opcode: []byte{0x8D}, modrm: mrRIP, digit: regOp},
	opLoad:       {name: "mov", rexW: true, opcode: []byte{0x8B}, modrm: mrMem, digit: regOp},
	opLoadRIP:    {name: "mov", rexW: true, opcode: []byte{0x8B}, modrm: mrRIP, digit: regOp},
	opStore:      {name: "mov", rexW: true, opcode: []byte{0x89}, modrm: mrMem, digit: regOp},
	opMov:        {name: "mov", rexW: true, opcode: []byte{0x89}, modrm: mrReg, digit: regOp},
	opMovImm32:   {name: "mov", opcode: []byte{0xB8}, opReg: true, imm: 4},
	opMovImm64:   {name: "movabs", rexW: true, opcode: []byte{0xB8}, opReg: true, imm: 8},
	opAndImm8:    {name: "and", rexW: true, opcode: []byte{0x83}, modrm: mrReg, digit: 4, imm: 1},
	opTest:       {name: "test", rexW: true, opcode: []byte{0x85}, modrm: mrReg, digit: regOp},
	opCmpRIPImm8: {name: "cmpq", rexW: true, opcode: []byte{0x83}, modrm: mrRIP, digit: 7, imm: 1},
	opCmpRegRIP:  {name: "cmp", rexW: true, opcode: []byte{0x3B}, modrm: mrRIP, digit: regOp},
	// 81 /7 id: GNU as's form for an immediate outside int8's range.
	opCmpMemImm32:   {name: "cmpl", opcode: []byte{0x81}, modrm: mrMem, digit: 7, imm: 4},
	opCmpMem8Imm8:   {name: "cmpb", opcode: []byte{0x80}, modrm: mrMem, digit: 7, imm: 1},
	opCmpReg32Imm32: {name: "cmp", opcode: []byte{0x81}, modrm: mrReg, digit: 7, imm: 4},
	opCmpEAXImm32:   {name: "cmp", opcode: []byte{0x3D}, imm: 4},
	opSubRIPImm8:    {name: "subq", rexW: true, opcode: []byte{0x83}, modrm: mrRIP, digit: 5, imm: 1},
	opStoreRIP:      {name: "mov", rexW: true, opcode: []byte{0x89}, modrm: mrRIP, digit: regOp},
	opCall:          {name: "call", opcode: []byte{0xE8}, rel: true},
	opCallRIP:       {name: "call", opcode: []byte{0xFF}, modrm: mrRIP, digit: 2},
	opCallReg:       {name: "call", opcode: []byte{0xFF}, modrm: mrReg, digit: 2},
	opJmp:           {name: "jmp", opcode: []byte{0xE9}, rel: true},
	opJmpRIP:        {name: "jmp", opcode: []byte{0xFF}, modrm: mrRIP, digit: 4},
	opJmpReg:        {name: "jmp", opcode: []byte{0xFF}, modrm: mrReg, digit: 4},
	opJcc:           {name: "jcc", opcode: []byte{0x0F, 0x80}, cond: true, rel: true},
	opXsave64:       {name: "xsave64", rexW: true, opcode: []byte{0x0F, 0xAE}, modrm: mrMem, digit: 4},
	opXrstor64:      {name: "xrstor64", rexW: true, opcode: []byte{0x0F, 0xAE}, modrm: mrMem, digit: 5},
	opRet:           {name: "ret", opcode: []byte{0xC3}},
	opInt3:          {name: "int3", opcode: []byte{0xCC}},
}

// operands are the values a form takes; which ones are used depends on
// the form.
type operands struct {
	reg     Reg // ModRM.reg register, or the register in the opcode
	rm      Reg // ModRM.rm register, or the memory base
	disp    int32
	imm     int64
	cond    Cond
	target  uint64 // rel32 or %rip target, unless toLabel
	label   Label
	toLabel bool
}

// Mem is a memory operand disp(%Base).
type Mem struct {
	Base Reg
	Disp int32
}

// Label is a position in an Asm's code, bound with Bind. The zero Label
// is not a label.
type Label struct {
	a *Asm
	n int
}

// fixup is a rel32 field resolved by Bytes.
type fixup struct {
	pc     uint64 // the instruction's address, for errors
	name   string // its mnemonic
	at     int    // offset of the 4-byte field
	end    int    // offset just past the instruction
	target uint64
	label  Label // the zero Label when target is absolute
}

// Asm accumulates code placed at a known base address. Branches and %rip
// operands aimed at labels or absolute addresses are resolved by Bytes.
// The first error is kept and returned by Err and Bytes; the instruction
// that caused it is not emitted.
type Asm struct {
	base   uint64
	buf    []byte
	labels []int // offset of each label, -1 while unbound
	fixups []fixup
	err    error
}

// New returns an assembler for code that will be placed at base.
func New(base uint64) *Asm { return &Asm{base: base} }

// PC returns the address of the next instruction.
func (a *Asm) PC() uint64 { return a.base + uint64(len(a.buf)) }

// Len returns the number of bytes emitted so far.
func (a *Asm) Len() int { return len(a.buf) }

// Err returns the first error recorded, or nil.
func (a *Asm) Err() error { return a.err }

func (a *Asm) fail(pc uint64, name string, err error) {
	if a.err == nil {
		a.err = &Error{PC: pc, Inst: name, Err: err}
	}
}

// NewLabel returns a new, unbound label.
func (a *Asm) NewLabel() Label {
	a.labels = append(a.labels, -1)
	return Label{a: a, n: len(a.labels) - 1}
}

// Bind places l at the current PC.
func (a *Asm) Bind(l Label) {
	switch {
	case l.a != a:
		a.fail(a.PC(), "label", ErrForeignLabel)
	case a.labels[l.n] >= 0:
		a.fail(a.PC(), "label", ErrRebound)
	default:
		a.labels[l.n] = len(a.buf)
	}
}

// LabelAddr returns the address l is bound to.
func (a *Asm) LabelAddr(l Label) (uint64, bool) {
	if l.a != a || a.labels[l.n] < 0 {
		return 0, false
	}
	return a.base + uint64(a.labels[l.n]), true
}

// emit appends one instruction of form o.
func (a *Asm) emit(o op, x operands) {
	f := &forms[o]
	pc := a.PC()
	if x.reg >= numReg || x.rm >= numReg || x.cond >= numCond {
		a.fail(pc, f.name, ErrBadOperand)
		return
	}
	if x.toLabel && x.label.a != a {
		a.fail(pc, f.name, ErrForeignLabel)
		return
	}
	var rex byte
	if f.rexW {
		rex |= 0x08
	}
	if f.modrm != mrNone && f.digit == regOp && x.reg >= 8 {
		rex |= 0x04 // REX.R
	}
	if (f.opReg || f.modrm == mrReg || f.modrm == mrMem) && regBit3(f, x) {
		rex |= 0x01 // REX.B
	}
	if rex != 0 {
		a.buf = append(a.buf, 0x40|rex)
	}
	a.buf = append(a.buf, f.opcode...)
	last := len(a.buf) - 1
	switch {
	case f.opReg:
		a.buf[last] += byte(x.reg & 7)
	case f.cond:
		a.buf[last] += byte(x.cond)
	}
	field := -1 // offset of a rel32 or %rip disp32 to fix up
	if f.modrm != mrNone {
		regField := byte(f.digit)
		if f.digit == regOp {
			regField = byte(x.reg & 7)
		}
		switch f.modrm {
		case mrReg:
			a.buf = append(a.buf, 0xC0|regField<<3|byte(x.rm&7))
		case mrMem:
			a.appendMem(regField, x.rm, x.disp)
		case mrRIP:
			a.buf = append(a.buf, regField<<3|5)
			field = len(a.buf)
			a.buf = append(a.buf, 0, 0, 0, 0)
		}
	}
	if f.rel {
		field = len(a.buf)
		a.buf = append(a.buf, 0, 0, 0, 0)
	}
	switch f.imm {
	case 1:
		a.buf = append(a.buf, byte(x.imm))
	case 4:
		a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(x.imm))
	case 8:
		a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(x.imm))
	}
	if field >= 0 {
		a.fixups = append(a.fixups, fixup{pc: pc, name: f.name, at: field, end: len(a.buf), target: x.target, label: x.label})
	}
}

// regBit3 reports whether the register encoded in the opcode or ModRM.rm
// (which REX.B extends) is r8-r15.
func regBit3(f *form, x operands) bool {
	if f.opReg {
		return x.reg >= 8
	}
	return x.rm >= 8
}

// appendMem appends the ModRM (and SIB, displacement) of disp(%base) with
// the given reg field (AppendModRM).
func (a *Asm) appendMem(regField byte, base Reg, disp int32) {
	a.buf = AppendModRM(a.buf, regField, base, disp)
}

// AppendModRM appends to dst the ModRM (and SIB, displacement) of
// disp(%base) with the given reg field (0-7: the register's low bits or
// an opcode extension). Like GNU as it uses no displacement when disp is
// 0, except for base rbp/r13 (whose mod=00 encoding means %rip or no
// base), and disp8 when disp fits. Base rsp/r12 need a SIB with no index.
// The base's high bit goes in a REX.B the caller writes.
func AppendModRM(dst []byte, regField byte, base Reg, disp int32) []byte {
	rm := byte(base & 7)
	var mod byte
	switch {
	case disp == 0 && rm != 5:
		mod = 0
	case disp == int32(int8(disp)):
		mod = 1
	default:
		mod = 2
	}
	dst = append(dst, mod<<6|(regField&7)<<3|rm)
	if rm == 4 {
		dst = append(dst, 0x24) // scale 1, no index, base rm
	}
	switch mod {
	case 1:
		dst = append(dst, byte(disp))
	case 2:
		dst = binary.LittleEndian.AppendUint32(dst, uint32(disp))
	}
	return dst
}

// Push emits push %r.
func (a *Asm) Push(r Reg) { a.emit(opPush, operands{reg: r}) }

// Pop emits pop %r.
func (a *Asm) Pop(r Reg) { a.emit(opPop, operands{reg: r}) }

// Pushfq emits pushfq.
func (a *Asm) Pushfq() { a.emit(opPushfq, operands{}) }

// Popfq emits popfq.
func (a *Asm) Popfq() { a.emit(opPopfq, operands{}) }

// Lea emits lea m,%dst. Unlike add or sub it leaves the flags alone, so
// Lea(RSP, Mem{RSP, -128}) steps over the red zone before pushfq.
func (a *Asm) Lea(dst Reg, m Mem) { a.emit(opLea, operands{reg: dst, rm: m.Base, disp: m.Disp}) }

// LeaRIP emits lea addr(%rip),%dst.
func (a *Asm) LeaRIP(dst Reg, addr uint64) { a.emit(opLeaRIP, operands{reg: dst, target: addr}) }

// Load emits mov m,%dst (64-bit).
func (a *Asm) Load(dst Reg, m Mem) { a.emit(opLoad, operands{reg: dst, rm: m.Base, disp: m.Disp}) }

// LoadRIP emits mov addr(%rip),%dst (64-bit).
func (a *Asm) LoadRIP(dst Reg, addr uint64) { a.emit(opLoadRIP, operands{reg: dst, target: addr}) }

// Store emits mov %src,m (64-bit).
func (a *Asm) Store(m Mem, src Reg) { a.emit(opStore, operands{reg: src, rm: m.Base, disp: m.Disp}) }

// Mov emits mov %src,%dst (64-bit).
func (a *Asm) Mov(dst, src Reg) { a.emit(opMov, operands{reg: src, rm: dst}) }

// MovImm32 emits mov $v,%dst32, which zero-extends into %dst.
func (a *Asm) MovImm32(dst Reg, v uint32) { a.emit(opMovImm32, operands{reg: dst, imm: int64(v)}) }

// MovImm64 emits movabs $v,%dst.
func (a *Asm) MovImm64(dst Reg, v uint64) { a.emit(opMovImm64, operands{reg: dst, imm: int64(v)}) }

// AndImm8 emits and $v,%dst (64-bit, v sign-extended): and $-16,%rsp
// aligns the stack.
func (a *Asm) AndImm8(dst Reg, v int8) { a.emit(opAndImm8, operands{rm: dst, imm: int64(v)}) }

// Test emits test %y,%x (64-bit).
func (a *Asm) Test(x, y Reg) { a.emit(opTest, operands{reg: y, rm: x}) }

// CmpRIPImm8 emits cmpq $v,addr(%rip).
func (a *Asm) CmpRIPImm8(addr uint64, v int8) {
	a.emit(opCmpRIPImm8, operands{target: addr, imm: int64(v)})
}

// CmpRegRIP emits cmp addr(%rip),%r (64-bit): the flags of %r - [addr].
func (a *Asm) CmpRegRIP(r Reg, addr uint64) { a.emit(opCmpRegRIP, operands{reg: r, target: addr}) }

// CmpMemImm32 emits cmpl $v,disp(%base) (32-bit): the flags of the word
// at m - v. Always the imm32 form, as GNU as encodes a v outside int8.
func (a *Asm) CmpMemImm32(m Mem, v int32) {
	a.emit(opCmpMemImm32, operands{rm: m.Base, disp: m.Disp, imm: int64(v)})
}

// CmpMem8Imm8 emits cmpb $v,disp(%base): the flags of the byte at m
// against v (a bytecode's opcode, read where it lies).
func (a *Asm) CmpMem8Imm8(m Mem, v uint8) {
	a.emit(opCmpMem8Imm8, operands{rm: m.Base, disp: m.Disp, imm: int64(v)})
}

// CmpReg32Imm32 emits cmp $v,%r32: the flags of r's low 32 bits against v,
// in GNU as's short form for %eax.
func (a *Asm) CmpReg32Imm32(r Reg, v int32) {
	if r == RAX {
		a.emit(opCmpEAXImm32, operands{imm: int64(v)})
		return
	}
	a.emit(opCmpReg32Imm32, operands{rm: r, imm: int64(v)})
}

// SubRIPImm8 emits subq $v,addr(%rip).
func (a *Asm) SubRIPImm8(addr uint64, v int8) {
	a.emit(opSubRIPImm8, operands{target: addr, imm: int64(v)})
}

// StoreRIP emits mov %src,addr(%rip).
func (a *Asm) StoreRIP(addr uint64, src Reg) { a.emit(opStoreRIP, operands{reg: src, target: addr}) }

// Call emits call rel32 to target.
func (a *Asm) Call(target uint64) { a.emit(opCall, operands{target: target}) }

// CallLabel emits call rel32 to l.
func (a *Asm) CallLabel(l Label) { a.emit(opCall, operands{label: l, toLabel: true}) }

// CallRIP emits call *slot(%rip): a call through the 8-byte pointer at slot.
func (a *Asm) CallRIP(slot uint64) { a.emit(opCallRIP, operands{target: slot}) }

// CallReg emits call *%r.
func (a *Asm) CallReg(r Reg) { a.emit(opCallReg, operands{rm: r}) }

// Jmp emits jmp rel32 to target.
func (a *Asm) Jmp(target uint64) { a.emit(opJmp, operands{target: target}) }

// JmpLabel emits jmp rel32 to l.
func (a *Asm) JmpLabel(l Label) { a.emit(opJmp, operands{label: l, toLabel: true}) }

// JmpRIP emits jmp *slot(%rip).
func (a *Asm) JmpRIP(slot uint64) { a.emit(opJmpRIP, operands{target: slot}) }

// JmpReg emits jmp *%r.
func (a *Asm) JmpReg(r Reg) { a.emit(opJmpReg, operands{rm: r}) }

// Jcc emits jcc rel32 (0F 80+c) to target.
func (a *Asm) Jcc(c Cond, target uint64) { a.emit(opJcc, operands{cond: c, target: target}) }

// JccLabel emits jcc rel32 (0F 80+c) to l.
func (a *Asm) JccLabel(c Cond, l Label) { a.emit(opJcc, operands{cond: c, label: l, toLabel: true}) }

// Xsave64 emits xsave64 m: saves the state components selected by
// %edx:%eax to m, which must be 64-byte aligned.
func (a *Asm) Xsave64(m Mem) { a.emit(opXsave64, operands{rm: m.Base, disp: m.Disp}) }

// Xrstor64 emits xrstor64 m.
func (a *Asm) Xrstor64(m Mem) { a.emit(opXrstor64, operands{rm: m.Base, disp: m.Disp}) }

// Ret emits ret.
func (a *Asm) Ret() { a.emit(opRet, operands{}) }

// Int3 emits int3.
func (a *Asm) Int3() { a.emit(opInt3, operands{}) }

// nops are the recommended multi-byte NOPs (Intel SDM vol. 2, NOP), by
// length.
var nops = [10][]byte{
	1: {0x90},
	2: {0x66, 0x90},
	3: {0x0F, 0x1F, 0x00},
	4: {0x0F, 0x1F, 0x40, 0x00},
	5: {0x0F, 0x1F, 0x44, 0x00, 0x00},
	6: {0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00},
	7: {0x0F, 0x1F, 0x80, 0x00, 0x00, 0x00, 0x00},
	8: {0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
	9: {0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
}

// Nop emits n bytes of NOPs: 9-byte NOPs, then one of the remaining
// length (as GNU as does for .nops n, 9).
func (a *Asm) Nop(n int) {
	if n < 0 {
		a.fail(a.PC(), "nop", ErrBadOperand)
		return
	}
	for ; n > 9; n -= 9 {
		a.buf = append(a.buf, nops[9]...)
	}
	a.buf = append(a.buf, nops[n]...)
}

// Raw appends b unchanged (a relocated instruction, data).
func (a *Asm) Raw(b []byte) { a.buf = append(a.buf, b...) }

// Bytes resolves every rel32 and %rip displacement and returns a copy of
// the code. It fails with the first error recorded, or with an *Error
// wrapping ErrUnbound or ErrRange.
func (a *Asm) Bytes() ([]byte, error) {
	if a.err != nil {
		return nil, a.err
	}
	out := slices.Clone(a.buf)
	for _, f := range a.fixups {
		target := f.target
		if f.label.a != nil {
			off := a.labels[f.label.n]
			if off < 0 {
				return nil, &Error{PC: f.pc, Inst: f.name, Err: ErrUnbound}
			}
			target = a.base + uint64(off)
		}
		d, err := rel32(a.base+uint64(f.end), target)
		if err != nil {
			return nil, &Error{PC: f.pc, Inst: f.name, Err: err}
		}
		binary.LittleEndian.PutUint32(out[f.at:], uint32(d))
	}
	return out, nil
}

// JmpRel32 returns the 5-byte jmp rel32 placed at from that jumps to to.
func JmpRel32(from, to uint64) ([]byte, error) {
	a := New(from)
	a.Jmp(to)
	return a.Bytes()
}

// CallRel32 returns the 5-byte call rel32 placed at from that calls to.
func CallRel32(from, to uint64) ([]byte, error) {
	a := New(from)
	a.Call(to)
	return a.Bytes()
}
