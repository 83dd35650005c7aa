package tracevm

/*
#include <stdlib.h>
#include "tv.h"
*/
import "C"

import (
	"encoding/binary"
	"slices"
	"unsafe"
)

// A recBuf is a recording's area of the code cache: an arena of the blocks
// it keeps for later recordings (a block cache, as DynamoRIO keeps basic
// blocks: loops are recorded again and again, side traces retrace their
// root's paths), with the block being run at its cursor when it is not
// kept. One recording uses a buffer at a time; buffers go back to the
// machine's pool when it ends.
//
// A block is kept when its code depends on its address alone: it ends
// with a conditional branch or a call the recording inlines, and has no
// annotation, other inlined call, return or indirect branch in it, and no
// call in it was made native by the state of the recording (a forced
// native call, temp_disable, the inlining depth limit). A kept call's
// frame is pushed when the block is entered; its callee may become native
// later (redmagic_do_not_trace_function, a callee's loop): such blocks
// are then dropped and the edges to them unlinked (dropCalls). In an
// inlined function, a kept block's start is checked for the function's own
// loops (calleeLoops) when it is entered or replayed: a loop repeats block
// starts. Each side of a kept block's branch starts with a jump to the
// next instruction; once the successor on that side is kept too, the jump
// is linked to a chain stub that logs the edge and goes on to the
// successor without leaving the recorded code. Such runs last until a
// block that is not kept or a full log; Go then replays the log: the
// guards and the ops of the blocks that ran.
//
// The log's cursor and room are in the data area (%rip-relative from the
// stubs, one pair a buffer): a chain stub of a buffer whose recording
// ended (a block still running after a longjmp, a fork child) finds no
// room and takes its event, which resumes the original code.
type recBuf struct {
	addr   uint64
	used   int // bytes of kept blocks and chain stubs, from addr
	blocks []keptBlock
	byPC   map[uint64]int32
	// opChunks hold the kept blocks' ops, a block's in one chunk: a
	// slab grown by doubling copied itself and left its old arrays on
	// fresh pages (the heap is collected only near its limit).
	opChunks [][]op
	opChunk  int    // the chunk being filled
	log      uint64 // C memory: chainLogCap edges (edgeInd)
	hdr      uint64 // data area: log cursor, then room left (0: no chaining)
	gen      uint64 // the machine's nativeGen the blocks were kept in
	// callLog (C memory, callLogCap words) and callHdr (data area: its
	// cursor, then room left; 0: none): what the native calls of the
	// blocks that ran since the last event returned, in %rax, in order
	// (calls.go).
	callLog, callHdr uint64
}

// keptBlock is a block of the cache.
type keptBlock struct {
	pc         uint64 // original address it starts at
	addr       uint64
	opChunk    int32 // its ops: recBuf.opChunks[opChunk][opLo:opHi]
	opLo, opHi int32
	ninsns     int32
	pend       op // its conditional branch
	// stub[s]: address of the rel32 of the jump that starts the event
	// stub of side s (0 not taken, 1 taken); linked once it is chained.
	stub   [2]uint64
	linked [2]bool
	// to[s]: the block side s is linked to (-1: none, or no side s).
	to [2]int32
	// dead: dropped from the cache (it inlines a call now native):
	// nothing links to it any more.
	dead bool
	// call: it ends with an inlined call of callee, which returns to
	// ret (side 0 only).
	call        bool
	ret, callee uint64
	// ind: it ends before an indirect jump (jmp, its guard op) whose
	// event stub starts with the jump at stub[0]; cands: the targets
	// linked, each tested in turn from head (the newest first).
	ind    bool
	jmp    op
	cands  []uint64
	candTo []int32 // the blocks cands link to
	head   uint64
}

// Edges in the log are blockIndex<<3 | edgeCode: the side of a branch
// (0 not taken, 1 taken; 0 for a call), or edgeInd+k for an indirect
// jump's k-th target.
const (
	edgeInd  = 2
	maxCands = 4
)

const (
	// blockRoom is what a block may take at the cursor: maxBlockBytes
	// of code, then its events and literals.
	blockRoom    = 16 << 10
	chainStubMax = 96
	chainLogCap  = 4096
)

