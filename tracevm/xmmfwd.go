package tracevm

import (
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"golang.org/x/arch/x86/x86asm"
)

// Doubles forwarded through spare vector registers. An interpreter keeps
// a floating-point result in memory (CPython's float object, a Lua stack
// slot) and the next operation loads it back: on the development machine
// an 8-byte vector store reaches a load of the same place in about 9
// cycles, a general one in about 1 (renamed), so a chain of float
// operations waits on memory at every step, in the interpreter and in a
// trace alike. Where a trace stores a double (or loads one) and loads the
// same 8 bytes again a little later, forwardDoubles keeps a copy in a
// vector register the trace never uses (a spare) and the later load, or
// the arithmetic that reads it from memory, takes the spare instead.
//
// Memory is still read, off the dependency chain: the trace loads the 8
// bytes into another spare and leaves for the original code at the load
// unless they are the copy's (`movq M,%T; pxor %K,%T; ptest %T,%T; jnz`).
// The analysis that pairs a load with a store may therefore be
// optimistic: it relates addresses by value numbers of the general
// registers (a register keeps its number while nothing writes it, and a
// load of what a store wrote gets the stored register's), takes a store
// through a pointer to miss memory at known addresses and a block the
// trace allocated (freelist.go) to miss memory reached through older
// pointers; a wrong guess costs an exit, never a wrong value.
//
// A spare is a register no instruction of the trace names: an
// interpreter's loop head is its dispatch, and a value live across every
// bytecode in a vector register would have to survive the handlers'
// calls, which clobber them all.

// doubleForwards is one plan's forwarding: from[i], the spare op i reads
// its double from; to[i], the spare op i copies the double it stores or
// loads into; temp, the spare the checks load into; carried: the doubles a
// loop's copy finds in spares where it starts (below).
type doubleForwards struct {
	from, to map[int]uint8
	temp     uint8
	carried  []carriedDouble
}

// carriedDouble: a loop copy that loops to itself stores a double at a
// known address and loads it in the next iteration before storing it
// again (a Lua local the loop updates): the copy keeps it in spare reg
// across its close, and whatever enters the copy (the first copy's close,
// a side trace's link) loads it there first.
type carriedDouble struct {
	addr uint64
	reg  uint8
}

// maxCarried bounds the spares a loop copy dedicates to its carried
// doubles.
const maxCarried = 6

// forwardMaxEntries bounds the places the analysis remembers, the most
// recent (a long trace stores thousands of times; what it forwards is a
// few ops apart, and every write scans them).
const forwardMaxEntries = 48

// memKey is where an access goes: a known address (sym false), or the
// value numbers of its base and index registers and its displacement.
type memKey struct {
	sym         bool
	base, index uint32
	scale       uint8
	disp        uint64
}

// fwdEntry is what the analysis knows a place holds: the value number
// of its 8 bytes, from a vector register (vec) or a general one, and the
// op that can copy it into a spare (-1: none).
type fwdEntry struct {
	vn   uint32
	off  int64 // a general value: vn plus off
	size int
	vec  bool
	def  int
}

type fwdUse struct{ use, def int }

// keyed is a remembered place and what it holds.
type keyed struct {
	k memKey
	e fwdEntry
}

// fwdState is the analysis' state at an op.
type fwdState struct {
	// gvn, goff: each general register holds value number gvn plus
	// goff (a stack pointer moved by a constant keeps its number);
	// xvn: the vector registers' (their low 8 bytes).
	gvn, xvn [16]uint32
	goff     [16]int64
	next     uint32
	fresh    map[uint32]bool // value numbers of blocks allocated in the trace
	entries  []keyed         // the places remembered, oldest first
	defs     map[int]memKey  // the ops that defined a double's entry, by op
}

func (s *fwdState) newVN() uint32 { s.next++; return s.next }

// setNew gives general register r a value of its own.
func (s *fwdState) setNew(r x86enc.Reg) { s.gvn[r], s.goff[r] = s.newVN(), 0 }

