package tracevm

import (
	"cmp"
	"encoding/binary"
	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
	"math/bits"
	"slices"
	"sync"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"golang.org/x/arch/x86/x86asm"
)

// The optimizer specialises a root trace on what stays the same from one
// iteration to the next and removes the work that becomes constant:
//
//   - callee-saved registers holding the same value at the trace's head
//     and at its close (the interpreter's code and table pointers, its
//     pc at the loop head) become constants, checked by a guard at the
//     head;
//   - loads from read-only memory at constant addresses become constants
//     (jump tables);
//   - a load from writable memory at a constant address may be replaced
//     by a guard on its value (the bytecode the loop dispatches on), when
//     that removes at least two guards or an indirect-target guard; the
//     value is the one the trace itself stored there last, if it did (a
//     register the interpreter spilled to its frame: its pc across a
//     call), else the one memory holds now. A 64-bit value too wide for
//     an immediate is guarded after the load, in the register;
//   - a plain load through a pointer the optimiser does not know (what a
//     native lookup returned, an object's class), or of a pointer, may be
//     replaced by a guard on its value after it when the concrete run of
//     the recording finds the value the same at every iteration
//     (concrete.go); such a guard that fails often retires the trace
//     (respec.go);
//   - guards whose outcome is then known disappear, and pure instructions
//     whose results nothing reads any more are dropped; a register such an
//     instruction would have set is set in the stub of every exit where
//     it matters, so each exit still leaves the original machine state.
//
// Anything it does not model makes registers unknown; anything that
// contradicts the recording (a guard that would always fail) cancels the
// whole optimisation and the trace is compiled as recorded.

// assume names the assumptions a known value rests on: bits 0-15 head
// registers, bit 16+k%specBits speculation k. Speculations past the
// first specBits share bits: a value resting on a shared bit is taken to
// rest on every speculation that has it, which may keep or ban more
// guards than it needs, never fewer.
type assume uint64

const (
	specBits = 48
	maxSpecs = 384
)

// specBit is speculation k's bit.
func specBit(k int) assume { return 1 << (16 + k%specBits) }

type val struct {
	// The fields fill their words without padding, so that a val's
	// memory is its value: knownStates compares it as four words
	// (sameVal) for every register of every op it keeps.
	known bool
	// lo: for a register not known whole, how many of its low bytes are
	// (1, 2 or 4; 0 none), in v. Interpreters build a byte from a
	// register whose upper bytes are garbage (CPython: sbb %sil,%sil;
	// or ..., %sil; movzbl %sil, %eax for every dispatch).
	lo uint8
	_  uint16
	// pn, pdeps: the low pn bytes rest on pdeps alone, a part of deps
	// (pn 0: on deps). The same dispatch writes the low byte of a
	// register assumed at the head: the byte it dispatches on must not
	// make the head check the garbage above it (a side trace back at
	// the head with other garbage would fail the check).
	pn    uint32
	v     uint64
	deps  assume
	pdeps assume
}

// lowDeps is what v's low n bytes rest on.
func (v val) lowDeps(n int) assume {
	if int(v.pn) >= n {
		return v.pdeps
	}
	return v.deps
}

// lowDepBytes is how many low bytes of v rest on lowDeps (8: the whole
// value on deps).
func (v val) lowDepBytes() int {
	if v.pn > 0 {
		return int(v.pn)
	}
	return 8
}

// withLowDeps returns v with its low n bytes resting on d alone.
func (v val) withLowDeps(n int, d assume) val {
	v.pn, v.pdeps = 0, 0
	if n > 0 && n < 8 && d != v.deps {
		v.pn, v.pdeps = uint32(n), d
	}
	return v
}

// low returns v's low size bytes when they are known.
func (v val) low(size int) (val, bool) {
	if !v.known && int(v.lo) < size {
		return val{}, false
	}
	w := val{known: true, v: truncate(v.v, size), deps: v.deps}
	if v.pn != 0 {
		w = v.lowPart(w, size)
	}
	return w, true
}

// lowPart is low's w for a v whose low bytes have their own deps.
func (v val) lowPart(w val, size int) val {
	w.deps = v.lowDeps(size)
	if int(v.pn) < size {
		w = w.withLowDeps(int(v.pn), v.pdeps)
	}
	return w
}

// lowBytes is how many low bytes of v are known (8: all).
func (v val) lowBytes() int {
	if v.known {
		return 8
	}
	return int(v.lo)
}

// partial returns x with its low n bytes known (whole when n >= 8).
func partial(x uint64, n int, deps assume) val {
	switch {
	case n >= 8:
		return val{known: true, v: x, deps: deps}
	case n <= 0:
		return val{}
	}
	return val{v: truncate(x, n), lo: uint8(n), deps: deps}
}

// bytewise returns r, the result of a sum, difference or bitwise
// operation on a and b, with its low bytes resting on theirs alone.
func bytewise(r, a, b val) val {
	n := min(a.lowDepBytes(), b.lowDepBytes())
	return r.withLowDeps(n, a.lowDeps(n)|b.lowDeps(n))
}

// flagState is the arithmetic flags when known.
type flagState struct {
	known          bool
	cf, zf, sf, of bool
	deps           assume
}

// scratch holds an optimiser's per-instruction arrays between traces: the
// runtime's heap is collected only near its limit (runtime-stub/jit.go).
type scratch struct {
	known   *knownStates
	flagsAt []flagState
}

var evalScratch sync.Pool

// release returns p's arrays for the next trace's optimiser; p is not
// used after.
func (p *plan) release() {
	if p == nil || p.known == nil {
		return
	}
	evalScratch.Put(&scratch{known: p.known, flagsAt: p.flagsAt})
	p.known, p.flagsAt = nil, nil
}

// sideEntry is what a side trace starts from: the registers and stack
// values its parent knows at the exit it leaves from, certain whenever
// that exit is taken (they rest on nothing but the parent's head guards;
// the stack values are checked as the side recording starts), and the
// memory its loop stores to at known addresses, which changes from one
// iteration to the next: no speculation on what a side trace loads from
// there (its own stores show it nothing of the root's).
type sideEntry struct {
	// guards: it may take registers at their values where it was
	// recorded, checked by head guards (which leave for the exit's
	// original code) as a root's are: its exit knew nothing and the
	// flags are dead where it starts; not one it changes before its
	// end (as a root's).
	guards bool
	// atMerge: a continuation (merge.go), whose guarded registers are
	// those its merge point knows, whatever its end leaves in them.
	atMerge bool
	known   []regValue
	stack   []memValue // the stack values it knows (sidestack.go)
	variant []addrRange
	private addrRange // the root's (plan.private)
}

// addrRange is [lo, hi).
type addrRange struct{ lo, hi uint64 }

// holds reports whether [a, a+size) lies in r.
func (r addrRange) holds(a uint64, size int) bool {
	return a >= r.lo && a+uint64(size) <= r.hi && a+uint64(size) > a
}

// addRange appends r to rs unless it is there: a trace stores to the
// same slots over and over, and a loop's side traces to its root's.
func addRange(rs []addrRange, r addrRange) []addrRange {
	if slices.Contains(rs, r) {
		return rs
	}
	return append(rs, r)
}

func (s *sideEntry) isVariant(a uint64, size int) bool {
	for _, r := range s.variant {
		if a < r.hi && a+uint64(size) > r.lo {
			return true
		}
	}
	return false
}

// plan is the optimiser's decision for one trace.
type plan struct {
	headRegs []x86enc.Reg // registers guarded at the head
	headVals [16]uint64
	drop     []bool         // op i is not emitted
	spec     map[int]uint64 // op i becomes a guard on its load's value
	// post: before op k, a guard on the register a 64-bit load before it
	// loaded (the value does not fit cmp's immediate): right after the
	// load, or where the flags are next dead.
	post map[int]postGuardAt
	// replaced: speculated op i is done by its guard (a mov, or a cmp
	// whose flags nothing reads: the guard's flags are M - v, not the
	// original comparison's).
	replaced map[int]bool
	// rewrite: op i is emitted as this re-encoding with a known operand
	// as an immediate (constform.go); no code: op i is left out, and
	// unlike a dropped op sets no register.
	rewrite map[int]rewritten
	// pairs: vector copies moved through general registers (vecpair.go).
	pairs map[int]vecPair
	// forwards: doubles kept in spare vector registers (xmmfwd.go).
	forwards  *doubleForwards
	liveAfter []uint16 // registers read after op i (before being written)
	// known[i]: registers known before op i, so also after op i-1;
	// known[len(ops)] is after the last op.
	known *knownStates
	insts []*x86dec.Inst
	// freshAt and links: optimizer.freshAt and .links, for the peeled
	// copy of the same ops.
	freshAt map[int]uint16
	links   map[int]bool
	ok      bool
	flagsAt []flagState // the optimiser's, kept for release
	// stores: where the trace stores at known addresses (for its side
	// traces' sideEntry.variant).
	stores []addrRange
	// specGuard[k]: the op before which speculation k's guard runs;
	// specLoad[k]: the op of its load.
	specGuard, specLoad []int
	// sameStores: the stores dropped as writing what memory holds
	// (samestore.go).
	sameStores int
	// guarded: the speculations the trace guards (chosen); epoch:
	// stores through unknown pointers and calls in the trace;
	// invariants: a peeled copy's loads known from its entry (peel.go).
	guarded    []guardedLoad
	epoch      uint32
	invariants []guardedLoad
	storeVals  []storeRange // the stores at known addresses, with their values
	// need and chosen: the assumptions the plan rests on and the loads
	// it speculates on (optimize's pass 2), for its peeled copy.
	need   assume
	chosen map[int]bool
	// private: the eval loop frame's private slots, absolute (its %rsp
	// is guarded at the head): memory only the trace's own stores at
	// known addresses change (privateSlots).
	private addrRange
	// mem: the memory the optimiser read (optimizer.mem).
	mem *memView
	// misses: for a peeled copy, the data-area counter of the first
	// copy's closes that stayed in it, followed by a byte counting them
	// since the last that did not (0: none).
	misses uint64
	// risky: the ops of spec whose value only the concrete runs found
	// (respec.go); bans: the loads it was not to speculate on; stable:
	// the optimiser's (for the peeled copy).
	risky  []int
	bans   map[uint64]bool
	stable map[int]uint64
	// stackSnaps, stackVals, stackDeps: the optimiser's, for the exits
	// (sidestack.go).
	stackSnaps []stackSnap
	stackVals  []memValue
	stackDeps  []assume
}

// guardedLoad is a load the trace replaces by a guard on its value.
type guardedLoad struct {
	addr, v   uint64
	size      int
	forwarded bool // its value is one the trace stored
	post      bool // guarded in a register after a 64-bit load
	// firstChecks: a peeled copy's invariant that the first copy
	// guards too (its close's check of it cannot fail unless the
	// first copy wrote it).
	firstChecks bool
}

// certainAt reports whether a value resting on deps is certain at an exit
// taken from op i: its speculations were all checked before op i (the
// head guards come before every op). Of those sharing a bit, only the
// ones loaded by op i can be what the value rests on.
func (p *plan) certainAt(deps assume, i int) bool {
	specs := uint64(deps >> 16)
	for specs != 0 {
		b := bits.TrailingZeros64(specs)
		specs &= specs - 1
		if b >= len(p.specGuard) {
			return false
		}
		for k := b; k < len(p.specGuard) && p.specLoad[k] <= i; k += specBits {
			if p.specGuard[k] >= i {
				return false
			}
		}
	}
	return true
}

func (p *plan) inst(i int) *x86dec.Inst { return p.insts[i] }

// specAt returns the value op i's load is speculated to have (nil plan:
// none).
func (p *plan) specAt(i int) (uint64, bool) {
	if p == nil {
		return 0, false
	}
	v, ok := p.spec[i]
	return v, ok
}

