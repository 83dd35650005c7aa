package tracevm

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
)

// emitter appends the few instruction forms generated code needs, at a
// known final address (base), with rel32 references to labels (exit stubs,
// literals, the trace head) fixed up by finish. Register and memory forms
// are spelled out byte by byte: emit_test.go checks each against the
// decoder and GNU as.
type emitter struct {
	base   uint64
	buf    []byte
	labels []int // offset of each label, -1 while unbound
	fixups []fixup
	tls    uint32 // %fs offset of struct tv_tls
	refs   []refFixup
	err    error
	// Scratch of Machine.generate, kept with the emitter for reuse.
	exitLabels []label
	exitSlab   []regValue
	exitSpans  [][2]int32
	// exitKnown[exitKnownSpans[i]]: what exit i knows for a side trace
	// of it (sideEntry.known).
	exitKnown      []regValue
	exitKnownSpans [][2]int32
	// exitStack[exitStackSpans[i]]: the stack values exit i knows.
	exitStack      []memValue
	exitStackSpans [][2]int32
	// Its results, valid until the next generate with this emitter.
	patch, periodic []int
	origs           []uint64
	stacks          [][]uint64
	// blockLits: the recorder's literals of one block.
	blockLits []pendingLit
	// peelExit and body2: where generate began a root trace's peeled
	// copy, its first exit and its offset (-1: not peeled); carried: the
	// registers the copy starts with virtual (carriedRegs), which a side
	// trace entering it must hold.
	peelExit, body2 int
	carried         []regValue
	// headExits: the first and past-the-last exit of the head guards on
	// registers (the entry state a trace is specialised on).
	headExits [2]int
	// risky: the exits of guards on values only the concrete runs found
	// (respec.go), with the original address of the load each checks.
	risky []riskyExit
	// phys, physKnown: what the registers of physKnown hold where the
	// code is being appended, as setConst left them: a register set
	// again is set by lea from its old value (4 bytes, not a 10-byte
	// movabs: CPython's stack and instruction pointers, set before each
	// bytecode's accesses). A label (a jump may land there), and any
	// code the generator does not declare (physWrote), forget them.
	phys      [16]uint64
	physKnown uint16
}

// refFixup: an imm32 that holds a label's offset from cacheLo.
type refFixup struct {
	at      int
	label   label
	cacheLo uint64
}

type fixup struct {
	at    int // offset of the rel32 field
	end   int // offset just past the instruction (rel32 is relative to it)
	label int
	abs   uint64 // target address when label < 0
}

type label int

func newEmitter(base uint64, tls uint64) *emitter {
	return &emitter{base: base, tls: uint32(tls)}
}

// reset makes e empty at base, keeping its buffers.
func (e *emitter) reset(base uint64) {
	e.base, e.err, e.physKnown = base, nil, 0
	e.buf, e.labels, e.fixups, e.refs = e.buf[:0], e.labels[:0], e.fixups[:0], e.refs[:0]
}

func (e *emitter) pc() uint64 { return e.base + uint64(len(e.buf)) }

func (e *emitter) newLabel() label {
	e.labels = append(e.labels, -1)
	return label(len(e.labels) - 1)
}

func (e *emitter) bind(l label) { e.labels[l], e.physKnown = len(e.buf), 0 }

// physWrote: code that writes the registers of mask was appended.
func (e *emitter) physWrote(mask uint16) { e.physKnown &^= mask }

// setConst sets r to v: lea from what r holds when that is known and
// near, else movImm; no flags touched.
func (e *emitter) setConst(r x86enc.Reg, v uint64) {
	if e.physKnown&(1<<r) != 0 && r != x86enc.RSP {
		d := int64(v - e.phys[r])
		switch {
		case d == 0:
			return
		case d == int64(int32(d)) && r&7 != x86enc.RSP:
			// lea d(%r), %r (%r12 needs a SIB byte: not taken).
			e.bytes(rexW(r, r), 0x8d)
			if d == int64(int8(d)) {
				e.bytes(0x40|byte(r&7)<<3|byte(r&7), byte(int8(d)))
			} else {
				e.bytes(0x80 | byte(r&7)<<3 | byte(r&7))
				e.u32(uint32(int32(d)))
			}
			e.phys[r] = v
			return
		}
	}
	e.movImm(r, v)
	e.phys[r] = v
	e.physKnown |= 1 << r
}

