package tracevm

/*
#include "tv.h"
*/
import "C"

import (
	"fmt"
	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/redmagic-patch/redmagic-patch/tracevm/insn"
	"golang.org/x/arch/x86/x86asm"
)

// exitTable views the C exit table.
func exitTable() []C.struct_tv_exit {
	if C.tv_g.exits == nil {
		return nil
	}
	return unsafe.Slice(C.tv_g.exits, int(C.tv_g.nexits))
}

// rearmExit has exit id taken again as many times as before its side
// trace is recorded again.
func rearmExit(id uint32) {
	if ex := exitTable(); int(id) < len(ex) {
		ex[id].count = 0
	}
}

// linkExit makes exit id enter the trace at head, as a side trace of its
// own is linked (the caller holds m.mu).
func (m *Machine) linkExit(id uint32, head uint64) error {
	ex := exitTable()
	if int(id) >= len(ex) {
		return nil
	}
	g := uint64(ex[id].guard)
	if err := m.cache.Patch32(g, uint32(int32(int64(head-(g+4))))); err != nil {
		return err
	}
	ex[id].state = C.TV_EXIT_LINKED
	return nil
}

// killExit gives up on side traces from exit id: its stub then jumps
// straight to the original code, without switching out (its count stops).
func (m *Machine) killExit(id uint32) {
	ex := exitTable()
	if int(id) >= len(ex) {
		return
	}
	ex[id].state = C.TV_EXIT_DEAD
	g, orig := int64(ex[id].guard), int64(ex[id].orig)
	if rel := orig - (g + 4); g != 0 && rel == int64(int32(rel)) {
		// The stub has set every register the trace left virtual and
		// the flags are the guard's: what the switch would restore.
		m.cache.Patch32(uint64(g), uint32(int32(rel)))
	}
}

// codeMap ties generated code to the original instruction it stands for,
// for REDMAGIC_LOG.
type codeMap struct {
	off  int
	addr uint64
	what string
}