// postGuardAt is a guard on a register a 64-bit load set: reg must hold
// v; its exit resumes at resume, the original code of the op it precedes.
type postGuardAt struct {
	reg    x86enc.Reg
	v      uint64
	resume uint64
	// load: the original address of a load speculated on at a value
	// only the concrete runs found (respec.go); 0 otherwise.
	load uint64
}

// postAt returns the guard to emit before op k (nil plan: none).
func (p *plan) postAt(k int) (postGuardAt, bool) {
	if p == nil {
		return postGuardAt{}, false
	}
	g, ok := p.post[k]
	return g, ok
}

type optimizer struct {
	m     *Machine
	ops   []op
	insts []*x86dec.Inst
	head  [16]uint64
	inv   uint16 // head registers that may be assumed
	side  *sideEntry
	// freshAt: the registers that hold a free block after op i, where
	// the trace's interpreter keeps only dead blocks on free lists
	// (Object.RefcountWords: CPython), see popRegs.
	freshAt map[int]uint16
	// reloads: the ops of the last keepStates eval that load a register
	// from where it holds the value already (reloads.go).
	reloads map[int]bool
	// links: the ops that link a block onto a free list (linkStores),
	// where the trace's interpreter has Object.RefcountWords.
	links map[int]bool
	// results of the last eval
	specAddr []uint64 // speculation k: address of the load
	specOp   []int
	specVal  []uint64
	specPost []int // speculation k is guarded before this op (-1: not after its load)
	specSize []int
	specFwd  []bool // speculation k's value is one the trace stored
	// specAt: the speculation (k) that loaded each key (addr<<4 | size)
	// last; specReuse: the ops that loaded its value again (op, k).
	specAt    map[uint64]int
	specReuse [][2]int
	// foldedBuf: the storage of eval's list of folded guards.
	foldedBuf []foldedGuard
	// storeRanges: every store at a known address in the last eval:
	// memory the loop rewrites.
	storeRanges []storeRange
	known       *knownStates // registers known before op i (after op i-1)
	flagsAt     []flagState  // flags before op i
	foldOps     map[int]bool
	// banned: loads never to speculate (their value now is not the one
	// the recording saw: memory the iteration itself rewrites).
	banned map[int]bool
	// contras: the contradictions of the last pass, each as the op
	// where it showed and what it rested on (foldedGuard's fields).
	contras []foldedGuard
	// mem: memory as this trace's passes read it.
	mem *memView
	// private: the private slots of the loop's frame (plan.private),
	// while the evaluation knows the head's %rsp.
	private addrRange
	// knownMask[i]: the registers known in state i (liveness).
	knownMask []uint16
	// The eval state's maps, reused by every eval.
	specMap, savedMap map[uint64]val
	storeMap          map[uint64]storedVal
	unknownMap        map[uint64]bool
	// code: where the last eval speculated on bytecode words (noteCode).
	code []addrRange
	// peel: the second copy of a peeled loop is being optimised
	// (peel.go). epoch: the last eval's final epoch.
	peel  *peelState
	epoch uint32
	// stable: the loads of a closed root's recorded path whose value does
	// not vary from one iteration to the next (concrete.go), by op: a
	// load through an unknown pointer, or of a pointer, may be
	// speculated on at that value. bans: the original addresses of loads
	// whose speculation failed in an earlier trace of the loop.
	stable map[int]uint64
	bans   map[uint64]bool
	// specRisky[k]: speculation k rests on stable alone; its guard's
	// exit retires the trace when it fails often (respec.go). riskyBits:
	// their bits (specBit), those they share with others included.
	specRisky []bool
	riskyBits assume
	// keeping: the eval under way records states (its keepStates);
	// sameStores: the stores it found writing what memory certainly
	// holds already (samestore.go), dropped by liveness.
	keeping    bool
	sameStores map[int]bool
	// stackSnaps, stackVals, stackDeps: the stack values known in the last
	// keepStates eval, as they changed (sidestack.go).
	stackSnaps []stackSnap
	stackVals  []memValue
	stackDeps  []assume
}

// calleeSaved: registers an annotation call leaves as they were, the only
// ones with a meaning at a trace head reached from one; %rsp among them,
// so that what the interpreter keeps in its frame's slots (CPython 2.7's
// next_instr and fastlocals, a VM's program array) is read from known
// addresses.
const calleeSaved = 1<<x86enc.RBX | 1<<x86enc.RBP | 1<<x86enc.RSP | 1<<x86enc.R12 | 1<<x86enc.R13 | 1<<x86enc.R14 | 1<<x86enc.R15

// allRegs16: at a back-edge handler's entry every register is the
// interpreter's, %rsp included: the eval function's frame is where the
// loop's state lives (CPython's cframe.use_tracing, OR-ed into every
// opcode it dispatches). A %rsp guarded at the head makes its slots
// known addresses; %rsp itself is never left virtual (liveness).
const allRegs16 = 0xffff

func (m *Machine) optimize(ops []op, head, close [16]uint64, meaningful uint16, side *sideEntry, peel *peelState, fr frame.Slots, mem *memView, bans map[uint64]bool) (p *plan) {
	kept := false // the scratch goes with the plan (release)
	o := &optimizer{m: m, ops: ops, head: head, side: side, peel: peel, bans: bans}
	switch {
	case peel != nil && peel.mem != nil:
		o.mem = peel.mem // the first copy's reads: the same values
	case mem != nil:
		o.mem = mem // the recording's snapshot (queueCompile)
	default:
		o.mem = newMemView(m.pid)
	}
	if s, ok := evalScratch.Get().(*scratch); ok {
		o.known, o.flagsAt = s.known, s.flagsAt[:0]
	} else {
		o.known = new(knownStates)
	}
	defer func() {
		if !kept {
			evalScratch.Put(&scratch{known: o.known, flagsAt: o.flagsAt})
		}
	}()
	for r := 0; r < 16; r++ {
		if (side == nil || side.guards) && meaningful&(1<<r) != 0 && (head[r] == close[r] || side != nil && side.atMerge) {
			o.inv |= 1 << r
		}
	}
	switch {
	case side != nil:
		o.private = side.private
	case peel != nil:
		o.private = peel.private
	case o.inv&(1<<x86enc.RSP) != 0 && !fr.Empty():
		sp := head[x86enc.RSP]
		o.private = addrRange{sp + uint64(fr.Lo), sp + uint64(fr.Hi)}
	}
	o.insts = make([]*x86dec.Inst, len(ops))
	if peel != nil && len(peel.insts) == len(ops) {
		copy(o.insts, peel.insts) // the first copy's, decoded once
	}
	for i := range ops {
		if ops[i].kind == opInsn && o.insts[i] == nil {
			inst, err := ops[i].decoded()
			if err != nil {
				return nil
			}
			o.insts[i] = inst
		}
	}
	switch {
	case peel != nil && peel.stable != nil:
		o.stable = peel.stable // the first copy's: the same ops
	case side == nil && len(ops) > 0 && ops[len(ops)-1].kind == opClose && !m.cfg.NoIndirectSpec && !m.callsAllocator(ops):
		o.stable = stableLoads(ops, o.insts, &head, &close, o.mem, func(a uint64) bool {
			alloc, _ := m.allocation(a)
			return alloc
		})
	}
	switch {
	case peel != nil && len(peel.insts) == len(ops):
		o.freshAt, o.links = peel.freshAt, peel.links // the first copy's ops
	case len(ops) > 0 && m.refcounting(ops[0].addr):
		o.freshAt, o.links = freshLoads(ops, o.insts), linkStores(ops, o.insts)
	}
	var need assume
	var chosen map[int]bool
	if peel != nil && peel.chosen != nil {
		// A peeled copy speculates where the first copy does, and
		// rests on every register that stays the same: its stores
		// must go to known addresses, not only its guards fold. The
		// first copy's close checks them, once.
		need, chosen = peel.need|assume(o.inv), peel.chosen
	} else {
		var ok bool
		need, chosen, ok = o.choose()
		if peel != nil && len(peel.near) > 0 {
			// A side trace entering a peeled copy: it guards every
			// load of the loop's bytecode, so that its stores go to
			// known addresses (bodyLink).
			if !ok {
				need, chosen, ok = 0, map[int]bool{}, true
			}
			for k, i := range o.specOp {
				if !o.banned[i] && !o.specFwd[k] && o.specPost[k] < 0 && peel.nearBytecode(o.specAddr[k], o.specSize[k]) {
					chosen[i] = true
				}
			}
		}
		if !ok {
			return nil
		}
	}
	p = &plan{spec: map[int]uint64{}, post: map[int]postGuardAt{}, need: need, chosen: chosen, bans: bans, stable: o.stable}
	if side != nil || need&(1<<x86enc.RSP) != 0 {
		p.private = o.private
	}
	// Pass 2: only the assumptions chosen.
	o.resetSpecs()
	folded, ok := o.eval(chosen, need, true)
	if !ok {
		return nil
	}
	if peel != nil && peel.chosen != nil {
		if rests := o.peelRests(folded); need&^peel.need&^rests != 0 {
			// Again without the registers nothing rests on.
			need = peel.need | rests
			o.resetSpecs()
			if _, ok := o.eval(chosen, need, true); !ok {
				return nil
			}
		}
	}
	p.specGuard, p.specLoad = make([]int, len(o.specOp)), slices.Clone(o.specOp)
	for k, i := range o.specOp {
		p.specGuard[k] = i
		if at := o.specPost[k]; at >= 0 {
			p.specGuard[k] = at
		}
		if !chosen[i] {
			continue
		}
		p.guarded = append(p.guarded, guardedLoad{addr: o.specAddr[k], v: o.specVal[k], size: o.specSize[k], forwarded: o.specFwd[k], post: o.specPost[k] >= 0})
		if at := o.specPost[k]; at >= 0 {
			r, _, _ := gpr(regArg(o.insts[i].Args[0]))
			resume := o.ops[at].addr
			if at == i+1 {
				resume = o.ops[i].addr + uint64(len(o.ops[i].code))
			}
			v, _ := loadedValue(o.insts[i], o.specVal[k])
			g := postGuardAt{reg: r, v: v, resume: resume}
			if o.specRisky[k] {
				g.load = o.ops[i].addr
			}
			p.post[at] = g
		} else {
			p.spec[i] = o.specVal[k]
			if o.specRisky[k] {
				p.risky = append(p.risky, i)
			}
		}
	}
	for r := 0; r < 16; r++ {
		if need&(1<<r) != 0 {
			p.headRegs = append(p.headRegs, x86enc.Reg(r))
			p.headVals[r] = head[r]
		}
	}
	if !o.liveness(p, need) {
		return nil
	}
	for _, r := range o.storeRanges {
		p.stores = addRange(p.stores, addrRange{r.lo, r.hi})
	}
	p.epoch = o.epoch
	p.storeVals = slices.Clone(o.storeRanges)
	p.mem = o.mem
	if o.peel != nil {
		p.invariants = make([]guardedLoad, 0, len(o.peel.used))
		for key := range o.peel.used {
			p.invariants = append(p.invariants, guardedLoad{addr: key >> 4, size: int(key & 15), v: o.peel.values[key], firstChecks: o.peel.guarded[key]})
		}
		// In the order the loop first loads them: the close reads each
		// at its address, and an address may lie in an object that an
		// earlier one points to (a local's list, its item array), freed
		// and unmapped once the loop holds another. Checked in load
		// order, a pointer found unchanged keeps what it points to
		// alive for the checks after it.
		slices.SortFunc(p.invariants, func(a, b guardedLoad) int {
			if c := cmp.Compare(o.peel.used[a.key()], o.peel.used[b.key()]); c != 0 {
				return c
			}
			return cmp.Compare(a.key(), b.key())
		})
	}
	p.known, p.insts, p.flagsAt = o.known, o.insts, o.flagsAt
	p.stackSnaps, p.stackVals, p.stackDeps = o.stackSnaps, o.stackVals, o.stackDeps
	p.freshAt, p.links = o.freshAt, o.links
	p.ok, kept = true, true
	return p
}

