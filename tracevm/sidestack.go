package tracevm

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
)

// The stack at a side trace's entry. What a side trace starts from used
// to be its parent's known registers alone, and what the interpreter keeps
// in the stack was lost there:
//   - the callee-saved registers an inlined callee's prologue pushed
//     (evalState.saved), which its epilogue pops: the optimiser follows
//     their values through those slots, so that the interpreter's bytecode
//     pointer, base and dispatch table are still known after the callee
//     returns; a side trace that leaves its parent inside such a callee
//     got them back unknown, and every bytecode after them was fetched,
//     decoded and dispatched as in the interpreter;
//   - the loop frame's private slots (plan.private: spills of the
//     interpreter's base and pc), which the loop rewrites, so that a side
//     trace may not speculate on them, while its parent knew at the exit
//     what they hold (Lua object-oriented code, where side traces hold
//     most of the trace code: three quarters of the loads at known
//     addresses the side traces could not fold were such stack loads).
// The parent's exit now passes on the 8-byte stack values it knows
// (sideEntry.stack), checked against the stack when the side recording
// starts, as it passes on its registers.

// memValue is 8 bytes of memory at addr the optimiser knows.
type memValue struct {
	addr, v uint64
}

// stackSnap is the stack values known from op from on, until the next
// snapshot: stackVals[lo:hi], resting on stackDeps[lo:hi].
type stackSnap struct {
	from   int
	lo, hi int32
}

// snapStack records the stack values known before op i, the saved slots
// and the private slots' 8-byte words the trace stored or speculated on,
// when they changed since the last snapshot (the final pass only:
// keepStates).
func (o *optimizer) snapStack(s *evalState, i int) {
	if !s.stackDirty && i > 0 {
		return
	}
	s.stackDirty = false
	lo := int32(len(o.stackVals))
	for a, v := range s.saved {
		if v.known {
			o.stackVals = append(o.stackVals, memValue{a, v.v})
			o.stackDeps = append(o.stackDeps, v.deps)
		}
	}
	for a := (s.private.lo + 7) &^ 7; a+8 <= s.private.hi; a += 8 {
		key := a<<4 | 8
		st, stored := s.stores[key]
		v, ok := s.storedValue(st, stored)
		if !stored {
			v, ok = s.spec[key]
		}
		if ok && v.known {
			o.stackVals = append(o.stackVals, memValue{a, v.v})
			o.stackDeps = append(o.stackDeps, v.deps)
		}
	}
	o.stackSnaps = append(o.stackSnaps, stackSnap{from: i, lo: lo, hi: int32(len(o.stackVals))})
}

// enter sets up what a side trace knows of the stack at its entry: its
// private slots' values as stored (certain until the trace itself writes
// them), the others as saved slots.
func (e *sideEntry) enter(s *evalState) {
	for _, sv := range e.stack {
		v := val{known: true, v: sv.v}
		if s.private.holds(sv.addr, 8) {
			s.stores[sv.addr<<4|8] = storedVal{val: v, private: true}
		} else {
			s.saved[sv.addr] = v
		}
	}
}

// exitStackValues appends to dst the stack values certain at an exit
// taken before op i of plan p, in address order.
func (p *plan) exitStackValues(dst []memValue, i int) []memValue {
	k, found := slices.BinarySearchFunc(p.stackSnaps, i, func(s stackSnap, i int) int { return s.from - i })
	if !found {
		k--
	}
	if k < 0 {
		return dst
	}
	snap := p.stackSnaps[k]
	lo := len(dst)
	for j := snap.lo; j < snap.hi; j++ {
		if p.certainAt(p.stackDeps[j], i) {
			dst = append(dst, p.stackVals[j])
		}
	}
	slices.SortFunc(dst[lo:], func(a, b memValue) int { return cmp.Compare(a.addr, b.addr) })
	return dst
}

// maxStackSpan bounds how far above the exit's %rsp a stack value may lie:
// the loop's frame and those of the callees inlined since its head.
const maxStackSpan = 64 << 10

// entryStackValues returns the stack values exit id of parent passes on to
// a side recording starting with registers regs, as its stack holds them
// now: none when the parent did not know %rsp there, or knew another, or
// any slot holds another value (what the parent knew is then not trusted).
// They lie between that %rsp and the loop's frame, in the thread's stack,
// which the recording does not change before it reads them here.
func entryStackValues(parent *trace, id uint32, regs *[16]uint64) []memValue {
	i, ok := parent.exitIndex(id)
	if !ok || i >= len(parent.exitStack) || len(parent.exitStack[i]) == 0 {
		return nil
	}
	rsp := regs[x86enc.RSP]
	if i >= len(parent.exitKnown) || !slices.Contains(parent.exitKnown[i], regValue{x86enc.RSP, rsp}) {
		return nil
	}
	slots := parent.exitStack[i]
	for _, sv := range slots {
		if sv.addr < rsp || sv.addr-rsp >= maxStackSpan || sv.addr&7 != 0 {
			return nil
		}
		if binary.LittleEndian.Uint64(memAt(sv.addr, 8)) != sv.v {
			return nil
		}
	}
	return slots
}