// general returns what general register r holds, as an entry's value.
func (s *fwdState) general(r x86enc.Reg) fwdEntry {
	return fwdEntry{vn: s.gvn[r], off: s.goff[r], size: 8, def: -1}
}

// forwardDoubles sets p.forwards for ops under plan p (nil: none) and
// returns how many loads it forwards. With carry, ops loop to themselves
// (a peeled copy): doubles stored at known addresses and loaded again in
// the next iteration are carried in spares (carriedDouble).
func forwardDoubles(ops []op, p *plan, carry bool) int {
	if p == nil || p.known == nil {
		return 0
	}
	if !slices.ContainsFunc(p.insts, func(inst *x86dec.Inst) bool { _, ok := loadsDouble(inst); return ok }) {
		return 0 // most traces of object-oriented code: no analysis
	}
	spares, ok := spareVectorRegs(ops, p)
	if !ok || spares&(spares-1) == 0 {
		return 0 // a copy and the checks' register at least
	}
	uses, _, end := walk(ops, p, nil)
	var carried []carriedDouble
	fixed := map[int]uint8{}
	if carry && len(ops) > 0 && ops[len(ops)-1].kind == opClose {
		// The doubles the copy leaves at known addresses where it
		// closes, each in a spare of its own for the whole copy.
		var start []keyed
		for _, ke := range end {
			k, e := ke.k, ke.e
			if k.sym || !e.vec || e.def < 0 || len(carried) == maxCarried || bits.OnesCount16(spares) < 3 {
				continue
			}
			r := highestReg(spares &^ (1 << highestReg(spares)))
			spares &^= 1 << r
			start = append(start, keyed{k, fwdEntry{size: 8, vec: true, def: carriedDef(len(carried))}})
			carried = append(carried, carriedDouble{addr: k.disp, reg: r})
		}
		if len(carried) > 0 {
			var defs map[int]memKey
			uses, defs, _ = walk(ops, p, start)
			carried, spares = keepLoaded(carried, uses, spares)
			for def, k := range defs {
				for _, c := range carried {
					if !k.sym && k.disp == c.addr {
						fixed[def] = c.reg
					}
				}
			}
		}
	}
	if len(uses) == 0 && len(carried) == 0 {
		return 0
	}
	return p.assignSpares(uses, spares, fixed, carried)
}

// loadsDouble returns the vector register inst loads a double from
// memory into (or reads one into, arithmetic), if it does.
func loadsDouble(inst *x86dec.Inst) (uint8, bool) {
	if inst == nil || !doubleLoad.has(inst.Op) || inst.MemBytes != 8 {
		return 0, false
	}
	return vecReg(inst.Args[0])
}

// keepLoaded keeps the carried doubles a load of the copy takes (uses:
// renumbered to match) and gives the others' spares back.
func keepLoaded(carried []carriedDouble, uses []fwdUse, spares uint16) ([]carriedDouble, uint16) {
	loaded := make([]bool, len(carried))
	for _, u := range uses {
		if k, ok := carriedOf(u.def); ok {
			loaded[k] = true
		}
	}
	renumber := make([]int, len(carried))
	var kept []carriedDouble
	for k, c := range carried {
		if loaded[k] {
			renumber[k] = len(kept)
			kept = append(kept, c)
		} else {
			spares |= 1 << c.reg
		}
	}
	for j := range uses {
		if k, ok := carriedOf(uses[j].def); ok {
			uses[j].def = carriedDef(renumber[k])
		}
	}
	return kept, spares
}

// carriedDef marks a use of carried double k (assignSpares); carriedOf
// reads the mark back.
func carriedDef(k int) int { return -2 - k }

func carriedOf(def int) (int, bool) { return -2 - def, def < -1 }