// peelRests returns the registers that stay the same which a peeled
// copy's folds and store addresses rest on in a pass with every one
// assumed (folded: its folds), and %rsp: assuming another would only
// have the first copy's close check it. CPython's %rsi holds garbage
// above the byte each dispatch builds in it; a side trace back at the
// head with other garbage there kept the loop out of its second copy.
func (o *optimizer) peelRests(folded []foldedGuard) assume {
	used := assume(1) << x86enc.RSP
	for _, f := range folded {
		used |= f.deps
	}
	for _, r := range o.storeRanges {
		used |= r.deps
	}
	return assume(o.inv) & used
}

// choose is pass 1: it assumes everything and learns which assumptions
// pay: the head registers and speculated loads (by op) the trace is to
// rest on. ok is false when none does.
func (o *optimizer) choose() (need assume, chosen map[int]bool, ok bool) {
	o.banned = map[int]bool{}
	var folded []foldedGuard
	var cnt []int
	var worth assume
	for round := 0; ; round++ {
		if folded, ok = o.assumeAll(); !ok {
			return 0, nil, false
		}
		// A speculation costs a guard: keep those that remove at least
		// two guards, or an indirect-target guard, alone or with others.
		cnt = make([]int, len(o.specOp))
		worth = 0
		for _, f := range folded {
			o.specsOf(f, func(k int) {
				cnt[k]++
				if f.target || cnt[k] == 2 {
					worth |= specBit(k)
				}
			})
		}
		// A speculation on what only the concrete runs found that does
		// not pay may still take a fold from the others (a store it
		// gives an address keeps a slot's value from being certain
		// without it): such ones go, and the pass is run again.
		if round == 2 || !o.dropUnpaid(folded, worth) {
			break
		}
	}
	for _, f := range folded {
		if specs := f.deps &^ 0xffff; specs&^worth == 0 {
			need |= f.deps
		}
	}
	if need == 0 && ((o.side == nil && o.peel == nil) || len(folded) == 0) {
		// A side trace folds guards on what its entry knows at no
		// cost: it pays without any assumption of its own.
		return 0, nil, false
	}
	chosen = make(map[int]bool)
	for k := range o.specOp {
		if need&specBit(k) != 0 && cnt[k] > 0 {
			chosen[o.specOp[k]] = true
		}
	}
	for _, u := range o.specReuse {
		if chosen[o.specOp[u[1]]] {
			chosen[u[0]] = true
		}
	}
	return need, chosen, true
}

// assumeAll is pass 1: it assumes everything and returns the guards that
// fold. A guard that would always fail shows a speculated value that is
// not the one the recording saw: those loads are banned and it tries
// again.
func (o *optimizer) assumeAll() ([]foldedGuard, bool) {
	for try := 0; ; try++ {
		o.resetSpecs()
		folded, ok := o.eval(nil, allSpecs, false)
		if ok && !o.banVariant() {
			return folded, true
		}
		if ok {
			if try == 32 {
				return nil, false
			}
			continue
		}
		if try == 32 || !o.banContradicted() {
			return nil, false
		}
	}
}

// dropUnpaid bans the risky speculations (specRisky) outside worth when a
// fold rests on one, and reports whether it banned any.
func (o *optimizer) dropUnpaid(folded []foldedGuard, worth assume) bool {
	lost := false
	for _, f := range folded {
		if specs := f.deps &^ 0xffff; specs&^worth != 0 {
			lost = true
			break
		}
	}
	if !lost {
		return false
	}
	banned := false
	for k, i := range o.specOp {
		if o.specRisky[k] && worth&specBit(k) == 0 && !o.banned[i] {
			o.banned[i], banned = true, true
		}
	}
	return banned
}

const allSpecs = ^assume(0)

// storeRange is a store at a known address: [lo, hi), and, for a plain
// store of a general register or an immediate (scalar), the value when
// known.
type storeRange struct {
	lo, hi uint64
	v      uint64
	known  bool
	scalar bool
	op     int
	deps   assume // what made its address known
}

// banVariant bans the speculations whose value the next iteration would
// not find, by the plain whole stores the trace makes over their slot: a
// load after one of a value the trace does not know reads that value, not
// what memory held at the head; and the last one in the trace must write
// the value speculated, for the head to find it again. So a VM stack slot
// that takes the loop variable's object is banned, and the pc an
// interpreter stores before its back-edge is kept, as is a spill slot the
// compiler shares with other values within the iteration (CPython 2.7
// keeps its bytecode pointer in one). Partial and vector stores over a
// slot do not ban it: a VM value written whole by a 16-byte move keeps the
// same type tag at every iteration. It reports whether it banned any.
func (o *optimizer) banVariant() bool {
	banned := false
	for k, i := range o.specOp {
		if o.specFwd[k] || o.banned[i] {
			continue
		}
		lo, hi := o.specAddr[k], o.specAddr[k]+uint64(o.specSize[k])
		var last *storeRange
		ban := false
		for j := range o.storeRanges {
			r := &o.storeRanges[j]
			if r.lo != lo || r.hi != hi || !r.scalar {
				continue
			}
			if !r.known && r.op < i {
				ban = true // the load reads what the trace stored
				break
			}
			last = r
		}
		if ban || (last != nil && (!last.known || last.v != o.specVal[k])) {
			o.banned[i], banned = true, true
		}
	}
	return banned
}

// specsOf calls fn with each speculation f may rest on: those with a bit
// in f.deps made before f's op (a later one that shares the bit cannot
// be what f rests on).
func (o *optimizer) specsOf(f foldedGuard, fn func(k int)) {
	for specs := uint64(f.deps >> 16); specs != 0; specs &= specs - 1 {
		for k := bits.TrailingZeros64(specs); k < len(o.specOp); k += specBits {
			if o.specOp[k] < f.op {
				fn(k)
			}
		}
	}
}

// banContradicted bans the speculations the last pass's contradictions
// may rest on. Where one rests on 8-byte values read from outside the
// frame's private slots (the object a variable holds, mostly different
// at the next iteration), only those are banned: the bytecode words and
// flags beside them are rarely what is wrong, and another pass finds out.
// It reports false when it bans none: a contradiction resting on head
// registers alone cannot be lifted by banning.
func (o *optimizer) banContradicted() bool {
	banned := false

	for _, c := range o.contras {
		var words []int
		o.specsOf(c, func(k int) {
			if o.specSize[k] == 8 && !o.private.holds(o.specAddr[k], 8) {
				words = append(words, k)
			}
		})
		o.specsOf(c, func(k int) {
			if len(words) == 0 || slices.Contains(words, k) {
				o.banned[o.specOp[k]], banned = true, true
			}
		})
	}
	return banned
}

type foldedGuard struct {
	op     int
	deps   assume
	target bool
}

// storedVal is a value the trace stored at a known address, and the
// evalState epoch it stored it in.
type storedVal struct {
	val
	epoch uint32
	// at: the stores at known addresses made before it and by it
	// (evalState.ranges[:at]); those after it, up to a load that reads
	// it back, had to be at known addresses for the value to survive.
	at int
	// private: stored in the frame's private slots, it survives the
	// epochs (evalState.clobber).
	private bool
}

// evalState is the forward state of pass i.
type evalState struct {
	regs  [16]val
	flags flagState
	spec  map[uint64]val // speculated loads since the last store
	// stores: values the trace stored at known addresses (addr<<4 |
	// size), for the loads that read them back. A store through an
	// unknown pointer or a call may have changed one (a spill slot whose
	// address escaped): it stays, because a load that uses it is
	// guarded on its value.
	stores map[uint64]storedVal
	// epoch counts the stores through unknown pointers and the calls so
	// far: a value stored at an epoch still current is certain.
	epoch uint32
	// ranges: where the stores at known addresses went (the optimiser's
	// storeRanges); op: the op being evaluated.
	ranges *[]storeRange
	op     int
	// saved: callee-saved registers pushed by inlined prologues, by
	// stack address, until popped. Their slots' addresses never escape,
	// so calls leave them alone.
	saved map[uint64]val
	// stackDirty: saved or a private slot changed since the last
	// snapshot (snapStack).
	stackDirty bool
	// private: the frame's private slots (optimizer.private), which
	// calls and stores through unknown pointers leave alone too.
	private addrRange
	// wordsForgotten: a reference count changed through an unknown
	// pointer (forgetWords); a peeled copy no longer takes an 8-byte
	// word at the loop head's value.
	wordsForgotten bool
	// counts: registers holding a word loaded through another register,
	// to find a reference count changed by load, adjust and store.
	counts countRegs
	// fresh: registers holding a block an allocator returned in this
	// trace (Object.Allocators) or popped off a free list (popRegs), whose
	// stores change nothing it knows.
	fresh uint16
	// clobberedAt: the op of the first clobber.
	clobberedAt int
	// mirror: for a register, the known address (addr<<4 | 8) whose
	// 8 bytes it holds since it stored them there or loaded them from
	// there, neither it nor they written since; 0 none (reloads.go).
	mirror   [16]uint64
	mirrored uint16 // the registers with a mirror
	// unknownAt: the known addresses (addr<<4 | size) the trace last
	// stored a value it does not know to, by a plain store: a load from
	// one reads that value, not what memory holds once the recording is
	// over (a called function's frame, written by the next iteration's
	// other callee), so it is never speculated on.
	unknownAt map[uint64]bool
	// words: the 8-byte values stored since the last forgetWords, which
	// it makes stale.
	words []uint64
	// escaped: stack slots whose address the trace took (lea), which a
	// native call may write (calledOut).
	escaped []uint64
}

