package tracevm

import (
	"math/bits"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"golang.org/x/arch/x86/x86asm"
)

// popRegs follows, per register, the idiom of a free-list pop as
// compilers inline it (CPython's pymalloc, its object free lists):
//
//	mov d(%B), %R      the block, from the list's head
//	mov k(%R), %T      the next block, from the block (k: 0 or 8)
//	mov %T, d(%B)      the head moves past the block
//
// After the third, %R holds a block no live object overlaps: a store into
// it forgets nothing the trace knows (evalState.intoFresh), as a store
// into the block an allocator's call returned does. Interpreters of other
// profiles keep live objects on such lists too (a queue's nodes): only
// objects with Object.RefcountWords (CPython) take pops as fresh.
type popRegs struct {
	// live: the registers whose head is set (a pass over a trace
	// without loads from memory does no more than test it).
	live uint16
	head [16]popHead
	// next: for a register loaded from a block, that block's register
	// plus one; 0 for none.
	next [16]uint8
}

// popHead is where a register was loaded from: base register (or RIP,
// with disp the absolute address) and displacement.
type popHead struct {
	ok   bool
	base x86asm.Reg
	disp int64
}

// after updates p for inst, run, and returns the registers that now hold
// a popped block.
func (p *popRegs) after(inst *x86dec.Inst) (popped uint16) {
	if p.live == 0 && (inst.Op != x86asm.MOV || inst.MemBytes != 8) {
		return 0 // nothing followed, and no load to follow
	}
	w, all := writes(inst)
	if all {
		*p = popRegs{}
		return 0
	}
	load, store := inst.Op == x86asm.MOV && inst.MemBytes == 8, false
	var reg popReg
	var mem popHead
	if load {
		reg, mem, load, store = movForm(inst)
	}
	if store && reg.ok {
		if r := p.next[reg.n]; r != 0 {
			if h := p.head[r-1]; h.ok && h == mem {
				popped |= 1 << (r - 1)
				p.drop(int(r - 1))
			}
		}
	}
	// What the instruction writes loses what it was loaded from, and
	// so does every register loaded through it.
	var from popHead
	var nextOf uint8
	if load && reg.ok {
		from = mem
		if b, ok := regNum(mem.base); ok && (mem.disp == 0 || mem.disp == 8) && p.head[b].ok {
			nextOf = uint8(b) + 1
		}
	}
	for ws := w; ws != 0; ws &= ws - 1 {
		r := bits.TrailingZeros16(ws)
		p.drop(r)
		p.next[r] = 0
		for xs := p.live; xs != 0; xs &= xs - 1 {
			x := bits.TrailingZeros16(xs)
			if b, ok := regNum(p.head[x].base); ok && b == r {
				p.drop(x)
			}
		}
		for x := range p.next {
			if int(p.next[x]) == r+1 {
				p.next[x] = 0
			}
		}
	}
	if b, ok := regNum(from.base); load && reg.ok && !(ok && b == reg.n) {
		// (A register loaded through itself no longer holds
		// what it was loaded through.)
		p.head[reg.n], p.next[reg.n] = from, nextOf
		p.live |= 1 << reg.n
	}
	return popped
}

// drop forgets register r's head.
func (p *popRegs) drop(r int) {
	p.head[r] = popHead{}
	p.live &^= 1 << r
}

// popReg is a 64-bit general register operand, by number.
type popReg struct {
	n  int
	ok bool
}

// movForm decodes an 8-byte MOV between a general register and memory
// without index or segment: the register, the memory (RIP-relative as
// RIP and its absolute address), and which way it goes.
func movForm(inst *x86dec.Inst) (reg popReg, mem popHead, load, store bool) {
	for k, a := range inst.Args[:2] {
		m, ok := a.(x86asm.Mem)
		if !ok {
			continue
		}
		other := inst.Args[1-k]
		n, size, ok := gpr(regArg(other))
		if !ok || size != 8 || m.Index != 0 || m.Segment != 0 {
			return popReg{}, popHead{}, false, false
		}
		mem = popHead{ok: true, base: m.Base, disp: m.Disp}
		if m.Base == x86asm.RIP {
			t, ok := inst.MemRIPTarget()
			if !ok {
				return popReg{}, popHead{}, false, false
			}
			mem.disp = int64(t)
		} else if _, ok := regNum(m.Base); !ok {
			return popReg{}, popHead{}, false, false
		}
		return popReg{n: int(n), ok: true}, mem, k == 1, k == 0
	}
	return popReg{}, popHead{}, false, false
}

// regNum is a 64-bit general register's number.
func regNum(r x86asm.Reg) (int, bool) {
	n, size, ok := gpr(r)
	return int(n), ok && size == 8
}
