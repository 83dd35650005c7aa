package tracevm

import (
	"os"
	"runtime"
	"testing"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	pushRBX   = "53"             // push %rbx
	popRBX    = "5b"             // pop %rbx
	cmpRBX2k  = "4881fb00200000" // cmp $0x2000,%rbx
	loadRDI   = "488b07"         // mov (%rdi),%rax
	cmpRAX5   = "4883f805"       // cmp $0x5,%rax
	stackBase = uint64(0x7fff0000)
)

// A side trace starts knowing what its parent knew of the stack at the
// exit: what an inlined callee's prologue saved (the register its
// epilogue pops comes back known) and the loop frame's private slots (a
// spill the interpreter reloads its base from, which it may not speculate
// on: the loop rewrites them); what it decides then folds, and its own
// exits pass the slot on.
func TestSideEntryStack(t *testing.T) {
	const reload = "488b5c2410" // mov 0x10(%rsp),%rbx
	private := addrRange{stackBase, stackBase + 0x40}
	m := &Machine{}
	var head [16]uint64
	for _, tc := range []struct {
		name    string
		first   string // what sets %rbx
		stack   []memValue
		private addrRange
		known   bool
	}{
		{"saved slot", popRBX, []memValue{{stackBase, 0x2000}}, addrRange{}, true},
		{"no saved slot", popRBX, nil, addrRange{}, false},
		{"another saved slot", popRBX, []memValue{{stackBase + 8, 0x2000}}, addrRange{}, false},
		{"private slot", reload, []memValue{{stackBase + 0x10, 0x2000}}, private, true},
		{"no private slot", reload, nil, private, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, _ := decodeOps(t, []string{tc.first, cmpRBX2k})
			ops = append(ops, op{kind: opGuard, addr: ops[1].addr + 7, cond: x86enc.NE, exit: ops[1].addr + 7}, op{kind: opExit, addr: 0x2000, exit: 0x2000})
			entry := &sideEntry{known: []regValue{{x86enc.RSP, stackBase}}, stack: tc.stack, private: tc.private}
			if tc.private != (addrRange{}) {
				entry.variant = []addrRange{tc.private}
			}
			p := m.optimize(ops, head, head, calleeSaved, entry, nil, frame.Slots{}, newMemView(os.Getpid()), nil)
			if !tc.known {
				require.True(t, p == nil || !p.drop[2], "the guard stays")
				p.release()
				return
			}
			require.NotNil(t, p)
			defer p.release()
			assert.Equal(t, val{known: true, v: 0x2000}, p.known.get(1, int(x86enc.RBX)))
			assert.True(t, p.drop[2], "the compare's guard folds")
			if tc.private != (addrRange{}) {
				assert.Equal(t, tc.stack, p.exitStackValues(nil, 2), "its exits pass the slot on")
			}
		})
	}
}

// An exit between an inlined prologue's push and its epilogue's pop passes
// the slot on (exitStackValues); one after the pop does not.
func TestExitStackValues(t *testing.T) {
	ops, _ := decodeOps(t, []string{pushRBX, loadRDI, cmpRAX5})
	g := func(o op, n uint64) op { return op{kind: opGuard, addr: o.addr + n, cond: x86enc.NE, exit: o.addr + n} }
	rest, _ := decodeOps(t, []string{popRBX, cmpRBX2k})
	for i := range rest {
		rest[i].addr += 0x100
	}
	ops = append(ops, g(ops[2], 4), rest[0], rest[1], g(rest[1], 7), op{kind: opClose, addr: 0x2000})
	var head [16]uint64
	head[x86enc.RBX] = 0x2000
	head[x86enc.RSP] = stackBase
	m := &Machine{}
	p := m.optimize(ops, head, head, calleeSaved, nil, nil, frame.Slots{}, newMemView(os.Getpid()), nil)
	require.NotNil(t, p)
	defer p.release()
	require.True(t, p.drop[6], "the popped register's compare folds")
	assert.Equal(t, []memValue{{stackBase - 8, 0x2000}}, p.exitStackValues(nil, 3), "the guard between push and pop")
	assert.Empty(t, p.exitStackValues(nil, 6), "after the pop")
	assert.Empty(t, p.exitStackValues(nil, 0), "before the push")
}