// eval runs the trace symbolically. chosen == nil: speculate every
// eligible load; otherwise only at those ops. It returns the guards it
// can fold and, with keepStates, records per op the known registers and
// flags before it (o.known, o.flagsAt) for liveness and generate: only
// the final pass needs them, and they are most of a pass's cost.
func (o *optimizer) eval(chosen map[int]bool, allowed assume, keepStates bool) ([]foldedGuard, bool) {
	var s evalState
	for r := 0; r < 16; r++ {
		if o.inv&(1<<r) != 0 && allowed&(1<<r) != 0 {
			s.regs[r] = val{known: true, v: o.head[r], deps: 1 << r}
		}
	}
	if o.side != nil {
		for _, rv := range o.side.known {
			s.regs[rv.r] = val{known: true, v: rv.v}
		}
	}
	// The maps live as long as the optimiser: cleared, not made again
	// (new memory is a page fault per 4 KB in this process).
	if o.specMap == nil {
		o.specMap, o.storeMap, o.savedMap = map[uint64]val{}, map[uint64]storedVal{}, map[uint64]val{}
		o.foldOps, o.unknownMap = map[int]bool{}, map[uint64]bool{}
	}
	clear(o.specMap)
	clear(o.storeMap)
	clear(o.savedMap)
	clear(o.unknownMap)
	s.unknownAt = o.unknownMap
	if o.peel != nil {
		clear(o.peel.used)
	}
	s.spec, s.stores, s.saved = o.specMap, o.storeMap, o.savedMap
	if keepStates {
		o.stackSnaps, o.stackVals, o.stackDeps = o.stackSnaps[:0], o.stackVals[:0], o.stackDeps[:0]
	}
	if o.side != nil || s.regs[x86enc.RSP].known {
		s.private = o.private
	}
	if o.side != nil {
		o.side.enter(&s)
	}
	o.storeRanges = o.storeRanges[:0]
	o.code = o.code[:0]
	s.ranges = &o.storeRanges
	// Every pass rewrites the states and flags: the memory of the
	// previous pass, or of an earlier trace (evalScratch), is reused (new
	// memory costs a page fault per 4 KB); the flags grow by doubling.
	n := len(o.ops)
	o.known.reset()
	if cap(o.flagsAt) < n {
		o.flagsAt = make([]flagState, n, max(n, 2*cap(o.flagsAt)))
	} else {
		o.flagsAt = o.flagsAt[:n]
	}
	clear(o.foldOps)
	o.keeping = keepStates
	if keepStates {
		if o.sameStores == nil {
			o.sameStores = map[int]bool{}
		}
		clear(o.sameStores)
		if o.reloads == nil {
			o.reloads = map[int]bool{}
		}
		clear(o.reloads)
	}
	// The storage of the last evaluation's list: only the latest is
	// read (choose), so each evaluation may reuse it.
	folded := o.foldedBuf[:0]
	defer func() { o.foldedBuf = folded[:0] }()
	// A contradiction does not stop the pass: the others are found in
	// the same pass, and choose bans every speculation they rest on at
	// once instead of one pass per contradiction.
	o.contras = o.contras[:0]
	contradicted := false
	for i := range o.ops {
		if o.peel != nil && s.epoch != 0 {
			// A peeled copy that may store anywhere assumes nothing:
			// no need to go on.
			if o.peel.unknownStore < 0 {
				o.peel.unknownStore = s.clobberedAt
			}
			return nil, false
		}
		op := &o.ops[i]
		s.op = i
		if keepStates {
			o.known.add(&s.regs)
			o.flagsAt[i] = s.flags
			o.snapStack(&s, i)
		}
		switch op.kind {
		case opInsn:
			var r x86enc.Reg
			var slot uint64
			var load bool
			if keepStates {
				// Only the last pass's reloads are used.
				r, slot, load = o.slotMove(i, &s)
			}
			if !o.step(i, &s, chosen) {
				return nil, false
			}
			s.counts.after(o.insts[i])
			s.freshAfter(o.insts[i])
			s.fresh |= o.freshAt[i]
			if keepStates {
				if load && slot != 0 && s.mirror[r] == slot && s.regs[r].lowBytes() == 0 {
					// (A register with a known value is the
					// constant forms' business: it may be left
					// virtual.)
					o.reloads[i] = true
				}
				s.mirrorAfter(o.insts[i], r, slot)
			}
		case opGuard:
			if s.flags.known && op.cond != x86enc.P && op.cond != x86enc.NP {
				if condHolds(op.cond, s.flags) {
					// Contradicts the recording.
					o.contras = append(o.contras, foldedGuard{op: i, deps: s.flags.deps})
					contradicted = true
					s.flags = flagState{}
					continue
				}
				folded = append(folded, foldedGuard{op: i, deps: s.flags.deps})
				o.foldOps[i] = true
			}
		case opGuardTarget:
			if r, ok := targetReg(op.inst); ok && s.regs[r].known {
				if s.regs[r].v != op.target {
					o.contras = append(o.contras, foldedGuard{op: i, deps: s.regs[r].deps})
					contradicted = true
					s.regs[r] = val{}
					continue
				}
				folded = append(folded, foldedGuard{op: i, deps: s.regs[r].deps, target: true})
				o.foldOps[i] = true
			} else if ok {
				// Past its guard the register holds the target.
				s.regs[r] = val{known: true, v: op.target}
			}
		case opPush:
			s.unmirror(x86enc.RSP)
			s.regs[x86enc.RSP] = addConst(s.regs[x86enc.RSP], -8)
			s.forget(s.regs[x86enc.RSP], 8)
		case opPop:
			s.unmirror(x86enc.RSP)
			s.regs[x86enc.RSP] = addConst(s.regs[x86enc.RSP], 8)
		case opCall:
			for _, r := range []x86enc.Reg{x86enc.RAX, x86enc.RCX, x86enc.RDX, x86enc.RSI, x86enc.RDI, x86enc.R8, x86enc.R9, x86enc.R10, x86enc.R11} {
				s.regs[r] = val{}
				s.unmirror(r)
			}
			s.flags = flagState{}
			s.counts, s.fresh = countRegs{}, 0
			if alloc, free := o.m.allocation(op.target); alloc || free || o.m.writesNoMemory(op.target) {
				// Nothing the trace knows changed; a fresh block
				// in %rax.
				if alloc {
					s.fresh = 1 << x86enc.RAX
				}
				break
			}
			s.clobber()
			s.calledOut()
		case opIsTraced:
			s.regs[x86enc.RAX] = val{known: true, v: 0}
			s.unmirror(x86enc.RAX)
		case opCount:
			s.flags = flagState{}
		}
	}
	if keepStates {
		o.known.add(&s.regs)
	}
	o.epoch = s.epoch
	if contradicted {
		return nil, false
	}
	return folded, true
}

func addConst(v val, d int64) val {
	if !v.known {
		return v
	}
	v.v += uint64(d)
	return v
}

// gpr maps an x86asm register to its number and width in bytes; ok is
// false for anything but a general register (and for AH-BH).
func gpr(r x86asm.Reg) (n x86enc.Reg, size int, ok bool) {
	switch {
	case r >= x86asm.RAX && r <= x86asm.R15:
		return x86enc.Reg(r - x86asm.RAX), 8, true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return x86enc.Reg(r - x86asm.EAX), 4, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return x86enc.Reg(r - x86asm.AX), 2, true
	case r >= x86asm.AL && r <= x86asm.BL:
		return x86enc.Reg(r - x86asm.AL), 1, true
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return x86enc.Reg(r-x86asm.SPB) + 4, 1, true
	}
	return 0, 0, false
}

// addrParts splits a memory operand into its displacement (%rip's end
// added) and the general registers it adds, the index scaled (noReg:
// none); ok is false for a segment or a 32-bit address.
func addrParts(inst *x86dec.Inst, m x86asm.Mem) (disp uint64, base, index x86enc.Reg, scale uint64, ok bool) {
	if m.Segment != 0 || inst.AddrSize != 64 {
		return 0, 0, 0, 0, false
	}
	disp, base, index, scale = uint64(m.Disp), noReg, noReg, uint64(m.Scale)
	if m.Base == x86asm.RIP {
		disp += inst.End()
	} else if m.Base != 0 {
		r, sz, ok := gpr(m.Base)
		if !ok || sz != 8 {
			return 0, 0, 0, 0, false
		}
		base = r
	}
	if m.Index != 0 {
		r, sz, ok := gpr(m.Index)
		if !ok || sz != 8 {
			return 0, 0, 0, 0, false
		}
		index = r
	}
	return disp, base, index, scale, true
}

// noReg: no register (addrParts).
const noReg = x86enc.Reg(0xff)

// addr evaluates a memory operand's address, if its registers are known.
func (o *optimizer) addr(inst *x86dec.Inst, m x86asm.Mem, s *evalState) val {
	disp, base, index, scale, ok := addrParts(inst, m)
	if !ok {
		return val{}
	}
	a := val{known: true, v: disp}
	if base != noReg {
		if !s.regs[base].known {
			return val{}
		}
		a.v += s.regs[base].v
		a.deps |= s.regs[base].deps
	}
	if index != noReg {
		if !s.regs[index].known {
			return val{}
		}
		a.v += s.regs[index].v * scale
		a.deps |= s.regs[index].deps
	}
	return a
}

// operand evaluates a source operand of size bytes (zero-extended).
func (o *optimizer) operand(i int, a x86asm.Arg, size int, s *evalState, chosen map[int]bool) val {
	inst := o.insts[i]
	switch a := a.(type) {
	case x86asm.Imm:
		return val{known: true, v: truncate(uint64(int64(a)), size)}
	case x86asm.Reg:
		if v := regOperand(a, &s.regs); v.known {
			return v
		}
		return val{}
	case x86asm.Mem:
		ad := o.addr(inst, a, s)
		if size > 8 {
			return val{}
		}
		if !ad.known {
			return o.indirectSpec(i, size, chosen)
		}
		if v := o.knownAddrLoad(i, inst, ad, size, s, chosen); v.known {
			return v
		}
		// Not speculated on where it is (memory the loop rewrites, a
		// pointer): on what both iterations read there, perhaps.
		return o.indirectSpec(i, size, chosen)
	}
	return val{}
}

// knownAddrLoad evaluates a load of size bytes at the known address ad.
func (o *optimizer) knownAddrLoad(i int, inst *x86dec.Inst, ad val, size int, s *evalState, chosen map[int]bool) val {
	if o.m.readOnly(ad.v, size) {
		// Inside a loaded object's read-only segments: mapped
		// and readable, so read in place (no memView copy).
		var buf [8]byte
		copy(buf[:], memAt(ad.v, size))
		return val{known: true, v: binary.LittleEndian.Uint64(buf[:]), deps: ad.deps}
	}
	key := ad.v<<4 | uint64(size)
	// Not where only a speculation on what the concrete run found put
	// it: that is checked at each iteration, not only at the close.
	if v, ok := o.invariantLoad(i, key, ad.v, size, s); ok && ad.deps&o.riskyBits == 0 {
		return val{known: true, v: v, deps: ad.deps}
	}
	if v, ok := s.spec[key]; ok {
		// Loaded again: through an address that may rest on other
		// assumptions than the first load's. Where the first load
		// is chosen, so is this one: the pass that guards only the
		// chosen loads may have forgotten the first one's value by
		// here (a store it no longer knows the address of).
		v.deps |= ad.deps
		if k, ok := o.specAt[key]; ok && chosen == nil {
			o.specReuse = append(o.specReuse, [2]int{i, k})
		}
		return v
	}
	st, forwarded := s.stores[key]
	if v, ok := s.storedValue(st, forwarded); ok {
		// Stored by the trace with nothing since that could have
		// written it (no store through an unknown pointer, no
		// call): certain, no guard.
		v.deps |= ad.deps
		return v
	}
	want := ((chosen == nil && !o.banned[i]) || chosen[i]) && !s.unknownAt[key]
	if o.side != nil && o.side.isVariant(ad.v, size) && !forwarded {
		// (What the trace stored itself is guarded as stored.)
		want = false
	}
	if !want || (size != 8 && size != 4 && size != 2 && size != 1) || len(o.specOp) >= maxSpecs || !specFormSize(o.ops[i].code, size) {
		return val{}
	}
	if _, isMem := inst.Args[0].(x86asm.Mem); isMem && !readOnlyOps.has(inst.Op) {
		return val{} // read and written: a store follows
	}
	var v uint64
	var deps assume
	if forwarded {
		// What the trace stored there itself, not what memory
		// holds once the recording is over.
		v, deps = st.v, st.deps
	} else {
		var ok bool
		if v, ok = o.mem.read(ad.v, size); !ok {
			return val{} // not readable here: the trace reads it, or faults, as the interpreter would
		}
	}
	stacky := size == 8 && !forwarded && (o.frameStackPointer(v) || o.inCode(ad.v, size))
	// A pointer both iterations load (concrete.go): the object
	// the loop works on is another at the next one.
	steady := !forwarded && o.stableAt(i, v)
	risky := false
	if size == 8 && !forwarded && !o.private.holds(ad.v, size) && !stacky && o.heapPointer(v) {
		if !steady {
			return val{}
		}
		risky = true
	}
	post := -1
	if size == 8 && int64(v) != int64(int32(v)) {
		// cmp takes a 32-bit immediate: a plain 64-bit load runs
		// and its register is compared with a literal after it.
		// Only for a value the trace stored itself, derived from
		// what it assumes anyway: a wide value read from memory
		// is mostly a pointer to whatever object the iteration
		// works on, different in the next one; but not in the
		// loop frame's private slots, where the interpreter keeps
		// its own pointers (bytecode, frame, locals) across calls:
		// one the trace stores with another value, or an unknown
		// one, is banned (banVariant).
		if (!forwarded && !o.private.holds(ad.v, size) && !stacky && !steady) || !postGuardable(inst) {
			return val{}
		}
		risky = risky || (!forwarded && !o.private.holds(ad.v, size) && !stacky)
		r, _, _ := gpr(regArg(inst.Args[0]))
		at, ok := postPoint(o.ops, o.insts, i, r)
		if !ok || o.postTaken(at) {
			return val{}
		}
		post = at
	} else if !flagsDeadAfter(o.ops, i-1) {
		// The value guard's cmp would clobber live flags (a
		// compiler schedules the next bytecode word's load
		// between a compare and its setcc): the load runs and
		// its register is checked where the flags are dead.
		r, _, ok := gpr(regArg(inst.Args[0]))
		if !ok || !postGuardable(inst) {
			return val{}
		}
		at, ok := postPoint(o.ops, o.insts, i, r)
		if !ok || o.postTaken(at) {
			return val{}
		}
		post = at
	}
	if size == 2 && !forwarded && !o.private.holds(ad.v, size) {
		o.noteCode(ad.v)
	}
	k := len(o.specOp)
	o.specAt[key] = k
	o.specOp, o.specAddr, o.specVal = append(o.specOp, i), append(o.specAddr, ad.v), append(o.specVal, v)
	o.specPost, o.specSize, o.specFwd = append(o.specPost, post), append(o.specSize, size), append(o.specFwd, forwarded)
	o.specRisky = append(o.specRisky, risky)
	if risky {
		o.riskyBits |= specBit(k)
	}
	sv := val{known: true, v: v, deps: ad.deps | deps | specBit(k)}
	s.spec[key] = sv
	if size == 8 && s.private.holds(ad.v, size) {
		s.stackDirty = true
	}
	return sv
}

