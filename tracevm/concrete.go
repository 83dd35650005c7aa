package tracevm

import (
	"math/bits"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"golang.org/x/arch/x86/x86asm"
)

// Candidate values for loads through pointers the optimiser does not know
// (value profiling in its simplest form, as a tracing JIT's recorder
// specialises on the types and functions it meets). The recorder keeps no
// register values, but a root trace's head registers are those its
// iteration began with, and memory as the compilation reads it is what
// the next one begins with. Running the recorded instructions concretely
// from the head registers, over that memory and the stores the run makes
// itself, gives every plain load an address and a value up to where the
// run would leave the recorded path (a guard it would take, another
// indirect target); it goes on along that path for the stores.
// Alongside, it follows what varies from one iteration to the next: the
// head registers the close changes, memory the iteration stores a varying
// or unknown value to, and whatever is computed or loaded from those
// (loop-invariance, as LuaJIT's loop optimiser decides it on its IR). A
// load that does not vary holds something the loop does not change: a
// method's closure, its prototype and bytecode, an object's metatable, a
// type tag. The optimiser may speculate on it with a guard after the
// load, and fold what follows.
//
// Nothing here has to be right: a candidate is only ever used behind a
// guard on the loaded register. A wrong one costs a guard that fails
// (an exit, a side trace), never a wrong result.

// cval is a value in a concrete run: known or not, and whether it may
// differ at the next iteration.
type cval struct {
	v      uint64
	ok     bool
	varies bool
}

// concreteRun is one concrete run of a recording's ops.
type concreteRun struct {
	loads []cval // by op: what a plain load read (its memory, zero-extended)
	// end: the first op where the run would leave the recorded path
	// (or its end); the loads after it are not candidates.
	end int
	// varying: the bytes the run stored a varying or unknown value to,
	// a mask a word (by address / 8 * 8).
	varying map[uint64]uint8
}

// concreteVec is a vector register's low 16 bytes.
type concreteVec struct {
	lo, hi uint64
	ok     bool
	varies bool
}

// storedWord is what a run stored in one aligned 8-byte word: the bytes,
// and masks of those it stored, those it knows and those that vary.
type storedWord struct {
	b                  [8]byte
	set, known, varies uint8
}

// concreteState is a run's machine: registers and flags, and what the run
// stored.
type concreteState struct {
	regs [16]cval
	// written: the registers the run has written since the head or the
	// last call (the others hold what the head or the call left: not
	// the next call's arguments).
	written uint16
	vecs    [16]concreteVec
	flags   flagState
	wrote   map[uint64]*storedWord
	mem     *memView
	// varying: what an earlier run of the same ops stored varying values
	// to (nil in that run).
	varying map[uint64]uint8
	run     *concreteRun
}

// read returns size <= 8 bytes at a: what the run stored there, else
// memory.
func (s *concreteState) read(a uint64, size int, addrVaries bool) cval {
	v := cval{ok: true, varies: addrVaries}
	lo, hi := s.wrote[a&^7], s.wrote[(a+uint64(size)-1)&^7]
	if lo == nil && hi == nil {
		m, ok := s.mem.read(a, size)
		if !ok {
			return cval{}
		}
		v.v = m
		for k := 0; k < size; k++ {
			at := a + uint64(k)
			v.varies = v.varies || s.varying[at&^7]&(1<<(at&7)) != 0
		}
		return v
	}
	var m uint64
	fromMem := false
	for k := size - 1; k >= 0; k-- {
		at := a + uint64(k)
		bit := uint8(1) << (at & 7)
		var b byte
		if w := s.wrote[at&^7]; w != nil && w.set&bit != 0 {
			if w.known&bit == 0 {
				return cval{}
			}
			b = w.b[at&7]
			v.varies = v.varies || w.varies&bit != 0
		} else {
			if !fromMem {
				var ok bool
				if m, ok = s.mem.read(a, size); !ok {
					return cval{}
				}
				fromMem = true
			}
			b = byte(m >> (8 * k))
			v.varies = v.varies || s.varying[at&^7]&bit != 0
		}
		v.v = v.v<<8 | uint64(b)
	}
	return v
}