// generate emits the trace of ops at base. exitBase is the id of its first
// exit; it returns the code, the offsets of the rel32 fields that lead to
// each exit, and the exits' original addresses.
//
// e is reset to base and holds the code and the other results afterwards:
// callers reuse emitters, since on a cold heap every fresh buffer costs
// page faults.
//
// tick, if not 0, is the loop's period counter: every periodTicks-th
// iteration leaves through the original dispatch, before it is counted,
// so that the runtime sees a loop that never leaves its traces (and its
// governor can judge it). periodic lists those exits by index, and the
// exits of links into other loops' traces (taken once those are
// dropped); they never get side traces.
//
// peeled, if not nil, is the plan of the loop's second copy (peel.go):
// p's close then jumps to it, and it closes on itself.
//
// link, if not nil, lets a side trace that closes its root's loop enter the
// root's peeled copy directly (bodyLink).
func (m *Machine) generate(e *emitter, ops []op, base uint64, exitBase uint32, iterCtrs []uint64, tick uint64, p, peeled *plan, link *bodyLink, start uint64, lg *loopGuard, initStack []uint64) (code []byte, patch []int, origs []uint64, cm []codeMap, stacks [][]uint64, periodic []int, err error) {
	e.reset(base)
	e.peelExit, e.body2, e.carried, e.risky = -1, -1, nil, e.risky[:0]
	logging := m.cfg.Log != nil
	head := e.newLabel()
	e.bind(head)
	var lits []pendingLit
	lit := func(v uint64) label {
		l := e.newLabel()
		lits = append(lits, pendingLit{l, v})
		return l
	}
	// The exits' labels and the virtual registers each must set live in
	// the emitter's scratch (one slab for all sets), reused from trace to
	// trace.
	exitLabels := e.exitLabels[:0]
	exitSlab := e.exitSlab[:0]
	exitSpans := e.exitSpans[:0]
	defer func() { e.exitLabels, e.exitSlab, e.exitSpans = exitLabels, exitSlab, exitSpans }()
	// What each exit knows: the registers known before the op it leaves
	// from (exitState; -1 at the head guards, where nothing is checked
	// yet) that rest on the head guards and on speculations checked
	// before that op, not on one whose guard comes later.
	exitKnown, exitKnownSpans := e.exitKnown[:0], e.exitKnownSpans[:0]
	defer func() { e.exitKnown, e.exitKnownSpans = exitKnown, exitKnownSpans }()
	exitStack, exitStackSpans := e.exitStack[:0], e.exitStackSpans[:0]
	defer func() { e.exitStack, e.exitStackSpans = exitStack, exitStackSpans }()
	exitState := -1
	// cur: the plan of the copy being emitted, whose known registers the
	// exits take.
	cur := p
	// So do its results (callers copy what they keep).
	patch, periodic, origs, stacks = e.patch[:0], e.periodic[:0], e.origs[:0], e.stacks[:0]
	defer func() { e.patch, e.periodic, e.origs, e.stacks = patch, periodic, origs, stacks }()
	// virtual: registers whose writer the optimiser dropped, with the
	// value the original code would have put there.
	var virtual []regValue
	// stk: the return addresses inlined calls have pushed (a side trace
	// starts with its parent's), so that a side trace recorded from an
	// exit knows which returns it may follow.
	stk := initStack
	newExit := func(orig uint64) label {
		l := e.newLabel()
		exitLabels = append(exitLabels, l)
		origs = append(origs, orig)
		lo := len(exitSlab)
		exitSlab = append(exitSlab, virtual...)
		exitSpans = append(exitSpans, [2]int32{int32(lo), int32(len(exitSlab))})
		stacks = append(stacks, stk)
		lo = len(exitKnown)
		if cur != nil && exitState >= 0 && exitState < cur.known.len() {
			st := cur.known.at(exitState)
			for r := range st {
				if st[r].known && cur.certainAt(st[r].deps, exitState) {
					exitKnown = append(exitKnown, regValue{x86enc.Reg(r), st[r].v})
				}
			}
		}
		exitKnownSpans = append(exitKnownSpans, [2]int32{int32(lo), int32(len(exitKnown))})
		lo = len(exitStack)
		if cur != nil && exitState >= 0 {
			exitStack = cur.exitStackValues(exitStack, exitState)
		}
		exitStackSpans = append(exitStackSpans, [2]int32{int32(lo), int32(len(exitStack))})
		return l
	}
	// periodicExit leaves the loop of period counter tick every
	// periodTicks iterations (see tick; 0: never).
	periodicExit := func(o *op, tick uint64) {
		if tick != 0 {
			periodic = append(periodic, len(exitLabels))
			patch = append(patch, e.periodicExit(tick, newExit(o.addr)))
		}
	}
	materialize := func(mask uint16) {
		kept := virtual[:0]
		for _, rv := range virtual {
			if mask&(1<<rv.r) != 0 {
				e.setConst(rv.r, rv.v)
			} else {
				kept = append(kept, rv)
			}
		}
		virtual = kept
	}
	setVirtual := func(r x86enc.Reg, v uint64) {
		for k := range virtual {
			if virtual[k].r == r {
				virtual[k].v = v
				return
			}
		}
		virtual = append(virtual, regValue{r, v})
	}
	clearVirtual := func(mask uint16) {
		kept := virtual[:0]
		for _, rv := range virtual {
			if mask&(1<<rv.r) == 0 {
				kept = append(kept, rv)
			}
		}
		virtual = kept
	}
	// postGuard precedes op k: a guard on the register a 64-bit load the
	// optimiser speculated on set, at or after the load.
	// guardReg leaves for resume unless register r holds v (an
	// immediate when v fits one, else a literal); the flags must be dead.
	guardReg := func(r x86enc.Reg, v, resume uint64) {
		cmpRegValue(e, r, v, lit)
		e.alignRel32(2)
		patch = append(patch, e.jcc(x86enc.NE, newExit(resume)))
	}
	postGuard := func(k int) {
		if g, ok := cur.postAt(k); ok {
			guardReg(g.reg, g.v, g.resume)
			if g.load != 0 {
				e.risky = append(e.risky, riskyExit{exit: len(exitLabels) - 1, load: g.load})
			}
		}
	}
	switch {
	case lg == nil:
	case lg.keying != KeyByID:
		// The header the id and aux registers lead to, computed in aux
		// (saved below the red zone: the handler entry is mid-function),
		// must be the trace's; its first ops then set both registers to
		// those of the back jump it was recorded from. The flags are
		// dead at a handler entry (an indirect jump's target).
		e.leaRSP(-128)
		e.pushReg(lg.aux)
		switch lg.keying {
		case KeyLuaSJ:
			e.shr32(lg.aux, 7)
			e.leaScaled(lg.aux, lg.id.r, lg.aux, 4, -4*luaSJExcess)
		case KeyOparg:
			e.zext32(lg.aux)
			e.neg64(lg.aux)
			e.leaScaled(lg.aux, lg.id.r, lg.aux, 2, 2)
		}
		e.cmpRegRIP(lg.aux, lit(lg.header))
		e.popReg(lg.aux)
		e.leaRSP(128)
		e.alignRel32(2)
		patch = append(patch, e.jcc(x86enc.NE, newExit(start)))
	default:
		// A back-edge trace is keyed by its loop id, which a jump from
		// another trace has not checked: the head does. The flags are
		// dead at a handler entry (an indirect jump's target).
		guardReg(lg.id.r, lg.id.v, start)
	}
	e.headExits[0] = len(exitLabels)
	if p != nil {
		// Head guards: the registers the trace is specialised on. The
		// head follows an annotation call or a dispatch jump: the flags
		// are dead.
		for _, r := range p.headRegs {
			guardReg(r, p.headVals[r], start)
		}
	}
	e.headExits[1] = len(exitLabels)
	// The loop closes past the head guards: they are checked once per
	// entry, and at the close only those the trace does not re-establish
	// itself (closeRechecks).
	body := head
	var recheck []regValue
	if p != nil {
		if re, ok := closeRechecks(ops, p, lg.atClose()); ok {
			recheck = re
			body = e.newLabel()
			e.bind(body)
		}
	}
	var recheck2, enterRegs, carried2 []regValue
	if peeled != nil {
		re, ok := closeRechecks(ops, peeled, lg.atClose())
		if !ok || body == head {
			peeled = nil
		} else {
			recheck2 = re
			enterRegs = peelEntryRegs(ops, p, peeled)
			var check []regValue
			carried2, check = carriedRegs(ops, peeled, p)
			enterRegs = addRegValues(enterRegs, check)
		}
	}
	// emitOps emits one copy of the ops under plan p; its close checks
	// recheck and jumps to closeTo. With enter, the close goes on to
	// closeTo only when the registers and loads of enter hold what the
	// peeled copy assumes, else to stay. carried: registers the copy
	// starts with virtual (carriedRegs), which its close leaves so when
	// they still hold those values.
	emitOps := func(p *plan, recheck []regValue, closeTo, stay label, enter *plan, carried []regValue) error {
		// wrote: the registers the last op's code may have written
		// (all, unless its path says less): what the emitter forgets
		// of their values (setConst) before the next.
		wrote := uint16(allRegs)
		// copyTo: the spare the last op's double goes to (xmmfwd.go),
		// copied before the next op's code; -1: none.
		copyTo, copyFrom := -1, uint8(0)
		for i := range ops {
			if copyTo >= 0 {
				e.bytes(movqXX(uint8(copyTo), copyFrom)...)
				copyTo = -1
			}
			e.physWrote(wrote)
			wrote = allRegs
			o := &ops[i]
			exitState = i
			postGuard(i)
			if logging {
				cm = append(cm, codeMap{off: len(e.buf), addr: o.addr, what: opNames[o.kind]})
			}
			if v, ok := p.specAt(i); ok && o.kind == opInsn {
				// Guard the loaded value: a plain load or compare is then
				// done (below); any other instruction runs, or is dropped,
				// like any other.
				inst := p.inst(i)
				g, err := valueGuard(o.code, int32(v), inst.MemBytes)
				if err != nil {
					return err
				}
				rip := false
				st := p.known.at(i)
				a, known := memAddrAt(inst, &st)
				_, wasRIP := inst.MemRIPTarget()
				if known {
					if rg, ok := ripForm(g, a, e.pc()); ok {
						g, rip = rg, true
					}
				}
				if wasRIP && !rip {
					// Its displacement was for the original address.
					return fmt.Errorf("tracevm: value guard at %#x: %%rip operand out of reach", o.addr)
				}
				if !rip {
					materialize(regBits(memArg(inst)))
				}
				e.bytes(g...)
				e.alignRel32(2)
				patch = append(patch, e.jcc(x86enc.NE, newExit(o.addr)))
				if slices.Contains(p.risky, i) {
					e.risky = append(e.risky, riskyExit{exit: len(exitLabels) - 1, load: o.addr})
				}
			}
			if p != nil && p.drop[i] {
				if o.kind == opInsn {
					w, _ := writes(p.inst(i))
					for r := x86enc.Reg(0); r < 16; r++ {
						if w&(1<<r) != 0 {
							setVirtual(r, p.known.get(i+1, int(r)).v)
						}
					}
				}
				wrote = 0 // a value guard at most
				continue
			}
			if k, ok := p.forwardFrom(i); ok {
				// The double is in spare k: checked against memory off
				// the dependency chain, then taken from there.
				inst := p.inst(i)
				rd, _ := reads(inst)
				materialize(rd)
				st := p.known.at(i)
				addr, known := memAddrAt(inst, &st)
				if check, use, ok := forwardedCode(o.code, inst, addr, known, k, p.forwards.temp, e.pc()); ok {
					e.bytes(check...)
					e.bytes(pxorXX(p.forwards.temp, k)...)
					e.bytes(ptestXX(p.forwards.temp, p.forwards.temp)...)
					e.alignRel32(2)
					patch = append(patch, e.jcc(x86enc.NE, newExit(o.addr)))
					e.bytes(use...)
					wrote = 0
					continue
				}
			}
			if k, ok := p.forwardTo(i); ok {
				copyTo, copyFrom = int(k), copySource(p.inst(i))
			}
			if pr, ok := p.pairAt(i); ok {
				// A vector copy through two general registers: the
				// generator sets them again where they are read and at
				// the exits (vecpair.go).
				materialize(pr.reads)
				e.bytes(pr.code...)
				if !pr.store {
					if pr.keep {
						vec := o.code
						if rw, ok := p.rewrite[i]; ok && rw.code != nil {
							vec = rw.code
						}
						// Its own address's registers: the general loads
						// may have taken a known index as a displacement.
						rd, _ := reads(p.inst(i))
						materialize(rd)
						e.bytes(vec...)
					}
					setVirtual(pr.a, pr.va)
					setVirtual(pr.b, pr.vb)
				}
				continue
			}
			code, reencoded := o.code, false
			if p != nil && o.kind == opInsn {
				inst := p.inst(i)
				if rw, ok := p.rewrite[i]; ok {
					if rw.code == nil {
						continue
					}
					inst, code, reencoded = rw.inst, rw.code, true
				}
				if p.replaced[i] {
					// The guard did the load: its register gets the value
					// now if something reads it, else at the exits.
					w, _ := writes(inst)
					for r := x86enc.Reg(0); r < 16; r++ {
						if w&(1<<r) == 0 {
							continue
						}
						if p.liveAfter[i]&(1<<r) != 0 {
							clearVirtual(1 << r)
							e.movImm(r, p.known.get(i+1, int(r)).v)
						} else {
							setVirtual(r, p.known.get(i+1, int(r)).v)
						}
					}
					continue
				}
				rd, _ := reads(inst)
				st := p.known.at(i)
				if a, ok := memKnownIn(inst, &st); ok {
					// Set the registers the instruction still reads as
					// operands (not for the address) first: the %rip
					// displacement depends on where it lands.
					var opRegs uint16
					for k, arg := range inst.Args {
						if arg == nil {
							break
						}
						if _, isMem := arg.(x86asm.Mem); !isMem && (k > 0 || !destOnly.has(inst.Op)) {
							opRegs |= regBits(arg)
						}
					}
					if _, imp := implicitRegs.get(inst.Op); imp {
						opRegs = rd
					}
					if _, wall := writes(inst); wall || rd == allRegs {
						// Not modelled (a vector instruction): it may read
						// or clobber any register, so every virtual one is
						// set first.
						opRegs = allRegs
					}
					mark := len(e.buf)
					saved := append([]regValue(nil), virtual...)
					phys, physKnown := e.phys, e.physKnown
					materialize(opRegs)
					if b, ok := ripForm(code, a, e.pc()); ok {
						w, _ := writes(inst)
						clearVirtual(w)
						e.bytes(b...)
						wrote = writeMask(inst)
						continue
					}
					e.buf, virtual = e.buf[:mark], saved
					e.phys, e.physKnown = phys, physKnown
				}
				materialize(rd)
				w, _ := writes(inst)
				clearVirtual(w)
			}
			switch o.kind {
			case opClose:
				materialize(allRegs &^ stillCarried(carried, virtual))
			case opCall, opLink:
				materialize(allRegs)
			case opGuardTarget:
				materialize(regBits(o.inst.Args[0]))
			case opPush, opPop:
				materialize(1 << x86enc.RSP)
			case opIsTraced:
				clearVirtual(1)
			}
			switch o.kind {
			case opInsn:
				if reencoded {
					e.bytes(code...) // no %rip operand (constForm)
					wrote = writeMask(p.rewrite[i].inst)
					break
				}
				if err := m.emitInsn(e, o); err != nil {
					return err
				}
				if p != nil {
					if inst := p.inst(i); inst != nil {
						if _, rip := inst.MemRIPTarget(); !rip {
							wrote = writeMask(inst) // not relocated
						}
					}
				}
			case opGuard:
				e.alignRel32(2)
				at := e.jcc(o.cond, newExit(o.exit))
				patch = append(patch, at)
				wrote = 0
			case opGuardTarget:
				if r, ok := targetReg(o.inst); ok && flagsDeadAfter(ops, i) {
					// The flags are dead where the trace goes on; an
					// indirect jump's other targets are entered with dead
					// flags too (compilers keep no flags live across
					// indirect branches), so a plain compare will do.
					cmpRegValue(e, r, o.target, lit)
					e.alignRel32(2)
					patch = append(patch, e.jcc(x86enc.NE, newExit(o.exit)))
					break
				}
				if g, ok := memTargetGuard(o, e.pc()); ok && flagsDeadAfter(ops, i) {
					// The same for a target read from memory (a type slot,
					// a GOT entry): cmpq $target, M.
					e.bytes(g...)
					e.alignRel32(2)
					patch = append(patch, e.jcc(x86enc.NE, newExit(o.exit)))
					break
				}
				if err := m.guardTarget(e, o, newExit(o.exit), lit, &patch); err != nil {
					return err
				}
			case opPush:
				stk = append(stk[:len(stk):len(stk)], o.target)
				if o.target < 1<<31 {
					e.pushImm32(int32(o.target))
				} else {
					e.pushRIP(lit(o.target))
				}
			case opPop:
				if len(stk) > 0 {
					stk = stk[: len(stk)-1 : len(stk)-1]
				}
				e.leaRSP(8)
			case opCall:
				e.callRIP(lit(o.target))
				wrote = allRegs &^ calleeSaved
			case opIsTraced:
				e.movEAX0()
			case opCount:
				// At a back-edge, as a close: the flags are dead.
				if o.target == 0 {
					return fmt.Errorf("tracevm: no counter for the back-edge unrolled at %#x", o.addr)
				}
				e.incRIPAbs(o.target)
			case opClose:
				// Closing replaces an annotation call: the flags are dead.
				for _, rv := range recheck {
					guardReg(rv.r, rv.v, o.addr)
				}
				periodicExit(o, tick)
				for _, c := range iterCtrs {
					e.incRIPAbs(c)
				}
				if enter == nil {
					e.jmpLabel(closeTo)
					break
				}
				// Entered with other values peelMissLimit times in a
				// row, the loop stays in the first copy without
				// checking.
				streak := enter.misses + 8
				if enter.misses != 0 {
					e.cmpAbsImm(streak, 1, peelMissLimit)
					e.jcc(x86enc.AE, stay)
				}
				miss := e.newLabel()
				for _, rv := range enterRegs {
					cmpRegValue(e, rv.r, rv.v, lit)
					e.jcc(x86enc.NE, miss)
				}
				checkLoads(e, enter.invariants, miss, lit)
				if enter.misses != 0 {
					e.movbRIPAbs(streak, 0)
				}
				if enter.forwards != nil {
					e.loadCarried(enter.forwards.carried)
				}
				e.jmpLabel(closeTo)
				e.bind(miss)
				if enter.misses != 0 {
					e.incRIPAbs(enter.misses)
					e.incbRIPAbs(streak)
				}
				e.jmpLabel(stay)
			case opLink:
				switch {
				case o.count && o.other != nil:
					// Another loop's back-edge: its iteration, its
					// period; the original code once its trace is
					// dropped (a program thread took 60% of its time
					// in a tree the governor had dropped, entered
					// through another loop's link).
					periodic = append(periodic, len(exitLabels))
					patch = append(patch, e.exitIfSet(o.other.gone, newExit(o.addr)))
					periodicExit(o, o.other.tick)
					e.incRIPAbs(o.other.iterCtr)
				case o.count:
					periodicExit(o, tick)
					for _, c := range iterCtrs {
						e.incRIPAbs(c)
					}
				}
				if link != nil && o.target == link.head && cur != nil {
					link.enter(e, cur.known.at(i), lit)
				}
				e.jmpAbs(o.target)
			case opExit:
				e.alignRel32(1)
				patch = append(patch, len(e.buf)+1)
				e.jmpLabel(newExit(o.exit))
			}
		}
		return nil
	}
	if peeled == nil {
		var carried []regValue
		if body != head {
			// The close jumps past the head guards, which read the
			// registers themselves.
			carried, _ = carriedRegs(ops, p, nil)
			virtual = append(virtual, carried...)
		}
		if err := emitOps(p, recheck, body, body, nil, carried); err != nil {
			return nil, nil, nil, nil, nil, nil, err
		}
	} else {
		body2 := e.newLabel()
		if err := emitOps(p, recheck, body2, body, peeled, nil); err != nil {
			return nil, nil, nil, nil, nil, nil, err
		}
		cur, virtual, stk = peeled, append([]regValue(nil), carried2...), initStack
		e.carried = carried2
		e.peelExit, e.body2 = len(exitLabels), len(e.buf)
		e.bind(body2)
		if logging {
			cm = append(cm, codeMap{off: len(e.buf), addr: start, what: "peeled"})
		}
		if err := emitOps(peeled, recheck2, body2, body2, nil, carried2); err != nil {
			return nil, nil, nil, nil, nil, nil, err
		}
	}
	for i, l := range exitLabels {
		e.bind(l)
		set := exitSlab[exitSpans[i][0]:exitSpans[i][1]]
		if len(set) == 0 {
			emitEvent(e, int32(C.TV_EXIT_BASE+exitBase+uint32(i)), m.switchOut)
			continue
		}
		// Registers the trace left virtual get their original values;
		// a side trace is then linked at the stub's jump, after them.
		for _, rv := range set {
			e.setConst(rv.r, rv.v)
		}
		e.fsStoreImm(tlsExit, int32(C.TV_EXIT_BASE+exitBase+uint32(i)))
		e.alignRel32(1)
		patch[i] = len(e.buf) + 1
		e.jmpAbs(m.switchOut)
	}
	flushLits(e, lits)
	code, err = e.finish()
	return code, patch, origs, cm, stacks, periodic, err
}

