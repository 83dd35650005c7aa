package tracevm

import (
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"golang.org/x/arch/x86/x86asm"
)

// Vector copies through general registers. An interpreter with 16-byte
// values moves each one with an SSE load and store (a push, a store to a
// local), and the value then passes from store to load through memory at
// every bytecode. The processor forwards a vector store to a vector load
// in about 5 cycles, a vector store to a general load or back in about as
// many, while general stores and loads of one location are renamed at no
// cost (measured on the development machine; a VM count loop's replica:
// 17 cycles an iteration with vector copies, 7 with general ones). Where
// a copy's load and store are a few ops apart in a trace and two general
// registers are free between them, pairVectorCopies moves the value
// through those instead: two 8-byte loads and two 8-byte stores. The
// registers it takes are ones whose values the trace knows there: the
// generator sets them again where they are read and at every exit
// (virtual registers), so the machine state each exit leaves is
// unchanged. The vector register is loaded too unless it is written again
// before anything (an exit included) could read it.

// vecPair is one op of a pair: the load (registers a, b take its halves)
// or the store.
type vecPair struct {
	code  []byte // the general loads or stores the op is emitted as
	reads uint16 // the general registers code reads (its address)
	store bool
	// keep: the load loads the vector register too (its own code, or
	// its split form: widesplit.go).
	keep bool
	a, b x86enc.Reg
	va   uint64 // the load: the values a and b hold for the interpreter
	vb   uint64
}

// pairWindow: how many ops after a load its store may come.
const pairWindow = 24

// pairVectorCopies sets p.pairs for the vector copies of ops it moves
// through general registers (above) and returns how many.
func pairVectorCopies(ops []op, p *plan) int {
	if p == nil || p.known == nil {
		return 0
	}
	n := 0
	for i := 0; i < len(ops); i++ {
		j, ok := pairOne(ops, p, i)
		if ok {
			n++
			i = j // pairs never overlap: each owns its registers
		}
	}
	return n
}

// plainOp returns op i's instruction when it is emitted as recorded (not
// dropped, speculated on, replaced, re-encoded or left out).
func plainOp(ops []op, p *plan, i int) (*x86dec.Inst, bool) {
	if ops[i].kind != opInsn || p.drop[i] || p.replaced[i] {
		return nil, false
	}
	if _, ok := p.spec[i]; ok {
		return nil, false
	}
	if _, ok := p.rewrite[i]; ok {
		return nil, false
	}
	inst := p.inst(i)
	return inst, inst != nil
}