// write stores size bytes of v at a (past 8, or not known: unknown).
func (s *concreteState) write(a uint64, size int, v cval) {
	for k := 0; k < size; k++ {
		at := a + uint64(k)
		w := s.wrote[at&^7]
		if w == nil {
			w = &storedWord{}
			s.wrote[at&^7] = w
		}
		bit := uint8(1) << (at & 7)
		w.set |= bit
		if v.ok && k < 8 {
			w.b[at&7] = byte(v.v >> (8 * k))
			w.known |= bit
		} else {
			w.known &^= bit
		}
		if !v.ok || v.varies || k >= 8 {
			w.varies |= bit
			s.run.varying[at&^7] |= bit
		} else {
			w.varies &^= bit
		}
	}
}

// settle marks the bytes the run leaves with another value than memory
// holds as varying: memory holds what the last iteration left, so an
// iteration that ends with something else there changes it every time
// (the loop's counter, the next object). A slot written and restored
// within the iteration (a spill) does not.
func (s *concreteState) settle() {
	for at, w := range s.wrote {
		m, ok := s.mem.read(at, 8)
		for k := uint64(0); k < 8; k++ {
			bit := uint8(1) << k
			if w.known&bit != 0 && (!ok || byte(m>>(8*k)) != w.b[k]) {
				s.run.varying[at] |= bit
			}
		}
	}
}

// addr evaluates a memory operand's address.
func (s *concreteState) addr(inst *x86dec.Inst, m x86asm.Mem) cval {
	disp, base, index, scale, ok := addrParts(inst, m)
	if !ok {
		return cval{}
	}
	a := cval{v: disp, ok: true}
	for _, r := range [2]x86enc.Reg{base, index} {
		if r == noReg {
			continue
		}
		if !s.regs[r].ok {
			return cval{}
		}
		f := uint64(1)
		if r == index {
			f = scale
		}
		a.v += s.regs[r].v * f
		a.varies = a.varies || s.regs[r].varies
	}
	return a
}

// value evaluates a source operand of size bytes, zero-extended.
func (s *concreteState) value(inst *x86dec.Inst, a x86asm.Arg, size int) cval {
	switch a := a.(type) {
	case x86asm.Imm:
		return cval{v: truncate(uint64(int64(a)), size), ok: true}
	case x86asm.Reg:
		r, rsize, ok := gpr(a)
		if !ok || (a >= x86asm.AH && a <= x86asm.BH) {
			return cval{}
		}
		v := s.regs[r]
		v.v = truncate(v.v, min(size, rsize))
		return v
	case x86asm.Mem:
		ad := s.addr(inst, a)
		if !ad.ok || size < 1 || size > 8 {
			return cval{}
		}
		return s.read(ad.v, size, ad.varies)
	}
	return cval{}
}

// set writes a register of size bytes as the processor does: 32 bits
// zero the upper half, 8 and 16 merge.
func (s *concreteState) set(r x86enc.Reg, size int, v cval) {
	switch size {
	case 8:
		s.regs[r] = v
	case 4:
		v.v = truncate(v.v, 4)
		s.regs[r] = v
	default:
		old := s.regs[r]
		mask := uint64(1)<<(8*size) - 1
		s.regs[r] = cval{v: old.v&^mask | v.v&mask, ok: v.ok && old.ok, varies: v.varies || old.varies}
	}
}

// both combines the knowledge of two operands into a result's.
func both(a, b cval, v uint64) cval {
	return cval{v: v, ok: a.ok && b.ok, varies: a.varies || b.varies}
}

// runConcrete runs ops from the head registers over mem; varies: the head
// registers whose value changes from one iteration to the next. varying:
// an earlier run's (nil in the first).
func runConcrete(ops []op, insts []*x86dec.Inst, head *[16]uint64, varies uint16, mem *memView, varying map[uint64]uint8, alloc func(uint64) bool) *concreteRun {
	return runConcreteSeeing(ops, insts, head, varies, mem, varying, alloc, nil)
}

