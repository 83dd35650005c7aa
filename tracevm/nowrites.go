package tracevm

import (
	"encoding/binary"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/redmagic-patch/redmagic-patch/tracevm/insn"
	"golang.org/x/arch/x86/x86asm"
)

// Read-only functions. A function the trace calls natively may write
// anything, so the optimiser forgets what it knew of memory at each such
// call, and a loop that makes one is never peeled. Many of those calls only
// read: a hash table's lookup (lua5.4's luaH_getshortstr, made native for
// its probe loop), a comparison, a hash. writesNoMemory finds them from their
// code: every path from the entry, through the functions it calls
// directly, writes no memory but its own stack frame below the return
// address, and keeps the stack pointer where it can follow it.

// Bounds of the scan: past them a function is taken to write.
const (
	noWritesInsns = 2048 // instructions of one function and its callees
	noWritesDepth = 4    // nested direct calls
)

// WritesNoMemory reports whether the function at fn writes no memory but
// its own stack frame (the harness's tests ask).
func (m *Machine) WritesNoMemory(fn uint64) bool { return m.writesNoMemory(fn) }

// writesNoMemory reports whether the function at entry writes no memory but its
// own stack frame, on every path, its direct callees included. The answer
// is kept per entry.
func (m *Machine) writesNoMemory(entry uint64) bool {
	m.mu.Lock()
	v, ok := m.noWriteFns[entry]
	m.mu.Unlock()
	if ok {
		return v
	}
	budget := noWritesInsns
	v = m.scanNoWrites(entry, noWritesDepth, &budget)
	m.mu.Lock()
	if m.noWriteFns == nil {
		m.noWriteFns = map[uint64]bool{}
	}
	m.noWriteFns[entry] = v
	m.mu.Unlock()
	return v
}

// scanNoWrites walks every path of the function at entry, following the
// stack depth (bytes pushed below the return address) and the registers
// set to a %rip-relative address (the base of a switch's table) at each
// instruction; an address reached in two such states, a store not into
// the frame, anything it cannot follow (an indirect branch but a switch's
// table jump, a call outside the traced text, a change of %rsp other than
// by a constant) or more than *budget instructions make it false.
func (m *Machine) scanNoWrites(entry uint64, depth int, budget *int) bool {
	seen := map[uint64]noWritesState{}
	work := []noWritesPath{{pc: entry}}
	for len(work) > 0 {
		w := work[len(work)-1]
		work = work[:len(work)-1]
		for {
			if st, ok := seen[w.pc]; ok {
				if st != w.noWritesState {
					return false
				}
				break
			}
			seen[w.pc] = w.noWritesState
			if *budget--; *budget < 0 || m.textEnd(w.pc) == 0 {
				return false
			}
			d, err := m.decode(w.pc)
			if err != nil {
				return false
			}
			next := d.inst.End()
			switch d.info.Kind {
			case insn.Plain:
				nd, ok := frameEffect(&d.inst, w.depth)
				if !ok {
					return false
				}
				w.depth = nd
				w.followBound(&d.inst)
				w.setRegs(&d.inst)
				w.prev[0], w.prev[1] = w.prev[1], d
				w.pc = next
				continue
			case insn.CondJump:
				taken := noWritesPath{pc: d.info.Target, noWritesState: w.noWritesState}
				if b, takenSide, ok := boundsCheck(w.prev[1], d.info.Cond); ok {
					checked := &w.noWritesBound
					if takenSide {
						checked = &taken.noWritesBound
					}
					*checked = b
				}
				work = append(work, taken)
			case insn.Jump:
				// A jump within the function, or a tail call at
				// depth 0, whose frame then starts where this
				// one's did.
				next = d.info.Target
			case insn.Call, insn.IndirectCall:
				switch c := m.importCalled(w.pc, d); {
				case c == importNoReturn:
					next = 0 // the path ends
				case c == importNoWrites:
				case d.info.Kind == insn.IndirectCall:
					return false
				case depth == 0 || m.nativeEntry(d.info.Target) || !m.scanNoWrites(d.info.Target, depth-1, budget):
					return false
				}
				w.known &^= callerSaved
			case insn.IndirectJump:
				targets, ok := m.switchTargets(d, &w)
				if !ok {
					return false
				}
				for _, t := range targets {
					work = append(work, noWritesPath{pc: t, noWritesState: w.noWritesState})
				}
				next = 0
			case insn.Return:
				if w.depth != 0 {
					return false
				}
				next = 0
			default:
				return false
			}
			if next == 0 {
				break
			}
			w.pc = next
			w.prev = [2]*decoded{} // a new block
			if d.info.Kind != insn.CondJump {
				w.cases = 0 // a bounds check holds only in the block after it
			}
		}
	}
	return true
}

