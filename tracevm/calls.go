package tracevm

import (
	"encoding/binary"
	"unsafe"
)

// What native calls return, as the recording ran them. A block the
// recorder builds calls native functions (libc, the interpreter's own
// table lookups) where the original code does; right after each call it
// appends %rax to its buffer's call log, at the cost of %r11 and the
// flags, which no caller may expect to survive a call. At each event the
// recorder gives the values to the calls of the blocks that ran since,
// in their order, so that the optimiser's concrete run (concrete.go)
// goes on past a call with the value it returned, not an unknown one: a
// method found by a native table lookup, and what follows from it, can
// then be speculated on.

// callLogCap is the call log's room, in values: calls beyond it between
// two events are not logged (their results stay unknown).
const callLogCap = 1024

// setCallLog sets the call log's cursor and room left.
func (b *recBuf) setCallLog(cursor, room uint64) {
	if b.callHdr == 0 {
		return
	}
	binary.LittleEndian.PutUint64(memAt(b.callHdr, 8), cursor)
	binary.LittleEndian.PutUint64(memAt(b.callHdr+8, 8), room)
}

// openCallLog empties the call log.
func (b *recBuf) openCallLog() { b.setCallLog(b.callLog, callLogCap) }

// loggedCalls returns the values logged since openCallLog; ok is false
// when the log is not in a state this recording left it in.
func (b *recBuf) loggedCalls() (vals []uint64, full, ok bool) {
	if b.callHdr == 0 {
		return nil, false, true
	}
	cur := binary.LittleEndian.Uint64(memAt(b.callHdr, 8))
	room := binary.LittleEndian.Uint64(memAt(b.callHdr+8, 8))
	if cur < b.callLog || cur > b.callLog+callLogCap*8 || (cur-b.callLog)%8 != 0 {
		return nil, false, false
	}
	n := int(cur-b.callLog) / 8
	if n == 0 {
		return nil, room == 0, true
	}
	return unsafe.Slice((*uint64)(addrPtr(b.callLog)), n), room == 0, true
}

// takeCallResults gives the logged calls among r.ops[r.callScan:] the
// values the log holds, in order, and empties the log. Calls whose
// values the log cannot match one to one (it filled up, or counts
// differ) stay unknown.
func (r *recording) takeCallResults() {
	b := r.buf
	if b == nil || b.callHdr == 0 {
		return
	}
	vals, full, ok := b.loggedCalls()
	from := min(r.callScan, len(r.ops))
	r.callScan = len(r.ops)
	b.openCallLog()
	if !ok || full {
		return
	}
	n := 0
	for i := from; i < len(r.ops); i++ {
		if r.ops[i].kind == opCall && r.ops[i].logged {
			n++
		}
	}
	if n != len(vals) {
		return
	}
	k := 0
	for i := from; i < len(r.ops); i++ {
		if o := &r.ops[i]; o.kind == opCall && o.logged {
			o.ret, o.retKnown = vals[k], true
			k++
		}
	}
}

// logCall emits, after a native call, the append of %rax to the call log
// at hdr (cursor, room); it reports whether it did (hdr 0: no log).
//
//	mov hdr+8(%rip), %r11; test %r11, %r11; jz 1f
//	sub $1, %r11; mov %r11, hdr+8(%rip)
//	mov hdr(%rip), %r11; mov %rax, (%r11); add $8, %r11
//	mov %r11, hdr(%rip)
//	1:
func (e *emitter) logCall(hdr uint64) bool {
	if hdr == 0 {
		return false
	}
	e.bytes(0x4c, 0x8b, 0x1d)
	e.rel32To(-1, hdr+8, 0)
	e.bytes(0x4d, 0x85, 0xdb)
	e.bytes(0x74, 0)
	jz := len(e.buf)
	e.bytes(0x49, 0x83, 0xeb, 0x01)
	e.bytes(0x4c, 0x89, 0x1d)
	e.rel32To(-1, hdr+8, 0)
	e.bytes(0x4c, 0x8b, 0x1d)
	e.rel32To(-1, hdr, 0)
	e.bytes(0x49, 0x89, 0x03)
	e.bytes(0x49, 0x83, 0xc3, 0x08)
	e.bytes(0x4c, 0x89, 0x1d)
	e.rel32To(-1, hdr, 0)
	e.buf[jz-1] = byte(len(e.buf) - jz)
	return true
}