// walk runs the analysis over ops up to their close, from start (doubles
// at known addresses where they start), and returns the loads it
// forwards, the ops that defined a double's entry (store or load) with
// its key, and the entries left at the end.
func walk(ops []op, p *plan, start []keyed) ([]fwdUse, map[int]memKey, []keyed) {
	s := fwdState{fresh: map[uint32]bool{}, defs: map[int]memKey{}}
	for r := range s.gvn {
		s.setNew(x86enc.Reg(r))
		s.xvn[r] = s.newVN()
	}
	for _, ke := range start {
		ke.e.vn = s.newVN()
		s.entries = append(s.entries, ke)
	}
	var uses []fwdUse
	for i := range ops {
		if ops[i].kind == opClose {
			break
		}
		uses = s.step(ops, p, i, uses)
	}
	return uses, s.defs, s.entries
}

// assignSpares gives each op whose value a later load takes a spare from
// spares for as long as it is read (the checks keep one), in op order,
// and records them in p.forwards; a value no spare is free for is not
// forwarded.
func (p *plan) assignSpares(uses []fwdUse, spares uint16, fixed map[int]uint8, carried []carriedDouble) int {
	temp := highestReg(spares)
	spares &^= 1 << temp
	last := map[int]int{} // def -> its last use
	for _, u := range uses {
		last[u.def] = max(last[u.def], u.use)
	}
	fw := &doubleForwards{from: map[int]uint8{}, to: map[int]uint8{}, temp: temp, carried: carried}
	for def, r := range fixed {
		fw.to[def] = r
	}
	busyUntil := [16]int{}
	for r := range busyUntil {
		busyUntil[r] = -1
	}
	n := 0
	for _, u := range uses {
		if k, ok := carriedOf(u.def); ok {
			fw.from[u.use] = carried[k].reg
			n++
			continue
		}
		k, ok := fw.to[u.def]
		if !ok {
			found := false
			for r := uint8(15); r > 0; r-- {
				if spares&(1<<r) != 0 && busyUntil[r] < u.def {
					k, found = r, true
					break
				}
			}
			if !found {
				continue
			}
			fw.to[u.def] = k
			busyUntil[k] = last[u.def]
		}
		fw.from[u.use] = k
		n++
	}
	if n > 0 || len(carried) > 0 {
		p.forwards = fw
	}
	return n
}

func highestReg(mask uint16) uint8 {
	for r := uint8(15); r > 0; r-- {
		if mask&(1<<r) != 0 {
			return r
		}
	}
	return 0
}

// spareVectorRegs returns the vector registers xmm1-xmm15 no op of the
// trace touches (touchesVector; xmm0 never: some instructions read it
// unnamed); ok is false when an op is not decoded or may touch any.
func spareVectorRegs(ops []op, p *plan) (uint16, bool) {
	used := uint16(1)
	for i := range ops {
		if ops[i].kind != opInsn {
			continue
		}
		inst := p.inst(i)
		if inst == nil {
			return 0, false
		}
		switch inst.Special {
		case x86dec.SpecialNone:
		case x86dec.SpecialEndbr64, x86dec.SpecialEndbr32, x86dec.SpecialNopHint, x86dec.SpecialPrefetch, x86dec.SpecialVzeroupper:
			continue // nothing in a vector register's low half
		default:
			return 0, false
		}
		used |= vectorRegs(inst)
	}
	return ^used, true
}

// doubleLoad: instructions that read 8 bytes of memory as a double into
// the vector register of their first operand, with a register form.
var doubleLoad = opSetOf(map[x86asm.Op]bool{
	x86asm.MOVSD_XMM: true, x86asm.MOVQ: true,
	x86asm.ADDSD: true, x86asm.SUBSD: true, x86asm.MULSD: true, x86asm.DIVSD: true,
	x86asm.MINSD: true, x86asm.MAXSD: true, x86asm.SQRTSD: true,
	x86asm.UCOMISD: true, x86asm.COMISD: true,
})

// vecReg returns the vector register number of a, if it is one.
func vecReg(a x86asm.Arg) (uint8, bool) {
	r, ok := a.(x86asm.Reg)
	if ok && r >= x86asm.X0 && r <= x86asm.X15 {
		return uint8(r - x86asm.X0), true
	}
	return 0, false
}