// pairOne pairs the load at op i with its store, if it can, and returns
// the store's op.
func pairOne(ops []op, p *plan, i int) (int, bool) {
	if inst := p.inst(i); ops[i].kind != opInsn || inst == nil || !wideLoad(inst) {
		return 0, false // most ops: no map lookups
	}
	ld, ok := plainOp(ops, p, i)
	if !ok {
		return 0, false
	}
	x := ld.Args[0].(x86asm.Reg)
	lm, ok := parseMemInsn(ops[i].code)
	if !ok || lm.rip || lm.seg != 0 {
		return 0, false
	}
	busy, _ := reads(ld) // the load's address
	exits := false
	j := i + 1
	for ; j < len(ops) && j <= i+pairWindow; j++ {
		if g, ok := p.postAt(j); ok {
			busy |= 1 << g.reg
			exits = true
		}
		o := &ops[j]
		if o.kind == opGuard {
			exits = true
			continue
		}
		if o.kind != opInsn {
			return 0, false
		}
		if p.drop[j] {
			w, all := writes(p.inst(j))
			if all {
				return 0, false
			}
			busy |= w
			continue
		}
		inst := p.inst(j)
		if rw, ok := p.rewrite[j]; ok {
			if rw.code == nil {
				continue
			}
			inst = rw.inst
		}
		if st, ok := plainOp(ops, p, j); ok && vectorStoreOf(st, x) {
			break
		}
		if _, ok := p.spec[j]; ok {
			exits = true
		}
		if touchesVector(inst, x) {
			return 0, false
		}
		r, rall := reads(inst)
		w, wall := writes(inst)
		if rall || wall {
			return 0, false
		}
		busy |= r | w
	}
	if j >= len(ops) || j > i+pairWindow {
		return 0, false
	}
	st := p.inst(j)
	sm, ok := parseMemInsn(ops[j].code)
	if !ok || sm.rip || sm.seg != 0 {
		return 0, false
	}
	sr, _ := reads(st)
	busy |= sr | 1<<x86enc.RSP
	known := p.known.at(i) // a copy: ref's is reused by the next state read
	var free []x86enc.Reg
	for r := x86enc.Reg(0); r < 16; r++ {
		if busy&(1<<r) == 0 && known[r].known && p.certainAt(known[r].deps, i) {
			free = append(free, r)
		}
	}
	if len(free) < 2 {
		return 0, false
	}
	a, b := pickScratch(ops, p, j, free)
	va, vb := known[a].v, known[b].v
	atStore := p.known.at(j)
	loadCode, lr, ok1 := pairForm(0x8b, a, b, ld, lm, &known)
	storeCode, sr, ok2 := pairForm(0x89, a, b, st, sm, &atStore)
	if !ok1 || !ok2 {
		return 0, false
	}
	keep := exits || vectorReadAfter(ops, p, j, x)
	if p.pairs == nil {
		p.pairs = make(map[int]vecPair)
	}
	p.pairs[i] = vecPair{code: loadCode, reads: lr, keep: keep, a: a, b: b, va: va, vb: vb}
	p.pairs[j] = vecPair{code: storeCode, reads: sr, store: true, a: a, b: b}
	return j, true
}

// pairForm encodes the two 64-bit movs (opc 0x8b: loads into a and b,
// 0x89: stores of them) of the low and high halves of inst's memory
// operand (m, parsed), and returns the general registers they read. An
// index register known before inst goes into the displacement, so that
// the generator need not set it.
func pairForm(opc byte, a, b x86enc.Reg, inst *x86dec.Inst, m memInsn, known *[16]val) ([]byte, uint16, bool) {
	mem, _ := memArg(inst).(x86asm.Mem)
	base, bsize, bok := gpr(mem.Base)
	index, isize, iok := gpr(mem.Index)
	if bok && iok && bsize == 8 && isize == 8 && known[index].known {
		d := mem.Disp + int64(known[index].v)*int64(mem.Scale)
		if d == int64(int32(d)) && d+8 == int64(int32(d+8)) {
			as := x86enc.New(0)
			for k, r := range []x86enc.Reg{a, b} {
				at := x86enc.Mem{Base: base, Disp: int32(d) + int32(8*k)}
				if opc == 0x8b {
					as.Load(r, at)
				} else {
					as.Store(at, r)
				}
			}
			if code, err := as.Bytes(); err == nil {
				return code, 1 << base, true
			}
		}
	}
	lo, ok1 := gprMemForm(opc, a, m, 0)
	hi, ok2 := gprMemForm(opc, b, m, 8)
	r, _ := reads(inst)
	return append(lo, hi...), r, ok1 && ok2
}

// pickScratch chooses two of free (at least two), those the ops after j
// write before they read first: the generator need not set them again.
func pickScratch(ops []op, p *plan, j int, free []x86enc.Reg) (x86enc.Reg, x86enc.Reg) {
	var dead uint16
	var seen uint16
	for k := j + 1; k < len(ops) && k <= j+pairWindow; k++ {
		if ops[k].kind != opInsn {
			break
		}
		inst := p.inst(k)
		r, rall := reads(inst)
		w, wall := writes(inst)
		if rall || wall {
			break
		}
		dead |= w &^ r &^ seen
		seen |= r | w
	}
	var pick []x86enc.Reg
	for _, want := range []bool{true, false} {
		for _, r := range free {
			if (dead&(1<<r) != 0) == want && len(pick) < 2 {
				pick = append(pick, r)
			}
		}
	}
	return pick[0], pick[1]
}