func (e *emitter) bytes(b ...byte) { e.buf = append(e.buf, b...) }

func (e *emitter) u32(v uint32) { e.buf = binary.LittleEndian.AppendUint32(e.buf, v) }

func (e *emitter) u64(v uint64) { e.buf = binary.LittleEndian.AppendUint64(e.buf, v) }

// rel32To appends a rel32 field for an instruction that ends extra bytes
// after it, aimed at label l (or at address abs when l < 0).
func (e *emitter) rel32To(l label, abs uint64, extra int) {
	at := len(e.buf)
	e.u32(0)
	e.fixups = append(e.fixups, fixup{at: at, end: at + 4 + extra, label: int(l), abs: abs})
}

// rex returns a REX prefix with W set and R/B from the register numbers.
func rexW(reg, rm x86enc.Reg) byte {
	b := byte(0x48)
	if reg >= 8 {
		b |= 4
	}
	if rm >= 8 {
		b |= 1
	}
	return b
}

// fsStore: mov %r, %fs:(tls+off).
func (e *emitter) fsStore(r x86enc.Reg, off uint32) {
	e.bytes(0x64, rexW(r, 0), 0x89, byte(r&7)<<3|4, 0x25)
	e.u32(e.tls + off)
}

// fsLoad: mov %fs:(tls+off), %r.
func (e *emitter) fsLoad(r x86enc.Reg, off uint32) {
	e.bytes(0x64, rexW(r, 0), 0x8b, byte(r&7)<<3|4, 0x25)
	e.u32(e.tls + off)
}

// fsStoreImm: movq $imm32, %fs:(tls+off) (sign-extended).
func (e *emitter) fsStoreImm(off uint32, v int32) {
	e.bytes(0x64, 0x48, 0xc7, 0x04, 0x25)
	e.u32(e.tls + off)
	e.u32(uint32(v))
}

// fsJmp: jmp *%fs:(tls+off).
func (e *emitter) fsJmp(off uint32) {
	e.bytes(0x64, 0xff, 0x24, 0x25)
	e.u32(e.tls + off)
}

func (e *emitter) jmpLabel(l label)  { e.bytes(0xe9); e.rel32To(l, 0, 0) }
func (e *emitter) jmpAbs(a uint64)   { e.bytes(0xe9); e.rel32To(-1, a, 0) }
func (e *emitter) callRIP(lit label) { e.bytes(0xff, 0x15); e.rel32To(lit, 0, 0) }
func (e *emitter) pushRIP(lit label) { e.bytes(0xff, 0x35); e.rel32To(lit, 0, 0) }

// jcc: jcc rel32 to l; the rel32 field's offset is returned (for patching).
func (e *emitter) jcc(c x86enc.Cond, l label) int {
	e.bytes(0x0f, 0x80|byte(c))
	at := len(e.buf)
	e.rel32To(l, 0, 0)
	return at
}

// alignRel32 pads with a nop, when needed, so that the rel32 field of an
// instruction whose field starts prefix bytes in does not cross a 64-byte
// line: a 4-byte store within one line is atomic on x86-64, so the field
// can later be patched while other threads run the code.
func (e *emitter) alignRel32(prefix int) {
	at := (e.pc() + uint64(prefix)) % 64
	if at <= 60 {
		return
	}
	for n := 64 - at; n > 0; {
		k := min(n, 3)
		switch k {
		case 1:
			e.bytes(0x90)
		case 2:
			e.bytes(0x66, 0x90)
		case 3:
			e.bytes(0x0f, 0x1f, 0x00)
		}
		n -= k
	}
}

func (e *emitter) pushImm32(v int32) { e.bytes(0x68); e.u32(uint32(v)) }

// leaRSP: lea d(%rsp), %rsp (no flags touched).
func (e *emitter) leaRSP(d int32) {
	if d >= -128 && d < 128 {
		e.bytes(0x48, 0x8d, 0x64, 0x24, byte(int8(d)))
		return
	}
	e.bytes(0x48, 0x8d, 0xa4, 0x24)
	e.u32(uint32(d))
}

func (e *emitter) andRSP16() { e.bytes(0x48, 0x83, 0xe4, 0xf0) }

// pushReg, popReg: push %r, pop %r.
func (e *emitter) pushReg(r x86enc.Reg) {
	if r >= 8 {
		e.bytes(0x41)
	}
	e.bytes(0x50 | byte(r&7))
}

