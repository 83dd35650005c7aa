package tracevm

import (
	"fmt"
	"slices"

	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"golang.org/x/arch/x86/x86asm"
)

// Loop peeling (after LuaJIT's lj_opt_loop, in its simplest form): a root
// trace that closes its loop is emitted twice. The first copy is the trace
// as optimised, entered at the head. The second copy is optimised again
// taking the loads the first replaces by guards on their values (the
// bytecode words an interpreter dispatches on) as known, without a guard,
// when the loop never leaves other values there: it checks none of them
// per iteration, and folds what follows from them. Where the loop calls
// nothing natively, so that every store it makes is its own to a known
// address, any load at a known address is taken as known the same way:
// the type tags an interpreter checks and stores back unchanged, the
// constants and metadata of the function it runs (test VMs: a quarter of
// the instructions gone; Lua's numeric loops 6-13%). It rests on every head
// register that stays the same, so that its stores go to known addresses.
//
// The first copy's close checks that memory holds those values and that
// the head registers the second copy rests on hold theirs, then jumps into
// the second copy; if anything differs it loops in the first copy
// instead. The second copy closes on itself. Nothing in it may change what
// it assumes: it stores only to known addresses, writes back the value a
// location held at the loop head wherever it assumes one, and calls
// nothing natively.
//
// Memory another thread or a signal handler writes (a flag an interpreter
// polls to hand over its lock, a hook's trap) is still seen: a root trace
// leaves through the original dispatch every periodTicks iterations, and
// is entered again at its head, through the first copy.

// peelMissLimit: closes of a first copy in a row that found other values
// than its second copy assumes, after which it stops checking (the loop's
// data is not what it was when it was compiled).
const peelMissLimit = 64

// maxInvariants bounds the loads a second copy takes as known, so that
// the first copy's close checks a bounded number of values.
const maxInvariants = 64

// peelState is what the optimiser of a second copy works from: the
// values of the loads it may take as known (addr<<4 | size), those its
// last pass did (with the first op that did), and those not to (the loop
// leaves other values there).
type peelState struct {
	values map[uint64]uint64
	used   map[uint64]int
	banned map[uint64]bool
	// need, chosen, insts and mem: the first copy's (plan.need,
	// plan.chosen, plan.insts, plan.mem); chosen is nil for a side
	// trace inheriting a peeled copy's assumptions (bodyLink), optimised
	// as any other.
	need   assume
	chosen map[int]bool
	insts  []*x86dec.Inst
	mem    *memView
	// freshAt and links: the first copy's free-list pops and pushes
	// (plan.freshAt), found once for the ops both copies share.
	freshAt map[int]uint16
	links   map[int]bool
	// private: the first copy's (plan.private).
	private addrRange
	// near: where loads not guarded by the first copy may be taken as
	// known too when peekNear (nearBytecode), or where a side trace
	// inheriting the copy's assumptions guards every load; guarded: the
	// keys the first copy guards.
	near     []addrRange
	peekNear bool
	anyKnown bool
	guarded  map[uint64]bool
	// pointers: ops loading a word the trace then addresses memory with
	// (pointerLoads); with refcounted, the loads a second copy may take
	// at the head's value wherever they are, a reference count never
	// being one.
	pointers   map[int]bool
	refcounted bool
	// unknownStore: the op of the first store through an unknown
	// pointer (or call) the copy's optimiser met, -1 none: why there is
	// no copy, for the log.
	unknownStore int
	// stable: the first copy's (plan.stable).
	stable map[int]uint64
}

// inheritedPeel is what a side trace starting where root's peeled copy
// holds may assume (root's invariants) and, with guards, where it may
// take the loop's bytecode to be (beside the words the root guards; not
// for a side trace of a side trace, whose exit may be such a guard that
// failed). The caller holds the machine's lock.
func inheritedPeel(root *trace, guardNear bool) *peelState {
	ps := &peelState{values: map[uint64]uint64{}, used: map[uint64]int{}, banned: map[uint64]bool{}}
	for _, g := range root.invariants {
		ps.values[g.key()] = g.v
		if guardNear && g.firstChecks {
			// The bytecode the root dispatches on, not the frame's
			// slots or the words beside them: a guard on what
			// changes would fail at every iteration.
			ps.near = append(ps.near, addrRange{g.addr - bytecodeSpan, g.addr + bytecodeSpan})
		}
	}
	return ps
}

// Around each word the first copy guards, the span taken for the rest of
// its instruction; above the head %rsp, the span taken for the
// interpreter's frame.
const (
	bytecodeSpan = 64
	frameSpan    = 1024
)