// noWritesState is what scanNoWrites follows along a path: the stack
// depth, and the registers known to hold an address (known, consts).
type noWritesState struct {
	depth  int64
	known  uint16
	consts [16]uint64
}

// noWritesPath is a path of scanNoWrites: where it is, its state, and the
// two instructions before it in its block.
type noWritesPath struct {
	pc uint64
	noWritesState
	prev [2]*decoded
	noWritesBound
}

// noWritesBound: the block follows an unsigned bounds check (cmp $n and
// the ja/jae that leaves, or the jbe/jb that comes here): at most cases
// values pass (0: no check), of the register boundReg (boundOnReg) or of
// the memory word boundMem, until a load of that word names its register.
type noWritesBound struct {
	cases      uint64
	boundReg   x86enc.Reg
	boundOnReg bool
	boundMem   x86asm.Mem
	boundBytes int
	// indexed: the table's load has read the index: what the register
	// holds after it no longer matters.
	indexed bool
}

// followBound carries the bounds check over inst, in the checked block: a
// load of the checked word (of its size) names the index's register; a
// load indexed by that register is the table's, after which nothing more
// is followed; before it, a write to the checked register, or to the
// word's address registers or into the frame it may lie in, ends it.
func (w *noWritesBound) followBound(inst *x86dec.Inst) {
	if w.cases == 0 || w.indexed {
		return
	}
	wr := writeMask(inst)
	if !w.boundOnReg {
		if inst.Op == x86asm.MOV && len(inst.Args) > 1 {
			if mem, ok := inst.Args[1].(x86asm.Mem); ok && mem == w.boundMem && int(inst.MemBytes) == w.boundBytes {
				if r, _, ok := gpr(regArg(inst.Args[0])); ok {
					w.boundReg, w.boundOnReg = r, true
					return
				}
			}
		}
		b, _, okb := gpr(w.boundMem.Base)
		i, _, oki := gpr(w.boundMem.Index)
		if okb && wr&(1<<b) != 0 || oki && wr&(1<<i) != 0 || w.boundMem.Base == x86asm.RSP && storesMemory(inst) {
			w.cases = 0
		}
		return
	}
	for _, a := range inst.Args {
		if mem, ok := a.(x86asm.Mem); ok {
			if i, _, ok := gpr(mem.Index); ok && i == w.boundReg {
				w.indexed = true // the table's load
				return
			}
		}
	}
	if wr&(1<<w.boundReg) != 0 {
		w.cases = 0
	}
}

// callerSaved: the registers a call may change.
const callerSaved = 1<<x86enc.RAX | 1<<x86enc.RCX | 1<<x86enc.RDX | 1<<x86enc.RSI | 1<<x86enc.RDI |
	1<<x86enc.R8 | 1<<x86enc.R9 | 1<<x86enc.R10 | 1<<x86enc.R11

// setRegs notes what inst leaves in the registers: a %rip-relative lea's
// address, nothing known of any other register it writes.
func (s *noWritesState) setRegs(inst *x86dec.Inst) {
	if inst.Op == x86asm.LEA {
		if dst, size, ok := gpr(regArg(inst.Args[0])); ok && size == 8 {
			if t, ok := inst.MemRIPTarget(); ok {
				s.known |= 1 << dst
				s.consts[dst] = t
				return
			}
		}
	}
	s.known &^= writeMask(inst)
}

