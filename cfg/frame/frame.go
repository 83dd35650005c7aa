// Package frame finds the private stack slots of a function's frame:
// those whose addresses never leave the function, so that nothing but
// its own %rsp-relative instructions reads or writes them. It owns that
// analysis of machine code and nothing else; the patcher runs it on the
// functions that hold loop sites and records the result in the site
// table, and the JIT falls back to it where a file carries none.
package frame

import (
	"slices"
	"sort"

	"golang.org/x/arch/x86/x86asm"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// Slots are the stack slots of a function's frame whose addresses never
// leave it: offsets [Lo, Hi) from %rsp in its body. Nothing but the
// function's own %rsp-relative instructions reads or writes them (the
// compiler's spill slots: CPython keeps next_instr there, Lua its base),
// so a store through an unknown pointer or a call cannot change them.
type Slots struct{ Lo, Hi uint32 }

// Empty reports whether s holds no slot.
func (s Slots) Empty() bool { return s.Hi <= s.Lo }

// Pack encodes s in 32 bits for the site table (rm_site.frame): Lo |
// Hi<<16, 0 for none (and for a frame too large to say).
func (s Slots) Pack() uint32 {
	if s.Empty() || s.Hi > 0xffff {
		return 0
	}
	return s.Lo | s.Hi<<16
}

// Unpack decodes Pack's encoding.
func Unpack(v uint32) Slots { return Slots{Lo: v & 0xffff, Hi: v >> 16} }

// Range is a function's code: [Lo, Hi).
type Range struct{ Lo, Hi uint64 }

func (r Range) contains(a uint64) bool { return a >= r.Lo && a < r.Hi }

// Funcs are functions' code ranges, sorted and disjoint: what a Code's
// FuncAt searches.
type Funcs []Range

// At returns the range containing pc.
func (fs Funcs) At(pc uint64) (Range, bool) {
	k := sort.Search(len(fs), func(k int) bool { return fs[k].Hi > pc })
	if k < len(fs) && fs[k].contains(pc) {
		return fs[k], true
	}
	return Range{}, false
}

// maxFrameParts bounds the code ranges one frame is read from: the
// function and the cold parts it jumps to.
const maxFrameParts = 16

// Code gives Analyse the code it reads: the function (FDE) range
// containing pc, and a range's bytes (nil when unreadable).
type Code interface {
	FuncAt(pc uint64) (Range, bool)
	Bytes(r Range) []byte
}

// frameScan is Analyse's state.
type frameScan struct {
	frame int64    // N, once the prologue's sub $N,%rsp is seen (-1: not yet)
	hi    int64    // lowest offset that may be reached through a pointer
	shift int64    // bytes %rsp may be below the body's by pushes and adjustments after the prologue
	jumps []uint64 // direct jump targets outside the parts read so far
}

// Analyse finds the private slots of the function containing entry
// from its machine code, read linearly (gcc and clang put no data in
// x86-64 text), with every function it jumps into: the cold parts of
// its own code (gcc's .cold functions, their own FDEs, the same frame),
// and the functions it tail-calls, which are read as if their code ran
// in this frame: a cold part may begin like a function, and reading too
// much only loses slots. The frame is the one the prologue allocates:
// pushes, then sub $N,%rsp. A slot is not private when the code takes an
// address in the frame (lea off(%rsp): everything from off up may be
// reached through it), indexes the frame (an array), or lies where a
// later push or %rsp adjustment moves the offsets. A function that
// copies %rsp anywhere (a frame pointer, alloca), or whose code does not
// decode, has none.
//
// A callee's stack arguments stay in: it may change them, but compiled
// code never reads an argument slot after the call without storing it
// again (what the callee left there means nothing to the caller), so
// a value the JIT keeps for such a slot across the call is never read.
func Analyse(rd Code, entry uint64) Slots {
	fn, ok := rd.FuncAt(entry)
	if !ok {
		return Slots{}
	}
	s := frameScan{frame: -1, hi: 1 << 62}
	parts := []Range{fn}
	for i := 0; i < len(parts); i++ {
		if !s.sweep(rd.Bytes(parts[i]), parts[i].Lo, i == 0) {
			return Slots{}
		}
		if i == 0 && s.frame <= 0 {
			return Slots{}
		}
		for _, t := range s.jumps {
			part, ok := rd.FuncAt(t)
			if !ok || slices.ContainsFunc(parts, func(p Range) bool { return p.contains(t) }) {
				continue
			}
			if len(parts) == maxFrameParts {
				return Slots{}
			}
			parts = append(parts, part)
		}
		s.jumps = s.jumps[:0]
	}
	lo, hi := s.shift, min(s.hi, s.frame)-s.shift
	if lo >= hi {
		return Slots{}
	}
	return Slots{Lo: uint32(lo), Hi: uint32(hi)}
}

// sweep reads one part; prologue: it is the function's entry. It
// returns false when the frame has no private slots.
func (s *frameScan) sweep(code []byte, addr uint64, prologue bool) bool {
	for off := 0; off < len(code); {
		inst, err := x86dec.Decode(code[off:], addr+uint64(off))
		if err != nil {
			return false
		}
		off += inst.Len
		if inst.Special != x86dec.SpecialNone {
			continue // none computes an address or reads %rsp
		}
		inFrame := !prologue || s.frame >= 0
		switch inst.Op {
		case x86asm.PUSH:
			if inFrame {
				s.shift += 8
			}
			continue
		case x86asm.POP, x86asm.RET, x86asm.NOP:
			continue
		case x86asm.LEAVE, x86asm.ENTER:
			return false
		case x86asm.SUB, x86asm.ADD:
			if r, ok := inst.Args[0].(x86asm.Reg); ok && r == x86asm.RSP {
				imm, ok := inst.Args[1].(x86asm.Imm)
				if !ok {
					return false // a frame of run-time size
				}
				if inst.Op == x86asm.SUB {
					if inFrame {
						s.shift += int64(imm)
					} else {
						s.frame = int64(imm)
					}
				}
				continue
			}
		}
		if inst.Op == x86asm.JMP || isJcc(inst.Op) {
			if rel, ok := inst.Args[0].(x86asm.Rel); ok {
				t := inst.End() + uint64(int64(rel))
				if t < addr || t >= addr+uint64(len(code)) {
					s.jumps = append(s.jumps, t)
				}
			}
		}
		if readsRSP(&inst) {
			return false // %rsp copied: the frame's address escapes
		}
		for _, a := range inst.Args {
			m, ok := a.(x86asm.Mem)
			if !ok || m.Base != x86asm.RSP {
				continue
			}
			switch {
			case !inFrame:
				return false // the frame addressed before it is allocated
			case inst.Op == x86asm.LEA || m.Index != 0:
				s.hi = min(s.hi, m.Disp)
			}
		}
	}
	return true
}

func isJcc(op x86asm.Op) bool {
	switch op {
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JNE, x86asm.JG, x86asm.JGE,
		x86asm.JL, x86asm.JLE, x86asm.JO, x86asm.JNO, x86asm.JP, x86asm.JNP, x86asm.JS, x86asm.JNS:
		return true
	}
	return false
}

// readsRSP reports whether inst uses %rsp as a value (a register
// operand, or an address's index), other than the frame's own
// adjustment and the stack instructions.
func readsRSP(inst *x86dec.Inst) bool {
	for _, a := range inst.Args {
		switch a := a.(type) {
		case x86asm.Reg:
			if a == x86asm.RSP || a == x86asm.ESP || a == x86asm.SP {
				return true
			}
		case x86asm.Mem:
			if a.Index == x86asm.RSP {
				return true
			}
		}
	}
	return false
}