// key returns where inst's memory operand m points at op i, by value
// numbers when the plan does not know the address.
func (s *fwdState) key(p *plan, i int, inst *x86dec.Inst, m x86asm.Mem) (memKey, bool) {
	if m.Segment != 0 || inst.AddrSize != 64 {
		return memKey{}, false
	}
	st := p.known.at(i)
	if a, ok := memAddrAt(inst, &st); ok {
		return memKey{disp: a}, true
	}
	k := memKey{sym: true, disp: uint64(m.Disp), scale: m.Scale}
	if m.Base != 0 {
		r, sz, ok := gpr(m.Base)
		if !ok || sz != 8 {
			return memKey{}, false
		}
		k.base = s.gvn[r]
		k.disp += uint64(s.goff[r])
	}
	if m.Index != 0 {
		r, sz, ok := gpr(m.Index)
		if !ok || sz != 8 {
			return memKey{}, false
		}
		k.index = s.gvn[r]
		k.disp += uint64(s.goff[r] * int64(m.Scale))
	}
	return k, true
}

// mayAlias reports whether a write of size bytes at w may change the
// entry at e (above: optimistic, the loads are checked).
func (s *fwdState) mayAlias(w memKey, size int, e memKey, esize int, refcount bool) bool {
	if w.sym != e.sym {
		return false
	}
	overlap := e.disp < w.disp+uint64(size) && w.disp < e.disp+uint64(esize)
	if !w.sym || (w.base == e.base && w.index == e.index && w.scale == e.scale) {
		return overlap
	}
	if refcount {
		// An object's count, at its start: only an entry at the start
		// of what its own base points to can be one.
		return int64(e.disp) > -8 && int64(e.disp) < 8
	}
	if w.index == 0 && e.index == 0 {
		if s.fresh[w.base] && e.base < w.base || s.fresh[e.base] && w.base < e.base {
			return false // a block allocated after the other pointer existed
		}
	}
	return true
}

// kill forgets the entries a write of size bytes at w may change; !ok:
// an address the analysis cannot follow, all of them.
func (s *fwdState) kill(w memKey, ok bool, size int, refcount bool) {
	if !ok || size <= 0 {
		s.entries = s.entries[:0]
		return
	}
	kept := s.entries[:0]
	for _, ke := range s.entries {
		if !s.mayAlias(w, size, ke.k, ke.e.size, refcount) {
			kept = append(kept, ke)
		}
	}
	s.entries = kept
}

// lookup returns what place k holds, if the analysis remembers it.
func (s *fwdState) lookup(k memKey) (fwdEntry, bool) {
	for j := len(s.entries) - 1; j >= 0; j-- {
		if s.entries[j].k == k {
			return s.entries[j].e, true
		}
	}
	return fwdEntry{}, false
}

// rememberDouble notes that place k holds double vn, which op i can copy
// into a spare if it runs as recorded.
func (s *fwdState) rememberDouble(ops []op, p *plan, i int, k memKey, vn uint32) {
	def := -1
	if emitted(ops, p, i) {
		def = i
		s.defs[i] = k
	}
	s.remember(k, fwdEntry{vn: vn, size: 8, vec: true, def: def})
}

func (s *fwdState) remember(k memKey, e fwdEntry) {
	for j := range s.entries {
		if s.entries[j].k == k {
			s.entries = append(s.entries[:j], s.entries[j+1:]...)
			break
		}
	}
	if len(s.entries) == forwardMaxEntries {
		s.entries = append(s.entries[:0], s.entries[1:]...)
	}
	s.entries = append(s.entries, keyed{k, e})
}

// emitted reports whether op i runs as recorded (its register results
// are where the original code puts them).
func emitted(ops []op, p *plan, i int) bool {
	if _, ok := plainOp(ops, p, i); !ok {
		return false
	}
	_, paired := p.pairs[i]
	return !paired
}