// carriedRegs returns the registers a copy of ops under plan p, which
// loops to itself, knows with one value where it closes, certain there,
// and holds with that value wherever it starts: p knows it there, or the
// close of entry (the plan whose close enters the copy; nil: none) knows
// it with the same value, or, when entry is not nil, checks it (check:
// those, for the close of entry to compare before it enters the copy).
// The copy starts with them virtual (the generator sets them where they
// are read and in every exit stub) and its close need not set them again
// for the next iteration. A loop keeps its interpreter's dispatch state
// there (Lua's base and constants, the registers its back jump leaves),
// each set at every close. Those the copy reads before it writes them
// (readFirst) are left out: they stay in place as before.
func carriedRegs(ops []op, p, entry *plan) (carried, check []regValue) {
	c := len(ops) - 1
	if p == nil || c < 0 || ops[c].kind != opClose || p.known.len() <= c {
		return nil, nil
	}
	first, last := p.known.at(0), p.known.at(c)
	stays := readFirst(ops, p)
	var enter [16]val
	if entry != nil && entry.known.len() > c {
		enter = entry.known.at(c)
	}
	for r := x86enc.Reg(0); r < 16; r++ {
		b := last[r]
		if r == x86enc.RSP || !b.known || !p.certainAt(b.deps, c) {
			continue
		}
		rv := regValue{r, b.v}
		a, e := first[r], enter[r]
		switch {
		case stays&(1<<r) != 0:
			continue
		case a.known && a.v == b.v && p.certainAt(a.deps, 0):
		case entry != nil && e.known && e.v == b.v && entry.certainAt(e.deps, c):
		case entry != nil && !e.known:
			check = append(check, rv)
		default:
			continue
		}
		carried = append(carried, rv)
	}
	return carried, check
}