// invariantLoad returns the value a second copy takes a load at key (a,
// size bytes) to have. A location the iteration has already stored to
// holds what it stored instead.
func (o *optimizer) invariantLoad(i int, key, a uint64, size int, s *evalState) (uint64, bool) {
	ps := o.peel
	if ps == nil || ps.banned[key] {
		return 0, false
	}
	// A pointer the loop reads where the interpreter keeps it (a
	// range iterator on CPython's value stack): not a reference count
	// (Object.RefcountWords), so what changes those cannot change it.
	pointer := ps.refcounted && ps.peekNear && size == 8 && ps.pointers[i]
	v, ok := ps.values[key]
	if !ok && !pointer && !ps.anyKnown && (!ps.peekNear || !ps.nearBytecode(a, size)) {
		return 0, false
	}
	// Stored to earlier in the iteration: the load reads that store's
	// value (forwarded, or unknown), not the one at the loop's head.
	if storedOver(*s.ranges, a, size) || (size == 8 && s.wordsForgotten && !pointer) {
		return 0, false
	}
	if !ok {
		if len(ps.values) >= maxInvariants || (size != 1 && size != 2 && size != 4 && size != 8) {
			return 0, false
		}
		if v, ok = o.mem.read(a, size); !ok {
			ps.banned[key] = true
			return 0, false
		}
		ps.values[key] = v
	}
	if j, seen := ps.used[key]; !seen || i < j {
		ps.used[key] = i
	}
	return v, true
}

// pointerLoads returns the ops that load a 64-bit register from memory
// and then, before it is written again, address memory with it: the
// words an interpreter uses as pointers.
func pointerLoads(ops []op, insts []*x86dec.Inst) map[int]bool {
	out := map[int]bool{}
	for i := range ops {
		inst := insts[i]
		if ops[i].kind != opInsn || inst == nil || inst.Op != x86asm.MOV || inst.MemBytes != 8 {
			continue
		}
		r, size, ok := gpr(regArg(inst.Args[0]))
		if _, isMem := inst.Args[1].(x86asm.Mem); !ok || size != 8 || !isMem {
			continue
		}
	scan:
		for j := i + 1; j < len(ops) && j < i+64; j++ {
			if ops[j].kind == opCall {
				break
			}
			next := insts[j]
			if ops[j].kind != opInsn || next == nil || next.Special != x86dec.SpecialNone {
				continue
			}
			if m, ok := memArg(next).(x86asm.Mem); ok && next.Op != x86asm.LEA {
				for _, x := range []x86asm.Reg{m.Base, m.Index} {
					if n, sz, ok := gpr(x); ok && sz == 8 && n == r {
						out[i] = true
						break scan
					}
				}
			}
			if to, ok := leaFrom(next, r); ok {
				// An element's address computed from it (CPython
				// 2.7's fastlocals + oparg): the pointer goes on in
				// to.
				r = to
				continue
			}
			if w, all := writes(next); all || w&(1<<r) != 0 {
				break
			}
		}
	}
	return out
}

// leaFrom reports whether inst is a 64-bit lea based on register r, and
// the register it writes.
func leaFrom(inst *x86dec.Inst, r x86enc.Reg) (x86enc.Reg, bool) {
	if inst.Op != x86asm.LEA {
		return 0, false
	}
	m, ok := inst.Args[1].(x86asm.Mem)
	if !ok || m.Segment != 0 {
		return 0, false
	}
	b, bsz, ok := gpr(m.Base)
	to, tsz, ok2 := gpr(regArg(inst.Args[0]))
	return to, ok && ok2 && bsz == 8 && tsz == 8 && b == r
}

// key is g's location as the optimiser keys loads: addr<<4 | size.
func (g guardedLoad) key() uint64 { return g.addr<<4 | uint64(g.size) }

// nearBytecode reports whether [a, a+size) lies where the loop's own
// code is likely to be: beside a word the first copy guards (an
// instruction's operands beside its opcode), or in the interpreter's
// frame (the pointers to its program and registers). The second copy may
// take such a load as known although the first did not guard it: the
// first copy's close checks it, and stays in the first copy if the loop
// was entered with another value there.
func (ps *peelState) nearBytecode(a uint64, size int) bool {
	return slices.ContainsFunc(ps.near, func(r addrRange) bool { return a >= r.lo && a+uint64(size) <= r.hi })
}