// step runs op i through the analysis and returns uses with op i's
// forwarded load, if it is one.
func (s *fwdState) step(ops []op, p *plan, i int, uses []fwdUse) []fwdUse {
	o := &ops[i]
	switch o.kind {
	case opCall:
		s.entries = s.entries[:0]
		for r := range s.gvn {
			if calleeSaved&(1<<r) == 0 {
				s.setNew(x86enc.Reg(r))
			}
			s.xvn[r] = s.newVN()
		}
		return uses
	case opPush:
		w, ok := s.stackKey(p, i, -8)
		s.kill(w, ok, 8, false)
		s.goff[x86enc.RSP] -= 8
		return uses
	case opPop:
		s.goff[x86enc.RSP] += 8
		return uses
	case opIsTraced:
		s.setNew(x86enc.RAX)
		return uses
	case opInsn:
	default:
		return uses
	}
	inst := p.inst(i)
	if inst == nil {
		s.entries = s.entries[:0]
		return uses
	}
	defer s.markFresh(p, i)
	if inst.Special != x86dec.SpecialNone {
		switch inst.Special {
		case x86dec.SpecialEndbr64, x86dec.SpecialNopHint, x86dec.SpecialPrefetch, x86dec.SpecialVzeroupper:
			return uses
		}
		s.clobberAll()
		return uses
	}
	m, hasMem := memArg(inst).(x86asm.Mem)
	var k memKey
	keyOK := false
	if hasMem {
		k, keyOK = s.key(p, i, inst, m)
	}
	a0, a1 := inst.Args[0], inst.Args[1]
	switch {
	case inst.Op == x86asm.MOV && inst.MemBytes == 8:
		if r, sz, ok := gpr(regArg(a0)); ok && sz == 8 && hasMem {
			// A general load.
			if e, found := s.lookup(k); keyOK && found && !e.vec && e.size == 8 {
				s.gvn[r], s.goff[r] = e.vn, e.off
				return uses
			}
			s.setNew(r)
			if keyOK {
				s.remember(k, s.general(r))
			}
			return uses
		}
		if r, sz, ok := gpr(regArg(a1)); ok && sz == 8 && hasMem {
			// A general store.
			s.kill(k, keyOK, 8, false)
			if keyOK {
				s.remember(k, s.general(r))
			}
			return uses
		}
	case inst.Op == x86asm.MOV:
		if dst, sz, ok := gpr(regArg(a0)); ok && sz == 8 {
			if src, sz2, ok := gpr(regArg(a1)); ok && sz2 == 8 {
				s.gvn[dst], s.goff[dst] = s.gvn[src], s.goff[src]
				return uses
			}
		}
	case (inst.Op == x86asm.MOVSD_XMM || inst.Op == x86asm.MOVQ) && hasMem && inst.MemBytes == 8:
		if x, ok := vecReg(a1); ok {
			// A double stored.
			s.kill(k, keyOK, 8, false)
			if keyOK {
				s.rememberDouble(ops, p, i, k, s.xvn[x])
			}
			return uses
		}
	case inst.Op == x86asm.PUSH || inst.Op == x86asm.POP:
		r, sz, ok := gpr(regArg(a0))
		if !ok || sz != 8 {
			// Of memory or an immediate: the stack is written
			// elsewhere than the operand says.
			s.clobberAll()
			return uses
		}
		if inst.Op == x86asm.PUSH {
			w, wok := s.stackKey(p, i, -8)
			s.kill(w, wok, 8, false)
			if wok {
				s.remember(w, s.general(r))
			}
			s.goff[x86enc.RSP] -= 8
			return uses
		}
		w, wok := s.stackKey(p, i, 0)
		if e, found := s.lookup(w); wok && found && !e.vec && e.size == 8 {
			s.gvn[r], s.goff[r] = e.vn, e.off
		} else {
			s.setNew(r)
		}
		s.goff[x86enc.RSP] += 8
		return uses
	}
	if d, ok := loadsDouble(inst); ok {
		e, found := s.lookup(k)
		fwd := keyOK && found && e.vec && e.size == 8 && e.def != -1 && emitted(ops, p, i) && flagsDeadAfter(ops, i-1)
		if fwd {
			uses = append(uses, fwdUse{use: i, def: e.def})
		}
		switch inst.Op {
		case x86asm.MOVSD_XMM, x86asm.MOVQ:
			if fwd {
				s.xvn[d] = e.vn
				return uses
			}
			s.xvn[d] = s.newVN()
			if keyOK {
				s.rememberDouble(ops, p, i, k, s.xvn[d])
			}
		case x86asm.UCOMISD, x86asm.COMISD:
		default:
			s.xvn[d] = s.newVN()
		}
		return uses
	}
	if s.moved(inst) {
		return uses
	}
	// Anything else: what it writes is new.
	if hasMem && storesMemory(inst) {
		s.kill(k, keyOK, inst.MemBytes, refcountStore(inst, m))
	} else if storesMemory(inst) {
		s.entries = s.entries[:0] // a string instruction, a call
	}
	w, all := writes(inst)
	for r := range s.gvn {
		if all || w&(1<<r) != 0 {
			s.setNew(x86enc.Reg(r))
		}
	}
	if x, ok := vecReg(a0); ok {
		switch inst.Op {
		case x86asm.UCOMISD, x86asm.COMISD, x86asm.UCOMISS, x86asm.COMISS, x86asm.PTEST:
		case x86asm.MOVAPD, x86asm.MOVAPS, x86asm.MOVDQA, x86asm.MOVDQU, x86asm.MOVUPS, x86asm.MOVUPD:
			if y, ok := vecReg(a1); ok {
				s.xvn[x] = s.xvn[y]
				break
			}
			s.xvn[x] = s.newVN()
		default:
			s.xvn[x] = s.newVN()
		}
	}
	return uses
}