// readFirst returns the registers a copy of ops under plan p reads before
// it writes them, as generate emits it (an op the copy drops writes its
// registers virtually; a call, a link or the close reads them all).
// Those the copy carries stay in place from one iteration to the next: a
// copy that started with them virtual would set them at its first read in
// every iteration instead of once.
func readFirst(ops []op, p *plan) uint16 {
	var read, written uint16
	note := func(r, w uint16) {
		read |= r &^ written
		written |= w
	}
	for k := range ops {
		if read|written == allRegs {
			break // every register decided, most often within a few ops
		}
		if g, ok := p.postAt(k); ok {
			note(1<<g.reg, 0)
		}
		o := &ops[k]
		switch o.kind {
		case opInsn:
		case opGuardTarget:
			if !p.drop[k] {
				note(regBits(o.inst.Args[0]), 0)
			}
			continue
		case opPush, opPop:
			note(1<<x86enc.RSP, 1<<x86enc.RSP)
			continue
		case opIsTraced:
			note(0, 1)
			continue
		case opCount:
			continue
		case opGuard, opExit:
			continue
		default:
			note(allRegs, 0)
			return read
		}
		inst := p.inst(k)
		if pr, ok := p.pairs[k]; ok {
			note(pr.reads, 0)
			continue
		}
		if rw, ok := p.rewrite[k]; ok {
			if rw.code == nil {
				continue
			}
			inst = rw.inst
		}
		r, _ := reads(inst)
		if p.drop[k] || p.replaced[k] {
			r = 0
		}
		note(r, writeMask(inst))
	}
	return read
}

// addRegValues appends to regs those of more whose register it lacks.
func addRegValues(regs, more []regValue) []regValue {
	for _, rv := range more {
		if !slices.ContainsFunc(regs, func(h regValue) bool { return h.r == rv.r }) {
			regs = append(regs, rv)
		}
	}
	return regs
}

// stillCarried returns the registers of carried that are virtual with
// their carried values in virtual.
func stillCarried(carried, virtual []regValue) uint16 {
	var m uint16
	for _, c := range carried {
		for _, v := range virtual {
			if v.r == c.r && v.v == c.v {
				m |= 1 << c.r
			}
		}
	}
	return m
}

// bodyLink is how a side trace enters its root's peeled copy (peel.go)
// where it closes the loop, instead of the root's head: when the side
// trace starts where the copy's assumptions about memory hold (an exit of
// the copy, or of a side trace that keeps them) and keeps them itself.
// The registers the copy rests on must hold their values: those the side
// trace does not know there are checked, and lead to the head if not.
type bodyLink struct {
	head, body2 uint64
	regs        []regValue
	// header: for a loop keyed by header (a Lua OP_JMP), the registers
	// the header is computed from, known at the link, must lead to it.
	header      *BackEdge
	headerValue uint64
	// doubles: what the copy carries in spare vector registers
	// (xmmfwd.go), loaded there before the jump.
	doubles []carriedDouble
}

// enter emits the checks and the jump into the peeled copy, at a link
// whose registers are known as in st.
func (l *bodyLink) enter(e *emitter, st [16]val, lit func(uint64) label) {
	if be := l.header; be != nil {
		id, aux := st[be.IDReg], st[be.AuxReg]
		if !id.known || !aux.known {
			return
		}
		if h, ok := be.loopID(id.v, aux.v); !ok || h != l.headerValue {
			return
		}
	}
	toHead := e.newLabel()
	for _, rv := range l.regs {
		if st[rv.r].known && st[rv.r].v == rv.v {
			continue
		}
		cmpRegValue(e, rv.r, rv.v, lit)
		e.jcc(x86enc.NE, toHead)
	}
	e.loadCarried(l.doubles)
	e.jmpAbs(l.body2)
	e.bind(toHead)
}

// holdsAt reports whether the memory t's root's peeled copy assumes holds
// its values at exit id of t.
func (t *trace) holdsAt(id uint32) bool {
	if t.side {
		return t.keepsPeeled
	}
	return t.body2 != 0 && id >= t.exitBase+uint32(t.peelExit)
}

// keepsPeeled reports whether a side trace of plan p, compiled from ops,
// leaves the memory its root's peeled copy assumes (ps.values) alone: it
// stores only to known addresses, never there (its own side traces start
// anywhere in it), and calls nothing.
func keepsPeeled(ops []op, p *plan, ps *peelState) bool {
	if p == nil || p.epoch != 0 || slices.ContainsFunc(ops, func(o op) bool { return o.kind == opCall }) {
		return false
	}
	for key := range ps.values {
		if storedOver(p.storeVals, key>>4, int(key&15)) {
			return false
		}
	}
	return true
}

// cmpRegValue compares register r with v: cmp $imm32 when v is one
// sign-extended, else cmp with a literal.
func cmpRegValue(e *emitter, r x86enc.Reg, v uint64, lit func(uint64) label) {
	if int64(v) == int64(int32(v)) {
		e.cmpRegImm32(r, int32(v))
	} else {
		e.cmpRegRIP(r, lit(v))
	}
}

// peelEntryRegs: the head registers the peeled copy q rests on that the
// first copy p neither guards nor knows to hold their head values at its
// close: its close checks them before entering q.
func peelEntryRegs(ops []op, p, q *plan) []regValue {
	at := p.known.at(len(ops) - 1)
	var regs []regValue
	for _, r := range q.headRegs {
		if slices.Contains(p.headRegs, r) || (at[r].known && at[r].v == q.headVals[r]) {
			continue
		}
		regs = append(regs, regValue{r, q.headVals[r]})
	}
	return regs
}

