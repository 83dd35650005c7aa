package tracevm

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

// TestLogCallEncoding: the append of %rax to the call log after a native
// call is what GNU as makes of the same text, at header addresses below
// and above the code; it touches no register but %r11 (and the flags).
func TestLogCallEncoding(t *testing.T) {
	const base, slot = 0x7f2200000000, 128
	hdrs := []uint64{base - 0x1000, base + 0x7fff0000, base - 0x7fff0000}
	texts := make([]string, len(hdrs))
	for k := range hdrs {
		texts[k] = "mov hdr" + string(rune('a'+k)) + "+8(%rip), %r11; test %r11, %r11; jz 1f; sub $1, %r11; mov %r11, hdr" + string(rune('a'+k)) +
			"+8(%rip); mov hdr" + string(rune('a'+k)) + "(%rip), %r11; mov %rax, (%r11); add $8, %r11; mov %r11, hdr" + string(rune('a'+k)) + "(%rip); 1:"
	}
	syms := map[string]uint64{"hdra": hdrs[0], "hdrb": hdrs[1], "hdrc": hdrs[2]}
	slots := gnuref.Assemble(t, base, slot, texts, syms)
	for k, hdr := range hdrs {
		at := base + uint64(k*slot)
		e := newEmitter(at, 0)
		require.True(t, e.logCall(hdr))
		code, err := e.finish()
		require.NoError(t, err)
		gnuref.RequireSlot(t, slots[k], code, texts[k])
		for off := 0; off < len(code); {
			inst, err := x86dec.Decode(code[off:], at+uint64(off))
			require.NoError(t, err)
			if r, ok := inst.Args[0].(x86asm.Reg); ok && inst.Op != x86asm.TEST {
				require.Equal(t, x86asm.R11, r, "%v writes only %%r11", inst)
			}
			off += inst.Len
		}
	}
	e := newEmitter(base, 0)
	require.False(t, e.logCall(0), "no log, no code")
	require.Empty(t, e.buf)
}

// TestTakeCallResults gives the values a block logged to the logged calls
// among the ops since the last event, in order; none when the counts
// differ or the log filled up (which value is whose is then not known),
// and none to a call that does not log.
func TestTakeCallResults(t *testing.T) {
	callOps := func(logged ...bool) []op {
		ops := []op{{kind: opInsn}}
		for _, l := range logged {
			ops = append(ops, op{kind: opCall, logged: l}, op{kind: opInsn})
		}
		return ops
	}
	for _, tc := range []struct {
		name   string
		ops    []op
		values []uint64
		full   bool
		want   []uint64 // by call, 0: not known
	}{
		{"each call its value", callOps(true, true), []uint64{0x11, 0x22}, false, []uint64{0x11, 0x22}},
		{"a call that does not log", callOps(true, false, true), []uint64{0x11, 0x22}, false, []uint64{0x11, 0, 0x22}},
		{"fewer values than calls", callOps(true, true, true), []uint64{0x11, 0x22}, false, []uint64{0, 0, 0}},
		{"a full log", callOps(true, true), []uint64{0x11, 0x22}, true, []uint64{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, hdr := heapWords(8), heapWords(2)
			b := &recBuf{callLog: uint64(uintptr(unsafe.Pointer(&log[0]))), callHdr: uint64(uintptr(unsafe.Pointer(&hdr[0])))}
			r := &recording{buf: b, ops: tc.ops}
			b.openCallLog()
			require.Equal(t, [2]uint64{b.callLog, callLogCap}, [2]uint64{hdr[0], hdr[1]})
			copy(log, tc.values)
			hdr[0] += uint64(8 * len(tc.values))
			hdr[1] -= uint64(len(tc.values))
			if tc.full {
				hdr[1] = 0
			}
			r.takeCallResults()
			var got []uint64
			for _, o := range r.ops {
				if o.kind == opCall {
					require.Equal(t, o.ret != 0, o.retKnown)
					got = append(got, o.ret)
				}
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, len(r.ops), r.callScan, "the ops are done with")
			require.Equal(t, b.callLog, hdr[0], "the log is emptied")
			runtime.KeepAlive(log)
			runtime.KeepAlive(hdr)
		})
	}
}

// heapSink keeps heapWords' arrays on the heap: a test hands their
// addresses to code that reads them as raw memory, which must not move
// with a goroutine's stack.
var heapSink [][]uint64

// heapWords returns n zero words on the heap, at an address that stays.
func heapWords(n int) []uint64 {
	w := make([]uint64, n)
	heapSink = append(heapSink, w)
	return w
}
