package tracevm

/*
#include "tv.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/redmagic-patch/redmagic-patch/runtime-stub/abi"
	"github.com/redmagic-patch/redmagic-patch/tracevm/insn"
)

// opKind is an element of a recording: the trace IR.
type opKind uint8

const (
	opInsn        opKind = iota // a copy of an original instruction
	opGuard                     // leave to exit when cond holds
	opGuardTarget               // leave to exit unless the indirect target is target
	opPush                      // push the original return address target
	opPop                       // drop the return address an inlined ret pops
	opCall                      // call target natively
	opIsTraced                  // redmagic_is_traced() returns 0 inside a trace too
	opClose                     // back to the head: one more iteration
	opLink                      // continue in the trace at target
	opExit                      // leave to exit
	// opCount: a back-edge of another loop that the trace runs unrolled
	// (unrollInner), counted in target, the trace's unrolled counter.
	opCount
)

type op struct {
	kind   opKind
	addr   uint64 // original address the op comes from
	code   []byte // opInsn, opGuardTarget: the original instruction
	inst   *x86dec.Inst
	dec    *decoded // opInsn: the recorder's decoding (shared, read-only)
	cond   x86enc.Cond
	target uint64
	exit   uint64
	// count: an opLink taken at a loop back-edge (trace_iterations
	// counts back-edges taken inside compiled code).
	count bool
	// other: the trace of another loop an opLink jumps into. The
	// back-edge counts as an iteration of that loop, in its root
	// counter and period, not of the loop being recorded (whose
	// governor would otherwise see iterations that are not its own), and
	// the link leaves for the original code once that trace is dropped.
	other *trace
	// logged: an opCall whose block logs what the call returned (the
	// recording's call log, callLog); ret, when retKnown: that value.
	logged   bool
	retKnown bool
	ret      uint64
}

// A recording is one thread's recording of one loop iteration (or of the
// path from a side exit back to its loop).
type recording struct {
	m     *Machine
	key   loopKey
	force bool
	// unbudgeted: the loop's trace was just retired (respec.go): this
	// recording is not held to the budget.
	unbudgeted bool
	side       *trace // the trace whose exit starts this side recording
	exitID     uint32
	// merge: a side recording from a merge exit, its root's continuation
	// at mergePoint; cut: a side recording cut where its path rejoins its
	// root's, at mergePoint (merge.go).
	merge, cut bool
	mergePoint uint32
	mergeNote  string // for the log
	start      uint64
	begun      time.Time
	// lastEvent is when the recorder last heard from the recording: a
	// stale one (left by a longjmp) is found only at a later recording,
	// and the program's time since was not spent recording.
	lastEvent time.Time

	ops    []op
	ninsns int
	pc     uint64   // original address the next event resumes at
	stack  []uint64 // return addresses pushed by inlined calls
	// callees: the inlined call for each entry of stack (entry 0 for a
	// side trace's inherited frames); seen: the frame that last ran
	// each address, to notice a callee's own loop.
	callees []callee
	seen    *pcMarks
	serial  uint32
	emit    *emitter // the block emitter, reused
	// unmark: the last mark in seen, undone when the block ends before
	// the instruction is recorded (it starts the next block): its address,
	// and the frame it had before, if any (a plain record, not a closure:
	// this runs for every instruction of an inlined callee).
	unmark struct {
		set  bool
		pc   uint64
		prev uint32
	}
	frames int     // branchable frames entered and not left
	pend   op      // the conditional branch that ended the block
	recbuf uint64  // buf's code area; 0 once the buffer is given up
	buf    *recBuf // the block buffer and cache
	// pendBlock: the kept block whose branch is pend, -1 none; linkFrom
	// and linkSide: the kept block and side that led to the block about
	// to be built, -1 none (block links the two when both are kept).
	pendBlock, linkFrom int32
	linkSide            int
	linkTarget          uint64 // linkSide edgeInd: the jump's target
	// indFrom: the kept block that ended before the indirect jump the
	// next block starts with, -1 none.
	indFrom int32
	again   bool // buildBlock: build the next block at r.pc
	// statePC: the original address the saved state belongs to, where
	// the original code resumes if the recorder fails (recoverRecording).
	statePC uint64
	// nativeCall: the next call runs natively (it enters a branchable
	// frame).
	nativeCall bool
	// suspended counts redmagic_temp_disable calls not yet matched by
	// redmagic_temp_enable: in between, every call runs natively.
	suspended int
	// headRegs and closeRegs: the registers when the recording began and
	// when it closed its loop or linked to another loop's trace, for the
	// optimiser.
	headRegs, closeRegs [16]uint64
	// entryStack: for a side recording, the stack values its parent's
	// exit knows and its stack held as it began (entryStackValues).
	entryStack []memValue
	// callScan: the ops before it have had their calls' results given
	// (takeCallResults).
	callScan int
	// initStack: the inlined return addresses already on the stack where
	// a side recording starts (its parent's at that exit).
	initStack []uint64
	// mem: memory as the recording ended, for a compilation in the
	// background (queueCompile); nil: read when compiling.
	mem *memView
	// handoff: the recording ended at another loop's back-edge, which has
	// no trace: record that loop from here instead (inner loops first).
	handoff *handoff
	// unrolled counts the back-edges of other loops the recording went
	// through (unrollInner), at most maxUnrolled (Config.LoopUnroll);
	// lastUnrolled: the loop of the last.
	unrolled, maxUnrolled int
	lastUnrolled          loopKey
}

type callee struct {
	entry  uint64
	serial uint32
}

type handoff struct {
	key   loopKey
	start uint64
}

const (
	maxInlineDepth = 32
	// maxCalleeRetries bounds the recordings of one loop that end to make
	// a callee native (each makes one more function native).
	maxCalleeRetries = 64
	// maxExitRetries bounds the side recordings of one exit that end
	// that way.
	maxExitRetries = 8
	maxBlockBytes  = blockRoom - 1024
	// shortTrips: a loop whose traces ran fewer iterations than this per
	// exit, over at least minTripExits exits, is unrolled into the loops
	// around it rather than linked to (unrollInner).
	shortTrips   = 6
	minTripExits = 16
	// unrollShare: a recording unrolls other loops only within the first
	// 1/unrollShare of the trace limit (unrollInner).
	unrollShare = 4
)

// beginRecording sets up a recording; the caller holds no lock.
func (m *Machine) beginRecording(key loopKey, start uint64, force bool, side *trace, exitID uint32) *recording {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.off {
		return nil
	}
	if st := m.loops[loopKey{gsite: anySite, id: key.id}]; st != nil && st.disabled {
		return nil
	}
	st := m.loops[key]
	if st == nil {
		st = &loopState{}
		m.loops[key] = st
	}
	if side == nil {
		if st.recording || st.compiling || st.disabled || (st.aborts >= m.cfg.MaxAborts && !force) {
			return nil
		}
		if _, ok := m.byKey[key]; ok && !force {
			return nil
		}
		st.recording = true
	}
	unbudgeted := side == nil && st.unbudgeted
	if unbudgeted {
		st.unbudgeted = false
	}
	buf, err := m.recBuffer()
	if err != nil {
		if side == nil {
			st.recording = false
		}
		m.stats.abort("cache-full")
		return nil
	}
	m.stats.recordings.Add(1)
	r := &recording{m: m, key: key, force: force, side: side, exitID: exitID, start: start, begun: time.Now(),
		recbuf: buf.addr, buf: buf, pendBlock: -1, linkFrom: -1, unbudgeted: unbudgeted,
		maxUnrolled: int(m.loopUnroll.Load())}
	if n := len(m.scratch); n > 0 {
		sc := m.scratch[n-1]
		m.scratch = m.scratch[:n-1]
		r.ops, r.seen, r.emit = sc.ops[:0], sc.seen, sc.emit
	}
	if side == nil && r.rootDepth() == 1 {
		// An annotation's recording starts where the call returns, in
		// a function whose own return address it does not know: the
		// eval loop's, or a helper's that the loop calls. That frame
		// is an inlined one with an unknown return (0): a return from
		// it is guarded, and the loop closes at the same depth.
		r.stack = []uint64{0}
		r.callees = make([]callee, 1)
		r.initStack = []uint64{0} // not r.stack's array, which pushes reuse
	}
	if cap(r.ops) < opsInitial {
		// Grown from nothing by doubling, a recording's op list left
		// its old arrays behind on a heap collected only near its limit
		// (every new one on fresh pages). The scratch goes from recording
		// to recording, keeping the largest.
		r.ops = make([]op, 0, opsInitial)
	}
	return r
}

func (m *Machine) recBuffer() (*recBuf, error) {
	if n := len(m.recBufs); n > 0 {
		b := m.recBufs[n-1]
		m.recBufs = m.recBufs[:n-1]
		return b, nil
	}
	return m.newRecBuf()
}

// end releases the recording; ok says whether it produced a trace.
func (r *recording) end(reason string) {
	m := r.m
	until := time.Now()
	if reason == "stale" && !r.lastEvent.IsZero() {
		until = r.lastEvent
	}
	m.stats.recordNanos.Add(int64(until.Sub(r.begun)))
	m.stats.recordedInsns.Add(uint64(r.ninsns))
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.recbuf != 0 {
		r.buf.closeLog()
		m.recBufs = append(m.recBufs, r.buf)
	}
	if r.side == nil {
		st := m.loops[r.key]
		st.recording = false
		switch {
		case reason == abortBudget:
			// Not the loop's doing: it is recorded again when the
			// budget allows.
		case reason == abortCalleeLoop && st.calleeRetries < maxCalleeRetries:
			st.calleeRetries++
			t := C.tv_self()
			t.retry_gsite, t.retry_id, t.retry = C.uint32_t(r.key.gsite), C.uint64_t(r.key.id), 1
			C.tv_bump_generation()
		case reason != "":
			st.aborts++
			st.blockedBy = nil
			if reason == "inner-loop" && r.handoff != nil {
				k := r.handoff.key
				st.blockedBy = &k
				m.blocked[k] = append(m.blocked[k], st)
			}
		}
	} else if reason == abortBudget {
		// Not the exit's doing: recorded again later.
		rearmExit(r.exitID)
	} else if (reason == abortCalleeLoop || reason == "inner-loop") && m.exitRetries[r.exitID] < maxExitRetries {
		// The recording made a callee native, or handed over to a loop
		// that has no trace yet: the exit is recorded again, and may
		// then link.
		m.exitRetries[r.exitID]++
		rearmExit(r.exitID)
	} else if reason != "" {
		m.killExit(r.exitID)
	}
	if reason != "" {
		m.stats.abort(reason)
		if m.cfg.Log != nil {
			what := "root"
			if r.side != nil {
				what = fmt.Sprintf("side of %#x exit %#x", r.side.head, r.start)
			}
			if r.handoff != nil {
				reason += fmt.Sprintf(" (site %d id %#x)", r.handoff.key.gsite, r.handoff.key.id)
			}
			fmt.Fprintf(m.cfg.Log, "redmagic: recording (%s) site %d id %#x abandoned at %#x after %d instructions: %s\n",
				what, r.key.gsite, r.key.id, r.pc, r.ninsns, reason)
		}
	}
}

func regsOf(t *C.struct_tv_tls) *insn.Regs {
	var r insn.Regs
	for i := range r {
		r[i] = uint64(t.gpr[i])
	}
	return &r
}

//export tvBeginRecord
func tvBeginRecord(gsite C.uint32_t, id C.uint64_t, resume C.uint64_t, reason C.uint64_t, stale C.uint64_t) C.uint64_t {
	if stale != 0 {
		tvAbortStale(stale)
	}
	m := active.Load()
	if m == nil {
		return 0
	}
	r := m.beginRecording(loopKey{uint32(gsite), uint64(id)}, uint64(resume), reason != 0, nil, 0)
	if r == nil {
		return 0
	}
	h := r.name()
	if h == 0 {
		return 0
	}
	C.tv_self().recbuf = C.uint64_t(r.recbuf)
	return C.uint64_t(h)
}

//export tvSideExit
func tvSideExit(why C.uint64_t) (next C.uint64_t) {
	m := active.Load()
	if m == nil {
		return 0
	}
	id := uint32(why) - C.TV_EXIT_BASE
	m.mu.Lock()
	parent := m.exitTrace(id)
	if parent != nil && m.respecialize(parent, id) {
		m.mu.Unlock()
		return 0
	}
	root := parent
	if root != nil && root.root != nil {
		root = root.root
	}
	ok := parent != nil && root.nsides < maxSideTraces && m.byKey[root.key] == root
	var stack []uint64
	merge, point := false, uint32(0)
	if ok {
		stack = parent.stacks[id-parent.exitBase]
		if mg := root.merging; mg != nil {
			point, merge = mg.waiting[id]
		}
	}
	m.mu.Unlock()
	if !ok {
		m.killExit(id)
		return 0
	}
	orig := exitTable()[id].orig
	r := m.beginRecording(root.key, uint64(orig), false, parent, id)
	if r == nil {
		return 0
	}
	r.merge, r.mergePoint = merge, point
	r.initStack = stack
	r.stack = append([]uint64(nil), stack...)
	r.callees = make([]callee, len(stack)) // entries unknown: never marked
	t := C.tv_self()
	h := r.name()
	if h == 0 {
		return 0
	}
	t.rec = C.uint64_t(h)
	t.recbuf = C.uint64_t(r.recbuf)
	r.pc = uint64(orig)
	defer func() {
		if p := recover(); p != nil {
			next = recoverRecording(t, r, p)
		}
	}()
	return C.uint64_t(r.run(t, C.TV_REC_START))
}

//export tvStep
func tvStep(h C.uint64_t, ev C.uint64_t) (next C.uint64_t) {
	m := active.Load()
	if m == nil {
		return C.tv_self().start
	}
	r := m.handles.get(uint64(h))
	if r == nil {
		return C.tv_self().start
	}
	t := C.tv_self()
	defer func() {
		if p := recover(); p != nil {
			next = recoverRecording(t, r, p)
		}
		r.lastEvent = time.Now()
	}()
	return C.uint64_t(r.run(t, int(ev)))
}

// recoverRecording ends the thread's recording after a panic in the
// recorder (a bug of ours): it is counted (internal-error) and logged,
// and the original code resumes where the saved state belongs. The
// program never sees it.
func recoverRecording(t *C.struct_tv_tls, r *recording, p any) C.uint64_t {
	if t.rec != 0 {
		if c := r.m.handles.get(uint64(t.rec)); c != nil {
			r = c // a handoff began another
		}
	}
	if log := r.m.cfg.Log; log != nil {
		fmt.Fprintf(log, "redmagic: internal error in the recorder at %#x: %v\n%s", r.statePC, p, debug.Stack())
	}
	pc := r.statePC
	if t.rec != 0 {
		pc = r.stop(t, pc, "internal-error")
	}
	return C.uint64_t(pc)
}

//export tvAbortStale
func tvAbortStale(h C.uint64_t) {
	m := active.Load()
	if m == nil {
		return
	}
	if r := m.handles.get(uint64(h)); r != nil {
		// Its blocks may still run (a native call not yet returned):
		// the buffer is never reused.
		r.recbuf = 0
		r.buf.closeLog()
		r.end("stale")
		m.handles.drop(uint64(h))
	}
}

// run handles one recorder event of thread t and returns where it
// continues: the next block, a trace, or the original code.
func (r *recording) run(t *C.struct_tv_tls, ev int) uint64 {
	r.roomForOps()
	r.linkFrom, r.indFrom = -1, -1
	r.m.stats.recorderEvents.Add(1)
	if ev == C.TV_REC_START {
		r.statePC = r.start
		r.buf.openLog()
		r.buf.openCallLog()
		r.callScan = len(r.ops)
		r.pendBlock = -1
	} else {
		// The event's literal: where its state belongs.
		r.statePC = binary.LittleEndian.Uint64(memAt(r.m.cache.Base()+uint64(t.ref), 8))
		if r.overBudget() {
			return r.stop(t, r.statePC, abortBudget)
		}
		if reason := r.replay(); reason != "" {
			return r.stop(t, r.statePC, reason)
		}
		r.takeCallResults()
	}
	switch ev {
	case C.TV_REC_START:
		r.pc = r.start
		r.headRegs = *regsOf(t)
		if r.side != nil {
			r.entryStack = entryStackValues(r.side, r.exitID, &r.headRegs)
		}
	case C.TV_REC_NEXT:
		r.pc = r.statePC
		if r.pendBlock >= 0 {
			switch kb := &r.buf.blocks[r.pendBlock]; {
			case kb.call:
				r.linkFrom, r.linkSide = r.pendBlock, 0
			case kb.ind:
				r.indFrom = r.pendBlock
			}
		}
	case C.TV_REC_TAKEN, C.TV_REC_NOT_TAKEN:
		taken := ev == C.TV_REC_TAKEN
		if r.leftCalleeLoop(taken) {
			return r.stop(t, r.statePC, abortCalleeLoop)
		}
		r.resolve(taken)
		if r.pendBlock >= 0 {
			r.linkFrom, r.linkSide = r.pendBlock, 0
			if taken {
				r.linkSide = 1
			}
		}
	default:
		return r.stop(t, r.pc, fmt.Sprintf("bad-event-%d", ev))
	}
	r.pendBlock = -1
	next, done, reason := r.block(t)
	if !done {
		return next
	}
	ho := r.handoff
	next = r.stop(t, next, reason)
	if ho == nil {
		return next
	}
	// The state saved in t is the one at the other loop's back-edge,
	// which is where its recording starts.
	r2 := r.m.beginRecording(ho.key, ho.start, false, nil, 0)
	if r2 == nil {
		return next
	}
	h2 := r2.name()
	if h2 == 0 {
		return next
	}
	t.rec = C.uint64_t(h2)
	t.recbuf = C.uint64_t(r2.recbuf)
	t.start = C.uint64_t(ho.start)
	return r2.run(t, C.TV_REC_START)
}

// name returns the handle the C side knows r by; 0 when the handle table
// is full, and r has then ended.
func (r *recording) name() uint64 {
	h := r.m.handles.put(r)
	if h == 0 {
		r.end("too-many-recordings")
		r.recycle()
	}
	return h
}

// stop ends the recording (with a trace or not) and returns next.
func (r *recording) stop(t *C.struct_tv_tls, next uint64, reason string) uint64 {
	h := uint64(t.rec)
	t.rec = 0
	r.end(reason)
	if h != 0 {
		r.m.handles.drop(h)
	}
	r.recycle()
	return next
}

// block builds the next block from r.pc, whose machine state is the one
// saved in t, and writes it to the thread's block buffer. It returns the
// block's address, or done with the address to continue at (a new trace,
// or the original code when the recording is abandoned: reason).
func (r *recording) block(t *C.struct_tv_tls) (next uint64, done bool, reason string) {
	for {
		next, done, reason = r.buildBlock(t)
		if !r.again {
			return next, done, reason
		}
		r.again = false
	}
}

// buildBlock builds one block (see block); r.again asks for another from
// the new r.pc instead, the saved state being the one there: after a
// return or an indirect jump at a block's start, handled here, the code
// that follows starts a block of its own, which the cache may keep.
func (r *recording) buildBlock(t *C.struct_tv_tls) (next uint64, done bool, reason string) {
	m := r.m
	// One emitter serves all of a recording's blocks.
	if r.emit == nil {
		r.emit = newEmitter(r.recbuf, m.tls)
	}
	e := r.emit
	b := r.buf
	if gen := m.nativeGen.Load(); b.used+blockRoom > recBufSize || b.gen != gen {
		// Full, or kept blocks may inline a call now native.
		if b.used+blockRoom > recBufSize || !b.dropCalls(m, m.nativeSince(b.gen, gen)) {
			b.reset()
		}
		b.gen = gen
		r.linkFrom, r.indFrom = -1, -1
	}
	// keep: the block may be kept in the cache (see recBuf); it is
	// cleared by anything that depends on more than the address.
	// (At the inlining depth limit every call is native: not kept.)
	keep := !r.nativeCall && r.suspended == 0 && len(r.stack) < maxInlineDepth
	if keep {
		if i, ok := b.byPC[r.pc]; ok && r.ninsns+int(b.blocks[i].ninsns) < m.cfg.MaxTraceInsns {
			if r.calleeLoops() {
				return r.pc, true, abortCalleeLoop
			}
			r.enter(i)
			r.link(i)
			return b.blocks[i].addr, false, ""
		}
	}
	opStart, insStart := len(r.ops), r.ninsns
	e.reset(b.cursor())
	lits := e.blockLits[:0] // reused: fresh memory costs page faults
	defer func() { e.blockLits = lits[:0] }()
	statePC := r.pc // the original address the saved state belongs to
	r.statePC = statePC
	regs := regsOf(t)
	abort := func(why string) (uint64, bool, string) { return statePC, true, why }
	lo := m.cache.Base()
	endNext := func() (uint64, bool, string) {
		r.undoMark()
		emitRecEvent(e, C.TV_REC_NEXT, m.switchOut, lo, r.pc, &lits)
		return r.writeBlock(e, lits, statePC)
	}
	for {
		r.unmark.set = false
		if r.ninsns >= m.cfg.MaxTraceInsns {
			return abort("too-long")
		}
		if len(e.buf) > maxBlockBytes {
			return endNext()
		}
		first := len(e.buf) == 0
		if r.calleeLoops() {
			return abort(abortCalleeLoop)
		}
		if site, ok := m.siteAt(r.pc); ok && site.Elided && site.API != APIIsTraced {
			// A call the patcher elided: a 5-byte nop that stands
			// for the annotation (is_traced's mov $0, %eax is
			// copied as it is).
			if site.API == APIFellthroughBranch && !first {
				return endNext() // its argument is read from the state
			}
			keep = false
			next, done, reason, cont := r.api(site, r.pc+elidedLen, regs)
			if !cont {
				return next, done, reason
			}
			continue
		}
		d, err := m.decode(r.pc)
		if err != nil {
			return abort("decode")
		}
		inst, code, info := &d.inst, d.code, d.info
		switch info.Kind {
		case insn.Plain:
			if err := d.emitPlain(e); err != nil {
				return abort("relocate")
			}
			r.ops = append(r.ops, op{kind: opInsn, addr: r.pc, code: code, inst: inst, dec: d})
			r.ninsns++
			r.pc = inst.End()
		case insn.Jump:
			if site, ok := m.siteAt(r.pc); ok && !nativeAPI[site.API] {
				// A tail jump to an annotation function: its call,
				// then its return, to the caller's frame.
				if !first {
					return endNext()
				}
				return r.tailAPI(t, site, regs)
			}
			r.ninsns++
			if r.m.nativeEntry(info.Target) {
				// A tail call of native code (a PLT stub, libc).
				keep = false
				if !r.tailCall(e, &lits, info.Target) {
					return abort("tail-call-from-root")
				}
				continue
			}
			r.pc = info.Target
		case insn.CondJump:
			if m.textEnd(info.Target) == 0 {
				return abort("jump-out")
			}
			taken := e.newLabel()
			e.jcc(info.Cond, taken)
			var stubs [2]int // kept: each side's event starts with a jump to link
			if keep {
				stubs[0] = e.jmpNext()
			}
			emitRecEvent(e, C.TV_REC_NOT_TAKEN, m.switchOut, lo, inst.End(), &lits)
			e.bind(taken)
			if keep {
				stubs[1] = e.jmpNext()
			}
			emitRecEvent(e, C.TV_REC_TAKEN, m.switchOut, lo, info.Target, &lits)
			r.pend = op{addr: r.pc, cond: info.Cond, target: info.Target, exit: inst.End()}
			r.ninsns++
			next, done, reason := r.writeBlock(e, lits, statePC)
			if !done && keep {
				r.keep(statePC, len(e.buf), opStart, insStart, stubs)
			}
			return next, done, reason
		case insn.Call:
			site, isSite := m.siteAt(r.pc)
			if isSite && !nativeAPI[site.API] {
				if !first {
					return endNext()
				}
				keep = false
				next, done, reason, cont := r.api(site, inst.End(), regs)
				if !cont {
					return next, done, reason
				}
				if next == 1 { // redmagic_is_traced: %eax = 0 in the block too
					e.movEAX0()
				}
				continue
			}
			r.ninsns++
			if r.returnsTwice(info.Target, inst) {
				return abort("returns-twice")
			}
			if r.longjmps(info.Target, inst) {
				return abort("longjmp")
			}
			if isSite || r.native(info.Target) {
				l := e.newLabel()
				lits = append(lits, pendingLit{l, info.Target})
				e.callRIP(l)
				logged := !isSite && e.logCall(b.callHdr)
				r.ops = append(r.ops, op{kind: opCall, addr: r.pc, target: info.Target, logged: logged})
				r.pc = inst.End()
				continue
			}
			r.inlineCall(e, &lits, inst.End(), info.Target)
			r.pc = info.Target
			if keep {
				// The block ends with the call, kept: the callee's
				// code starts a block of its own (chained to it).
				stub := e.jmpNext()
				emitRecEvent(e, C.TV_REC_NEXT, m.switchOut, lo, info.Target, &lits)
				next, done, reason := r.writeBlock(e, lits, statePC)
				if !done {
					r.keepCall(statePC, len(e.buf), opStart, insStart, stub, inst.End(), info.Target)
				}
				return next, done, reason
			}
		case insn.IndirectJump, insn.IndirectCall, insn.Return:
			if !first && keep && info.Kind == insn.IndirectJump {
				if _, _, ok := jumpOperand(code); ok {
					// Kept, ending before the jump: its event may
					// be linked to the targets seen (keptBlock.ind).
					r.undoMark()
					stub := e.jmpNext()
					emitRecEvent(e, C.TV_REC_NEXT, m.switchOut, lo, r.pc, &lits)
					next, done, reason := r.writeBlock(e, lits, statePC)
					if !done {
						r.keepInd(statePC, len(e.buf), opStart, insStart, stub,
							op{kind: opGuardTarget, addr: r.pc, code: code, inst: inst, dec: d, exit: r.pc})
					}
					return next, done, reason
				}
			}
			if !first {
				return endNext()
			}
			keep = false
			r.ninsns++
			if info.Kind == insn.Return {
				n := len(r.stack)
				if n == 0 {
					return abort("return-from-root")
				}
				got := binary.LittleEndian.Uint64(memAt(regs[x86enc.RSP], 8))
				if r.stack[n-1] == 0 {
					// The frame the recording started in (rootDepth):
					// the trace goes where this return went, and
					// leaves wherever another return address is.
					r.ops = append(r.ops, op{kind: opGuardTarget, addr: r.pc, code: jmpTopCode, inst: &jmpTopInst, target: got, exit: r.pc})
				} else if got != r.stack[n-1] {
					return abort("return-mismatch")
				}
				r.popFrame()
				r.ops = append(r.ops, op{kind: opPop, addr: r.pc})
				// The return's pop, done on the saved state (lea
				// 8(%rsp), %rsp: no flags).
				t.gpr[x86enc.RSP] += 8
				r.pc = got
				r.again = true
				return 0, false, ""
			}
			target, err := insn.IndirectTarget(inst, regs, uint64(t.fs_base), 0, readMem)
			if err != nil {
				return abort("indirect-target")
			}
			if info.Kind != insn.Return && r.returnsTwice(target, inst) {
				return abort("returns-twice")
			}
			if info.Kind != insn.Return && r.longjmps(target, inst) {
				return abort("longjmp")
			}
			r.ops = append(r.ops, op{kind: opGuardTarget, addr: r.pc, code: code, inst: inst, dec: d, target: target, exit: r.pc})
			if info.Kind == insn.IndirectJump {
				if be, ok := m.backEdgeAt(target); ok {
					// The dispatch reached a patched back-edge
					// handler: this may close the loop.
					if next, done, reason, cont := r.backEdge(be, inst, regs); !cont {
						return next, done, reason
					}
					r.pc = be.Handler
					continue
				}
				if r.m.nativeEntry(target) {
					if !r.tailCall(e, &lits, target) {
						return abort("tail-call-from-root")
					}
					continue
				}
				if f := r.indFrom; f >= 0 && r.buf.blocks[f].jmp.addr == statePC {
					r.linkFrom, r.linkSide, r.linkTarget = f, edgeInd, target
				}
				r.pc = target
				r.again = true
				return 0, false, ""
			}
			if r.native(target) {
				l := e.newLabel()
				lits = append(lits, pendingLit{l, target})
				e.callRIP(l)
				logged := e.logCall(b.callHdr)
				r.ops = append(r.ops, op{kind: opCall, addr: r.pc, target: target, logged: logged})
				r.pc = inst.End()
				continue
			}
			r.inlineCall(e, &lits, inst.End(), target)
			r.pc = target
		default:
			return abort(info.Reason)
		}
	}
}

type pendingLit struct {
	l label
	v uint64
}

func (r *recording) inlineCall(e *emitter, lits *[]pendingLit, ret, target uint64) {
	r.ops = append(r.ops, op{kind: opPush, addr: r.pc, target: ret})
	if ret < 1<<31 {
		e.pushImm32(int32(ret))
	} else {
		l := e.newLabel()
		*lits = append(*lits, pendingLit{l, ret})
		e.pushRIP(l)
	}
	r.pushFrame(ret, target)
}

// pushFrame enters the inlined call of target that returns to ret.
func (r *recording) pushFrame(ret, target uint64) {
	r.stack = append(r.stack, ret)
	r.serial++
	r.callees = append(r.callees, callee{entry: target, serial: r.serial})
}

// opsInitial: a recording's first room for ops (400 KiB), more than most
// recordings use.
const opsInitial = 4096

// recordingScratch is what a finished recording leaves for the next one
// (Machine.scratch): its op list and address set, the bulk of what
// recording allocates (the runtime's heap is collected only near its
// limit: runtime-stub/jit.go).
type recordingScratch struct {
	ops  []op
	seen *pcMarks
	emit *emitter
}

// roomForOps grows r.ops ahead of an event once it is half full, at once
// to room for the longest recording (opsMax), not by doubling: every
// step left the old array behind as garbage on a heap collected only near
// its limit and copied into fresh pages (a long recording's page faults
// were most of its cost: pyperformance's logging took 1,900 of them on
// the program's thread). A list with that room is not grown ahead again:
// an event adds at most the ops of the instructions left before the
// limit, and one block past it (growing a full room ahead of the next
// event copied 1.3 MB into fresh pages, 9 ms of the Lua corpus'
// exprparser on the program's thread). Only what is used of the room is
// ever touched.
func (r *recording) roomForOps() {
	room := opsMax(r.m.cfg.MaxTraceInsns)
	if len(r.ops) <= cap(r.ops)/2 || cap(r.ops) >= room {
		return
	}
	ops := make([]op, len(r.ops), room)
	copy(ops, r.ops)
	r.ops = ops
}

// opsMax is room for the ops of the longest recording of limit
// instructions (guards and frame ops besides).
func opsMax(limit int) int { return limit + limit/4 + 256 }

// newScratch returns a scratch with room for the longest recording of
// limit instructions, the pages of its first opsInitial ops touched:
// Start makes the first one, on the thread that loads the JIT, so that the
// program's thread finds it ready. Touched for the longest recording
// (2.6 MB) it was 640 page faults, about 6 ms of the JIT's start here, for
// room most programs never use; the rest is touched by the recordings that
// use it, once, with nothing to copy (a list grown when half full was
// copied into fresh pages).
func newScratch(limit int) *recordingScratch {
	ops := make([]op, max(opsMax(limit), opsInitial))
	for i := 0; i < opsInitial; i += 4096 / int(unsafe.Sizeof(op{})) {
		ops[i].addr = 1
		ops[i].addr = 0
	}
	return &recordingScratch{ops: ops[:0]}
}

// maxScratch bounds the pool of finished recordings' buffers: one per
// thread recording at once is all it serves, and a kept one is megabytes.
const maxScratch = 4

// recycle hands r's buffers to the next recording; r is done with.
func (r *recording) recycle() {
	if r.ops == nil && r.seen == nil {
		return
	}
	clear(r.ops) // drop the references they hold
	if r.seen != nil {
		r.seen.reset()
	}
	m := r.m
	m.mu.Lock()
	if len(m.scratch) < maxScratch {
		m.scratch = append(m.scratch, &recordingScratch{ops: r.ops[:0], seen: r.seen, emit: r.emit})
	}
	m.mu.Unlock()
	r.ops, r.seen, r.emit = nil, nil, nil
}

// popFrame leaves the innermost inlined call.
func (r *recording) popFrame() {
	n := len(r.stack)
	r.stack = r.stack[:n-1]
	if len(r.callees) == n {
		r.callees = r.callees[:n-1]
	}
}

// abortCalleeLoop: an inlined function ran one of its own loops. Unrolled
// into a trace such a loop becomes a guard per iteration that fails
// whenever the data changes (string formatting, hash probing, the
// collector), so the function is called natively from then on and the
// loop is recorded again.
const abortCalleeLoop = "callee-loop"

// abortBudget: the JIT went over its budget (tv_over_budget) while the
// recording ran. A recording may be long (up to 20,000 instructions at a
// few hundred nanoseconds each), and the budget was checked only as it
// began: where no trace pays, what a recording took past the budget was
// the program's loss.
const abortBudget = "budget"

// budgetCheckInsns: a recording's length from which it ends when over
// budget (about a millisecond of recording).
const budgetCheckInsns = 2000

// overBudget reports whether r is long (budgetCheckInsns or more) and the
// JIT over its budget for a recording like it (a side recording's share is
// larger once traces have paid). A short one is let finish: what it took
// is spent either way, and it ends soon.
func (r *recording) overBudget() bool {
	if r.ninsns < budgetCheckInsns || r.unbudgeted {
		return false
	}
	share := C.uint64_t(1)
	if r.side != nil {
		share = C.TV_SIDE_SHARE
	}
	return C.tv_over_budget(share) != 0
}

// inlinedCall returns the innermost inlined call the recording is in,
// when the recording entered it (its entry known): the root frame's loops
// are the interpreter's, and a side trace's inherited frames have no
// entry.
func (r *recording) inlinedCall() (callee, bool) {
	n := len(r.callees)
	if n == 0 || n != len(r.stack) || r.callees[n-1].entry == 0 {
		return callee{}, false
	}
	return r.callees[n-1], true
}

// calleeLoops reports whether the instruction at r.pc runs a second time
// in the same inlined call, and if so marks that function native.
func (r *recording) calleeLoops() bool {
	c, ok := r.inlinedCall()
	if !ok {
		return false
	}
	if r.seen == nil {
		r.seen = &pcMarks{}
	}
	pc := r.pc
	if prev := r.seen.get(pc); prev != c.serial {
		r.seen.set(pc, c.serial)
		r.unmark.set, r.unmark.pc, r.unmark.prev = true, pc, prev
		return false
	}
	r.m.DoNotTrace(c.entry)
	return true
}

// leftCalleeLoop reports whether the pending branch, about to go the way
// taken says, leaves one of an inlined function's loops after a single
// trip: a backward branch not taken whose target already ran in this call
// (the block ending with it starts at or before the target, or
// calleeLoops marked it). Recorded so, the loop would exit the trace
// whenever its trip count changes (copying a call's results, filling
// missing arguments); the function is made native as calleeLoops does.
func (r *recording) leftCalleeLoop(taken bool) bool {
	p := &r.pend
	if taken || p.target > p.addr {
		return false
	}
	c, ok := r.inlinedCall()
	if !ok {
		return false
	}
	ran := r.seen != nil && r.seen.get(p.target) == c.serial
	if i := r.pendBlock; i >= 0 && r.buf.blocks[i].pc <= p.target {
		ran = true
	}
	if !ran {
		return false
	}
	r.m.DoNotTrace(c.entry)
	return true
}

// undoMark undoes calleeLoops' last mark, if any.
func (r *recording) undoMark() {
	u := &r.unmark
	if !u.set {
		return
	}
	r.seen.set(u.pc, u.prev)
	u.set = false
}

func flushLits(e *emitter, lits []pendingLit) {
	for len(e.buf)%8 != 0 {
		e.bytes(0xcc)
	}
	for _, p := range lits {
		e.bind(p.l)
		e.u64(p.v)
	}
}

var errBlockRoom = errorString("tracevm: block larger than its room")

func (r *recording) writeBlock(e *emitter, lits []pendingLit, statePC uint64) (uint64, bool, string) {
	flushLits(e, lits)
	code, err := e.finish()
	if err == nil && len(code) > blockRoom {
		err = errBlockRoom // would spill out of the buffer (literals)
	}
	if err == nil {
		err = r.m.cache.Write(e.base, code)
	}
	if err != nil {
		return statePC, true, "block"
	}
	return e.base, false, ""
}

// returnsTwice: inst, at r.pc, calls or jumps to a function that returns
// a second time, through its PLT stub (target) or its GOT slot.
func (r *recording) returnsTwice(target uint64, inst *x86dec.Inst) bool {
	o, ok := r.m.objectOf(r.pc)
	return ok && importCall(o.ReturnsTwice, target, inst)
}

// longjmps: inst, at r.pc, calls or jumps to longjmp or its kind.
func (r *recording) longjmps(target uint64, inst *x86dec.Inst) bool {
	o, ok := r.m.objectOf(r.pc)
	return ok && importCall(o.Longjmps, target, inst)
}

// importCall: inst reaches one of slots' functions, through its PLT stub
// (target) or its GOT slot.
func importCall(slots map[uint64]bool, target uint64, inst *x86dec.Inst) bool {
	if len(slots) == 0 {
		return false
	}
	if slots[target] {
		return true
	}
	slot, ok := inst.MemRIPTarget()
	return ok && slots[slot]
}

// tailCall turns a jump to native code from an inlined function into what
// it amounts to: that function's return address leaves the stack, the
// native code is called from the trace (it finds its return address where
// the jump left it) and recording goes on where the inlined function would
// have returned. false when no inlined frame is open.
func (r *recording) tailCall(e *emitter, lits *[]pendingLit, target uint64) bool {
	n := len(r.stack)
	if n == 0 || r.stack[n-1] == 0 {
		return false
	}
	ret := r.stack[n-1]
	r.popFrame()
	r.ops = append(r.ops, op{kind: opPop, addr: r.pc}, op{kind: opCall, addr: r.pc, target: target})
	e.leaRSP(8)
	l := e.newLabel()
	*lits = append(*lits, pendingLit{l, target})
	e.callRIP(l)
	r.pc = ret
	return true
}

// native says whether a call to target runs natively rather than being
// recorded.
func (r *recording) native(target uint64) bool {
	m := r.m
	if r.nativeCall {
		r.nativeCall = false
		return true
	}
	if r.suspended > 0 {
		return true
	}
	o, ok := m.objectOf(target)
	if !ok || len(r.stack) >= maxInlineDepth || o.NativeEntries[target] {
		return true
	}
	for _, n := range o.Native {
		if n.contains(target) {
			return true
		}
	}
	m.mu.Lock()
	dn := m.doNotCall[target]
	m.mu.Unlock()
	return dn
}

// backEdgeAt returns the back-edge whose trampoline is at a.
func (m *Machine) backEdgeAt(a uint64) (BackEdge, bool) {
	o, ok := m.objectOf(a)
	if !ok {
		return BackEdge{}, false
	}
	be, ok := o.BackEdges[a]
	return be, ok
}

func (m *Machine) siteAt(a uint64) (Site, bool) {
	o, ok := m.objectOf(a)
	if !ok {
		return Site{}, false
	}
	s, ok := o.Sites[a]
	return s, ok
}

func readMem(a uint64, n int) ([]byte, error) {
	// Indirect targets come from the interpreter's own tables and stack,
	// which the instruction is about to read anyway.
	return append([]byte(nil), memAt(a, n)...), nil
}

// elidedLen is the length of an elided call (the call rel32 it replaces).
const elidedLen = 5

// api handles an annotation call at r.pc, which ends at end, with the
// machine state exactly before it when the call is the block's first
// instruction (only the annotations whose argument matters need that).
// cont: recording goes on at r.pc (advanced past the call); next == 1
// then asks the caller to set %eax = 0 in the block.
func (r *recording) api(site Site, end uint64, regs *insn.Regs) (next uint64, done bool, reason string, cont bool) {
	a := r.pc
	arg := regs[x86enc.RDI]
	skip := func() (uint64, bool, string, bool) {
		r.pc = end
		return 0, false, "", true
	}
	exitHere := func(why string) (uint64, bool, string, bool) { return r.exitAt(a, why) }
	switch site.API {
	case APIBackwardsBranch:
		key := loopKey{site.GSite, arg}
		if r.unrollInner(key) {
			return skip()
		}
		if next, done, reason, cont, ok := r.closeOrLink(key, regs); ok {
			return next, done, reason, cont
		}
		if r.side == nil && r.frames == 0 {
			r.handoff = &handoff{key, end}
		}
		return exitHere("inner-loop")
	case APIFellthroughBranch:
		// A root recording that leaves its loop will not close it; a side
		// trace follows the code after the loop (an outer loop's body)
		// to the next back-edge and links there.
		if r.side == nil && arg == r.key.id && r.atLoopDepth(len(r.stack)) {
			return a, true, "loop-left", false
		}
		return skip()
	case APIIsTraced:
		// 0, as outside traces: code that skips periodic work (a
		// GIL hand-off, signal checks) while it returns nonzero
		// would never do that work inside a trace, which runs on as
		// long as its guards hold.
		r.ops = append(r.ops, op{kind: opIsTraced, addr: a})
		r.pc = end
		return 1, false, "", true
	case APIBeginMergeBlock, APIEndMergeBlock:
		return skip()
	case APITempDisable:
		// Recording is suspended until the matching temp_enable: the
		// calls in between run natively (the code of this function
		// around them is recorded, its branches guarded).
		r.suspended++
		return skip()
	case APITempEnable:
		if r.suspended > 0 {
			r.suspended--
		}
		return skip()
	case APIBeginBranchableFrame:
		// The interpreter is about to run a nested instance of its loop
		// (a user-level call): that call runs natively, and its loops
		// get traces of their own.
		r.nativeCall = true
		r.frames++
		return skip()
	case APIEndBranchableFrame:
		if r.frames == 0 {
			return exitHere("frame-left")
		}
		r.frames--
		return skip()
	case APIEnsureNotTraced:
		return a, true, "ensure-not-traced", false
	case APIForceEndTrace:
		return r.finish(op{kind: opExit, addr: a, exit: a}, a)
	default:
		return a, true, "api-" + apiNames[site.API], false
	}
}

// rootDepth is the depth of inlined frames at which the loop closes: an
// annotation's recording counts the frame it starts in (with a return
// address it does not know), a back-edge handler's starts in the eval
// loop itself.
func (r *recording) rootDepth() int {
	if r.m.backEdgeOfSite(r.key.gsite) != nil {
		return 0
	}
	return 1
}

// atLoopDepth: with depth inlined frames open, the recording is in its
// loop's own frame, where the loop closes or is left.
func (r *recording) atLoopDepth(depth int) bool {
	return r.frames == 0 && depth == r.rootDepth()
}

// exitAt ends the recording at a, the original code's state: a root
// recording is abandoned (why), a side trace ends in an exit there.
func (r *recording) exitAt(a uint64, why string) (next uint64, done bool, reason string, cont bool) {
	if r.side == nil {
		return a, true, why, false
	}
	return r.finish(op{kind: opExit, addr: a, exit: a}, a)
}

// jmpTopCode is jmp *(%rsp): the target guard of a return whose address
// the recording did not push (the frame it started in), which reads it
// where the return does.
var jmpTopCode = []byte{0xff, 0x24, 0x24}

var jmpTopInst = func() x86dec.Inst {
	inst, err := x86dec.Decode(jmpTopCode, 0)
	if err != nil {
		panic(err) // a constant: tested
	}
	return inst
}()

// tailAPI handles a tail jump to an annotation function at r.pc, the
// first instruction of a block with the machine state regs: the
// annotation acts as if called at the jump's return address, once its
// return has left the inlined function that jumped (api, on the state
// after that return). The loop closes (or links to key's trace) in the
// caller's frame, where a recording of the same site starts (the runtime
// resumes at the return address). What cannot go on past the return
// stops before it.
func (r *recording) tailAPI(t *C.struct_tv_tls, site Site, regs *insn.Regs) (uint64, bool, string) {
	stop := func(why string) (uint64, bool, string) {
		next, done, reason, _ := r.exitAt(r.pc, why)
		return next, done, reason
	}
	n := len(r.stack)
	if n == 0 || r.stack[n-1] == 0 {
		return stop("return-from-root") // (where it would return is not known)
	}
	ret := binary.LittleEndian.Uint64(memAt(regs[x86enc.RSP], 8))
	if ret != r.stack[n-1] {
		return stop("return-mismatch")
	}
	switch site.API {
	case APIBackwardsBranch:
		key := loopKey{site.GSite, regs[x86enc.RDI]}
		r.m.mu.Lock()
		links := r.m.byKey[key] != nil
		r.m.mu.Unlock()
		if !links && (key != r.key || !r.atLoopDepth(n-1)) {
			return stop("inner-loop")
		}
	case APIFellthroughBranch, APIBeginMergeBlock, APIEndMergeBlock, APITempDisable, APITempEnable:
	default:
		return stop("api-" + apiNames[site.API])
	}
	// The return, on the saved state.
	r.ninsns++
	r.ops = append(r.ops, op{kind: opPop, addr: r.pc})
	r.popFrame()
	t.gpr[x86enc.RSP] += 8
	regs[x86enc.RSP] += 8
	r.pc = ret
	next, done, reason, cont := r.api(site, ret, regs)
	if !cont {
		return next, done, reason
	}
	r.again = true
	return 0, false, ""
}

// closeOrLink ends the recording at a back-edge of loop key, at r.pc with
// the machine state regs before it: it closes the loop being recorded
// (a side trace rejoins its root), or jumps into key's trace. ok is false
// when key is another loop without a trace.
func (r *recording) closeOrLink(key loopKey, regs *insn.Regs) (next uint64, done bool, reason string, cont, ok bool) {
	a := r.pc
	if key == r.key && r.atLoopDepth(len(r.stack)) {
		if r.side == nil {
			r.closeRegs = *regs
			next, done, reason, cont = r.finish(op{kind: opClose, addr: a}, 0)
			return next, done, reason, cont, true
		}
		// What a variant of the root is optimised on (variantEntry).
		r.closeRegs = *regs
		root := r.side.rootTrace()
		next, done, reason, cont = r.finish(op{kind: opLink, addr: a, target: root.head, count: true}, root.head)
		return next, done, reason, cont, true
	}
	r.m.mu.Lock()
	other := r.m.byKey[key]
	r.m.mu.Unlock()
	if other == nil || r.m.data.load(other.gone) != 0 {
		// None, or dropped: the loop is the interpreter's.
		return 0, false, "", false, false
	}
	// What a side trace may take as its head's (install).
	r.closeRegs = *regs
	next, done, reason, cont = r.finish(op{kind: opLink, addr: a, target: other.head, count: true, other: other}, other.head)
	return next, done, reason, cont, true
}

// backEdge handles a dispatch jump, at r.pc with the machine state before
// it, into the trampoline of back-edge handler be. cont: recording goes on
// in the handler (not a back-edge this time, as a Lua OP_JMP forwards).
func (r *recording) backEdge(be BackEdge, inst *x86dec.Inst, regs *insn.Regs) (next uint64, done bool, reason string, cont bool) {
	a := r.pc
	var id, aux uint64
	if be.IDReg >= 0 {
		id = regs[be.IDReg]
	}
	if be.AuxReg >= 0 {
		aux = regs[be.AuxReg]
	}
	lid, back := be.loopID(id, aux)
	if !back {
		return 0, false, "", true
	}
	key := loopKey{be.GSite, lid}
	if r.unrollInner(key) {
		return 0, false, "", true
	}
	if next, done, reason, cont, ok := r.closeOrLink(key, regs); ok {
		return next, done, reason, cont
	}
	if be.Keying == KeyLuaCondSJ || (be.Keying == KeyCPyCmpJump && lid == r.key.id) {
		// A comparison that may jump back, to a loop without a trace:
		// mostly an if ending a while body, whose false branch Lua
		// sends straight back to the loop's header (CPython threads
		// such jumps too, to the header of the loop recorded). The
		// recording goes on through it, as through the rest of the
		// body, until its own loop's back-edge. A CPython comparison
		// that jumps back to another header closes an inner while
		// loop, recorded first as the other inner loops are.
		return 0, false, "", true
	}
	// Another loop's back-edge, and that loop has no trace: record it
	// from here (a side recording gives up its exit, which then leads to
	// the original code and, at this back-edge, to the new trace).
	r.handoff = &handoff{key, be.Handler}
	return a, true, "inner-loop", false
}

// unrollInner reports whether the recording goes on through a back-edge
// of loop key, another loop than its own, as LuaJIT unrolls inner loops,
// and if so counts it there. It does when key's traces (kept or dropped)
// have shown that they are left after a few iterations each time
// (runsShort): the loop around such a loop pays a trace exit and entry
// every few iterations; unrolled, a guard per iteration inside one trace.
// A loop without that evidence is not unrolled: its trip count may vary
// with the data (fannkuch's flips), and a trace unrolling it would leave
// at every count but the one recorded. At most maxUnrolled back-edges,
// within the first 1/unrollShare of the trace limit; a recording that
// runs out of unrolling in key (the last loop it unrolled) marks it as a
// loop that runs on, not unrolled again.
func (r *recording) unrollInner(key loopKey) bool {
	if key == r.key {
		return false
	}
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	st, other := m.loops[key], m.byKey[key]
	if other == nil || (st != nil && st.runsOn) || !m.runsShort(other) {
		return false
	}
	if r.unrolled >= r.maxUnrolled || r.ninsns >= m.cfg.MaxTraceInsns/unrollShare {
		if r.unrolled > 0 && r.lastUnrolled == key {
			if st == nil {
				st = &loopState{}
				m.loops[key] = st
			}
			st.runsOn = true
		}
		return false
	}
	r.unrolled, r.lastUnrolled = r.unrolled+1, key
	r.ops = append(r.ops, op{kind: opCount, addr: r.pc})
	return true
}

// runsShort reports whether root trace t's loop leaves its traces after
// fewer than shortTrips iterations on average (iterations over exits, in
// t and its side traces). The caller holds m.mu.
func (m *Machine) runsShort(t *trace) bool {
	if t.side || t.iterCtr == 0 {
		return false
	}
	var iters, exits uint64
	ex := exitTable()
	for _, u := range m.traces {
		if u != t && u.root != t {
			continue
		}
		if u.iterCtr != 0 {
			iters += m.data.load(u.iterCtr)
		}
		for x := u.exitBase; x < u.exitBase+u.nexits && int(x) < len(ex); x++ {
			exits += uint64(ex[x].count)
		}
	}
	return exits >= minTripExits && iters < exits*shortTrips
}

// nativeAPI: annotation calls that act outside traces run as native calls
// from the trace; the runtime sees them as it would from the original code.
var nativeAPI = [NumAPI]bool{
	APIStart: true, APIForceBeginTrace: true, APIForceJumpToTrace: true,
	APIDoNotTraceFunction: true, APIDisableBranch: true,
}

var apiNames = abi.APINames

// finish compiles the recording ended by last and installs it. next is
// where execution continues: the new trace's head when 0.
func (r *recording) finish(last op, next uint64) (uint64, bool, string, bool) {
	if r.side != nil && last.kind == opExit && r.ninsns == 0 {
		// It would only leave where the parent's exit leaves.
		return r.pc, true, "empty-side-trace", false
	}
	r.ops = append(r.ops, last)
	if next == 0 {
		// A new root trace: the loop goes on in the original code, and
		// the runtime enters the trace at its next back-edge, once its
		// governor has sampled the interpreter (which the loop running
		// on in the trace from here would spoil).
		next = r.pc
	}
	if r.m.queueCompile(r) {
		return next, true, "", false
	}
	t0 := time.Now()
	_, err := r.m.install(r)
	r.m.stats.compileNanos.Add(int64(time.Since(t0)))
	if err != nil {
		if r.m.cfg.Log != nil {
			r.m.logCompileFailure(r, err)
		}
		return r.pc, true, "compile", false
	}
	return next, true, "", false
}

func (t *trace) rootTrace() *trace {
	if t.root != nil {
		return t.root
	}
	return t
}