// checkLoads jumps to fail unless memory holds each of gs's values,
// checked in order. %rip-relative when a load is within reach and its
// value an immediate; otherwise through %rax, saved below the red zone
// once for the run of checks, which reach their loads from one address
// while they can (a peeled loop's close checked 30 bytecode words and
// frame slots, 8 instructions each, on every entry into its second copy).
// The flags must be dead.
func checkLoads(e *emitter, gs []guardedLoad, fail label, lit func(uint64) label) {
	saved, popFail := false, e.newLabel()
	var base uint64
	haveBase := false
	for _, g := range gs {
		v := int64(signExtend(g.v, g.size))
		imm := v == int64(int32(v))
		if e.reachRIP(g.addr) && imm {
			e.cmpAbsImm(g.addr, g.size, int32(v))
			if saved {
				e.jcc(x86enc.NE, popFail)
			} else {
				e.jcc(x86enc.NE, fail)
			}
			continue
		}
		if !saved {
			e.leaRSP(-128)
			e.pushReg(x86enc.RAX)
			saved = true
		}
		if !imm {
			e.movImm(x86enc.RAX, g.addr)
			e.loadRAXAt(g.size)
			e.cmpRegRIP(x86enc.RAX, lit(g.v))
			haveBase = false
		} else {
			d := int64(g.addr - base)
			if !haveBase || d != int64(int32(d)) {
				e.movImm(x86enc.RAX, g.addr)
				base, d, haveBase = g.addr, 0, true
			}
			e.cmpRAXDispImm(int32(d), g.size, int32(v))
		}
		e.jcc(x86enc.NE, popFail)
	}
	if !saved {
		return
	}
	e.popReg(x86enc.RAX)
	e.leaRSP(128)
	done := e.newLabel()
	e.jmpLabel(done)
	e.bind(popFail)
	e.popReg(x86enc.RAX)
	e.leaRSP(128)
	e.jmpLabel(fail)
	e.bind(done)
}

type regValue struct {
	r x86enc.Reg
	v uint64
}

// loopGuard is how a root back-edge trace makes sure it runs its own
// loop: entries from the runtime and jumps from other traces have not
// checked that. The head does, and the close again unless the trace knows
// the register there.
type loopGuard struct {
	// id: the id register, its value at the head (keyed by id) or at
	// the close (keyed by header: the back jump's own id, which
	// determines its header).
	id regValue
	// keying: other than KeyByID, the loop is keyed by header (a Lua
	// OP_JMP, CPython's backward jumps): the head computes it from id and
	// aux, and compares.
	keying Keying
	aux    x86enc.Reg
	header uint64
}

// atClose is what the close checks, if the trace does not know it.
func (lg *loopGuard) atClose() *regValue {
	if lg == nil {
		return nil
	}
	return &lg.id
}

// canonicalOps: the first ops of a trace keyed by header, which set the
// id and aux registers to the values they had where it was recorded, so
// that entries from any back jump to the header (other values, the same
// meaning: only the jump's target depends on them, and it is checked)
// run the recorded code.
func canonicalOps(at uint64, lg *loopGuard, head *[16]uint64) ([]op, error) {
	var ops []op
	for _, r := range []x86enc.Reg{lg.id.r, lg.aux} {
		e := emitter{}
		e.movImm(r, head[r])
		inst, err := x86dec.Decode(e.buf, at)
		if err != nil {
			return nil, fmt.Errorf("tracevm: canonical mov % x: %w", e.buf, err)
		}
		d := &decoded{inst: inst, code: e.buf[:inst.Len:inst.Len]}
		d.info = insn.Classify(&d.inst)
		ops = append(ops, op{kind: opInsn, addr: at, code: d.code, inst: &d.inst, dec: d})
	}
	return ops, nil
}

// guardTarget emits a flag-free check that the indirect jmp/call o goes to
// o.target: %rcx = target - expected through lea, then jrcxz. The operand
// is loaded exactly as the original instruction reads it.
func (m *Machine) guardTarget(e *emitter, o *op, exit label, lit func(uint64) label, patch *[]int) error {
	e.fsStore(x86enc.RCX, tlsScratch)
	ld, err := insn.LoadTarget(o.inst, o.code, x86enc.RCX, e.pc())
	if err != nil {
		return err
	}
	e.bytes(ld...)
	neg := -int64(o.target)
	if neg == int64(int32(neg)) {
		e.leaRCXDisp(int32(neg))
	} else {
		e.fsStore(x86enc.R11, tlsScratch+8)
		e.loadR11RIP(lit(uint64(neg)))
		e.leaRCXplusR11()
		e.fsLoad(x86enc.R11, tlsScratch+8)
	}
	// jrcxz ok; mov scratch, %rcx (9); jmp exit (5); ok: mov scratch, %rcx
	e.jrcxz8(14)
	e.fsLoad(x86enc.RCX, tlsScratch)
	*patch = append(*patch, len(e.buf)+1)
	e.jmpLabel(exit)
	e.fsLoad(x86enc.RCX, tlsScratch)
	return nil
}

// memTargetGuard encodes `cmpq $target, M` for an indirect jump or call
// through memory operand M, placed at pc: false when the target does not
// fit a sign-extended imm32 or M cannot be re-encoded there.
func memTargetGuard(o *op, pc uint64) ([]byte, bool) {
	if o.inst == nil || int64(o.target) != int64(int32(o.target)) {
		return nil, false
	}
	if _, isMem := o.inst.Args[0].(x86asm.Mem); !isMem {
		return nil, false
	}
	g, err := valueGuard(o.code, int32(o.target), 8)
	if err != nil {
		return nil, false
	}
	if a, wasRIP := o.inst.MemRIPTarget(); wasRIP {
		return ripForm(g, a, pc)
	}
	return g, true
}

// closeRechecks reports whether the loop can close past the head guards
// and which guarded values it must check again at the close: those the
// trace does not re-establish itself (a register it overwrites with what
// it does not know, such as the upper bytes of CPython's opcode register
// at its back-edge handler). Checking only those keeps the guards the
// trace re-establishes (its pc, its frame) out of every iteration.
func closeRechecks(ops []op, p *plan, idGuard *regValue) ([]regValue, bool) {
	i := len(ops) - 1
	if i < 0 || ops[i].kind != opClose || i >= p.known.len() {
		return nil, false
	}
	at := p.known.at(i)
	var re []regValue
	for _, r := range p.headRegs {
		if !at[r].known || at[r].v != p.headVals[r] {
			re = append(re, regValue{r, p.headVals[r]})
		}
	}
	if idGuard != nil && (!at[idGuard.r].known || at[idGuard.r].v != idGuard.v) {
		re = append(re, *idGuard)
	}
	return re, true
}

// targetReg returns the register an indirect jmp/call takes its target
// from, if it is a register.
func targetReg(inst *x86dec.Inst) (x86enc.Reg, bool) {
	if inst == nil {
		return 0, false
	}
	r, ok := inst.Args[0].(x86asm.Reg)
	if !ok || r < x86asm.RAX || r > x86asm.R15 {
		return 0, false
	}
	return x86enc.Reg(r - x86asm.RAX), true
}

var opNames = [...]string{
	opInsn: "insn", opGuard: "guard", opGuardTarget: "guard-target", opPush: "push-ret",
	opPop: "pop-ret", opCall: "call", opIsTraced: "is-traced", opClose: "close",
	opLink: "link", opExit: "exit", opCount: "count",
}

