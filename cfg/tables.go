package cfg

import (
	"sort"

	"golang.org/x/arch/x86/x86asm"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// maxSliceSteps bounds how far back the table analysis walks from an
// indirect jump; compilers keep the table load close to the jump.
const maxSliceSteps = 64

// maxTableEntries bounds a table whose length no instruction states.
const maxTableEntries = 4096

// walker walks a unit's instructions backwards along the unique path that
// leads to an instruction: through its fall-through predecessor, or through
// the single branch that targets it when nothing falls into it.
type walker struct {
	u         *unit
	fallFrom  map[uint64]*instInfo   // instruction address -> the instruction that falls into it
	jumpsInto map[uint64][]*instInfo // instruction address -> branches that target it
}

func newWalker(u *unit) *walker {
	w := &walker{u: u, fallFrom: map[uint64]*instInfo{}, jumpsInto: map[uint64][]*instInfo{}}
	for _, in := range u.insts {
		switch in.flow {
		case x86dec.FlowNone, x86dec.FlowCondJump, x86dec.FlowCall, x86dec.FlowIndirectCall:
			w.fallFrom[in.End()] = in
		}
		if (in.flow == x86dec.FlowJump || in.flow == x86dec.FlowCondJump) && in.target != 0 {
			w.jumpsInto[in.target] = append(w.jumpsInto[in.target], in)
		}
	}
	return w
}

// prev returns the instruction executed just before in, and whether control
// arrived from it through a taken branch.
func (w *walker) prev(in *instInfo) (*instInfo, bool) {
	if p := w.fallFrom[in.Addr]; p != nil {
		return p, false
	}
	if js := w.jumpsInto[in.Addr]; len(js) == 1 {
		return js[0], true
	}
	return nil, false
}

// findDef returns the nearest instruction before in that writes the
// register family fam, or nil.
func (w *walker) findDef(fam x86asm.Reg, in *instInfo) *instInfo {
	cur := in
	for i := 0; i < maxSliceSteps; i++ {
		p, _ := w.prev(cur)
		if p == nil {
			return nil
		}
		if writesReg(p, fam) {
			return p
		}
		cur = p
	}
	return nil
}

// constValue returns the value of inst's effect when it loads a constant
// address into a register: lea T(%rip) or mov $T.
func constValue(in *instInfo) (uint64, bool) {
	switch in.Op {
	case x86asm.LEA:
		if t, ok := in.MemRIPTarget(); ok {
			return t, true
		}
	case x86asm.MOV:
		if imm, ok := in.Args[1].(x86asm.Imm); ok && imm >= 0 {
			return uint64(imm), true
		}
	}
	return 0, false
}

// regValue returns the constant a register holds at in: from its nearest
// definition on the path, or, when the path gives none (a base register
// loaded once in the prologue, as Lua's dispatch table in %r14), from the
// unit-wide definitions if they all agree. pop only restores a saved value
// on the way out, so it does not count.
func (w *walker) regValue(r x86asm.Reg, in *instInfo) (uint64, bool) {
	fam := regFamily(r)
	if fam == x86asm.RIP || !isGPR(r) {
		return 0, false
	}
	if def := w.findDef(fam, in); def != nil {
		return constValue(def)
	}
	var value uint64
	found := false
	for _, d := range w.u.insts {
		if d.Op == x86asm.POP || !writesReg(d, fam) {
			continue
		}
		v, ok := constValue(d)
		if !ok || (found && v != value) {
			return 0, false
		}
		value, found = v, true
	}
	return value, found
}

// indexBound finds how many values the table index register can hold at
// in: from a guarding `cmp $N,idx; ja default` (also when the index was
// loaded from memory that the cmp tested: `cmpq $N,(m); ja; mov (m),idx`),
// an `and $MASK,idx`, or a zero-extending byte load. It returns 0 when
// nothing bounds the index.
func (w *walker) indexBound(idx x86asm.Reg, in *instInfo) (bound, from uint64) {
	fam := regFamily(idx)
	var mem *x86asm.Mem // set once the index is traced back to a load from memory
	var cond *instInfo
	var condTaken bool
	var fallback, fallbackFrom uint64
	cur := in
	for i := 0; i < maxSliceSteps; i++ {
		p, taken := w.prev(cur)
		if p == nil {
			break
		}
		cur = p
		if p.flow == x86dec.FlowCondJump {
			cond, condTaken = p, taken
			continue
		}
		if p.Op == x86asm.CMP && cond != nil {
			imm, okI := p.Args[1].(x86asm.Imm)
			var match bool
			switch a := p.Args[0].(type) {
			case x86asm.Reg:
				match = mem == nil && regFamily(a) == fam
			case x86asm.Mem:
				match = mem != nil && a == *mem
			}
			if match && okI && imm >= 0 {
				if b := guardBound(cond.Op, condTaken, uint64(imm)); b != 0 {
					return b, p.Addr
				}
			}
		}
		if !keepsFlags(p.Op) {
			cond = nil
		}
		if mem != nil {
			// The loaded memory is only the index while its address
			// registers and contents stay the same.
			if (mem.Base != 0 && writesReg(p, regFamily(mem.Base))) ||
				(mem.Index != 0 && writesReg(p, regFamily(mem.Index))) {
				break
			}
			if m, ok := p.Args[0].(x86asm.Mem); ok && m == *mem && p.Op != x86asm.CMP && p.Op != x86asm.TEST {
				break
			}
			continue
		}
		if !writesReg(p, fam) {
			continue
		}
		switch p.Op {
		case x86asm.MOVZX:
			switch src := p.Args[1].(type) {
			case x86asm.Reg:
				if b := regWidthBound(src); b != 0 && fallback == 0 {
					fallback, fallbackFrom = b, p.Addr
				}
				fam = regFamily(src)
				continue
			case x86asm.Mem:
				if p.MemBytes == 1 {
					return 256, p.Addr
				}
			}
		case x86asm.MOV, x86asm.MOVSXD:
			// A copy, or a sign extension of an index that a later
			// bound still limits to small non-negative values.
			switch src := p.Args[1].(type) {
			case x86asm.Reg:
				if isGPR(src) {
					fam = regFamily(src)
					continue
				}
			case x86asm.Mem:
				if p.Op == x86asm.MOV && src.Base != x86asm.RIP {
					m := src
					mem = &m
					continue
				}
			}
		case x86asm.AND:
			if imm, ok := p.Args[1].(x86asm.Imm); ok && imm >= 0 && imm < maxTableEntries {
				return uint64(imm) + 1, p.Addr
			}
		}
		break
	}
	return fallback, fallbackFrom
}

// keepsFlags reports whether op leaves the arithmetic flags alone, so that
// a compare before it still guards a branch after it.
func keepsFlags(op x86asm.Op) bool {
	switch op {
	case x86asm.MOV, x86asm.LEA, x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD,
		x86asm.NOP, x86asm.PUSH, x86asm.POP, x86asm.XCHG:
		return true
	}
	return false
}

// guardBound turns `cmp $n` plus the branch that leaves the table path into
// the number of index values that reach the table.
func guardBound(op x86asm.Op, taken bool, n uint64) uint64 {
	if n >= maxTableEntries {
		return 0
	}
	switch {
	case op == x86asm.JA && !taken, op == x86asm.JBE && taken:
		return n + 1
	case op == x86asm.JAE && !taken, op == x86asm.JB && taken:
		return n
	}
	return 0
}

// resolve analyses the indirect jump at in and reads its table.
func (w *walker) resolve(im *image, in *instInfo) *IndirectJump {
	ij := &IndirectJump{Addr: in.Addr}
	switch a := in.Args[0].(type) {
	case x86asm.Mem:
		// jmp *T(,idx,8) or jmp *T(base,idx,8)
		if a.Base == x86asm.RIP || a.Index == 0 || a.Scale != 8 {
			return ij
		}
		base := uint64(a.Disp)
		if a.Base != 0 {
			v, ok := w.regValue(a.Base, in)
			if !ok {
				return ij
			}
			base += v
		}
		bound, from := w.indexBound(a.Index, in)
		w.readTable(im, ij, TableAbsolute, base, bound, from)
	case x86asm.Reg:
		def := w.findDef(regFamily(a), in)
		if def == nil {
			return ij
		}
		switch def.Op {
		case x86asm.ADD:
			// movslq (T,idx,4),r; add T,r; jmp *r (either operand order)
			dst, ok1 := def.Args[0].(x86asm.Reg)
			src, ok2 := def.Args[1].(x86asm.Reg)
			if !ok1 || !ok2 {
				return ij
			}
			for _, pair := range [2][2]x86asm.Reg{{dst, src}, {src, dst}} {
				load := w.findDef(regFamily(pair[0]), def)
				if load == nil || load.Op != x86asm.MOVSXD {
					continue
				}
				m, ok := load.Args[1].(x86asm.Mem)
				if !ok || m.Scale != 4 || m.Index == 0 || m.Base == 0 {
					continue
				}
				table, ok := w.regValue(m.Base, load)
				if !ok {
					continue
				}
				if added, ok := w.regValue(pair[1], def); !ok || added != table {
					continue
				}
				bound, from := w.indexBound(m.Index, load)
				w.readTable(im, ij, TablePIC, table+uint64(m.Disp), bound, from)
				return ij
			}
		case x86asm.MOV:
			// mov T(,idx,8),r; jmp *r: computed goto
			m, ok := def.Args[1].(x86asm.Mem)
			if !ok || m.Scale != 8 || m.Index == 0 || m.Base == x86asm.RIP {
				return ij
			}
			base := uint64(m.Disp)
			if m.Base != 0 {
				v, ok := w.regValue(m.Base, def)
				if !ok {
					return ij
				}
				base += v
			}
			bound, from := w.indexBound(m.Index, def)
			w.readTable(im, ij, TableComputedGoto, base, bound, from)
		}
	}
	return ij
}

// readTable reads a table's entries. With a bound it reads that many,
// stopping early at the first entry that is not code (a wrong bound must
// not invent targets); without one it reads while entries point into the
// unit.
func (w *walker) readTable(im *image, ij *IndirectJump, kind TableKind, table, bound, boundFrom uint64) {
	limit := bound
	if limit == 0 {
		limit = maxTableEntries
	}
	seen := map[uint64]bool{}
	n := 0
	for ; uint64(n) < limit; n++ {
		var t uint64
		if kind == TablePIC {
			v, ok := im.f.ReadUint32(table + 4*uint64(n))
			if !ok {
				break
			}
			t = table + uint64(int64(int32(v)))
		} else {
			v, ok := im.f.ReadPointer(table + 8*uint64(n))
			if !ok {
				break
			}
			t = v
		}
		if !im.isCode(t) || im.isStubSection(t) || (bound == 0 && !w.u.contains(t)) {
			break
		}
		seen[t] = true
	}
	if n == 0 {
		return
	}
	ij.Kind, ij.Table, ij.Entries = kind, table, n
	if bound != 0 {
		ij.BoundFrom = boundFrom
	}
	ij.Targets = make([]uint64, 0, len(seen))
	for t := range seen {
		ij.Targets = append(ij.Targets, t)
	}
	sort.Slice(ij.Targets, func(i, j int) bool { return ij.Targets[i] < ij.Targets[j] })
}