// runConcreteSeeing is runConcrete, showing see (when not nil) the
// registers before each op; see returns false to stop the run.
func runConcreteSeeing(ops []op, insts []*x86dec.Inst, head *[16]uint64, varies uint16, mem *memView, varying map[uint64]uint8, alloc func(uint64) bool, see func(i int, regs *[16]cval) bool) *concreteRun {
	run := &concreteRun{loads: make([]cval, len(ops)), end: len(ops), varying: map[uint64]uint8{}}
	s := &concreteState{wrote: map[uint64]*storedWord{}, mem: mem, varying: varying, run: run}
	defer s.settle()
	for r := range head {
		s.regs[r] = cval{v: head[r], ok: true, varies: varies&(1<<r) != 0}
	}
	for i := range ops {
		o := &ops[i]
		if see != nil && !see(i, &s.regs) {
			return run
		}
		sp := &s.regs[x86enc.RSP]
		switch o.kind {
		case opInsn:
			if insts[i] == nil {
				run.end = min(run.end, i)
				return run
			}
			w, all := writes(insts[i])
			if all {
				w = 0xffff
			}
			s.written |= w
			s.step(i, insts[i])
		case opGuard:
			// Where the run would leave the recorded path, what it
			// loads after is another path's: no candidate. It goes
			// on along the recorded path all the same, for the
			// stores the iteration makes there (a loop's counter,
			// updated at its end, varies).
			if s.flags.known && o.cond != x86enc.P && o.cond != x86enc.NP && condHolds(o.cond, s.flags) {
				run.end = min(run.end, i)
			}
		case opGuardTarget:
			if r, ok := targetReg(o.inst); ok {
				if s.regs[r].ok && s.regs[r].v != o.target {
					run.end = min(run.end, i)
				}
				s.regs[r] = cval{v: o.target, ok: true, varies: s.regs[r].varies}
			}
		case opPush:
			if sp.ok {
				sp.v -= 8
				s.write(sp.v, 8, cval{v: o.target, ok: true})
			}
		case opPop:
			sp.v += 8
		case opCall:
			s.flags = flagState{}
			// What the call returned, as the recording ran it
			// (calls.go): varying when what it was passed varies
			// (an argument register the trace set with a value that
			// varies; one it does not know is taken not to, which
			// a failing guard corrects: respec.go), or it allocates
			// (a new block every time).
			ret := cval{v: o.ret, ok: o.retKnown, varies: alloc != nil && alloc(o.target)}
			for _, r := range []x86enc.Reg{x86enc.RDI, x86enc.RSI, x86enc.RDX, x86enc.RCX, x86enc.R8, x86enc.R9} {
				if a := s.regs[r]; s.written&(1<<r) != 0 && a.ok && a.varies {
					ret.varies = true
				}
			}
			// What the call leaves in them is no argument of the next.
			s.written &^= callerSaved
			for _, r := range []x86enc.Reg{x86enc.RAX, x86enc.RCX, x86enc.RDX, x86enc.RSI, x86enc.RDI, x86enc.R8, x86enc.R9, x86enc.R10, x86enc.R11} {
				s.regs[r] = cval{}
			}
			s.regs[x86enc.RAX] = ret
		case opIsTraced:
			s.regs[x86enc.RAX] = cval{ok: true}
		case opClose, opLink, opExit:
			run.end = min(run.end, i)
			return run
		}
	}
	return run
}

