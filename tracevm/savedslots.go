package tracevm

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
)

// Saved slots at a side trace's entry. An inlined callee's prologue pushes
// the callee-saved registers it uses and its epilogue pops them back; the
// optimiser follows their values through those slots (evalState.saved), so
// that the interpreter's bytecode pointer, base and dispatch table are
// still known after the callee returns. A side trace that leaves its
// parent inside such a callee used to start with none of them: the pops on
// its way back out made those registers unknown, and every bytecode after
// them was fetched, decoded and dispatched as in the interpreter (in Lua
// object-oriented code, where side traces hold most of the trace code, two
// thirds of the registers lost were lost that way). The parent's exit now
// passes on the slots it knows, as it passes on its registers
// (sideEntry.saved), checked against the stack when the side recording
// starts.

// memValue is 8 bytes of memory at addr the optimiser knows.
type memValue struct {
	addr, v uint64
}

// savedSnap is the saved slots from op from on, until the next snapshot:
// savedSlots[lo:hi], resting on savedDeps[lo:hi].
type savedSnap struct {
	from   int
	lo, hi int32
}

// snapSaved records s.saved as the state before op i when it changed since
// the last snapshot (the final pass only: keepStates).
func (o *optimizer) snapSaved(s *evalState, i int) {
	if !s.savedDirty && (i > 0 || len(s.saved) == 0) {
		return
	}
	s.savedDirty = false
	lo := int32(len(o.savedSlots))
	for a, v := range s.saved {
		if v.known {
			o.savedSlots = append(o.savedSlots, memValue{a, v.v})
			o.savedDeps = append(o.savedDeps, v.deps)
		}
	}
	o.savedSnaps = append(o.savedSnaps, savedSnap{from: i, lo: lo, hi: int32(len(o.savedSlots))})
}

// exitSavedSlots appends to dst the saved slots certain at an exit taken
// before op i of plan p, in address order.
func (p *plan) exitSavedSlots(dst []memValue, i int) []memValue {
	k, found := slices.BinarySearchFunc(p.savedSnaps, i, func(s savedSnap, i int) int { return s.from - i })
	if !found {
		k--
	}
	if k < 0 {
		return dst
	}
	snap := p.savedSnaps[k]
	lo := len(dst)
	for j := snap.lo; j < snap.hi; j++ {
		if p.certainAt(p.savedDeps[j], i) {
			dst = append(dst, p.savedSlots[j])
		}
	}
	slices.SortFunc(dst[lo:], func(a, b memValue) int { return cmp.Compare(a.addr, b.addr) })
	return dst
}

// maxSavedSpan bounds how far above the exit's %rsp a saved slot may lie:
// the frames of the callees inlined since the loop's head.
const maxSavedSpan = 64 << 10

// entrySavedSlots returns the saved slots exit id of parent passes on to a
// side recording starting with registers regs, those its stack holds now:
// none when the parent did not know %rsp there, or knew another, or any
// slot holds another value (what the parent knew is then not trusted).
// The slots lie between that %rsp and the loop's frame, in the thread's
// stack, which the recording does not change before it reads them here.
func entrySavedSlots(parent *trace, id uint32, regs *[16]uint64) []memValue {
	i := int(id) - int(parent.exitBase)
	if i < 0 || i >= len(parent.exitSaved) || len(parent.exitSaved[i]) == 0 {
		return nil
	}
	rsp := regs[x86enc.RSP]
	if i >= len(parent.exitKnown) || !slices.Contains(parent.exitKnown[i], regValue{x86enc.RSP, rsp}) {
		return nil
	}
	slots := parent.exitSaved[i]
	for _, sv := range slots {
		if sv.addr < rsp || sv.addr-rsp >= maxSavedSpan || sv.addr&7 != 0 {
			return nil
		}
		if binary.LittleEndian.Uint64(memAt(sv.addr, 8)) != sv.v {
			return nil
		}
	}
	return slots
}
