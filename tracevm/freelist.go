package tracevm

import (
	"math/bits"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"golang.org/x/arch/x86/x86asm"
)

// popRegs follows, per register, the idiom of a free-list pop as
// compilers inline it (CPython's pymalloc, its object free lists):
//
//	mov d(%B), %R      the block, from the list's head
//	mov k(%R), %T      the next block, from the block (k: 0 or 8)
//	mov %T, d(%B)      the head moves past the block
//
// %R holds a block no live object overlaps from the first on, when the
// third follows: a store into it forgets nothing the trace knows
// (evalState.intoFresh), as a store into the block an allocator's call
// returned does. CPython 2.7's PyInt_FromLong fills the block before it
// moves the head, so the block counts as fresh from its load (freshLoads).
// Interpreters of other profiles keep live objects on such lists too (a
// queue's nodes): only objects with Object.RefcountWords (CPython) take
// pops as fresh.
type popRegs struct {
	// live: the registers whose head is set (a pass over a trace
	// without loads from memory does no more than test it).
	live uint16
	head [16]popHead
	// next: for a register loaded from a block, that block's register
	// plus one; 0 for none.
	next [16]uint8
	// poppedAt: for a register after returns as popped, the op that
	// loaded it from the list's head.
	poppedAt [16]int
}

// popHead is where a register was loaded from: base register (or RIP,
// with disp the absolute address) and displacement; op is the load's.
type popHead struct {
	ok   bool
	base x86asm.Reg
	disp int64
	op   int
}

// same reports whether h and o name the same memory.
func (h popHead) same(o popHead) bool {
	return h.ok && o.ok && h.base == o.base && h.disp == o.disp
}

// freshLoads returns, by op, the registers that hold a free block right
// after it: the loads of a list's head whose pop the trace completes
// before a call. A store into the block between the load and the pop
// meets no live object either.
func freshLoads(ops []op, insts []*x86dec.Inst) map[int]uint16 {
	var p popRegs
	var out map[int]uint16
	for i := range ops {
		switch {
		case ops[i].kind == opCall:
			p = popRegs{}
		case ops[i].kind == opInsn && insts[i] != nil:
			popped := p.after(insts[i], i)
			for ; popped != 0; popped &= popped - 1 {
				r := bits.TrailingZeros16(popped)
				if out == nil {
					out = map[int]uint16{}
				}
				out[p.poppedAt[r]] |= 1 << r
			}
		}
	}
	return out
}

// after updates p for inst, op number at, run, and returns the registers
// that now hold a popped block.
func (p *popRegs) after(inst *x86dec.Inst, at int) (popped uint16) {
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
			if h := p.head[r-1]; h.same(mem) {
				popped |= 1 << (r - 1)
				p.poppedAt[r-1] = h.op
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
		from.op = at
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

// linkWindow bounds how far apart a free-list push's three moves may be.
const linkWindow = 12

// linkStores returns the ops that link a block onto a free list, as
// compilers inline a free list's push (CPython 2.7's int_dealloc, 3.11's
// float free list, pymalloc's free):
//
//	mov d(%B), %T      the list's head
//	mov %R, d(%B)      the block becomes the head (before or after the link)
//	mov %T, k(%R)      the link: the old head into the block (k: 0 or 8)
//
// with no call between and none of the registers written between their
// uses. The link writes a pointer word of a block, whole: what the trace
// knows of it can only be such a word, as with a reference count
// (evalState.forgetWords), so the store need not forget everything.
func linkStores(ops []op, insts []*x86dec.Inst) map[int]bool {
	var out map[int]bool
	for j := range ops {
		inst := insts[j]
		if ops[j].kind != opInsn || inst == nil || inst.Op != x86asm.MOV || inst.MemBytes != 8 {
			continue
		}
		t, link, _, store := movForm(inst)
		if !store || !t.ok || (link.disp != 0 && link.disp != 8) {
			continue
		}
		r, ok := regNum(link.base)
		if !ok || r == t.n || r == int(x86enc.RSP) {
			continue
		}
		i, head := headLoad(ops, insts, j, t.n, r)
		if i < 0 || !headStored(ops, insts, i, j, r, head) {
			continue
		}
		if out == nil {
			out = map[int]bool{}
		}
		out[j] = true
	}
	return out
}

// headLoad finds, before op j, the load of register t from a list's head
// (not through r), with neither t nor r written between: its op and the
// head, or -1.
func headLoad(ops []op, insts []*x86dec.Inst, j, t, r int) (int, popHead) {
	for i := j - 1; i >= 0 && i >= j-linkWindow; i-- {
		if ops[i].kind == opCall {
			return -1, popHead{}
		}
		inst := insts[i]
		if ops[i].kind != opInsn || inst == nil {
			continue
		}
		w, all := writes(inst)
		if all || w&(1<<r) != 0 {
			return -1, popHead{}
		}
		if w&(1<<t) == 0 {
			continue
		}
		reg, mem, load, _ := movForm(inst)
		if inst.Op != x86asm.MOV || inst.MemBytes != 8 || !load || reg.n != t {
			return -1, popHead{}
		}
		if b, ok := regNum(mem.base); ok && (b == r || b == t) {
			return -1, popHead{}
		}
		return i, mem
	}
	return -1, popHead{}
}

// headStored reports whether r is stored to head between op i (the head's
// load) and linkWindow ops past op j (the link), with neither r nor the
// head's base written before.
func headStored(ops []op, insts []*x86dec.Inst, i, j, r int, head popHead) bool {
	base, hasBase := regNum(head.base)
	for k := i + 1; k < len(ops) && k <= j+linkWindow; k++ {
		if ops[k].kind == opCall {
			return false
		}
		inst := insts[k]
		if ops[k].kind != opInsn || inst == nil {
			continue
		}
		if k != j && inst.Op == x86asm.MOV && inst.MemBytes == 8 {
			if reg, mem, _, store := movForm(inst); store && reg.ok && reg.n == r && mem.same(head) {
				return true
			}
		}
		w, all := writes(inst)
		if all || w&(1<<r) != 0 || (hasBase && w&(1<<base) != 0) {
			return false
		}
	}
	return false
}