// step runs one instruction; what it does not model leaves the registers
// it writes unknown, and a store of it an unknown value.
func (s *concreteState) step(i int, inst *x86dec.Inst) {
	args := inst.Args
	var dst x86enc.Reg
	dsize := 0
	if r, ok := args[0].(x86asm.Reg); ok && !(r >= x86asm.AH && r <= x86asm.BH) {
		dst, dsize, _ = gpr(r)
	}
	store := func(a x86asm.Arg, size int, v cval) {
		m, isMem := a.(x86asm.Mem)
		if !isMem {
			return
		}
		ad := s.addr(inst, m)
		if !ad.ok {
			return
		}
		v.varies = v.varies || ad.varies
		s.write(ad.v, max(size, 1), v)
	}
	flags := s.flags
	s.flags = flagState{}
	if inst.Special == x86dec.SpecialNone && x86dec.OpFlags(inst.Op) == x86dec.FlagsNone {
		s.flags = flags
	}
	if inst.Special == x86dec.SpecialNone {
		switch inst.Op {
		case x86asm.MOV:
			if dsize > 0 {
				v := s.value(inst, args[1], dsize)
				if _, isMem := args[1].(x86asm.Mem); isMem {
					s.run.loads[i] = v
				}
				s.set(dst, dsize, v)
				return
			}
			if _, isMem := args[0].(x86asm.Mem); isMem && inst.MemBytes >= 1 && inst.MemBytes <= 8 {
				v := s.value(inst, args[1], inst.MemBytes)
				store(args[0], inst.MemBytes, v)
				return
			}
		case x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD:
			if dsize > 0 {
				srcSize := inst.MemBytes
				if r, ok := args[1].(x86asm.Reg); ok {
					_, srcSize, _ = gpr(r)
				}
				v := s.value(inst, args[1], srcSize)
				if _, isMem := args[1].(x86asm.Mem); isMem {
					s.run.loads[i] = v
				}
				if inst.Op != x86asm.MOVZX {
					v.v = signExtend(v.v, srcSize)
				}
				s.set(dst, dsize, v)
				return
			}
		case x86asm.LEA:
			if m, ok := args[1].(x86asm.Mem); ok && dsize > 0 {
				s.set(dst, dsize, s.addr(inst, m))
				return
			}
		case x86asm.ADD, x86asm.SUB, x86asm.AND, x86asm.OR, x86asm.XOR, x86asm.CMP, x86asm.TEST:
			size := dsize
			if dsize == 0 {
				size = inst.MemBytes
			}
			if size < 1 || size > 8 {
				break
			}
			a := s.value(inst, args[0], size)
			b := s.value(inst, args[1], size)
			if inst.Op == x86asm.XOR && dsize > 0 && args[0] == args[1] {
				a, b = cval{ok: true}, cval{ok: true}
			}
			if a.ok && b.ok {
				s.flags = arith(inst.Op, a.v, b.v, size)
			}
			if inst.Op == x86asm.CMP || inst.Op == x86asm.TEST {
				return
			}
			r := both(a, b, arithResult(inst.Op, a.v, b.v))
			if dsize > 0 {
				s.set(dst, dsize, r)
			} else {
				store(args[0], size, r)
			}
			return
		case x86asm.SHL, x86asm.SHR, x86asm.SAR:
			if n, ok := args[1].(x86asm.Imm); ok && dsize > 0 {
				a := s.regs[dst]
				a.v = shiftResult(inst.Op, a.v, uint64(n), dsize)
				s.set(dst, dsize, a)
				return
			}
		case x86asm.NEG, x86asm.NOT, x86asm.INC, x86asm.DEC:
			if dsize > 0 {
				a := s.regs[dst]
				a.v = unaryResult(inst.Op, a.v)
				s.set(dst, dsize, a)
				return
			}
		case x86asm.IMUL:
			if args[1] != nil && dsize > 0 {
				a := s.value(inst, args[0], dsize)
				b := s.value(inst, args[1], dsize)
				if args[2] != nil {
					a = b
					b = s.value(inst, args[2], dsize)
					b.v = signExtend(b.v, dsize)
				}
				s.set(dst, dsize, both(a, b, a.v*b.v))
				return
			}
		case x86asm.CDQE:
			a := s.regs[x86enc.RAX]
			a.v = signExtend(truncate(a.v, 4), 4)
			s.regs[x86enc.RAX] = a
			return
		case x86asm.PUSH:
			if r, ok := args[0].(x86asm.Reg); ok {
				if n, sz, ok := gpr(r); ok && sz == 8 && s.regs[x86enc.RSP].ok {
					v := s.regs[n]
					s.regs[x86enc.RSP].v -= 8
					s.write(s.regs[x86enc.RSP].v, 8, v)
					return
				}
			}
		case x86asm.POP:
			if r, ok := args[0].(x86asm.Reg); ok {
				if n, sz, ok := gpr(r); ok && sz == 8 && n != x86enc.RSP && s.regs[x86enc.RSP].ok {
					v := s.read(s.regs[x86enc.RSP].v, 8, s.regs[x86enc.RSP].varies)
					s.regs[x86enc.RSP].v += 8
					s.regs[n] = v
					return
				}
			}
		}
	}
	if s.vector(inst, store) {
		return
	}
	// Not modelled: what it may write becomes unknown.
	if x, ok := args[0].(x86asm.Reg); ok && x >= x86asm.X0 && x <= x86asm.X15 {
		s.vecs[x-x86asm.X0] = concreteVec{}
	}
	if storesMemory(inst) {
		if m, ok := memArg(inst).(x86asm.Mem); ok {
			store(m, inst.MemBytes, cval{})
		}
	}
	w, all := writes(inst)
	for r := 0; r < 16; r++ {
		if all || w&(1<<r) != 0 {
			s.regs[r] = cval{}
		}
	}
}