func (e *emitter) popReg(r x86enc.Reg) {
	if r >= 8 {
		e.bytes(0x41)
	}
	e.bytes(0x58 | byte(r&7))
}

// shr32 is shr $n, %r32 (the upper half of r cleared).
func (e *emitter) shr32(r x86enc.Reg, n uint8) {
	if r >= 8 {
		e.bytes(0x41)
	}
	e.bytes(0xc1, 0xe8|byte(r&7), n)
}

// leaScaled is lea d(%base,%index,scale), %dst, always with a disp32;
// scale is 1, 2, 4 or 8 and index cannot be %rsp.
func (e *emitter) leaScaled(dst, base, index x86enc.Reg, scale int, d int32) {
	rex := byte(0x48)
	if dst >= 8 {
		rex |= 4
	}
	if index >= 8 {
		rex |= 2
	}
	if base >= 8 {
		rex |= 1
	}
	ss := byte(bits.TrailingZeros(uint(scale)))
	e.bytes(rex, 0x8d, 0x84|byte(dst&7)<<3, ss<<6|byte(index&7)<<3|byte(base&7))
	e.u32(uint32(d))
}

// zext32 is mov %r32, %r32: the upper half of r cleared.
func (e *emitter) zext32(r x86enc.Reg) {
	if r >= 8 {
		e.bytes(0x45)
	}
	e.bytes(0x89, 0xc0|byte(r&7)<<3|byte(r&7))
}

// neg64 is neg %r.
func (e *emitter) neg64(r x86enc.Reg) {
	rex := byte(0x48)
	if r >= 8 {
		rex |= 1
	}
	e.bytes(rex, 0xf7, 0xd8|byte(r&7))
}

func (e *emitter) movEAX0() { e.bytes(0xb8, 0, 0, 0, 0) }

// saveFlags: lahf; seto %al (needs %rax free).
func (e *emitter) saveFlags() { e.bytes(0x9f, 0x0f, 0x90, 0xc0) }

// restoreFlags: add $0x7f, %al (OF = al's saved bit); sahf.
func (e *emitter) restoreFlags() { e.bytes(0x04, 0x7f, 0x9e) }

// leaRCXDisp: lea d(%rcx), %rcx.
func (e *emitter) leaRCXDisp(d int32) { e.bytes(0x48, 0x8d, 0x89); e.u32(uint32(d)) }

// loadR11RIP: mov lit(%rip), %r11.
func (e *emitter) loadR11RIP(lit label) { e.bytes(0x4c, 0x8b, 0x1d); e.rel32To(lit, 0, 0) }

// leaRCXplusRAX: lea (%rcx,%rax), %rcx.
func (e *emitter) leaRCXplusRAX() { e.bytes(0x48, 0x8d, 0x0c, 0x01) }

// leaRCXplusR11: lea (%rcx,%r11), %rcx.
func (e *emitter) leaRCXplusR11() { e.bytes(0x4a, 0x8d, 0x0c, 0x19) }

// movImm: set r to v (mov $imm32 zero- or sign-extended, or movabs); no
// flags touched.
func (e *emitter) movImm(r x86enc.Reg, v uint64) {
	switch {
	case v <= 0xffffffff:
		if r >= 8 {
			e.bytes(0x41)
		}
		e.bytes(0xb8 | byte(r&7))
		e.u32(uint32(v))
	case int64(v) == int64(int32(v)):
		e.bytes(rexW(0, r), 0xc7, 0xc0|byte(r&7))
		e.u32(uint32(v))
	default:
		e.bytes(rexW(0, r), 0xb8|byte(r&7))
		e.u64(v)
	}
}

// cmpRegRIP: cmp lit(%rip), %r.
func (e *emitter) cmpRegRIP(r x86enc.Reg, lit label) {
	e.bytes(rexW(r, 0), 0x3b, byte(r&7)<<3|5)
	e.rel32To(lit, 0, 0)
}

// cmpAbsImm: cmp $v, a(%rip) on size bytes (1, 2, 4, or 8 with v
// sign-extended), with an 8-bit immediate when v fits one; a must be
// within rel32 reach (reachRIP).
func (e *emitter) cmpAbsImm(a uint64, size int, v int32) {
	e.cmpMemImm(0x3d, func(immBytes int) { e.rel32To(-1, a, immBytes) }, size, v)
}