// newRecBuf allocates a buffer's code area, log and log header.
func (m *Machine) newRecBuf() (*recBuf, error) {
	a, err := m.alloc(recBufSize)
	if err != nil {
		return nil, err
	}
	m.markUsed()
	b := &recBuf{addr: a, byPC: make(map[uint64]int32, 512), blocks: make([]keptBlock, 0, 512)}
	// Without a log or a header the buffer still serves, unchained.
	if hdr := m.data.alloc16(); hdr != 0 {
		if p := C.malloc(C.size_t(chainLogCap * 4)); p != nil {
			b.hdr, b.log = hdr, uint64(uintptr(p))
		}
	}
	// Without a call log its recordings know no call's result.
	if hdr := m.data.alloc16(); hdr != 0 {
		if p := C.malloc(C.size_t(callLogCap * 8)); p != nil {
			b.callHdr, b.callLog = hdr, uint64(uintptr(p))
		}
	}
	return b, nil
}

// free releases the buffer's log; the buffer is not used after (a flush).
func (b *recBuf) free() {
	if b.log != 0 {
		b.setLog(0, 0)
		C.free(addrPtr(b.log))
		b.log, b.hdr = 0, 0
	}
	if b.callLog != 0 {
		b.setCallLog(0, 0)
		C.free(addrPtr(b.callLog))
		b.callLog, b.callHdr = 0, 0
	}
}

// setLog sets the log's cursor and room left (stores the stubs of this
// thread read next).
func (b *recBuf) setLog(cursor uint64, room uint64) {
	if b.hdr == 0 {
		return
	}
	binary.LittleEndian.PutUint64(memAt(b.hdr, 8), cursor)
	binary.LittleEndian.PutUint64(memAt(b.hdr+8, 8), room)
}

// openLog empties the log for the recording about to run; closeLog makes
// every chain stub take its event (the recording ended).
func (b *recBuf) openLog()  { b.setLog(b.log, chainLogCap) }
func (b *recBuf) closeLog() { b.setLog(b.log, 0) }

// logged returns the edges chain stubs logged since openLog.
func (b *recBuf) logged() ([]uint32, bool) {
	if b.hdr == 0 {
		return nil, true
	}
	cur := binary.LittleEndian.Uint64(memAt(b.hdr, 8))
	if cur < b.log || cur > b.log+chainLogCap*4 || (cur-b.log)%4 != 0 {
		return nil, false
	}
	n := int(cur-b.log) / 4
	if n == 0 {
		return nil, true
	}
	return unsafe.Slice((*uint32)(addrPtr(b.log)), n), true
}

// reset forgets every kept block: the arena is full, or a function its
// blocks may inline was made native.
func (b *recBuf) reset() {
	b.used = 0
	b.blocks = b.blocks[:0]
	for i := range b.opChunks[:min(b.opChunk+1, len(b.opChunks))] {
		clear(b.opChunks[i]) // drop the references they hold
		b.opChunks[i] = b.opChunks[i][:0]
	}
	b.opChunk = 0
	clear(b.byPC)
}

// succ is where side s of the block's branch goes.
func (kb *keptBlock) succ(s int) uint64 {
	if kb.call {
		return kb.callee
	}
	if s == 1 {
		return kb.pend.target
	}
	return kb.pend.exit
}

// cursor is where the next block is written.
func (b *recBuf) cursor() uint64 { return b.addr + uint64(b.used) }

func align16(n int) int { return (n + 15) &^ 15 }

// enter records kept block i as the block about to run: its ops, and its
// branch as the one the next event resolves.
func (r *recording) enter(i int32) {
	kb := &r.buf.blocks[i]
	r.ops = append(r.ops, r.buf.opChunks[kb.opChunk][kb.opLo:kb.opHi]...)
	r.ninsns += int(kb.ninsns)
	r.pend = kb.pend
	r.pendBlock = i
	if kb.call {
		r.pushFrame(kb.ret, kb.callee)
	}
}

// resolve appends the guard of the pending branch, taken or not, and
// moves r.pc to where it went.
func (r *recording) resolve(taken bool) {
	p := r.pend
	g := op{kind: opGuard, addr: p.addr}
	if taken {
		g.cond, g.exit, r.pc = p.cond.Invert(), p.exit, p.target
	} else {
		g.cond, g.exit, r.pc = p.cond, p.target, p.exit
	}
	r.ops = append(r.ops, g)
}

