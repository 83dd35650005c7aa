package tracevm

import (
	"math/bits"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"golang.org/x/arch/x86/x86asm"
)

// Reloads: a register stored to a stack slot and loaded back from it with
// nothing between that writes either. A compiler spills the registers it
// needs across a call; where the call is an annotation the patcher made a
// no-op (CPython 2.7's merge blocks around every reference count change),
// the spill and its reload stay, and the reload puts a store-forwarding
// latency on the register's chain. The optimiser follows which register
// mirrors which known address (evalState.mirror) and leaves such loads
// out (optimizer.reloads, liveness).

// slotMove reports whether op i is an 8-byte mov between general register
// r and memory at a known address (slot: addr<<4 | 8, 0 if not), and
// whether it loads; it reads the registers before op i runs.
func (o *optimizer) slotMove(i int, s *evalState) (r x86enc.Reg, slot uint64, load bool) {
	inst := o.insts[i]
	if inst.Op != x86asm.MOV || inst.MemBytes != 8 || inst.Special != x86dec.SpecialNone {
		return 0, 0, false
	}
	for k, a := range inst.Args[:2] {
		m, ok := a.(x86asm.Mem)
		if !ok {
			continue
		}
		n, size, ok := gpr(regArg(inst.Args[1-k]))
		if !ok || size != 8 {
			return 0, 0, false
		}
		ad := o.addr(inst, m, s)
		if !ad.known || ad.v == 0 {
			return 0, 0, false
		}
		return n, ad.v<<4 | 8, k == 1
	}
	return 0, 0, false
}

// mirrorAfter updates s.mirror for inst, run: the registers it writes
// mirror nothing, and r mirrors slot when inst moved it (slotMove). The
// memory side is forgetMirrors', called where stores forget.
func (s *evalState) mirrorAfter(inst *x86dec.Inst, r x86enc.Reg, slot uint64) {
	if s.mirrored != 0 {
		w := writeMask(inst)
		for ws := w & s.mirrored; ws != 0; ws &= ws - 1 {
			s.mirror[bits.TrailingZeros16(ws)] = 0
		}
		s.mirrored &^= w
	}
	if slot != 0 {
		s.mirror[r] = slot
		s.mirrored |= 1 << r
	}
}

// forgetMirrors drops the mirrors of the addresses hit reports written.
func (s *evalState) forgetMirrors(hit func(at uint64) bool) {
	for ms := s.mirrored; ms != 0; ms &= ms - 1 {
		r := bits.TrailingZeros16(ms)
		if hit(s.mirror[r] >> 4) {
			s.mirror[r] = 0
			s.mirrored &^= 1 << r
		}
	}
}

// unmirror drops register r's mirror (a write the pass makes itself).
func (s *evalState) unmirror(r x86enc.Reg) {
	s.mirror[r] = 0
	s.mirrored &^= 1 << r
}
