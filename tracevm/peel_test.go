package tracevm

import (
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// changes: a peeled copy may take a location as known only if the last
// store over it in an iteration writes back exactly the value it held at
// the loop head.
func TestChanges(t *testing.T) {
	g := guardedLoad{addr: 0x1000, size: 4, v: 0xdead}
	exact := func(v uint64) storeRange {
		return storeRange{lo: 0x1000, hi: 0x1004, v: v, known: true, scalar: true}
	}
	for _, tc := range []struct {
		name   string
		stores []storeRange
		want   bool
	}{
		{"no store", nil, false},
		{"elsewhere", []storeRange{{lo: 0x1004, hi: 0x100c, known: true, scalar: true}, {lo: 0xff8, hi: 0x1000}}, false},
		{"same value", []storeRange{exact(0xdead)}, false},
		{"other value", []storeRange{exact(0xbeef)}, true},
		{"other value, then same", []storeRange{exact(0xbeef), exact(0xdead)}, false},
		{"same value, then other", []storeRange{exact(0xdead), exact(0xbeef)}, true},
		{"unknown value", []storeRange{{lo: 0x1000, hi: 0x1004, scalar: true}}, true},
		{"vector store", []storeRange{{lo: 0x1000, hi: 0x1004, v: 0xdead, known: true}}, true},
		{"partial overlap last", []storeRange{exact(0xdead), {lo: 0x1002, hi: 0x1003, v: 0, known: true, scalar: true}}, true},
		{"wider store last", []storeRange{{lo: 0x1000, hi: 0x1008, v: 0xdead, known: true, scalar: true}}, true},
		{"partial overlap, then whole", []storeRange{{lo: 0xffc, hi: 0x1002, known: true, scalar: true}, exact(0xdead)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, changes(tc.stores, g))
		})
	}
}

// storesMemory: instructions that only read their memory operand (or have
// none) never count as stores, which would end every assumption a peeled
// copy makes; the others do.
func TestStoresMemory(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		want bool
	}{
		{"cqto", []byte{0x48, 0x99}, false},
		{"cltq", []byte{0x48, 0x98}, false},
		{"idiv %rsi", []byte{0x48, 0xf7, 0xfe}, false},
		{"idivl (%rdi)", []byte{0xf7, 0x3f}, false},
		{"mulq 0x8(%rbx)", []byte{0x48, 0xf7, 0x63, 0x08}, false},
		{"bsf (%rax),%rcx", []byte{0x48, 0x0f, 0xbc, 0x08}, false},
		{"cmp %rax,(%rbx)", []byte{0x48, 0x39, 0x03}, false},
		{"mov %rax,(%rbx)", []byte{0x48, 0x89, 0x03}, true},
		{"mov (%rbx),%rax", []byte{0x48, 0x8b, 0x03}, false},
		{"add %rax,(%rbx)", []byte{0x48, 0x01, 0x03}, true},
		{"xchg %rax,(%rbx)", []byte{0x48, 0x87, 0x03}, true},
		{"push %rax", []byte{0x50}, true},
		{"rep stos", []byte{0xf3, 0x48, 0xab}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst, err := x86dec.Decode(tc.code, 0x1000)
			require.NoError(t, err)
			require.Equal(t, len(tc.code), inst.Len)
			assert.Equal(t, tc.want, storesMemory(&inst))
		})
	}
}

// pointerLoads finds the words a trace loads and then addresses memory
// with, before the register is written again or a native call.
func TestPointerLoads(t *testing.T) {
	dec := func(code ...byte) *x86dec.Inst {
		inst, err := x86dec.Decode(code, 0x1000)
		require.NoError(t, err)
		return &inst
	}
	var (
		loadRDI   = dec(0x48, 0x8b, 0x7b, 0x10)             // mov 0x10(%rbx),%rdi
		useRDI    = dec(0x48, 0x8b, 0x47, 0x10)             // mov 0x10(%rdi),%rax
		indexRDI  = dec(0x48, 0x8b, 0x04, 0xf9)             // mov (%rcx,%rdi,8),%rax
		leaRDI    = dec(0x48, 0x8d, 0x47, 0x10)             // lea 0x10(%rdi),%rax
		setRDI    = dec(0x48, 0x89, 0xcf)                   // mov %rcx,%rdi
		addRAX    = dec(0x48, 0x01, 0xc1)                   // add %rax,%rcx
		loadEDI   = dec(0x8b, 0x7b, 0x10)                   // mov 0x10(%rbx),%edi
		storeRDI  = dec(0x48, 0x89, 0x7b, 0x10)             // mov %rdi,0x10(%rbx)
		storeInto = dec(0x48, 0xc7, 0x47, 0x08, 1, 0, 0, 0) // movq $1,0x8(%rdi)
	)
	insn := op{kind: opInsn}
	for _, tc := range []struct {
		name  string
		ops   []op
		insts []*x86dec.Inst
		want  map[int]bool
	}{
		{"load then address", []op{insn, insn}, []*x86dec.Inst{loadRDI, useRDI}, map[int]bool{0: true}},
		{"as an index", []op{insn, insn}, []*x86dec.Inst{loadRDI, indexRDI}, map[int]bool{0: true}},
		{"a store through it", []op{insn, insn, insn}, []*x86dec.Inst{loadRDI, addRAX, storeInto}, map[int]bool{0: true}},
		{"lea computes, does not address", []op{insn, insn}, []*x86dec.Inst{loadRDI, leaRDI}, map[int]bool{}},
		{"written first", []op{insn, insn, insn}, []*x86dec.Inst{loadRDI, setRDI, useRDI}, map[int]bool{}},
		{"a call first", []op{insn, {kind: opCall}, insn}, []*x86dec.Inst{loadRDI, nil, useRDI}, map[int]bool{}},
		{"32-bit", []op{insn, insn}, []*x86dec.Inst{loadEDI, useRDI}, map[int]bool{}},
		{"stored, not loaded", []op{insn, insn}, []*x86dec.Inst{storeRDI, useRDI}, map[int]bool{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, pointerLoads(tc.ops, tc.insts))
		})
	}
}