// stableAt reports whether op i's load reads v at every iteration, as the
// concrete run found (concrete.go), and is not banned.
func (o *optimizer) stableAt(i int, v uint64) bool {
	w, ok := o.stable[i]
	return ok && w == v && !o.bans[o.ops[i].addr]
}

// postTaken reports whether a speculation of this pass is guarded before
// op at already: a plan holds one post guard an op.
func (o *optimizer) postTaken(at int) bool {
	return slices.Contains(o.specPost, at)
}

// indirectSpec speculates on a plain load the optimiser cannot (through a
// pointer it does not know, or of what the loop rewrites) at the value the
// concrete run found at every iteration (stableLoads): the register is
// compared with it right after the load, or where the flags are next
// dead, and is known from there on.
func (o *optimizer) indirectSpec(i, size int, chosen map[int]bool) val {
	v, ok := o.stable[i]
	if !ok || o.side != nil || len(o.specOp) >= maxSpecs || o.bans[o.ops[i].addr] {
		return val{}
	}
	if want := (chosen == nil && !o.banned[i]) || chosen[i]; !want {
		return val{}
	}
	inst := o.insts[i]
	if !postGuardable(inst) || inst.MemBytes != size {
		return val{}
	}
	r, _, _ := gpr(regArg(inst.Args[0]))
	at, ok := postPoint(o.ops, o.insts, i, r)
	if !ok || o.postTaken(at) {
		return val{}
	}
	k := len(o.specOp)
	o.specOp, o.specAddr, o.specVal = append(o.specOp, i), append(o.specAddr, 0), append(o.specVal, v)
	o.specPost, o.specSize, o.specFwd = append(o.specPost, at), append(o.specSize, size), append(o.specFwd, false)
	o.specRisky = append(o.specRisky, true)
	o.riskyBits |= specBit(k)
	return val{known: true, v: v, deps: specBit(k)}
}

// noteCode records that the trace speculates on the 2-byte word at a: an
// interpreter's bytecode, whose inline caches beside it hold pointers
// (CPython's: the method a call site found, a global's dict keys) that
// stay the same as long as the bytecode does. Not a 1-byte one: that is
// as often a value's type tag (Lua's, beside the value), and the values
// around it, taken as an inline cache's, were then speculated on without
// the check that retires a trace whose guard fails (Lua n-body: the inner
// loop's trace left at every entry, on the coordinates of the outer
// loop's body; 26% fewer instructions run in traces and interpreter
// without it). The interpreters with inline caches (CPython 3.11) have
// 2-byte code units.
func (o *optimizer) noteCode(a uint64) {
	if o.side != nil || o.peel != nil {
		return
	}
	r := addrRange{a - bytecodeSpan, a + bytecodeSpan}
	if n := len(o.code); n > 0 && o.code[n-1].hi >= r.lo && o.code[n-1].lo <= r.hi {
		o.code[n-1].lo, o.code[n-1].hi = min(o.code[n-1].lo, r.lo), max(o.code[n-1].hi, r.hi)
		return
	}
	o.code = append(o.code, r)
}

// inCode reports whether [a, a+size) lies near a bytecode word the trace
// speculates on (noteCode).
func (o *optimizer) inCode(a uint64, size int) bool {
	for _, r := range o.code {
		if r.holds(a, size) {
			return true
		}
	}
	return false
}

// frameStackPointer reports whether v, read from memory, points near a
// head register the trace assumes that holds a pointer (within
// frameStackReach): CPython's frame stack top, where a called function's
// frame goes, the same at every iteration that calls at the same depth;
// Lua's call info, closures and prototypes, allocated near its state and
// stack. The objects an iteration works on are mostly written by the
// trace itself (a VM stack slot a value is copied to: unknownAt) or read
// through addresses it does not know; one the loop is entered with (an
// outer loop's variable) fails its guard at the next entry, which a side
// trace then takes (Lua nbody: 5% more instructions, spectralnorm half).
func (o *optimizer) frameStackPointer(v uint64) bool {
	if o.side != nil || o.peel != nil {
		return false
	}
	for r := 0; r < 16; r++ {
		if o.inv&(1<<r) == 0 || r == int(x86enc.RSP) {
			continue
		}
		h := o.head[r]
		if h < 1<<16 || o.m.inImage(h) {
			continue
		}
		if v+frameStackReach >= h && v <= h+frameStackReach {
			return true
		}
	}
	return false
}

// frameStackReach: how far from a head register's pointer a pointer read
// from memory is taken to be the interpreter's own (frameStackPointer).
const frameStackReach = 64 << 10

// heapPointer reports whether v, read from memory, looks like a pointer
// to an object no loaded file holds (the heap's, a stack's): mostly the
// object an iteration works on, different in the next, as the too-wide
// values that are not speculated are (operand). Natively such pointers
// are too wide anyway unless the heap is low (a non-PIE program's brk
// heap); the test keeps traces the same there, and under tools that map
// memory low (valgrind), whose instruction counts would otherwise measure
// other traces than the program runs natively.
func (o *optimizer) heapPointer(v uint64) bool {
	if v < 1<<16 || int64(v) != int64(int32(v)) || o.m.inImage(v) {
		return false
	}
	_, mapped := o.mem.read(v, 1)
	return mapped
}

// postGuardable: inst loads into a whole general register (a 32-bit
// destination zeroes the upper half), whose result a guard after it can
// compare (loadedValue).
func postGuardable(inst *x86dec.Inst) bool {
	_, ok := loadedValue(inst, 0)
	return ok
}

// loadedValue is the whole register a load inst sets from memory value v
// (of inst.MemBytes bytes); false for a load that leaves part of it as it
// was or is not a plain load.
func loadedValue(inst *x86dec.Inst, v uint64) (uint64, bool) {
	_, size, ok := gpr(regArg(inst.Args[0]))
	if !ok || (size != 8 && size != 4) {
		return 0, false
	}
	switch inst.Op {
	case x86asm.MOV, x86asm.MOVZX:
		return v, true
	case x86asm.MOVSX, x86asm.MOVSXD:
		return truncate(signExtend(v, inst.MemBytes), size), true
	}
	return 0, false
}

func regArg(a x86asm.Arg) x86asm.Reg {
	r, _ := a.(x86asm.Reg)
	return r
}

func truncate(v uint64, size int) uint64 {
	if size >= 8 {
		return v
	}
	return v & (1<<(8*size) - 1)
}

func signExtend(v uint64, size int) uint64 {
	sh := 64 - 8*size
	return uint64(int64(v<<sh) >> sh)
}

// lowOperand is a register operand of size bytes with its known low
// bytes (lo), or an immediate; nothing else.
func (o *optimizer) lowOperand(a x86asm.Arg, size int, s *evalState) val {
	switch a := a.(type) {
	case x86asm.Imm:
		return val{known: true, v: truncate(uint64(int64(a)), size)}
	case x86asm.Reg:
		return regOperand(a, &s.regs)
	}
	return val{}
}

// regOperand reads general register operand a at its width: known, or
// known in fewer low bytes than that (lo), or not at all (AH-BH too).
func regOperand(a x86asm.Reg, regs *[16]val) val {
	r, sz, ok := gpr(a)
	if !ok || (sz == 1 && a >= x86asm.AH && a <= x86asm.BH) {
		return val{}
	}
	v := regs[r]
	if w, ok := v.low(sz); ok {
		return w
	}
	return partial(v.v, int(v.lo), v.lowDeps(int(v.lo)))
}

// setReg writes a register of size bytes with v (32-bit writes zero the
// upper half; narrower ones merge).
func setReg(s *evalState, r x86enc.Reg, size int, v val) {
	switch size {
	case 8:
		s.regs[r] = v
	case 4:
		// The upper half becomes zero: known.
		n := min(v.lowBytes(), 4)
		if n == 4 {
			n = 8
		}
		k := min(v.lowDepBytes(), 4)
		s.regs[r] = partial(truncate(v.v, 4), n, v.deps).withLowDeps(k, v.lowDeps(k))
	default:
		old := s.regs[r]
		if v.lowBytes() < size {
			s.regs[r] = val{}
			return
		}
		mask := uint64(1)<<(8*size) - 1
		n := size
		if old.lowBytes() > size {
			n = old.lowBytes()
		}
		// The bytes written rest on v alone (and the bytes above
		// them that old's low deps covered, on those).
		low, lowDeps := size, v.lowDeps(size)
		if int(old.pn) > size {
			low, lowDeps = int(old.pn), lowDeps|old.pdeps
		}
		s.regs[r] = partial(old.v&^mask|v.v&mask, n, old.deps|v.deps).withLowDeps(low, lowDeps)
	}
}