// cmpRAXDispImm: cmp $v, d(%rax), as cmpAbsImm; always a disp32.
func (e *emitter) cmpRAXDispImm(d int32, size int, v int32) {
	e.cmpMemImm(0xb8, func(int) { e.u32(uint32(d)) }, size, v)
}

// cmpMemImm emits cmp $v on size bytes of a memory operand with a 4-byte
// field: modrm (reg /7) and field, which writes the field knowing the
// length of the immediate after it.
func (e *emitter) cmpMemImm(modrm byte, field func(immBytes int), size int, v int32) {
	switch size {
	case 1:
		e.bytes(0x80, modrm)
		field(1)
		e.bytes(byte(v))
		return
	case 2:
		e.bytes(0x66)
		v = int32(int16(v))
	case 8:
		e.bytes(0x48)
	}
	if v == int32(int8(v)) {
		e.bytes(0x83, modrm)
		field(1)
		e.bytes(byte(v))
		return
	}
	e.bytes(0x81, modrm)
	if size == 2 {
		field(2)
		e.bytes(byte(v), byte(v>>8))
		return
	}
	field(4)
	e.u32(uint32(v))
}

// incbRIPAbs: incb a(%rip).
func (e *emitter) incbRIPAbs(a uint64) { e.bytes(0xfe, 0x05); e.rel32To(-1, a, 0) }

// movbRIPAbs: movb $v, a(%rip).
func (e *emitter) movbRIPAbs(a uint64, v uint8) {
	e.bytes(0xc6, 0x05)
	e.rel32To(-1, a, 1)
	e.bytes(v)
}

// reachRIP reports whether a %rip operand of an instruction starting at
// the cursor (at most 16 bytes long) reaches a.
func (e *emitter) reachRIP(a uint64) bool {
	d := int64(a - e.pc())
	return d > math.MinInt32+16 && d < math.MaxInt32
}

// loadRAXAt: %rax = the size bytes at (%rax), zero-extended.
func (e *emitter) loadRAXAt(size int) {
	switch size {
	case 1:
		e.bytes(0x0f, 0xb6, 0x00)
	case 2:
		e.bytes(0x0f, 0xb7, 0x00)
	case 4:
		e.bytes(0x8b, 0x00)
	default:
		e.bytes(0x48, 0x8b, 0x00)
	}
}

// cmpRegImm32: cmp $imm32, %r (sign-extended).
func (e *emitter) cmpRegImm32(r x86enc.Reg, v int32) {
	e.bytes(rexW(0, r), 0x81, 0xf8|byte(r&7))
	e.u32(uint32(v))
}

// jrcxz8: jrcxz over n bytes.
func (e *emitter) jrcxz8(n int) { e.bytes(0xe3, byte(int8(n))) }

// indirectCandidate generates the test of one target of an indirect
// jump: load is the jump's operand loaded into %rcx (loadJumpTarget) for
// the address it gets; if the jump would go to target, it runs a chain
// stub (edge, hdr, next, back: chainStub), else it jumps to miss. The
// flags are untouched: %rcx and %rax are spilled to the thread's scratch
// slots, the target subtracted with lea, tested with jrcxz. false: the
// operand cannot be loaded from here.
func (e *emitter) indirectCandidate(code []byte, from, target uint64, edge uint32, hdr, next, back, miss uint64) bool {
	e.fsStore(x86enc.RCX, tlsScratch)
	e.fsStore(x86enc.RAX, tlsScratch+8)
	load, ok := loadJumpTarget(code, from, e.pc())
	if !ok {
		return false
	}
	e.bytes(load...)
	e.movImm(x86enc.RAX, -target)
	e.leaRCXplusRAX()
	e.fsLoad(x86enc.RAX, tlsScratch+8)
	hit := len(e.buf)
	e.jrcxz8(0)
	e.fsLoad(x86enc.RCX, tlsScratch)
	e.jmpAbs(miss)
	e.buf[hit+1] = byte(len(e.buf) - (hit + 2))
	e.fsLoad(x86enc.RCX, tlsScratch)
	e.chainStub(edge, hdr, next, back)
	return true
}

// jmpNext: jmp +0 (a rel32 to the next instruction, to be linked later);
// returns the jump's offset.
func (e *emitter) jmpNext() int {
	at := len(e.buf)
	e.bytes(0xe9, 0, 0, 0, 0)
	return at
}