// vector runs the 16- and 8-byte moves through vector registers that
// interpreters copy their values with (a Lua TValue: value and tag).
func (s *concreteState) vector(inst *x86dec.Inst, store func(x86asm.Arg, int, cval)) bool {
	if inst.Special != x86dec.SpecialNone {
		return false
	}
	xmm := func(a x86asm.Arg) (*concreteVec, bool) {
		if r, ok := a.(x86asm.Reg); ok && r >= x86asm.X0 && r <= x86asm.X15 {
			return &s.vecs[r-x86asm.X0], true
		}
		return nil, false
	}
	switch inst.Op {
	case x86asm.MOVDQU, x86asm.MOVDQA, x86asm.MOVUPS, x86asm.MOVAPS, x86asm.MOVUPD, x86asm.MOVAPD:
		if inst.Args[2] != nil {
			return false
		}
		if d, ok := xmm(inst.Args[0]); ok {
			if sv, ok := xmm(inst.Args[1]); ok {
				*d = *sv
				return true
			}
			if m, ok := inst.Args[1].(x86asm.Mem); ok {
				ad := s.addr(inst, m)
				lo := s.read(ad.v, 8, ad.varies)
				hi := s.read(ad.v+8, 8, ad.varies)
				*d = concreteVec{lo.v, hi.v, ad.ok && lo.ok && hi.ok, lo.varies || hi.varies}
				return true
			}
			return false
		}
		if sv, ok := xmm(inst.Args[1]); ok {
			if m, ok := inst.Args[0].(x86asm.Mem); ok {
				if ad := s.addr(inst, m); ad.ok {
					s.write(ad.v, 8, cval{sv.lo, sv.ok, sv.varies || ad.varies})
					s.write(ad.v+8, 8, cval{sv.hi, sv.ok, sv.varies || ad.varies})
				}
				return true
			}
		}
	case x86asm.MOVQ:
		if d, ok := xmm(inst.Args[0]); ok {
			v := s.value(inst, inst.Args[1], 8)
			if sv, ok := xmm(inst.Args[1]); ok {
				v = cval{sv.lo, sv.ok, sv.varies}
			}
			*d = concreteVec{v.v, 0, v.ok, v.varies}
			return true
		}
		if sv, ok := xmm(inst.Args[1]); ok {
			if r, ok := inst.Args[0].(x86asm.Reg); ok {
				if n, sz, ok := gpr(r); ok && sz == 8 {
					s.regs[n] = cval{sv.lo, sv.ok, sv.varies}
					return true
				}
				return false
			}
			store(inst.Args[0], 8, cval{sv.lo, sv.ok, sv.varies})
			return true
		}
	}
	return false
}

// stableLoads returns, by op, the values of the plain loads of a closed
// root trace that do not vary from one iteration to the next, on the
// recorded path as a concrete run from its head registers follows it.
// head and close are the root's register files at its head and close;
// alloc reports the native functions that allocate.
func stableLoads(ops []op, insts []*x86dec.Inst, head, close *[16]uint64, mem *memView, alloc func(uint64) bool) map[int]uint64 {
	var varies uint16
	for r := range head {
		if head[r] != close[r] {
			varies |= 1 << r
		}
	}
	// Each run finds what the iteration stores varying values to; the
	// next takes loads from there as varying too, even before the store
	// that makes them so, until no more are found.
	run := runConcrete(ops, insts, head, varies, mem, nil, alloc)
	for try := 0; try < 4; try++ {
		next := runConcrete(ops, insts, head, varies, mem, run.varying, alloc)
		grew := varyingBytes(next.varying) > varyingBytes(run.varying)
		run = next
		if !grew {
			break
		}
	}
	out := map[int]uint64{}
	for i := 0; i < run.end; i++ {
		if l := run.loads[i]; l.ok && !l.varies {
			out[i] = l.v
		}
	}
	return out
}

// varyingBytes counts the bytes of a run's varying set.
func varyingBytes(v map[uint64]uint8) int {
	n := 0
	for _, m := range v {
		n += bits.OnesCount8(m)
	}
	return n
}

// callsAllocator reports whether ops call an allocator or a free function
// natively. The optimiser takes such a call to change nothing it knows
// of memory, which holds only while it knows no allocator's own data (a
// free list's head): what a speculation on a value the concrete run found
// may give it the address of (a pool a size class's allocations come
// from). Such a trace makes none.
func (m *Machine) callsAllocator(ops []op) bool {
	for i := range ops {
		if ops[i].kind == opCall {
			if alloc, free := m.allocation(ops[i].target); alloc || free {
				return true
			}
		}
	}
	return false
}