// step applies op i's instruction to s.
func (o *optimizer) step(i int, s *evalState, chosen map[int]bool) bool {
	inst := o.insts[i]
	if inst.Special != x86dec.SpecialNone {
		o.clobber(inst, s)
		return true
	}
	args := inst.Args
	dst, dsize, dreg := x86enc.Reg(0), 0, false
	if r, ok := args[0].(x86asm.Reg); ok {
		if r >= x86asm.AH && r <= x86asm.BH {
			// Bits 8-15 of %rax-%rbx: not modelled, the register
			// becomes unknown.
			o.clobber(inst, s)
			return true
		}
		dst, dsize, dreg = gpr(r)
	}
	size := dsize
	if m, ok := args[0].(x86asm.Mem); ok {
		_ = m
		size = inst.MemBytes
	}
	switch inst.Op {
	case x86asm.MOV:
		if dreg {
			setReg(s, dst, dsize, o.operand(i, args[1], dsize, s, chosen))
			return true
		}
		if m, ok := args[0].(x86asm.Mem); ok && size >= 1 && size <= 8 {
			// A store: remembered for the loads that read it back.
			var v val
			switch args[1].(type) {
			case x86asm.Reg, x86asm.Imm:
				v = o.operand(i, args[1], size, s, chosen)
			}
			ad := o.addr(inst, m, s)
			if o.keeping && ad.known && v.known {
				o.noteSameStore(i, ad, v, size, s)
			}
			o.stored(inst, s)
			if ad.known {
				if v.known {
					delete(s.unknownAt, ad.v<<4|uint64(size))
				} else {
					s.unknownAt[ad.v<<4|uint64(size)] = true
				}
			}
			if ad.known && v.known {
				s.stores[ad.v<<4|uint64(size)] = storedVal{val: val{known: true, v: truncate(v.v, size), deps: v.deps | ad.deps}, epoch: s.epoch, at: len(*s.ranges),
					private: s.private.holds(ad.v, size)}
				if size == 8 {
					s.words = append(s.words, ad.v<<4|8)
				}
				last := &(*s.ranges)[len(*s.ranges)-1]
				last.v, last.known = truncate(v.v, size), true
			}
			if ad.known && len(*s.ranges) > 0 {
				switch args[1].(type) {
				case x86asm.Reg, x86asm.Imm:
					(*s.ranges)[len(*s.ranges)-1].scalar = true
				}
			}
			return true
		}
	case x86asm.MOVSXD, x86asm.MOVSX, x86asm.MOVZX:
		if dreg {
			srcSize := inst.MemBytes
			if r, ok := args[1].(x86asm.Reg); ok {
				_, srcSize, _ = gpr(r)
			}
			v := o.operand(i, args[1], srcSize, s, chosen)
			if v.known && inst.Op != x86asm.MOVZX {
				v.v = signExtend(v.v, srcSize)
			}
			setReg(s, dst, dsize, v)
			return true
		}
	case x86asm.LEA:
		if dreg {
			if m, ok := args[1].(x86asm.Mem); ok {
				a := o.addr(inst, m, s)
				if a.known && m.Base == x86asm.RSP {
					// A stack slot's address taken: an out
					// argument of a call, which writes it.
					s.escaped = append(s.escaped, a.v)
				}
				setReg(s, dst, dsize, a)
				return true
			}
		}
	case x86asm.ADD, x86asm.SUB, x86asm.AND, x86asm.OR, x86asm.XOR, x86asm.CMP, x86asm.TEST:
		a := o.operand(i, args[0], size, s, chosen)
		b := o.operand(i, args[1], size, s, chosen)
		if inst.Op == x86asm.XOR && dreg && args[0] == args[1] {
			a, b = val{known: true}, val{known: true}
		}
		if a.known && b.known && size >= 1 && size <= 8 {
			s.flags = arith(inst.Op, a.v, b.v, size)
			s.flags.deps = a.deps | b.deps
		} else {
			s.flags = flagState{}
		}
		if inst.Op == x86asm.CMP || inst.Op == x86asm.TEST {
			return true
		}
		if dreg {
			var v val
			if a.known && b.known {
				v = bytewise(val{known: true, v: arithResult(inst.Op, a.v, b.v), deps: a.deps | b.deps}, a, b)
			} else if pa, pb := o.lowOperand(args[0], dsize, s), o.lowOperand(args[1], dsize, s); pa.lowBytes() > 0 && pb.lowBytes() > 0 {
				// The low bytes of a sum, difference or bitwise
				// result depend on the operands' low bytes alone.
				n := min(pa.lowBytes(), pb.lowBytes(), dsize)
				v = bytewise(partial(arithResult(inst.Op, pa.v, pb.v), n, pa.deps|pb.deps), pa, pb)
			}
			setReg(s, dst, dsize, v)
			return true
		}
		o.stored(inst, s) // a memory destination
		return true
	case x86asm.NEG, x86asm.NOT, x86asm.INC, x86asm.DEC:
		if dreg {
			a := s.regs[dst]
			if inst.Op != x86asm.NOT {
				s.flags = flagState{}
			}
			if a.known {
				a.v = truncate(a.v, dsize)
				if inst.Op == x86asm.NEG {
					// The flags of 0 - a: CF when a is not 0.
					s.flags = arith(x86asm.SUB, 0, a.v, dsize)
					s.flags.deps = a.deps
				}
				a.v = unaryResult(inst.Op, a.v)
				setReg(s, dst, dsize, a)
			} else {
				setReg(s, dst, dsize, val{})
			}
			return true
		}
	case x86asm.SBB:
		// sbb %r, %r: 0 - CF, all ones or zero; CF stays, OF clears.
		if dreg && args[0] == args[1] && s.flags.known {
			f := s.flags
			v := val{known: true, deps: f.deps}
			if f.cf {
				v.v = ^uint64(0)
			}
			setReg(s, dst, dsize, v)
			s.flags = flagState{known: true, cf: f.cf, zf: !f.cf, sf: f.cf, deps: f.deps}
			return true
		}
	case x86asm.PUSH, x86asm.POP:
		// push/pop of a general register with %rsp known: %rsp moves,
		// and a callee-saved register comes back with the value it was
		// saved with.
		r, ok := args[0].(x86asm.Reg)
		if !ok {
			break
		}
		reg, sz, ok := gpr(r)
		sp := s.regs[x86enc.RSP]
		if !ok || sz != 8 || !sp.known || reg == x86enc.RSP {
			break
		}
		if inst.Op == x86asm.PUSH {
			slot := addConst(sp, -8)
			s.forget(slot, 8)
			if calleeSaved&(1<<reg) != 0 {
				// Found at the pop only where %rsp is known
				// there too: the value rests on it as well.
				v := s.regs[reg]
				if v.known {
					v.deps |= slot.deps
				}
				s.saved[slot.v] = v
			} else {
				delete(s.saved, slot.v)
			}
			s.stackDirty = true
			s.regs[x86enc.RSP] = slot
			return true
		}
		v, had := s.saved[sp.v]
		delete(s.saved, sp.v)
		s.stackDirty = s.stackDirty || had
		if !had {
			v = val{}
		}
		s.regs[reg] = v
		s.regs[x86enc.RSP] = addConst(sp, 8)
		return true
	case x86asm.CDQE:
		a := s.regs[x86enc.RAX]
		if a.known {
			a.v = signExtend(truncate(a.v, 4), 4)
		}
		s.regs[x86enc.RAX] = a
		return true
	case x86asm.SHL, x86asm.SHR, x86asm.SAR:
		if dreg {
			a := s.regs[dst]
			n, ok := args[1].(x86asm.Imm)
			s.flags = flagState{}
			if ok && a.known {
				a.v = shiftResult(inst.Op, a.v, uint64(n), dsize)
				setReg(s, dst, dsize, a) // 32 bits clear the upper half, fewer merge
			} else {
				setReg(s, dst, dsize, val{})
			}
			return true
		}
	}
	o.clobber(inst, s)
	return true
}

// clobber makes unknown whatever an instruction the optimiser does not
// model may change.
func (o *optimizer) clobber(inst *x86dec.Inst, s *evalState) {
	if storesMemory(inst) {
		o.stored(inst, s) // with the registers before it
	}
	w, all := writes(inst)
	if all {
		s.regs = [16]val{}
	} else {
		for r := 0; r < 16; r++ {
			if w&(1<<r) != 0 {
				s.regs[r] = val{}
			}
		}
	}
	if inst.Special != x86dec.SpecialNone || x86dec.OpFlags(inst.Op) != x86dec.FlagsNone {
		s.flags = flagState{}
	}
}

// stored forgets the speculated values inst's store may change: those it
// overlaps when its address is known, else all of them.
func (o *optimizer) stored(inst *x86dec.Inst, s *evalState) {
	if inst.Op == x86asm.PUSH {
		// Before the register effects: %rsp is still the old one.
		s.forget(addConst(s.regs[x86enc.RSP], -8), 8)
		return
	}
	if m, ok := memArg(inst).(x86asm.Mem); ok && m.Segment == 0 && inst.MemBytes > 0 && inst.MemBytes <= 64 {
		a := o.addr(inst, m, s)
		if !a.known && s.intoFresh(m) {
			return
		}
		if !a.known && (refcountStore(inst, m) || s.counts.storesBack(inst, m) || o.links[s.op]) && o.m.refcounting(inst.Addr) {
			s.forgetWords()
			return
		}
		s.forget(a, inst.MemBytes)
		if a.known && inst.MemBytes > 8 {
			// A vector store of values the trace does not know (a
			// VM value copied whole): its 8-byte words are not
			// speculated on (unknownAt); a type tag beside one is.
			s.unknownWords(a.v, inst.MemBytes)
		}
		return
	}
	s.clobber()
}

// refcountStore reports whether inst adds one to or subtracts one from
// an 8-byte word in place: how an interpreter with Object.RefcountWords
// changes a reference count (at a pointer to the object, or in a static
// array of them: CPython's small integers).
func refcountStore(inst *x86dec.Inst, m x86asm.Mem) bool {
	if inst.MemBytes != 8 || m.Segment != 0 || m.Base == x86asm.RIP {
		return false
	}
	switch inst.Op {
	case x86asm.INC, x86asm.DEC:
		return true
	case x86asm.ADD, x86asm.SUB:
		one, ok := inst.Args[1].(x86asm.Imm)
		return ok && one == 1
	}
	return false
}

// intoFresh reports whether m lies in a block an allocator returned in
// this trace: the memory the trace knows is at addresses it knows, none of
// them in a block allocated since (a heap object's address is known only
// when a pointer to it is kept where the loop finds it again, a private
// slot or a peeled copy's invariant: an object alive, which a new block
// cannot overlap), so a store there forgets nothing.
func (s *evalState) intoFresh(m x86asm.Mem) bool {
	r, size, ok := gpr(m.Base)
	return ok && size == 8 && m.Index == 0 && m.Disp >= 0 && m.Disp < 4096 && s.fresh&(1<<r) != 0
}

// freshAfter updates s.fresh for inst, run: a register written loses its
// block, unless copied from another that holds one.
func (s *evalState) freshAfter(inst *x86dec.Inst) {
	if s.fresh == 0 {
		return
	}
	w, all := writes(inst)
	if all {
		s.fresh = 0
		return
	}
	keep := false
	if inst.Op == x86asm.MOV {
		src, ss, ok1 := gpr(regArg(inst.Args[1]))
		_, ds, ok2 := gpr(regArg(inst.Args[0]))
		keep = ok1 && ok2 && ss == 8 && ds == 8 && s.fresh&(1<<src) != 0
	}
	s.fresh &^= w
	if keep {
		s.fresh |= w
	}
}

// countRegs follows, per register, a word loaded through a base register
// and adjusted by one: what a compiler makes of a reference count's
// decrement when it keeps the count (mov (%rdx),%rax; sub $1,%rax; mov
// %rax,(%rdx)), which storesBack recognises as refcountStore's kind.
type countRegs struct {
	base     [16]x86enc.Reg // +1: 0 means none
	adjusted uint16
	// live: the registers whose base is set (a pass over code that
	// loads no word does no more than test it: it ran for every
	// instruction of every pass, 7% of a python3.11 fannkuch's
	// instructions under valgrind).
	live uint16
}

// after updates c for inst, run.
func (c *countRegs) after(inst *x86dec.Inst) {
	if inst.Special != x86dec.SpecialNone {
		*c = countRegs{}
		return
	}
	if c.live == 0 && (inst.Op != x86asm.MOV || inst.MemBytes != 8) {
		return // nothing followed, and no word loaded to follow
	}
	dst, dsize, dreg := x86enc.Reg(0), 0, false
	if r, ok := inst.Args[0].(x86asm.Reg); ok {
		dst, dsize, dreg = gpr(r)
	}
	if dreg && dsize == 8 {
		switch inst.Op {
		case x86asm.MOV:
			if m, ok := inst.Args[1].(x86asm.Mem); ok && wordAt(inst, m) {
				b, _, _ := gpr(m.Base)
				c.drop(dst)
				if b != dst {
					c.base[dst], c.adjusted = b+1, c.adjusted&^(1<<dst)
					c.live |= 1 << dst
				}
				return
			}
		case x86asm.ADD, x86asm.SUB:
			if one, ok := inst.Args[1].(x86asm.Imm); ok && one == 1 && c.base[dst] != 0 {
				c.adjusted |= 1 << dst
				return
			}
		case x86asm.INC, x86asm.DEC:
			if c.base[dst] != 0 {
				c.adjusted |= 1 << dst
				return
			}
		}
	}
	w, all := writes(inst)
	if all {
		*c = countRegs{}
		return
	}
	for r := x86enc.Reg(0); r < 16; r++ {
		if w&(1<<r) != 0 {
			c.drop(r)
		}
	}
}