// vectorStoreOf: inst stores all 16 bytes of xmm register x to memory
// (legacy encoding).
func vectorStoreOf(inst *x86dec.Inst, x x86asm.Reg) bool {
	switch inst.Op {
	case x86asm.MOVDQU, x86asm.MOVDQA, x86asm.MOVUPS, x86asm.MOVAPS, x86asm.MOVUPD, x86asm.MOVAPD:
	default:
		return false
	}
	_, isMem := inst.Args[0].(x86asm.Mem)
	r, isReg := inst.Args[1].(x86asm.Reg)
	return isMem && isReg && r == x && inst.MemBytes == 16
}

// touchesVector: inst may read or write vector register x (or every one).
func touchesVector(inst *x86dec.Inst, x x86asm.Reg) bool {
	return vectorRegs(inst)&(1<<(x-x86asm.X0)) != 0
}

// vectorRegs returns the vector registers inst may read or write, bit k
// for xmm<k> (or ymm<k>): all of them for an instruction whose vector
// operands are implicit.
func vectorRegs(inst *x86dec.Inst) uint16 {
	if inst.Special != x86dec.SpecialNone || implicitVector.has(inst.Op) {
		return allRegs
	}
	var m uint16
	for _, a := range inst.Args {
		if a == nil {
			break
		}
		switch r, ok := a.(x86asm.Reg); {
		case !ok:
		case r >= x86asm.X0 && r <= x86asm.X15:
			m |= 1 << (r - x86asm.X0)
		case r >= x86asm.Y0 && r <= x86asm.Y15:
			m |= 1 << (r - x86asm.Y0)
		}
	}
	switch inst.Op {
	case x86asm.VZEROUPPER, x86asm.VZEROALL, x86asm.FXRSTOR, x86asm.FXRSTOR64, x86asm.XRSTOR, x86asm.XRSTOR64:
		return allRegs
	case x86asm.BLENDVPS, x86asm.BLENDVPD, x86asm.PBLENDVB, x86asm.SHA256RNDS2:
		m |= 1 // %xmm0, an operand they do not name
	}
	return m
}

// vectorReadAfter reports whether vector register x may be read after op
// j (an exit, a call or an unknown instruction may read it) before an
// instruction only writes it.
func vectorReadAfter(ops []op, p *plan, j int, x x86asm.Reg) bool {
	for k := j + 1; k < len(ops) && k <= j+pairWindow; k++ {
		if p.drop[k] {
			continue // not emitted: reads nothing, leaves nowhere
		}
		if ops[k].kind != opInsn {
			return true
		}
		if _, ok := p.spec[k]; ok {
			return true
		}
		if _, ok := p.postAt(k); ok {
			return true
		}
		inst := p.inst(k)
		if !touchesVector(inst, x) {
			continue
		}
		// A whole load of x, or a copy into it, writes it without reading.
		if wideLoad(inst) && inst.Args[0] == x {
			return false
		}
		return true
	}
	return true
}

// gprMemForm encodes a 64-bit mov (opc 0x8b: load into r, 0x89: store r)
// with m's memory operand, its displacement plus d.
func gprMemForm(opc byte, r x86enc.Reg, m memInsn, d int64) ([]byte, bool) {
	mem, modrm := m.mem, m.modrm
	if d != 0 {
		var ok bool
		if mem, modrm, ok = dispPlus(m.modrm, m.mem, d); !ok {
			return nil, false
		}
	}
	rex := byte(0x48) | m.rex&0x03
	if r >= 8 {
		rex |= 0x04
	}
	out := []byte{rex, opc, modrm&^0x38 | byte(r&7)<<3}
	out = append(out, mem...)
	return out, true
}

// pairAt returns op i's part in a pair (nil plan: none).
func (p *plan) pairAt(i int) (vecPair, bool) {
	if p == nil {
		return vecPair{}, false
	}
	v, ok := p.pairs[i]
	return v, ok
}