// boundsCheck recognises, in cmp (the instruction before a conditional
// jump on cond), a switch's check of its index: cmp $n of a register or
// a memory word, then ja or jae to the default (the values that pass fall
// through) or jbe or jb to the table (they are taken). It returns the
// check and on which side the values that pass go.
func boundsCheck(cmp *decoded, cond x86enc.Cond) (b noWritesBound, takenSide, ok bool) {
	if cmp == nil || cmp.inst.Op != x86asm.CMP {
		return b, false, false
	}
	imm, isImm := cmp.inst.Args[1].(x86asm.Imm)
	if !isImm || int64(imm) < 0 {
		return b, false, false
	}
	switch a := cmp.inst.Args[0].(type) {
	case x86asm.Reg:
		r, _, isReg := gpr(a)
		if !isReg {
			return b, false, false
		}
		b.boundReg, b.boundOnReg = r, true
	case x86asm.Mem:
		b.boundMem, b.boundBytes = a, int(cmp.inst.MemBytes)
	default:
		return b, false, false
	}
	n := uint64(imm)
	switch cond {
	case x86enc.A, x86enc.BE:
		b.cases = n + 1
	case x86enc.AE, x86enc.B:
		b.cases = n
	default:
		return noWritesBound{}, false, false
	}
	return b, cond == x86enc.BE || cond == x86enc.B, true
}

// redZone: the bytes below %rsp a function may use without moving it
// (the System V x86-64 ABI).
const redZone = 128

// maxSwitchCases bounds a switch table's entries: past it, unknown.
const maxSwitchCases = 1024

// switchTargets returns where the indirect jump d, ending w's block, may
// go when it is a switch's jump through a table: jmp *T(,idx,8); mov
// T(,idx,8),r then jmp *r; or movslq T(base,idx,4),r, add base,r, jmp *r
// with base a %rip-relative address. The table holds as many entries as
// the bounds check of its index in the block's head lets pass (boundsCheck),
// each of which must lead into traced text; without that check the jump
// is not followed. (Read while its entries led into the jump's own
// function, a table whose case the compiler moved to the function's cold
// part ended early, and the cases after it went unscanned.)
func (m *Machine) switchTargets(d *decoded, w *noWritesPath) ([]uint64, bool) {
	var table, base uint64
	var index x86asm.Reg
	var entry int // bytes: 8 absolute, 4 relative to base
	switch a := d.inst.Args[0].(type) {
	case x86asm.Mem:
		if a.Base != 0 || a.Index == 0 || a.Scale != 8 || a.Segment != 0 {
			return nil, false
		}
		table, entry, index = uint64(a.Disp), 8, a.Index
	case x86asm.Reg:
		r, size, ok := gpr(a)
		last, before := w.prev[1], w.prev[0]
		if !ok || size != 8 || last == nil {
			return nil, false
		}
		switch last.inst.Op {
		case x86asm.MOV:
			mem, ok := last.inst.Args[1].(x86asm.Mem)
			if dst, _, ok2 := gpr(regArg(last.inst.Args[0])); !ok || !ok2 || dst != r ||
				mem.Base != 0 || mem.Index == 0 || mem.Scale != 8 || mem.Segment != 0 {
				return nil, false
			}
			table, entry, index = uint64(mem.Disp), 8, mem.Index
		case x86asm.ADD:
			a0, _, ok0 := gpr(regArg(last.inst.Args[0]))
			a1, _, ok1 := gpr(regArg(last.inst.Args[1]))
			if !ok0 || !ok1 || before == nil || before.inst.Op != x86asm.MOVSXD {
				return nil, false
			}
			var other x86enc.Reg
			switch {
			case a0 == r && a1 != r:
				other = a1
			case a1 == r && a0 != r:
				other = a0
			default:
				return nil, false
			}
			mem, ok := before.inst.Args[1].(x86asm.Mem)
			dst, _, ok2 := gpr(regArg(before.inst.Args[0]))
			mb, _, ok3 := gpr(mem.Base)
			if !ok || !ok2 || !ok3 || dst != r || mb != other || mem.Index == 0 || mem.Scale != 4 ||
				mem.Segment != 0 || w.known&(1<<other) == 0 {
				return nil, false
			}
			base = w.consts[other]
			table, entry, index = base+uint64(mem.Disp), 4, mem.Index
		default:
			return nil, false
		}
	default:
		return nil, false
	}
	if idx, _, ok := gpr(index); !ok || w.cases == 0 || w.cases > maxSwitchCases || !w.boundOnReg || idx != w.boundReg {
		return nil, false
	}
	targets := make([]uint64, 0, w.cases)
	for k := 0; k < int(w.cases); k++ {
		at := table + uint64(k*entry)
		if !m.readOnly(at, entry) {
			return nil, false
		}
		var t uint64
		if entry == 8 {
			t = binary.LittleEndian.Uint64(memAt(at, 8))
		} else {
			t = base + uint64(int64(int32(binary.LittleEndian.Uint32(memAt(at, 4)))))
		}
		if m.textEnd(t) == 0 {
			return nil, false
		}
		targets = append(targets, t)
	}
	return targets, true
}