// perExit returns each exit's part of slab (spans: the emitter's), in a
// copy of it the trace keeps; nil when no exit has any.
func perExit[T any](slab []T, spans [][2]int32) [][]T {
	if len(slab) == 0 {
		return nil
	}
	slab = slices.Clone(slab)
	out := make([][]T, len(spans))
	for i, sp := range spans {
		out[i] = slab[sp[0]:sp[1]:sp[1]]
	}
	return out
}

// sideEntryOf returns what side recording r starts from (sideEntry), or
// nil when its parent's exit knew something that the machine state at the
// exit contradicts (then nothing it knows is trusted).
func (m *Machine) sideEntryOf(r *recording) *sideEntry {
	parent := r.side
	var known []regValue
	if i, ok := parent.exitIndex(r.exitID); ok && i < len(parent.exitKnown) {
		known = parent.exitKnown[i]
	}
	for _, rv := range known {
		if r.headRegs[rv.r] != rv.v {
			m.stats.sideEntryMismatch.Add(1)
			return nil
		}
	}
	m.mu.Lock()
	root := parent.rootTrace()
	variant := slices.Clone(root.variant)
	m.mu.Unlock()
	return &sideEntry{known: known, stack: r.entryStack, variant: variant, private: parent.private}
}

// exitIndex returns the index among t's exits of exit id, which ok says
// is past t's first (whether it is past t's last, the caller's table
// says).
func (t *trace) exitIndex(id uint32) (i int, ok bool) {
	return int(id) - int(t.exitBase), id >= t.exitBase
}

// headExit reports whether exit id of t is one of its head guards'.
func (t *trace) headExit(id uint32) bool {
	i, ok := t.exitIndex(id)
	return ok && uint32(i) >= t.headExits[0] && uint32(i) < t.headExits[1]
}

// variantEntry reports whether side recording r is optimised as a
// variant of its root: as a root of its own, specialised on the state it
// was recorded in, with head guards of its own that leave for the loop's
// head. Such a side trace starts at a head guard of its parent (an entry
// state the root was not specialised on: a loop of a function entered
// again at another depth of the stack has its frame elsewhere) and runs
// back to its root's head. As a side trace it would know nothing at its
// entry; where a loop's function is called at several depths (a recursive
// search, an interpreter's run function called for each program), that
// was where nearly all of its iterations ran.
func (m *Machine) variantEntry(r *recording) bool {
	if r.side == nil || len(r.ops) == 0 {
		return false
	}
	last := r.ops[len(r.ops)-1]
	if last.kind != opLink || !last.count || last.other != nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	root := r.side.rootTrace()
	return !r.side.headGuards && r.side.headExit(r.exitID) && last.target == root.head && root.nvariants < maxVariants
}

