package tracevm

import (
	"slices"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// Merge points: where a side trace's path rejoins its root's.
//
// A side trace runs from its parent's exit to the loop's end, so each path
// through a loop body that branches (an if/else, an exception caught, a
// reference count reaching zero) gets a copy of the rest of the body, and
// a body with a few such branches a tree of copies: CPython 2.7's
// exceptions program kept 65 traces, 884 KiB of code for one loop, whose
// iterations then ran from the processor's second-level cache. As LuaJIT's
// side traces do not, but the interpreter's own code does (each branch
// joins the next bytecode's dispatch), a side trace here ends where its
// path rejoins the root's: at an instruction where an exit of the root
// leaves knowing registers that the side recording held there with the
// same values (the same bytecode of the same frame, by the interpreter's
// own state) under the same inlined calls. What follows is one trace for
// all paths that rejoin there, its continuation: recorded from the first
// such exit to become hot, it takes nothing from that exit and guards at
// its head the registers the root knew there, so that every merge exit
// there may enter it.

// merging is a root's merge state: its merge points by address, the
// continuation of each point that has one, and the merge exits waiting for
// theirs (exit id to point). points is not changed after the root is
// installed; the rest is guarded by the machine's mutex.
type merging struct {
	points  map[uint64][]mergePoint
	conts   map[uint32]*trace
	waiting map[uint32]uint32
	// reached: the points a side trace rejoined at and ran on past,
	// the first to reach each: a continuation is recorded for a point
	// that two side traces reach, where it saves a copy of the rest of
	// the body (cut alone, a hot side trace would pay for a merge exit
	// and a continuation's head guards, and save nothing).
	reached map[uint32]bool
}

// shared reports whether point pt has a continuation or has been reached
// by a side trace before (the caller holds the machine's mutex).
func (mg *merging) shared(pt uint32) bool {
	return mg.conts[pt] != nil || mg.reached[pt]
}

// mergePoint is where an exit of a root leaves (its index among the root's
// exits names the point): the registers a side trace's recording must hold
// there with the same values, and the return addresses of the calls
// inlined there.
type mergePoint struct {
	exit  uint32
	known []regValue
	stack []uint64
}

// Bounds on a cut: a side trace keeps at least minMergeOps ops before it
// (a path that rejoins at once is a branch over a few instructions, left
// to its parent's exit), and at least minMergeRest must follow it (what
// the continuation saves; a cut near the loop's end saves nothing). The
// first side trace to rejoin at a point is cut there only when at least
// mergeLong ops follow (merging.reached). A cut may go up to mergeWindow
// ops past the first match, to a shared point: the paths that rejoin the
// root at one bytecode meet its exits at several instructions of its
// dispatch. (Lua and Python programs, every trace kept: cut at 64 ops or
// more whatever the point, a hot side trace in Python's sieve paid for a
// merge exit and head guards at every iteration; only where shared, the
// JIT did 10-25% more work in n-body and sudoku than cut at 512 too.)
const (
	minMergeOps  = 4
	minMergeRest = 64
	mergeLong    = 512
	mergeWindow  = 64
)

// rootMerging returns the merge state of a root trace whose exits leave at
// origs knowing known, under the inlined calls stacks: its merge points
// are the exits that know some register (nil: none).
func rootMerging(origs []uint64, known [][]regValue, stacks [][]uint64) *merging {
	var mg *merging
	for i, a := range origs {
		if i >= len(known) || len(known[i]) == 0 {
			continue
		}
		var stk []uint64
		if i < len(stacks) {
			stk = stacks[i]
		}
		if mg == nil {
			mg = &merging{points: map[uint64][]mergePoint{}, conts: map[uint32]*trace{}, waiting: map[uint32]uint32{}, reached: map[uint32]bool{}}
		}
		dup := slices.ContainsFunc(mg.points[a], func(p mergePoint) bool {
			return slices.Equal(p.known, known[i]) && slices.Equal(p.stack, stk)
		})
		if !dup {
			mg.points[a] = append(mg.points[a], mergePoint{exit: uint32(i), known: known[i], stack: stk})
		}
	}
	return mg
}

// mergeCut returns the index of the op of ops (a side recording that
// began with the registers head, under the inlined calls initStack) where
// its path rejoins its root's, at which of mg's points, or -1: the first
// match, or within mergeWindow ops of it a point that is shared (shared
// says so of the point returned). What the side trace will know there is
// not what tells: where its parent's exit knew little, it knows little.
// The registers the recording had there do: they are those of a concrete
// run of its ops from head, over memory as it is now (mem), in which the
// registers that locate a bytecode (the frame, the bytecode pointer, the
// value stack) hold what the recording held. A wrong match costs the
// continuation's head guards failing, never a wrong result.
func mergeCut(ops []op, head *[16]uint64, mem *memView, initStack []uint64, mg *merging, isShared func(uint32) bool) (cut int, point uint32, shared bool) {
	cut = -1
	if mg == nil {
		return -1, 0, false
	}
	// The ops a cut may come at: the concrete run (memory read op by
	// op) is made only up to the last of them, and not at all without.
	candidate := func(i int) bool {
		k := ops[i].kind
		return (k == opInsn || k == opGuardTarget) && len(mg.points[ops[i].addr]) > 0
	}
	last := -1
	for i := len(ops) - minMergeRest; i >= minMergeOps; i-- {
		if candidate(i) {
			last = i
			break
		}
	}
	if last < 0 {
		return -1, 0, false
	}
	insts := make([]*x86dec.Inst, len(ops))
	for i := range ops {
		if ops[i].kind == opInsn {
			insts[i] = ops[i].inst
		}
	}
	stk := slices.Clone(initStack)
	runConcreteSeeing(ops, insts, head, 0, mem, nil, nil, func(i int, regs *[16]cval) bool {
		if i > last || (cut >= 0 && i > cut+mergeWindow) {
			return false
		}
		o := &ops[i]
		if i >= minMergeOps && candidate(i) {
			for _, pt := range mg.points[o.addr] {
				if !slices.Equal(pt.stack, stk) || !holdsAll(regs, pt.known) {
					continue
				}
				if isShared(pt.exit) {
					cut, point, shared = i, pt.exit, true
					return false
				}
				if cut < 0 {
					cut, point = i, pt.exit
				}
			}
		}
		switch o.kind {
		case opPush:
			stk = append(stk, o.target)
		case opPop:
			if len(stk) > 0 {
				stk = stk[:len(stk)-1]
			}
		}
		return true
	})
	return cut, point, shared
}

// holdsAll reports whether regs hold every register of want with its value.
func holdsAll(regs *[16]cval, want []regValue) bool {
	for _, rv := range want {
		if v := regs[rv.r]; !v.ok || v.v != rv.v {
			return false
		}
	}
	return true
}

// cutAt returns ops up to op i, ended by an exit to op i's original
// address: the merge exit its continuation is entered from.
func cutAt(ops []op, i int) []op {
	a := ops[i].addr
	return append(slices.Clip(ops[:i]), op{kind: opExit, addr: a, exit: a})
}

// mergeGuards returns the registers continuation recording r guards at its
// head: those its merge point knows, when the recording began with their
// values there (0: it did not, or the point is gone).
func (m *Machine) mergeGuards(r *recording) uint16 {
	m.mu.Lock()
	mg := r.side.rootTrace().merging
	m.mu.Unlock()
	if mg == nil {
		return 0
	}
	for _, pt := range mg.points[r.start] {
		if pt.exit != r.mergePoint {
			continue
		}
		var mask uint16
		for _, rv := range pt.known {
			if r.headRegs[rv.r] != rv.v {
				return 0
			}
			mask |= 1 << rv.r
		}
		return mask
	}
	return 0
}