// stackKey is the key of the 8 bytes at d(%rsp) before op i.
func (s *fwdState) stackKey(p *plan, i int, d int64) (memKey, bool) {
	if v := p.known.get(i, int(x86enc.RSP)); v.known {
		return memKey{disp: v.v + uint64(d)}, true
	}
	return memKey{sym: true, base: s.gvn[x86enc.RSP], disp: uint64(s.goff[x86enc.RSP] + d)}, true
}

// markFresh numbers the registers that hold a block allocated at op i.
func (s *fwdState) markFresh(p *plan, i int) {
	for r := range 16 {
		if p.freshAt[i]&(1<<r) != 0 {
			s.setNew(x86enc.Reg(r))
			s.fresh[s.gvn[r]] = true
		}
	}
}

func (s *fwdState) clobberAll() {
	s.entries = s.entries[:0]
	for r := range s.gvn {
		s.setNew(x86enc.Reg(r))
		s.xvn[r] = s.newVN()
	}
}

// moved follows a 64-bit general register moved by a constant (add,
// sub, inc, dec, lea of itself or another plus a displacement): it keeps
// its value number, so that what a stack pointer addresses before and
// after a push is the same place.
func (s *fwdState) moved(inst *x86dec.Inst) bool {
	dst, sz, ok := gpr(regArg(inst.Args[0]))
	if !ok || sz != 8 {
		return false
	}
	switch inst.Op {
	case x86asm.ADD, x86asm.SUB:
		n, ok := inst.Args[1].(x86asm.Imm)
		if !ok {
			return false
		}
		if inst.Op == x86asm.SUB {
			n = -n
		}
		s.goff[dst] += int64(n)
		return true
	case x86asm.INC:
		s.goff[dst]++
		return true
	case x86asm.DEC:
		s.goff[dst]--
		return true
	case x86asm.LEA:
		m, ok := inst.Args[1].(x86asm.Mem)
		if !ok || m.Index != 0 || m.Segment != 0 || inst.AddrSize != 64 {
			return false
		}
		src, sz, ok := gpr(m.Base)
		if !ok || sz != 8 {
			return false
		}
		s.gvn[dst], s.goff[dst] = s.gvn[src], s.goff[src]+m.Disp
		return true
	}
	return false
}

// forwardFrom returns the spare op i takes its double from.
func (p *plan) forwardFrom(i int) (uint8, bool) {
	if p == nil || p.forwards == nil {
		return 0, false
	}
	k, ok := p.forwards.from[i]
	return k, ok
}