// drop forgets register r, and the words loaded through it.
func (c *countRegs) drop(r x86enc.Reg) {
	c.base[r], c.adjusted, c.live = 0, c.adjusted&^(1<<r), c.live&^(1<<r)
	for ls := c.live; ls != 0; ls &= ls - 1 {
		x := bits.TrailingZeros16(ls)
		if c.base[x] == r+1 {
			c.base[x], c.adjusted, c.live = 0, c.adjusted&^(1<<x), c.live&^(1<<x)
		}
	}
}

// storesBack reports whether inst stores a register holding the word at
// m's base, adjusted by one, back there.
func (c *countRegs) storesBack(inst *x86dec.Inst, m x86asm.Mem) bool {
	if inst.Op != x86asm.MOV || !wordAt(inst, m) {
		return false
	}
	r, size, ok := gpr(regArg(inst.Args[1]))
	b, _, _ := gpr(m.Base)
	return ok && size == 8 && c.base[r] == b+1 && c.adjusted&(1<<r) != 0
}

// wordAt: m is the 8-byte word a general register points to.
func wordAt(inst *x86dec.Inst, m x86asm.Mem) bool {
	if inst.MemBytes != 8 || m.Disp != 0 || m.Index != 0 || m.Segment != 0 {
		return false
	}
	_, size, ok := gpr(m.Base)
	return ok && size == 8
}

// forgetWords forgets what a reference count's change through an unknown
// pointer may have changed: the 8-byte values (speculated, or stored by
// the trace) outside the frame's private slots. The narrower ones cannot
// be part of a reference count, which is only ever accessed whole; the
// epoch stays, so what the trace stored there stays certain. An 8-byte
// value the trace stored becomes stale, not forgotten: a load of it is
// guarded on that value, which memory once the recording is over no
// longer holds (a frame's saved bytecode pointer).
func (s *evalState) forgetWords() {
	s.wordsForgotten = true
	s.forgetMirrors(func(at uint64) bool { return !s.private.holds(at, 8) })
	for k := range s.spec {
		if k&15 >= 8 && !s.private.holds(k>>4, int(k&15)) {
			delete(s.spec, k)
		}
	}
	for _, k := range s.words {
		if st, ok := s.stores[k]; ok && !st.private && st.epoch != staleEpoch {
			st.epoch = staleEpoch
			s.stores[k] = st
		}
	}
	s.words = s.words[:0]
}

// staleEpoch marks a stored value no epoch makes certain (forgetWords).
const staleEpoch = ^uint32(0)

// forget drops the speculated values overlapping [a, a+size), or all of
// them when a is not known.
func (s *evalState) forget(a val, size int) {
	if !a.known {
		s.clobber()
		return
	}
	*s.ranges = append(*s.ranges, storeRange{lo: a.v, hi: a.v + uint64(size), op: s.op, deps: a.deps})
	s.forgetMirrors(func(at uint64) bool { return at < a.v+uint64(size) && a.v < at+8 })
	lo, hi := a.v, a.v+uint64(size)
	if s.private.lo < hi && lo < s.private.hi {
		s.stackDirty = true // a private slot changes (snapStack)
	}
	deleteOverlapping(s.spec, lo, hi)
	deleteOverlapping(s.stores, lo, hi)
	if len(s.saved) > 0 {
		for at := range s.saved {
			if at < hi && lo < at+8 {
				delete(s.saved, at)
				s.stackDirty = true
			}
		}
	}
}

// deleteOverlapping deletes the entries of m (keyed addr<<4 | size, size
// at most 8) that overlap [lo, hi): by looking each possible key up when
// m is larger than that, else by walking m. A long trace keeps hundreds
// of values (stale ones too, forgetWords), and walked them all at every
// store.
func deleteOverlapping[V any](m map[uint64]V, lo, hi uint64) {
	if probes := 4 * (hi - lo + 7); uint64(len(m)) > probes {
		for at := lo - 7; at != hi; at++ {
			for _, n := range [...]uint64{1, 2, 4, 8} {
				if at < hi && lo < at+n {
					delete(m, at<<4|n)
				}
			}
		}
		return
	}
	for k := range m {
		at, n := k>>4, k&15
		if at < hi && lo < at+n {
			delete(m, k)
		}
	}
}

// calledOut forgets what a native call may have written in the stack
// slots whose address the trace took (CPython's _Py_dict_lookup returns
// its value through one), private ones too: their words are written with
// values the trace does not know (unknownAt). Speculated on from the
// recording's last state instead, the value of another lookup of the
// iteration made every entry of a module-level loop's trace leave it at
// its first guard. The slot is taken to be at most 16 bytes.
func (s *evalState) calledOut() {
	for _, a := range s.escaped {
		s.forgetMirrors(func(at uint64) bool { return at < a+16 && a < at+8 })
		deleteOverlapping(s.spec, a, a+16)
		deleteOverlapping(s.stores, a, a+16)
		s.unknownWords(a, 16)
	}
}

// unknownWords marks the 8-byte words of [a, a+n) as written with values
// the trace does not know (unknownAt).
func (s *evalState) unknownWords(a uint64, n int) {
	for off := 0; off+8 <= n; off += 8 {
		s.unknownAt[(a+uint64(off))<<4|8] = true
	}
}

// clobber forgets what a call or a store through an unknown pointer may
// have changed: every speculated value but those in the frame's private
// slots, and, by the epoch, every value stored but those there.
func (s *evalState) clobber() {
	if s.epoch == 0 {
		s.clobberedAt = s.op
	}
	s.epoch++
	s.forgetMirrors(func(at uint64) bool { return !s.private.holds(at, 8) })
	if s.private.lo == s.private.hi {
		clear(s.spec)
		return
	}
	for k := range s.spec {
		if !s.private.holds(k>>4, int(k&15)) {
			delete(s.spec, k)
		}
	}
}

func arith(op x86asm.Op, a, b uint64, size int) flagState {
	bitsz := uint(8 * size)
	top := uint64(1) << (bitsz - 1)
	a, b = truncate(a, size), truncate(b, size)
	var f flagState
	f.known = true
	switch op {
	case x86asm.SUB, x86asm.CMP:
		r := truncate(a-b, size)
		f.cf = a < b
		f.zf = r == 0
		f.sf = r&top != 0
		f.of = (a^b)&(a^r)&top != 0
	case x86asm.ADD:
		r := truncate(a+b, size)
		f.cf = r < a
		f.zf = r == 0
		f.sf = r&top != 0
		f.of = ^(a^b)&(a^r)&top != 0
	default: // AND, OR, XOR, TEST
		r := truncate(arithResult(op, a, b), size)
		f.zf = r == 0
		f.sf = r&top != 0
	}
	return f
}

// unaryResult is neg, not, inc or dec of v.
func unaryResult(op x86asm.Op, v uint64) uint64 {
	switch op {
	case x86asm.NEG:
		return -v
	case x86asm.NOT:
		return ^v
	case x86asm.INC:
		return v + 1
	}
	return v - 1
}

// shiftResult is shl, shr or sar of v's size bytes by count n: the CPU
// masks the count to 5 bits (6 for 64-bit operands), not to the operand's
// width.
func shiftResult(op x86asm.Op, v, n uint64, size int) uint64 {
	c := n & 0x1f
	if size == 8 {
		c = n & 0x3f
	}
	v = truncate(v, size)
	switch op {
	case x86asm.SHL:
		v <<= c
	case x86asm.SHR:
		v >>= c
	default:
		v = uint64(int64(signExtend(v, size)) >> c)
	}
	return truncate(v, size)
}

func arithResult(op x86asm.Op, a, b uint64) uint64 {
	switch op {
	case x86asm.ADD:
		return a + b
	case x86asm.SUB, x86asm.CMP:
		return a - b
	case x86asm.AND, x86asm.TEST:
		return a & b
	case x86asm.OR:
		return a | b
	}
	return a ^ b
}

// condHolds evaluates a condition code on known flags.
func condHolds(c x86enc.Cond, f flagState) bool {
	var v bool
	switch c &^ 1 {
	case x86enc.O:
		v = f.of
	case x86enc.B:
		v = f.cf
	case x86enc.E:
		v = f.zf
	case x86enc.BE:
		v = f.cf || f.zf
	case x86enc.S:
		v = f.sf
	case x86enc.L:
		v = f.sf != f.of
	case x86enc.LE:
		v = f.zf || f.sf != f.of
	}
	if c&1 != 0 {
		return !v
	}
	return v
}

// specFormSize: a value guard can be built for code's memory operand,
// an access of size bytes.
func specFormSize(code []byte, size int) bool {
	_, err := valueGuard(code, 0, size)
	return err == nil
}

// valueGuard encodes `cmp $v, M` of size bytes (1, 2, 4 or 8: cmpb with
// an imm8, cmpw, cmpl, cmpq with a sign-extended imm32) where M is the memory operand of code:
// any instruction with a ModRM memory operand, an optional fs/gs prefix,
// no VEX/EVEX, no %rip-relative operand.
func valueGuard(code []byte, v int32, size int) ([]byte, error) {
	m, ok := parseMemInsn(code)
	if !ok || (size != 1 && size != 2 && size != 4 && size != 8) {
		return nil, errNoGuardForm
	}
	var out []byte
	if m.seg != 0 {
		out = append(out, m.seg)
	}
	if size == 2 {
		out = append(out, 0x66)
	}
	rex := 0x40 | m.rex&0x03 // keep X and B: they extend the operand
	if size == 8 {
		rex |= 0x08
	}
	if rex != 0x40 {
		out = append(out, rex)
	}
	if size == 1 {
		out = append(out, 0x80, m.modrm&0xc7|7<<3)
		out = append(out, m.mem...)
		return append(out, byte(v)), nil
	}
	out = append(out, 0x81, m.modrm&0xc7|7<<3)
	out = append(out, m.mem...)
	if size == 2 {
		return binary.LittleEndian.AppendUint16(out, uint16(v)), nil
	}
	return binary.LittleEndian.AppendUint32(out, uint32(v)), nil
}

// memInsn is an instruction with a ModRM memory operand, split into the
// parts the optimiser re-encodes.
type memInsn struct {
	prefixes []byte // legacy prefixes other than a segment (f0 f2 f3 66)
	seg      byte   // fs (64) or gs (65) override, 0 none
	rex      byte   // 0 none
	opcode   []byte // 1-3 bytes
	modrm    byte
	mem      []byte // SIB and displacement
	imm      []byte // what follows
	rip      bool   // mem is a %rip-relative disp32
}

// parseMemInsn splits code, one instruction, for the re-encodings of
// valueGuard and ripForm. ok is false unless it has a ModRM memory operand
// that is not %rip-relative, no VEX/EVEX/XOP, and no prefix other than
// f0 f2 f3 66 and an fs/gs override before an optional REX.
func parseMemInsn(code []byte) (m memInsn, ok bool) {
	i := 0
prefixes:
	for ; i < len(code); i++ {
		switch b := code[i]; b {
		case 0xf0, 0xf2, 0xf3, 0x66:
			m.prefixes = append(m.prefixes, b)
		case 0x64, 0x65:
			m.seg = b
		default:
			break prefixes
		}
	}
	if i < len(code) && code[i]&0xf0 == 0x40 {
		m.rex = code[i]
		i++
	}
	if i >= len(code) {
		return m, false
	}
	op0 := i
	switch code[i] {
	case 0xc4, 0xc5, 0x62, 0x8f, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x67, 0xf0, 0xf2, 0xf3, 0x66:
		return m, false
	case 0x0f:
		i++
		if i < len(code) && (code[i] == 0x38 || code[i] == 0x3a) {
			i++
		}
	}
	if code[i]&0xf0 == 0x40 && i == op0 {
		return m, false // a second REX
	}
	i++
	if i >= len(code) {
		return m, false
	}
	m.opcode = code[op0:i]
	m.modrm = code[i]
	i++
	mod, rm := m.modrm>>6, m.modrm&7
	if mod == 3 {
		return m, false
	}
	if mod == 0 && rm == 5 {
		// %rip-relative: the displacement is only right at the
		// original address; ripForm re-encodes it for a new one.
		m.rip = true
		if i+4 > len(code) {
			return m, false
		}
		m.mem, m.imm = code[i:i+4], code[i+4:]
		return m, true
	}
	start := i
	if rm == 4 {
		if i >= len(code) {
			return m, false
		}
		if mod == 0 && code[i]&7 == 5 {
			i += 4
		}
		i++
	}
	switch mod {
	case 1:
		i++
	case 2:
		i += 4
	}
	if i > len(code) {
		return m, false
	}
	m.mem, m.imm = code[start:i], code[i:]
	return m, true
}