// entryStackValues passes on what the parent's exit knows only when the
// stack holds it as the side recording starts, at the %rsp the exit knew.
func TestEntryStackValues(t *testing.T) {
	stack := heapWords(4)
	rsp := uint64(uintptr(unsafe.Pointer(&stack[0])))
	stack[1] = 0x1234
	slot := memValue{rsp + 8, 0x1234}
	parent := &trace{exitBase: 10}
	parent.exitKnown = [][]regValue{nil, {{x86enc.RSP, rsp}}}
	parent.exitStack = [][]memValue{nil, {slot}}
	regs := [16]uint64{x86enc.RSP: rsp}
	assert.Equal(t, []memValue{slot}, entryStackValues(parent, 11, &regs), "as the stack holds it")
	assert.Nil(t, entryStackValues(parent, 10, &regs), "an exit that knows none")
	assert.Nil(t, entryStackValues(parent, 12, &regs), "not the parent's exit")
	stack[1] = 0x1235
	assert.Nil(t, entryStackValues(parent, 11, &regs), "another value there")
	stack[1] = 0x1234
	other := [16]uint64{x86enc.RSP: rsp + 16}
	assert.Nil(t, entryStackValues(parent, 11, &other), "another %rsp")
	parent.exitKnown[1] = nil
	assert.Nil(t, entryStackValues(parent, 11, &regs), "%rsp not known at the exit")
	runtime.KeepAlive(stack)
}

// A side trace of an exit that knew nothing, whose flags are dead where it
// starts, takes registers at the values it was recorded with, guarded at
// its head (as a root does); not one it changes before it ends.
func TestSideHeadGuards(t *testing.T) {
	ops, _ := decodeOps(t, []string{cmpRBX2k, cmpRBX2k})
	g := func(i int) op {
		return op{kind: opGuard, addr: ops[i].addr + 7, cond: x86enc.NE, exit: ops[i].addr + 7}
	}
	ops = append(ops[:1:1], g(0), ops[1], g(1), op{kind: opExit, addr: 0x2000, exit: 0x2000})
	var head [16]uint64
	head[x86enc.RBX], head[x86enc.RSP] = 0x2000, stackBase
	changed := head
	changed[x86enc.RBX] = 0x3000
	m := &Machine{}
	for _, tc := range []struct {
		name    string
		guards  bool
		close   [16]uint64
		guarded bool
	}{
		{"guarded", true, head, true},
		{"flags live", false, head, false},
		{"changed", true, changed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entry := &sideEntry{guards: tc.guards}
			p := m.optimize(ops, head, tc.close, allRegs16, entry, nil, frame.Slots{}, newMemView(os.Getpid()), nil)
			if !tc.guarded {
				require.True(t, p == nil || len(p.headRegs) == 0 && !p.drop[1], "nothing assumed")
				p.release()
				return
			}
			require.NotNil(t, p)
			defer p.release()
			assert.Equal(t, []x86enc.Reg{x86enc.RBX}, p.headRegs)
			assert.True(t, p.drop[1] && p.drop[3], "both compares' guards fold")
		})
	}
}

// headExit: an exit id is a trace's head guard's when it falls in its
// head exits, counted from its exit base (ids below it are other traces').
func TestHeadExit(t *testing.T) {
	tr := &trace{exitBase: 10, headExits: [2]uint32{1, 3}}
	for id, want := range map[uint32]bool{9: false, 10: false, 11: true, 12: true, 13: false} {
		assert.Equal(t, want, tr.headExit(id), "exit %d", id)
	}
}