// install compiles r into the code cache and makes it reachable: a root
// trace through the trace table, a side trace through its parent's guard.
func (m *Machine) install(r *recording) (*trace, error) {
	begun := time.Now()
	var p *plan
	meaningful := uint16(calleeSaved)
	var lg *loopGuard
	ops := r.ops
	// A variant is compiled as a root of its loop: the same loop guard.
	variant := !m.cfg.NoOptimize && m.variantEntry(r)
	if be := m.backEdgeOfSite(r.key.gsite); be != nil {
		meaningful = allRegs16
		switch {
		case be.IDReg < 0 || (r.side != nil && !variant):
		case be.keyedByHeader():
			id := x86enc.Reg(be.IDReg)
			lg = &loopGuard{id: regValue{id, r.closeRegs[id]}, keying: be.Keying, aux: x86enc.Reg(be.AuxReg), header: r.key.id}
			canon, err := canonicalOps(r.start, lg, &r.headRegs)
			if err != nil {
				return nil, err
			}
			ops = append(canon, r.ops...)
		case be.Keying.cond():
			// Keyed by header, entered from its own comparison only.
			id := x86enc.Reg(be.IDReg)
			lg = &loopGuard{id: regValue{id, r.headRegs[id]}}
		default:
			lg = &loopGuard{id: regValue{x86enc.Reg(be.IDReg), r.key.id}}
		}
	}
	if r.side != nil && !r.merge && !variant && !m.cfg.NoOptimize && len(ops) > 0 {
		m.mu.Lock()
		mg := r.side.rootTrace().merging
		m.mu.Unlock()
		mem := r.mem
		if mem == nil {
			mem = newMemView(m.pid)
		}
		shared := func(pt uint32) bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return mg.shared(pt)
		}
		i, pt, ok := mergeCut(ops, &r.headRegs, mem, r.initStack, mg, shared)
		if i >= 0 && !ok {
			// The first to rejoin there runs on unless what it would
			// copy is long (merging.reached).
			m.mu.Lock()
			ok = mg.shared(pt) || len(ops)-i >= mergeLong
			mg.reached[pt] = true
			m.mu.Unlock()
		}
		if i >= 0 && ok {
			// The path rejoins the root's: it ends there (merge.go).
			r.mergeNote = fmt.Sprintf("cut at %#x (op %d of %d), where its path rejoins its root's exit %d", ops[i].addr, i, len(ops), pt)
			ops = cutAt(ops, i)
			r.ops, r.cut, r.mergePoint = ops, true, pt
		}
	}
	var side *sideEntry
	last := opExit
	if len(ops) > 0 {
		last = ops[len(ops)-1].kind
	}
	if r.side != nil && (last == opLink || last == opExit) && !m.cfg.NoOptimize && !variant {
		side = m.sideEntryOf(r)
		// Where its parent's exit knew nothing (a parent compiled as
		// recorded, or one that knew nothing itself: four side traces
		// in five in Lua object-oriented code, and the side traces
		// taken from them), a side trace takes registers at the values
		// it was recorded with, guarded at its head, where its flags
		// are dead: every register holds the program's value there.
		// Not beside what the exit knew: guarding more there made the
		// Lua corpus's stack VM run 3% more instructions. Nor from a
		// head guard of such a side trace: a register that took
		// another value there would make a chain of them, one a value.
		if r.merge {
			// A continuation: entered from every merge exit at its
			// start, it takes nothing from this one, but guards at its
			// head the registers its root knew there (merge.go). Where
			// the recording did not begin with those values, the cut
			// was wrong: an ordinary side trace of this exit.
			mask := m.mergeGuards(r)
			r.merge = side != nil && mask != 0 && flagsDeadAfter(ops, -1)
			if r.merge {
				r.mergeNote = fmt.Sprintf("the continuation at %#x of its root's exit %d, entered from the merge exits there", r.start, r.mergePoint)
				side.known, side.stack = nil, nil
				side.guards, side.atMerge = true, true
				meaningful = mask
			} else {
				r.mergeNote = fmt.Sprintf("not the continuation of its root's exit %d: the recording did not begin in its state", r.mergePoint)
				m.stats.mergeMisses.Add(1)
			}
		}
		if side != nil && !r.merge && len(side.known) == 0 && len(side.stack) == 0 {
			if flagsDeadAfter(ops, -1) && !(r.side.headGuards && r.side.headExit(r.exitID)) {
				side.guards = true
				meaningful = allRegs16
			} else {
				side = nil // nothing to optimise on
			}
		}
	}
	// A side trace that starts where its root's peeled copy holds (an
	// exit of the copy, or of a side trace that keeps it) is optimised
	// knowing the memory the copy assumes, and closes the loop in the
	// copy, when it keeps that memory itself (bodyLink).
	var link *bodyLink
	var inherit *peelState
	if side != nil {
		m.mu.Lock()
		root := r.side.rootTrace()
		if root.body2 != 0 && r.side.holdsAt(r.exitID) && !r.merge {
			link = &bodyLink{head: root.head, body2: root.body2, regs: root.peelRegs, doubles: root.carriedDoubles}
			if root.headerOf != nil {
				link.header, link.headerValue = root.headerOf, root.key.id
			}
			inherit = inheritedPeel(root, !r.side.side)
		}
		m.mu.Unlock()
	}
	retired := false // the loop's trace was retired before (respec.go)
	if (r.side == nil && last == opClose && !m.cfg.NoOptimize) || side != nil || variant {
		if inherit != nil {
			plain := *side // the peeled copy's entry: nothing guarded
			plain.guards = false
			p = m.optimize(ops, r.headRegs, r.closeRegs, meaningful, &plain, inherit, frame.Slots{}, r.mem, nil)
			if p != nil && (!p.ok || !keepsPeeled(ops, p, inherit)) {
				p.release()
				p = nil
			}
		}
		if p == nil {
			link = nil
			var bans map[uint64]bool
			if side == nil {
				bans, retired = m.loopBans(r.key)
			}
			p = m.optimize(ops, r.headRegs, r.closeRegs, meaningful, side, nil, m.siteFrames[r.key.gsite], r.mem, bans)
		}
		if p != nil && !p.ok {
			p.release()
			p = nil
		}
		defer p.release()
	}
	if p == nil {
		link = nil
	}
	var peeled *plan
	notPeeled := ""
	// A loop whose trace was retired is not peeled again: a re-recorded
	// root's second copy once made a CPython loop that raises signals to
	// itself run on without end (testdata/python/signals.py at thresholds
	// 1 and 7). It no longer does without this rule either, and why it
	// did is not known: perhaps a block freed and taken again in one
	// iteration, whose new contents (stores into a fresh block are not
	// counted) a second copy took as what it read there before.
	if p != nil && side == nil && r.side == nil && !m.cfg.NoPeel && !retired {
		peeled, notPeeled = m.peel(ops, r.headRegs, r.closeRegs, meaningful, p)
		defer peeled.release()
	}
	splits, pairs := 0, 0
	if !m.cfg.NoSplit {
		pairs = pairVectorCopies(ops, p) + pairVectorCopies(ops, peeled)
		splits = splitWideLoads(ops, p) + splitWideLoads(ops, peeled)
	}
	forwarded := 0
	if !m.cfg.NoForward {
		forwarded = forwardDoubles(ops, p, false) + forwardDoubles(ops, peeled, true)
	}
	if peeled != nil {
		m.mu.Lock()
		peeled.misses = m.data.alloc16() // 0 when full: not counted
		m.mu.Unlock()
	}
	e := m.emitters.Get().(*emitter)
	defer m.emitters.Put(e)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.off {
		return nil, fmt.Errorf("tracevm: off")
	}
	exitBase := uint32(C.tv_g.nexits)
	t := &trace{key: r.key, index: uint32(len(m.traces)), side: r.side != nil, headGuards: r.side != nil && !variant && p != nil && len(p.headRegs) > 0, insns: r.ninsns, exitBase: exitBase}
	if r.side != nil {
		t.root = r.side.rootTrace()
	}
	switch {
	case r.side == nil || variant:
		// Its own frame's (none known without a plan).
		if p != nil {
			t.private = p.private
		}
	default:
		// It runs in its parent's frame.
		t.private = r.side.private
	}
	// Back-edges taken in a trace count in its own counter and, for the
	// runtime's measure of the loop (the governor), in its root's pair:
	// root iterations, then side-trace iterations.
	var ctrs []uint64
	if r.side == nil {
		t.iterCtr = m.data.alloc16()
		t.tick = m.data.alloc8()
		t.gone = m.data.alloc8()
		ctrs = []uint64{t.iterCtr}
	} else {
		t.iterCtr = m.data.alloc8()
		ctrs = []uint64{t.iterCtr, 0}
		if t.root != nil && t.root.iterCtr != 0 {
			ctrs[1] = t.root.iterCtr + 8
			t.tick = t.root.tick
		}
	}
	// Other loops' back-edges the trace runs unrolled count apart: the
	// governor's measure is per iteration of the trace's own loop.
	if r.unrolled > 0 {
		t.unrolled = r.unrolled
		t.unrollCtr = m.data.alloc8()
		if t.unrollCtr == 0 {
			return nil, fmt.Errorf("tracevm: counter area full")
		}
		for i := range ops {
			if ops[i].kind == opCount {
				ops[i].target = t.unrollCtr
			}
		}
	}
	if slices.Contains(ctrs, 0) || t.tick == 0 || (r.side == nil && t.gone == 0) {
		return nil, fmt.Errorf("tracevm: counter area full")
	}
	// The code is generated where the cache's next allocation will be
	// (one pass); when it does not fit the generation, the cache is
	// flushed and it is generated again at the next generation's start.
	var (
		base            uint64
		code            []byte
		patch, periodic []int
		origs           []uint64
		cm              []codeMap
		stacks          [][]uint64
		err             error
	)
	for try := 0; ; try++ {
		base = m.cache.Next(64)
		code, patch, origs, cm, stacks, periodic, err = m.generate(e, ops, base, exitBase, ctrs, t.tick, p, peeled, link, r.start, lg, r.initStack)
		if err != nil {
			return nil, err
		}
		if m.fits(len(code)) || try > 0 {
			break
		}
		if err := m.flush(); err != nil {
			return nil, err
		}
	}
	if a, err := m.alloc(len(code)); err != nil {
		return nil, err
	} else if a != base {
		return nil, fmt.Errorf("tracevm: trace generated at %#x allocated at %#x", base, a)
	}
	t.head = base
	if p != nil {
		m.stats.sameStores.Add(uint64(p.sameStores))
		if peeled != nil {
			m.stats.sameStores.Add(uint64(peeled.sameStores))
		}
	}
	m.stats.wideSplits.Add(uint64(splits))
	m.stats.vectorPairs.Add(uint64(pairs))
	m.stats.doublesFwd.Add(uint64(forwarded))
	if peeled != nil && e.body2 >= 0 {
		t.hoisted = len(p.guarded) - len(peeled.guarded)
		t.peelMisses = peeled.misses
		t.body2, t.peelExit = base+uint64(e.body2), e.peelExit
		// A side trace starts mid-iteration: it may assume only what
		// the copy never stores to, not what it stores and writes back.
		for _, g := range peeled.invariants {
			if !storedOver(peeled.storeVals, g.addr, g.size) {
				t.invariants = append(t.invariants, g)
			}
		}
		for _, r := range peeled.headRegs {
			t.peelRegs = append(t.peelRegs, regValue{r, peeled.headVals[r]})
		}
		switch {
		case lg == nil:
		case lg.keying != KeyByID:
			t.headerOf = m.backEdgeOfSite(r.key.gsite)
		default:
			t.peelRegs = append(t.peelRegs, lg.id)
		}
		t.peelRegs = addRegValues(t.peelRegs, e.carried)
		if peeled.forwards != nil {
			t.carriedDoubles = peeled.forwards.carried
		}
		m.stats.peeled.Add(1)
	}
	t.keepsPeeled = link != nil
	if link != nil {
		m.stats.sidesIntoPeeled.Add(1)
	}
	nexit := len(origs)
	t.nexits = uint32(nexit)
	if C.tv_grow_exits(C.uint32_t(exitBase+uint32(nexit))) != 0 {
		return nil, fmt.Errorf("tracevm: exit table")
	}
	if err := m.cache.Write(base, code); err != nil {
		return nil, err
	}
	m.markUsed()
	t.size = len(code)
	ex := unsafe.Slice(C.tv_g.exits, int(exitBase)+nexit)
	for i := 0; i < nexit; i++ {
		ex[int(exitBase)+i] = C.struct_tv_exit{
			orig:  C.uint64_t(origs[i]),
			guard: C.uint64_t(base + uint64(patch[i])),
			trace: C.uint32_t(t.index),
		}
	}
	t.headExits = [2]uint32{uint32(e.headExits[0]), uint32(e.headExits[1])}
	// Exits share their stacks: a trace keeps its list, exactly sized.
	t.stacks = slices.Clone(stacks)
	if r.side == nil && len(e.risky) > 0 {
		t.risky = make(map[uint32]uint64, len(e.risky))
		for _, x := range e.risky {
			t.risky[uint32(x.exit)] = x.load
		}
	}
	t.exitKnown = perExit(e.exitKnown, e.exitKnownSpans[:nexit])
	t.exitStack = perExit(e.exitStack, e.exitStackSpans[:nexit])
	if p != nil {
		root := t
		if t.root != nil {
			root = t.root
		}
		for _, st := range p.stores {
			root.variant = addRange(root.variant, st)
		}
		if peeled != nil {
			for _, st := range peeled.stores {
				root.variant = addRange(root.variant, st)
			}
		}
	}
	for i := range t.risky {
		ex[int(exitBase)+int(i)].state = C.TV_EXIT_RISKY
	}
	for _, i := range periodic {
		ex[int(exitBase)+i].state = C.TV_EXIT_DEAD
		t.periodic = append(t.periodic, exitBase+uint32(i))
	}
	C.tv_g.nexits = C.uint32_t(exitBase + uint32(nexit))
	m.traces = append(m.traces, t)
	if r.side == nil && !variant {
		t.merging = rootMerging(origs, t.exitKnown, t.stacks)
	}
	if r.side == nil {
		m.byKey[r.key] = t
		// Loops that gave up on reaching this one untraced may link to
		// it now: which of two nested loops gets hot first is up to
		// the program, and the outer one must not be lost for good.
		for _, st := range m.blocked[r.key] {
			if st.blockedBy != nil && *st.blockedBy == r.key {
				st.aborts, st.blockedBy = 0, nil
			}
		}
		delete(m.blocked, r.key)
		C.tv_publish(C.uint32_t(r.key.gsite), C.uint64_t(r.key.id), C.uint64_t(base), C.uint64_t(t.iterCtr), C.uint64_t(t.gone))
		m.stats.tracesCompiled.Add(1)
	} else {
		if err := m.linkExit(r.exitID, base); err != nil {
			return nil, err
		}
		root := t.root
		if mg := root.merging; mg != nil {
			delete(mg.waiting, r.exitID)
		}
		if r.merge {
			// Every merge exit of its point enters it.
			mg := root.merging
			mg.conts[r.mergePoint] = t
			for id, pt := range mg.waiting {
				if pt != r.mergePoint {
					continue
				}
				delete(mg.waiting, id)
				if id != r.exitID && ex[id].state == C.TV_EXIT_OPEN {
					if err := m.linkExit(id, base); err != nil {
						return nil, err
					}
				}
			}
			m.stats.continuations.Add(1)
		}
		if last := r.ops[len(r.ops)-1]; r.cut && nexit > 0 {
			// Its final exit is where its path rejoins the root's: it
			// enters the continuation there, or records it.
			id, mg := exitBase+uint32(nexit-1), root.merging
			if c := mg.conts[r.mergePoint]; c != nil {
				if err := m.linkExit(id, c.head); err != nil {
					return nil, err
				}
			} else {
				mg.waiting[id] = r.mergePoint
			}
			m.stats.mergedSides.Add(1)
		} else if last.kind == opExit && nexit > 0 {
			// Its final exit leads where a side trace of it would start
			// again: never record one there (no chains of such traces).
			ex[int(exitBase)+nexit-1].state = C.TV_EXIT_DEAD
		}
		t.root.nsides++
		if variant {
			t.root.nvariants++ // optimised or not: maxVariants bounds them all
		}
		m.stats.sideTraces.Add(1)
		if p != nil {
			m.stats.sidesOptimized.Add(1)
			if variant {
				m.stats.variants.Add(1)
			}
			if t.headGuards {
				m.stats.headGuardedSides.Add(1)
			}
		}
		m.stats.tracesCompiled.Add(1)
	}
	if m.cfg.Log != nil {
		note := ""
		if notPeeled != "" {
			note = "not peeled: " + notPeeled
		}
		if peeled != nil {
			var b strings.Builder
			b.WriteString("peeled; the second copy takes as known")
			for _, g := range peeled.invariants {
				fmt.Fprintf(&b, " [%#x]=%#x/%d", g.addr, g.v, g.size)
			}
			note = b.String()
		}
		if splits > 0 || pairs > 0 {
			note = strings.TrimPrefix(fmt.Sprintf("%s; %d wide loads split, %d vector copies through general registers", note, splits, pairs), "; ")
		}
		if r.unrolled > 0 {
			note = strings.TrimPrefix(fmt.Sprintf("%s; %d back-edges of other loops unrolled", note, r.unrolled), "; ")
		}
		if r.side != nil {
			how := "optimised"
			switch {
			case variant && p != nil:
				how = "optimised as a variant of its root, for the entry state it was recorded in"
			case t.headGuards:
				how = "optimised, with head guards on the state it was recorded in"
			}
			if p == nil {
				how = "as recorded"
				if side == nil {
					how += ": nothing known where it starts"
				}
			}
			if side != nil && !variant {
				// What it started from (sideEntry): where a side
				// trace dispatches as the interpreter does, the
				// first thing to look at.
				how += fmt.Sprintf(" (its parent's exit knew %d registers, %d stack values)", len(side.known), len(side.stack))
			}
			note = strings.TrimPrefix(note+"; "+how, "; ")
		}
		m.logTrace(t, r, code, cm, note, time.Since(begun))
	}
	return t, nil
}