// resultsKnown: every register in w is known after op i (a narrow load's
// register is known only if the bits it keeps were).
func (o *optimizer) resultsKnown(i int, w uint16) bool {
	return w&^o.knownMask[i+1] == 0
}

// replacesLoad: a speculated load that is a plain mov (or movzx/movsx), or a cmp whose
// flags are dead (flagsLive false), becomes the value guard; any other
// instruction keeps running after its guard.
func replacesLoad(inst *x86dec.Inst, flagsLive bool) bool {
	switch inst.Op {
	case x86asm.MOV, x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD:
		return true
	}
	return inst.Op == x86asm.CMP && !flagsLive
}

var errNoGuardForm = errorString("tracevm: no value guard for this load")

type errorString string

func (e errorString) Error() string { return string(e) }

// liveness decides which ops to drop, walking backwards: a pure
// instruction whose register results nothing reads and whose flags
// nothing needs goes; folded guards go; a speculated load becomes a value
// guard. Exits need every register the optimiser does not know there.
func (o *optimizer) liveness(p *plan, need assume) bool {
	n := len(o.ops)
	p.drop = make([]bool, n)
	p.replaced = make(map[int]bool)
	p.rewrite = make(map[int]rewritten)
	p.liveAfter = make([]uint16, n)
	live := uint16(allRegs)
	flags := false
	o.knownMask = o.known.masks(o.knownMask[:0])
	unknownAt := func(i int) uint16 { return ^o.knownMask[i] }
	for i := n - 1; i >= 0; i-- {
		// %rsp is never left virtual: a signal handler runs below the
		// real one and would overwrite what the trace keeps under it.
		live |= 1 << x86enc.RSP
		if g, ok := p.post[i+1]; ok {
			// The guard after op i reads the loaded register, and its
			// exit needs the registers unknown there (the loaded one
			// is real). It kills the flags; the load is never dropped
			// (its register is live from it to the guard).
			live |= 1<<g.reg | unknownAt(i+1)
			flags = false
		}
		op := &o.ops[i]
		p.liveAfter[i] = live
		switch op.kind {
		case opClose, opLink, opCall:
			// Every register matters there, but the known ones are
			// set from their values (materialised) on the way. The
			// flags are dead at a trace head (a dispatch or an
			// annotation's return) and across a call.
			live, flags = unknownAt(i), false
		case opExit:
			// The original code it resumes may read the flags (a
			// side trace that ends between a compare and its
			// branch): they stay as the code before left them.
			live, flags = unknownAt(i), true
		case opPush, opPop:
			live |= 1 << 4
		case opIsTraced:
			live &^= 1
		case opCount:
			// A back-edge: the flags are dead there, as at a close.
			flags = false
		case opGuard:
			if o.foldOps[i] {
				p.drop[i] = true
				continue
			}
			flags = true
			live |= unknownAt(i)
		case opGuardTarget:
			if o.foldOps[i] {
				p.drop[i] = true
				continue
			}
			live |= regBits(op.inst.Args[0]) | unknownAt(i)
		case opInsn:
			if o.sameStores[i] {
				// It writes what memory holds: nothing it reads
				// matters.
				p.drop[i] = true
				p.sameStores++
				continue
			}
			inst := o.insts[i]
			w, wall := writes(inst)
			r, rall := reads(inst)
			_, absMem := o.memKnown(i)
			var memRegs uint16
			if absMem {
				memRegs = regBits(memArg(inst))
			}
			if _, ok := p.spec[i]; ok && replacesLoad(inst, flags) && o.resultsKnown(i, w) {
				p.replaced[i] = true
				// cmpq $v, M; jne exit: reads M's registers (none
				// once M is %rip-relative), sets the flags; the loaded
				// register becomes virtual.
				live = live&^w | regBits(memArg(inst))&^memRegs | unknownAt(i)
				flags = false
				continue
			}
			if _, ok := p.spec[i]; ok {
				// The guard before it reads M's registers too and its
				// exit needs the unknown ones; the instruction itself
				// is then treated as any other (below).
				live |= unknownAt(i)
			}
			// Pure: its only effects are a general register and the
			// flags (a vector destination is an effect the optimiser
			// does not track).
			pure := !wall && !storesMemory(inst) && (readOnlyOps.has(inst.Op) ||
				((destOnly.has(inst.Op) || readWrite.has(inst.Op)) && isGPRArg(inst.Args[0])))
			known := o.resultsKnown(i, w)
			writesFlags := x86dec.OpFlags(inst.Op) != x86dec.FlagsNone || inst.Special != x86dec.SpecialNone
			// Pure with every result known: its inputs, flags
			// included (sbb %r,%r), no longer matter.
			if pure && known && w&live == 0 && !(writesFlags && flags) {
				p.drop[i] = true
				continue
			}
			if o.reloads[i] {
				// The register holds what it loads (reloads.go): left
				// out, nothing before it changes.
				p.rewrite[i] = rewritten{}
				continue
			}
			if rw, elide, ok := o.constForm(i, flags); ok {
				// Its known operand becomes an immediate (constform.go):
				// from here on it is the re-encoded instruction.
				p.rewrite[i] = rw
				if elide {
					continue
				}
				inst = rw.inst
				w, wall = writes(inst)
				r, rall = reads(inst)
			}
			if rall {
				r = allRegs
			} else if absMem {
				// The operand's registers are read only for the
				// address, which becomes a constant; a register that
				// is also another operand stays read.
				r &^= memRegs
				for k, a := range inst.Args {
					if a == nil {
						break
					}
					if _, isMem := a.(x86asm.Mem); !isMem && (k > 0 || !destOnly.has(inst.Op)) {
						r |= regBits(a)
					}
				}
			}
			// A register it reads whose value is known is set right
			// before it (if its writer was dropped), so that the chain
			// of known updates before it can go.
			live = live&^w | r&unknownAt(i)
			if flagsKill(inst) {
				flags = false
			}
			if flagsRead(inst) {
				flags = true
			}
		}
	}
	return true
}

func memArg(inst *x86dec.Inst) x86asm.Arg {
	for _, a := range inst.Args {
		if _, ok := a.(x86asm.Mem); ok {
			return a // as it is: the Mem again would be a new allocation
		}
	}
	return nil
}

// resetSpecs empties the speculated loads of the last evaluation, keeping
// the slices' storage for the next (every evaluation refills them).
func (o *optimizer) resetSpecs() {
	o.specAddr, o.specOp, o.specVal = o.specAddr[:0], o.specOp[:0], o.specVal[:0]
	o.specPost, o.specSize, o.specFwd = o.specPost[:0], o.specSize[:0], o.specFwd[:0]
	o.specRisky, o.riskyBits = o.specRisky[:0], 0
	o.specReuse = o.specReuse[:0]
	if o.specAt == nil {
		o.specAt = map[uint64]int{}
	}
	clear(o.specAt)
}

func isGPRArg(a x86asm.Arg) bool {
	r, ok := a.(x86asm.Reg)
	if !ok {
		return false
	}
	_, _, ok = gpr(r)
	return ok
}

// memKnown reports whether op i's memory operand has a known address (all
// its registers known), so that it can be re-encoded %rip-relative and no
// longer reads them.
func (o *optimizer) memKnown(i int) (uint64, bool) {
	inst := o.insts[i]
	if m, ok := memArg(inst).(x86asm.Mem); !ok || m.Base == x86asm.RIP {
		return 0, false // nothing to learn from the states
	}
	return memKnownIn(inst, o.known.ref(i))
}

// memAddrAt returns the address of inst's memory operand: its original
// %rip target, or what its registers known in known make it.
func memAddrAt(inst *x86dec.Inst, known *[16]val) (uint64, bool) {
	if a, ok := inst.MemRIPTarget(); ok {
		return a, true
	}
	return memKnownIn(inst, known)
}

func memKnownIn(inst *x86dec.Inst, known *[16]val) (uint64, bool) {
	if inst == nil || inst.Special != x86dec.SpecialNone || inst.AddrSize != 64 {
		return 0, false
	}
	m, ok := memArg(inst).(x86asm.Mem)
	if !ok || m.Segment != 0 || m.Base == x86asm.RIP {
		return 0, false
	}
	a := uint64(m.Disp)
	for _, r := range []x86asm.Reg{m.Base, m.Index} {
		if r == 0 {
			continue
		}
		n, sz, ok := gpr(r)
		if !ok || sz != 8 || !known[n].known {
			return 0, false
		}
		if r == m.Index {
			a += known[n].v * uint64(m.Scale)
		} else {
			a += known[n].v
		}
	}
	return a, true
}

// ripForm re-encodes the one-memory-operand instruction code so that its
// operand is addr, %rip-relative, at address at. ok is false for encodings
// it does not handle (VEX/EVEX, address-size or segment prefixes) and when
// addr is out of reach.
func ripForm(code []byte, addr, at uint64) ([]byte, bool) {
	m, ok := parseMemInsn(code)
	if !ok || m.seg != 0 {
		return nil, false
	}
	if m.rex != 0 {
		m.rex &^= 0x03 // X and B extended the operand
	}
	if m.rex == 0x40 {
		// A REX with nothing left in it: a byte saved where it does
		// not select %spl-%dil over %ah-%bh (the operands must stay).
		short := m
		short.rex = 0
		if b, ok := ripFormOf(short, addr, at); ok && sameRegOperands(b, code, at) {
			return b, true
		}
	}
	return ripFormOf(m, addr, at)
}

// sameRegOperands reports whether instructions a (at at) and b have the
// same operands but for memory ones.
func sameRegOperands(a, b []byte, at uint64) bool {
	x, err1 := x86dec.Decode(a, at)
	y, err2 := x86dec.Decode(b, at)
	if err1 != nil || err2 != nil || x.Op != y.Op {
		return false
	}
	for k := range x.Args {
		if _, mem := x.Args[k].(x86asm.Mem); mem {
			continue
		}
		if x.Args[k] != y.Args[k] {
			return false
		}
	}
	return true
}

// ripFormOf encodes m with its memory operand at addr, %rip-relative from
// at, m.rex as it is (0: none).
func ripFormOf(m memInsn, addr, at uint64) ([]byte, bool) {
	out := append([]byte{}, m.prefixes...)
	if m.rex != 0 {
		out = append(out, m.rex)
	}
	out = append(out, m.opcode...)
	out = append(out, m.modrm&0x38|5)
	dispAt := len(out)
	out = append(out, 0, 0, 0, 0)
	out = append(out, m.imm...)
	d := int64(addr - (at + uint64(len(out))))
	if d != int64(int32(d)) {
		return nil, false
	}
	binary.LittleEndian.PutUint32(out[dispAt:], uint32(int32(d)))
	inst, err := x86dec.Decode(out, at)
	if err != nil || inst.Len != len(out) {
		return nil, false
	}
	if t, ok := inst.MemRIPTarget(); !ok || t != addr {
		return nil, false
	}
	return out, true
}