// peel returns the plan of the second copy of a root trace whose first
// copy is p, or nil and why not (for the log) when the loop may write what
// the copy would assume, or it would check no less per iteration than p.
// head, close and meaningful are as for optimize.
func (m *Machine) peel(ops []op, head, close [16]uint64, meaningful uint16, p *plan) (*plan, string) {
	if p == nil || !p.ok || len(ops) == 0 || ops[len(ops)-1].kind != opClose {
		return nil, "not a closed loop"
	}
	if i := slices.IndexFunc(ops, func(o op) bool {
		if o.kind != opCall {
			return false
		}
		alloc, free := m.allocation(o.target)
		return !alloc && !free && !m.writesNoMemory(o.target)
	}); i >= 0 {
		// A native call may write anything (an allocator's, or a
		// read-only function's, nothing known).
		return nil, fmt.Sprintf("the native call of %#x at %#x", ops[i].target, ops[i].addr)
	}
	// Where the loop calls nothing natively, every store of the copy is
	// its own, to a known address: any load at a known address may be
	// taken as known. A second try keeps to the bytecode's and the
	// frame's neighbourhood, should a value read now contradict the
	// recording (the loop moved on since).
	anyKnown := !slices.ContainsFunc(ops, func(o op) bool { return o.kind == opCall })
	ps := m.newPeelState(ops, head, close, meaningful, p, anyKnown)
	if len(ps.values) == 0 {
		return nil, "no guarded load to take as known"
	}
	for try := 0; try < 4; try++ {
		q := m.optimize(ops, head, close, meaningful, nil, ps, frame.Slots{}, nil, p.bans)
		contradicts := q == nil && ps.unknownStore < 0 || q != nil && !q.ok
		if contradicts && ps.anyKnown {
			if q != nil {
				q.release()
			}
			ps = m.newPeelState(ops, head, close, meaningful, p, false)
			continue
		}
		if q == nil {
			if ps.unknownStore >= 0 && ps.unknownStore < len(ops) {
				at := ops[ps.unknownStore].addr
				if inst := p.insts[ps.unknownStore]; inst != nil {
					return nil, fmt.Sprintf("the store through an unknown pointer at %#x (%v)", at, inst)
				}
				return nil, fmt.Sprintf("what may store anywhere at %#x", at)
			}
			return nil, "its assumptions contradict the recording"
		}
		if !q.ok {
			q.release()
			return nil, "its assumptions contradict the recording"
		}
		// A load the iteration writes after it reads it is not
		// invariant, unless it writes the same value back.
		written := false
		for _, g := range q.invariants {
			if changes(q.storeVals, g) {
				ps.banned[g.key()] = true
				delete(ps.values, g.key())
				written = true
			}
		}
		if written {
			q.release()
			continue
		}
		if len(q.invariants) == 0 || q.checks(ops) >= p.checks(ops) {
			q.release()
			return nil, "it would check no less per iteration"
		}
		return q, ""
	}
	return nil, "the loop writes what it would assume"
}

// newPeelState returns the state a second copy of ops (first copy p) is
// optimised from: the loads p guards taken as known, and with anyKnown
// any other load at a known address.
func (m *Machine) newPeelState(ops []op, head, close [16]uint64, meaningful uint16, p *plan, anyKnown bool) *peelState {
	ps := &peelState{values: map[uint64]uint64{}, used: map[uint64]int{}, banned: map[uint64]bool{}, guarded: map[uint64]bool{}, need: p.need, chosen: p.chosen, insts: p.insts, mem: p.mem, freshAt: p.freshAt, links: p.links, peekNear: true, anyKnown: anyKnown, private: p.private, unknownStore: -1, stable: p.stable}
	if m.refcounting(ops[0].addr) {
		ps.pointers, ps.refcounted = pointerLoads(ops, p.insts), true
	}
	for _, g := range p.guarded {
		if !g.forwarded && !g.post && len(ps.values) < maxInvariants {
			ps.values[g.key()] = g.v
			ps.guarded[g.key()] = true
			ps.near = append(ps.near, addrRange{g.addr - bytecodeSpan, g.addr + bytecodeSpan})
		}
	}
	if meaningful&(1<<x86enc.RSP) != 0 && head[x86enc.RSP] == close[x86enc.RSP] {
		sp := head[x86enc.RSP]
		ps.near = append(ps.near, addrRange{sp, sp + frameSpan})
	}
	return ps
}

// checks counts the guards an iteration of ops under p runs: guards and
// indirect-target guards not folded, and guarded loads.
func (p *plan) checks(ops []op) int {
	n := len(p.guarded)
	for i := range ops {
		if (ops[i].kind == opGuard || ops[i].kind == opGuardTarget) && !p.drop[i] {
			n++
		}
	}
	return n
}

// over reports whether the store meets [a, a+size).
func (r storeRange) over(a uint64, size int) bool { return a < r.hi && r.lo < a+uint64(size) }

// storedOver reports whether any store of rs meets [a, a+size).
func storedOver(rs []storeRange, a uint64, size int) bool {
	return slices.ContainsFunc(rs, func(r storeRange) bool { return r.over(a, size) })
}

// changes reports whether the stores of an iteration, rs in their order,
// may leave other than g's value in g's memory when it ends: the last
// store over it must write exactly that value. (Loads after a store to
// it within the iteration read the store's value, not g's.)
func changes(rs []storeRange, g guardedLoad) bool {
	end := g.addr + uint64(g.size)
	last := -1
	for i, r := range rs {
		if r.over(g.addr, g.size) {
			last = i
		}
	}
	if last < 0 {
		return false
	}
	r := rs[last]
	return r.lo != g.addr || r.hi != end || !r.scalar || !r.known || r.v != truncate(g.v, g.size)
}