// logTrace writes the trace's disassembly, each instruction beside the
// original address it comes from, after peelNote: whether and how its loop
// was peeled.
func (m *Machine) logTrace(t *trace, r *recording, code []byte, cm []codeMap, peelNote string, took time.Duration) {
	var b strings.Builder
	kind := "root"
	if t.side {
		kind = fmt.Sprintf("side of %#x from exit %d of %#x at %#x", t.root.head,
			r.exitID-r.side.exitBase, r.side.head, uint64(exitTable()[r.exitID].orig))
	}
	fmt.Fprintf(&b, "redmagic: trace %d (%s) site %d id %#x: %d instructions recorded, %d bytes at %#x, compiled in %.2f ms\n",
		t.index, kind, t.key.gsite, t.key.id, r.ninsns, len(code), t.head, float64(took.Microseconds())/1000)
	if peelNote != "" {
		fmt.Fprintf(&b, "  ; %s\n", peelNote)
	}
	if r.mergeNote != "" {
		fmt.Fprintf(&b, "  ; %s\n", r.mergeNote)
	}
	if !t.side && t.private.hi > t.private.lo {
		fmt.Fprintf(&b, "  ; the loop frame's private slots: [%#x, %#x), what the trace stores there stays known\n", t.private.lo, t.private.hi)
	}
	j := 0
	for off := 0; off < len(code); {
		for j+1 < len(cm) && cm[j+1].off <= off {
			j++
			if cm[j].what == "peeled" {
				b.WriteString("  ; peeled: the loop's second copy, entered from the first's close\n")
			}
		}
		inst, err := x86dec.Decode(code[off:], t.head+uint64(off))
		if err != nil {
			fmt.Fprintf(&b, "  %#x: (bytes %x)\n", t.head+uint64(off), code[off:min(off+8, len(code))])
			break
		}
		src := ""
		if j < len(cm) && cm[j].off == off {
			src = fmt.Sprintf("  ; %s %#x", cm[j].what, cm[j].addr)
		}
		fmt.Fprintf(&b, "  %#x: %-48s%s\n", t.head+uint64(off), inst.String(), src)
		off += inst.Len
	}
	m.cfg.Log.Write([]byte(b.String()))
}