// movRCXFromAbs: mov a(%rip), %rcx; movRCXToAbs: mov %rcx, a(%rip).
func (e *emitter) movRCXFromAbs(a uint64) { e.bytes(0x48, 0x8b, 0x0d); e.rel32To(-1, a, 0) }
func (e *emitter) movRCXToAbs(a uint64)   { e.bytes(0x48, 0x89, 0x0d); e.rel32To(-1, a, 0) }

// movlImmAtRCX: movl $v, (%rcx).
func (e *emitter) movlImmAtRCX(v uint32) { e.bytes(0xc7, 0x01); e.u32(v) }

// chainStub generates a recorder chain stub: if the log whose cursor and
// room are at hdr, hdr+8 has room, it appends edge to it and jumps to
// next; otherwise it jumps to back (the event the edge had). Neither the
// flags nor the stack are touched: %rcx is spilled to the thread's
// scratch slot, jrcxz tests the room.
func (e *emitter) chainStub(edge uint32, hdr, next, back uint64) {
	e.fsStore(x86enc.RCX, tlsScratch)
	e.movRCXFromAbs(hdr + 8)
	full := len(e.buf)
	e.jrcxz8(0)
	body := len(e.buf)
	e.leaRCXDisp(-1)
	e.movRCXToAbs(hdr + 8)
	e.movRCXFromAbs(hdr)
	e.movlImmAtRCX(edge)
	e.leaRCXDisp(4)
	e.movRCXToAbs(hdr)
	e.fsLoad(x86enc.RCX, tlsScratch)
	e.jmpAbs(next)
	e.buf[full+1] = byte(len(e.buf) - body)
	e.fsLoad(x86enc.RCX, tlsScratch)
	e.jmpAbs(back)
}

// incRIPAbs: incq addr(%rip) (clobbers the flags).
func (e *emitter) incRIPAbs(a uint64) { e.bytes(0x48, 0xff, 0x05); e.rel32To(-1, a, 0) }

// periodicExit: addw $periodStep, tick(%rip); jz exit, aligned like any
// guard (the flags are dead). The 16-bit tick wraps to 0 once every
// periodTicks times. Returns the offset of the jump's rel32.
func (e *emitter) periodicExit(tick uint64, exit label) int {
	e.bytes(0x66, 0x83, 0x05)
	e.rel32To(-1, tick, 1)
	e.bytes(periodStep)
	e.alignRel32(2)
	return e.jcc(x86enc.E, exit)
}

// exitIfSet: cmpb $0, flag(%rip); jne exit, aligned like any guard (the
// flags are dead: see periodicExit). Returns the offset of the jump's
// rel32.
func (e *emitter) exitIfSet(flag uint64, exit label) int {
	e.cmpAbsImm(flag, 1, 0)
	e.alignRel32(2)
	return e.jcc(x86enc.NE, exit)
}

// A loop's traces leave through the original dispatch once every
// periodTicks iterations: a few nanoseconds in 4096 iterations.
const (
	periodStep  = 16
	periodTicks = 1 << 16 / periodStep
)

// literal binds a new label to an 8-byte value (call after the code).
func (e *emitter) literal(v uint64) label {
	for len(e.buf)%8 != 0 {
		e.bytes(0xcc)
	}
	l := e.newLabel()
	e.bind(l)
	e.u64(v)
	return l
}

// finish resolves every rel32 and returns the code.
func (e *emitter) finish() ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	for _, f := range e.fixups {
		var target uint64
		if f.label >= 0 {
			off := e.labels[f.label]
			if off < 0 {
				return nil, fmt.Errorf("tracevm: emitter: label %d not bound", f.label)
			}
			target = e.base + uint64(off)
		} else {
			target = f.abs
		}
		d := int64(target - (e.base + uint64(f.end)))
		if d != int64(int32(d)) {
			return nil, fmt.Errorf("tracevm: emitter: %#x out of rel32 reach of %#x", target, e.base+uint64(f.end))
		}
		binary.LittleEndian.PutUint32(e.buf[f.at:], uint32(int32(d)))
	}
	for _, f := range e.refs {
		if e.labels[f.label] < 0 {
			return nil, fmt.Errorf("tracevm: emitter: label %d not bound", f.label)
		}
		off := e.base + uint64(e.labels[f.label]) - f.cacheLo
		if off >= 1<<31 {
			return nil, fmt.Errorf("tracevm: emitter: literal %#x too far from the cache start", off)
		}
		binary.LittleEndian.PutUint32(e.buf[f.at:], uint32(off))
	}
	return e.buf, nil
}