// replay accounts for the kept blocks chain stubs ran since the last
// event, then empties the log. It returns why the recording ends, if it
// must: a log that is not this recording's, or a callee's loop.
func (r *recording) replay() string {
	b := r.buf
	edges, ok := b.logged()
	if !ok {
		return "chain-log"
	}
	if len(edges) > 0 {
		r.m.stats.chainedBlocks.Add(uint64(len(edges)))
	}
	for _, ed := range edges {
		i, code := int32(ed>>3), int(ed&7)
		if i != r.pendBlock {
			return "chain-log"
		}
		switch kb := &b.blocks[i]; {
		case kb.call:
			r.pc = kb.callee
		case kb.ind:
			k := code - edgeInd
			if k < 0 || k >= len(kb.cands) {
				return "chain-log"
			}
			g := kb.jmp
			g.target = kb.cands[k]
			r.ops = append(r.ops, g)
			r.ninsns++
			r.pc = g.target
		default:
			if r.leftCalleeLoop(code == 1) {
				return abortCalleeLoop
			}
			r.resolve(code == 1)
		}
		next, ok := b.byPC[r.pc]
		if !ok {
			return "chain-log"
		}
		if r.calleeLoops() {
			return abortCalleeLoop
		}
		r.enter(next)
		if r.ninsns >= r.m.cfg.MaxTraceInsns {
			return "too-long" // (the chain ran on: the limit is checked here)
		}
	}
	b.openLog()
	return ""
}

// keep adds the block just written at the cursor (code bytes, ops from
// opStart, instructions from insStart, event jumps at offsets stubs) to
// the cache, and links the edge that led to it.
func (r *recording) keep(pc uint64, size, opStart, insStart int, stubs [2]int) {
	b := r.buf
	i := int32(len(b.blocks))
	c := b.roomForOps(len(r.ops) - opStart)
	lo := len(b.opChunks[c])
	b.opChunks[c] = append(b.opChunks[c], r.ops[opStart:]...)
	at := b.cursor()
	b.blocks = append(b.blocks, keptBlock{
		pc: pc, addr: at, opChunk: int32(c), opLo: int32(lo), opHi: int32(len(b.opChunks[c])),
		ninsns: int32(r.ninsns - insStart), pend: r.pend,
		stub: [2]uint64{at + uint64(stubs[0]) + 1, at + uint64(stubs[1]) + 1},
		to:   [2]int32{-1, -1},
	})
	b.byPC[pc] = i
	b.used += align16(size)
	r.pendBlock = i
	r.link(i)
}

// opChunkLen is the ops a chunk holds (about 96 KiB of them).
const opChunkLen = 1024

// roomForOps returns the chunk n more ops go in: the one being filled,
// else the next (reused after a reset), made as needed.
func (b *recBuf) roomForOps(n int) int {
	if b.opChunk < len(b.opChunks) {
		ch := b.opChunks[b.opChunk]
		if cap(ch)-len(ch) >= n {
			return b.opChunk
		}
		if len(ch) > 0 {
			b.opChunk++
		}
	}
	for b.opChunk < len(b.opChunks) && cap(b.opChunks[b.opChunk]) < n {
		b.opChunk++ // a chunk too small for this block stays unused
	}
	if b.opChunk == len(b.opChunks) {
		b.opChunks = append(b.opChunks, make([]op, 0, max(opChunkLen, n)))
	}
	return b.opChunk
}

// keepCall keeps the block just written that ends with a call inlined
// (return address ret, callee), its jump to link at offset stub.
func (r *recording) keepCall(pc uint64, size, opStart, insStart, stub int, ret, callee uint64) {
	b := r.buf
	r.keep(pc, size, opStart, insStart, [2]int{stub, stub})
	kb := &b.blocks[len(b.blocks)-1]
	kb.call, kb.ret, kb.callee = true, ret, callee
	kb.linked[1] = true // no second side
}