// Imports a function may call and remain without writes (importCalled).
const (
	importOther    = iota
	importNoReturn // never returns: the path ends
	importNoWrites // writes only errno (Object.ErrnoOnly)
)

// importCalled classifies the import the call d, at pc, reaches through
// its PLT stub or GOT slot.
func (m *Machine) importCalled(pc uint64, d *decoded) int {
	o, ok := m.objectOf(pc)
	switch {
	case !ok:
	case importCall(o.NoReturn, d.info.Target, &d.inst):
		return importNoReturn
	case importCall(o.ErrnoOnly, d.info.Target, &d.inst):
		return importNoWrites
	}
	return importOther
}

// frameEffect returns the stack depth after inst, which runs at depth
// (bytes below the return address), and whether inst writes no memory but
// that frame and changes %rsp only in ways depth follows.
func frameEffect(inst *x86dec.Inst, depth int64) (int64, bool) {
	switch inst.Op {
	case x86asm.PUSH:
		if inst.DataSize != 64 && inst.DataSize != 0 {
			return 0, false
		}
		return depth + 8, true
	case x86asm.POP:
		if _, isReg := inst.Args[0].(x86asm.Reg); !isReg || depth < 8 || inst.DataSize == 16 {
			return 0, false
		}
		return depth - 8, true
	case x86asm.SUB, x86asm.ADD:
		if r, ok := inst.Args[0].(x86asm.Reg); ok && r == x86asm.RSP {
			imm, ok := inst.Args[1].(x86asm.Imm)
			if !ok {
				return 0, false
			}
			if inst.Op == x86asm.SUB {
				depth += int64(imm)
			} else {
				depth -= int64(imm)
			}
			return depth, depth >= 0
		}
	case x86asm.LEA:
		if r, ok := inst.Args[0].(x86asm.Reg); ok && r == x86asm.RSP {
			mem, ok := inst.Args[1].(x86asm.Mem)
			if !ok || mem.Base != x86asm.RSP || mem.Index != 0 || mem.Segment != 0 {
				return 0, false
			}
			depth -= mem.Disp
			return depth, depth >= 0
		}
	}
	if writeMask(inst)&(1<<x86enc.RSP) != 0 {
		return 0, false // %rsp set some other way: lost track
	}
	if !storesMemory(inst) {
		return depth, true
	}
	for _, a := range inst.Args {
		mem, ok := a.(x86asm.Mem)
		if !ok {
			continue
		}
		// Into the frame: at a constant offset from %rsp, below the
		// return address, or into the red zone below %rsp (a leaf's
		// locals), which holds nothing of the caller's.
		if mem.Base != x86asm.RSP || mem.Index != 0 || mem.Segment != 0 ||
			mem.Disp < -redZone || mem.Disp+int64(inst.MemBytes) > depth {
			return 0, false
		}
		return depth, true
	}
	return 0, false // a store without a memory operand: string ops, stack ops
}
