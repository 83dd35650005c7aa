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