// forwardTo returns the spare op i copies its double into.
func (p *plan) forwardTo(i int) (uint8, bool) {
	if p == nil || p.forwards == nil {
		return 0, false
	}
	k, ok := p.forwards.to[i]
	return k, ok
}

// The encodings of the forwarding (SSE2, and SSE4.1's ptest): register
// forms with a mandatory prefix, then REX, then the opcode.

func sseRR(prefix byte, opcode []byte, reg, rm uint8) []byte {
	out := []byte{prefix}
	if rex := byte(0x40) | (reg>>3)<<2 | rm>>3; rex != 0x40 {
		out = append(out, rex)
	}
	out = append(out, opcode...)
	return append(out, 0xc0|(reg&7)<<3|rm&7)
}

// movqXX is movq %xmm<src>, %xmm<dst>: the low 8 bytes, the rest zeroed.
func movqXX(dst, src uint8) []byte { return sseRR(0xf3, []byte{0x0f, 0x7e}, dst, src) }

// pxorXX is pxor %xmm<src>, %xmm<dst>.
func pxorXX(dst, src uint8) []byte { return sseRR(0x66, []byte{0x0f, 0xef}, dst, src) }

// ptestXX is ptest %xmm<b>, %xmm<a>: ZF when a AND b is zero.
func ptestXX(a, b uint8) []byte { return sseRR(0x66, []byte{0x0f, 0x38, 0x17}, a, b) }

// forwardedCode returns, for op code (a doubleLoad instruction whose
// memory operand is at addr when known), the check's load of that memory
// into temp (position independent unless rip: re-encoded for at) and the
// instruction that takes the double from spare k instead.
func forwardedCode(code []byte, inst *x86dec.Inst, addr uint64, known bool, k, temp uint8, at uint64) (check, use []byte, ok bool) {
	m, ok := parseMemInsn(code)
	if !ok || m.seg != 0 || len(m.imm) != 0 {
		return nil, nil, false
	}
	d, ok := vecReg(inst.Args[0])
	if !ok {
		return nil, nil, false
	}
	check = []byte{0xf3}
	if rex := byte(0x40) | (temp>>3)<<2 | m.rex&0x03; rex != 0x40 {
		check = append(check, rex)
	}
	check = append(check, 0x0f, 0x7e, m.modrm&0xc7|(temp&7)<<3)
	check = append(check, m.mem...)
	// A known address goes %rip-relative from where the check lands; an
	// original %rip operand must (its displacement was for the original).
	if known {
		if rip, ok := ripForm(check, addr, at); ok {
			check = rip
		} else if m.rip {
			return nil, nil, false
		}
	} else if m.rip {
		return nil, nil, false
	}
	switch inst.Op {
	case x86asm.MOVSD_XMM, x86asm.MOVQ:
		use = movqXX(d, k)
	default:
		if len(m.prefixes) != 1 || len(m.opcode) != 2 || m.rex&0x08 != 0 {
			return nil, nil, false
		}
		use = sseRR(m.prefixes[0], m.opcode, d, k)
	}
	return check, use, true
}

// copySource returns the vector register a store forwardDoubles copies
// from holds the double in (its source; a load's: its destination).
func copySource(inst *x86dec.Inst) uint8 {
	if r, ok := vecReg(inst.Args[1]); ok {
		return r
	}
	r, _ := vecReg(inst.Args[0])
	return r
}

// loadCarried loads each carried double into its spare (movq addr(%rip));
// one out of %rip's reach is left out: its check then fails, and the copy
// leaves at its load.
func (e *emitter) loadCarried(cs []carriedDouble) {
	for _, c := range cs {
		code := []byte{0xf3}
		if c.reg >= 8 {
			code = append(code, 0x44)
		}
		code = append(code, 0x0f, 0x7e, 0x05|(c.reg&7)<<3, 0, 0, 0, 0)
		d := int64(c.addr - (e.pc() + uint64(len(code))))
		if d != int64(int32(d)) {
			continue
		}
		binary.LittleEndian.PutUint32(code[len(code)-4:], uint32(int32(d)))
		e.bytes(code...)
	}
}