// Offsets of struct tv_tls (tv.h), checked against C by a test.
const (
	tlsGPR     = 0
	tlsFlags   = 128
	tlsNext    = 136
	tlsExit    = 144
	tlsScratch = 152
	tlsRef     = 224
)

// emitSwitchOut generates the stub every block end and trace exit jumps
// to with the reason in tls.exit: it saves the general registers and the
// flags into the thread's tv_tls, calls tv_switch 128 bytes below the
// interpreter's %rsp on a 16-byte aligned stack, restores everything it
// saved (tv_switch may have changed it) and jumps to tls.next.
func emitSwitchOut(e *emitter, handler uint64) {
	for r := x86enc.RAX; r <= x86enc.R15; r++ {
		e.fsStore(r, tlsGPR+8*uint32(r))
	}
	e.saveFlags()
	e.fsStore(x86enc.RAX, tlsFlags)
	e.leaRSP(-128)
	e.andRSP16()
	lit := e.newLabel()
	e.callRIP(lit)
	e.fsLoad(x86enc.RAX, tlsFlags)
	e.restoreFlags()
	for r := x86enc.RAX; r <= x86enc.R15; r++ {
		e.fsLoad(r, tlsGPR+8*uint32(r))
	}
	e.fsJmp(tlsNext)
	for len(e.buf)%8 != 0 {
		e.bytes(0xcc)
	}
	e.bind(lit)
	e.u64(handler)
}

// emitEvent generates: movq $ev, %fs:tls.exit; jmp switchOut.
func emitEvent(e *emitter, ev int32, switchOut uint64) {
	e.fsStoreImm(tlsExit, ev)
	e.jmpAbs(switchOut)
}

// emitRecEvent generates a recorder event of a block: it also stores the
// offset (from the cache's start) of a literal holding resume, the
// original address the saved state belongs to.
func emitRecEvent(e *emitter, ev int32, switchOut, cacheLo, resume uint64, lits *[]pendingLit) {
	l := e.newLabel()
	*lits = append(*lits, pendingLit{l, resume})
	e.fsStoreImm(tlsExit, ev)
	e.refs = append(e.refs, refFixup{at: len(e.buf) + 9, label: l, cacheLo: cacheLo})
	e.fsStoreImm(tlsRef, 0)
	e.jmpAbs(switchOut)
}

// jumpOperand parses the indirect jump code (jmp *OPERAND, ff /4) for
// loadJumpTarget: its REX prefix (0 none) and the offset of its ff
// opcode; ok false for the forms loadJumpTarget does not take.
func jumpOperand(code []byte) (rex byte, at int, ok bool) {
	for at < len(code) && (code[at] == 0x3e || code[at] == 0xf2) {
		at++
	}
	if at < len(code) && code[at]&0xf0 == 0x40 {
		rex = code[at]
		at++
	}
	if rex&0x08 != 0 || at+2 > len(code) || code[at] != 0xff || code[at+1]>>3&7 != 4 {
		return 0, 0, false
	}
	return rex, at, true
}

// loadJumpTarget returns `mov OPERAND, %rcx` for the indirect jump code
// (jmp *OPERAND, ff /4, at address from), to run at address at: what the
// jump would jump to, in %rcx. false for forms it does not take: prefixes
// other than notrack and bnd (which it drops), an operand that is not 64
// bits wide, a %rip-relative one out of reach from at.
func loadJumpTarget(code []byte, from, at uint64) ([]byte, bool) {
	rex, i, ok := jumpOperand(code)
	if !ok {
		return nil, false
	}
	modrm := code[i+1]
	out := make([]byte, 0, len(code)+2)
	out = append(out, 0x48|rex&0x03, 0x8b, modrm&^0x38|1<<3)
	out = append(out, code[i+2:]...)
	if modrm>>6 == 0 && modrm&7 == 5 {
		// %rip-relative: the displacement, the last 4 bytes, is
		// relative to the instruction's end.
		n := len(out)
		disp := int64(int32(binary.LittleEndian.Uint32(out[n-4:])))
		abs := int64(from) + int64(len(code)) + disp
		rel := abs - (int64(at) + int64(n))
		if rel != int64(int32(rel)) {
			return nil, false
		}
		binary.LittleEndian.PutUint32(out[n-4:], uint32(int32(rel)))
	}
	return out, true
}