// keepInd keeps the block just written that ends before the indirect
// jump jmp (its guard op), its event's jump at offset stub.
func (r *recording) keepInd(pc uint64, size, opStart, insStart, stub int, jmp op) {
	b := r.buf
	r.keep(pc, size, opStart, insStart, [2]int{stub, stub})
	kb := &b.blocks[len(b.blocks)-1]
	kb.ind, kb.jmp = true, jmp
	kb.head = kb.stub[0] + 4 // the event
	kb.linked = [2]bool{true, true}
}

// linkInd adds target, whose kept block is to, to the targets the
// indirect jump ending kept block from tests.
func (r *recording) linkInd(from, to int32, target uint64) {
	b := r.buf
	kb := &b.blocks[from]
	if !kb.ind || len(kb.cands) >= maxCands || b.blocks[to].pc != target {
		return
	}
	at := b.cursor()
	e := r.emit
	e.reset(at)
	edge := uint32(from)<<3 | uint32(edgeInd+len(kb.cands))
	if !e.indirectCandidate(kb.jmp.code, kb.jmp.addr, target, edge, b.hdr, b.blocks[to].addr, kb.stub[0]+4, kb.head) {
		return
	}
	if r.placeStub(e, kb.stub[0]) {
		kb.cands = append(kb.cands, target)
		kb.candTo = append(kb.candTo, to)
		kb.head = at
	}
}

// placeStub writes the stub emitted in e at the cursor and points the
// rel32 field at jump (a jmp's, which ends 4 bytes after it) to it.
func (r *recording) placeStub(e *emitter, jump uint64) bool {
	b := r.buf
	code, err := e.finish()
	if err != nil || len(code) > chainStubMax || r.m.cache.Write(e.base, code) != nil {
		return false
	}
	var rel [4]byte
	binary.LittleEndian.PutUint32(rel[:], uint32(int32(int64(e.base)-int64(jump+4))))
	if r.m.cache.Write(jump, rel[:]) != nil {
		return false
	}
	b.used += align16(len(code))
	return true
}

// link chains the edge that led to kept block to (r.linkFrom's side
// r.linkSide), if any and not yet linked.
func (r *recording) link(to int32) {
	from, side := r.linkFrom, r.linkSide
	r.linkFrom = -1
	b := r.buf
	if from < 0 || b.hdr == 0 || int(from) >= len(b.blocks) || b.used+chainStubMax > recBufSize {
		return
	}
	if side == edgeInd {
		r.linkInd(from, to, r.linkTarget)
		return
	}
	kb := &b.blocks[from]
	// Only the block that starts where that side goes: not one after a
	// return or an indirect jump handled in between.
	if kb.linked[side] || b.blocks[to].pc != kb.succ(side) {
		return
	}
	e := r.emit
	e.reset(b.cursor())
	back := kb.stub[side] + 4 // the event, after the jump
	e.chainStub(uint32(from)<<3|uint32(side), b.hdr, b.blocks[to].addr, back)
	if kb.linked[side] = r.placeStub(e, kb.stub[side]); kb.linked[side] {
		kb.to[side] = to
	}
}

// dropCalls drops from the cache the blocks that end with an inlined
// call of a function in fns (made native since they were kept) and
// unlinks the edges to them, so that the code of the others stays in use
// (before, every function made native emptied the cache, and a recording
// retried after a callee's loop built all of its blocks again). It
// reports false when it cannot (an indirect jump's candidate is one of
// them): the buffer is then to be reset.
func (b *recBuf) dropCalls(m *Machine, fns []uint64) bool {
	var n int
	for i := range b.blocks {
		kb := &b.blocks[i]
		if kb.dead || !kb.call || !slices.Contains(fns, kb.callee) {
			continue
		}
		kb.dead = true
		n++
		if j, ok := b.byPC[kb.pc]; ok && j == int32(i) {
			delete(b.byPC, kb.pc)
		}
	}
	if n == 0 {
		return true
	}
	var zero [4]byte
	for i := range b.blocks {
		kb := &b.blocks[i]
		for _, t := range kb.candTo {
			if b.blocks[t].dead {
				return false
			}
		}
		for s, t := range kb.to {
			if t < 0 || !b.blocks[t].dead {
				continue
			}
			// Back to the jump's own target: the event after it.
			if m.cache.Write(kb.stub[s], zero[:]) != nil {
				return false
			}
			kb.to[s], kb.linked[s] = -1, false
		}
	}
	return true
}
