package tracevm

import (
	"os"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A store of what the trace stored there itself, with nothing since that
// could have written it, goes; after a store through an unknown pointer,
// or with another value, it stays.
func TestSameStoreDropped(t *testing.T) {
	const (
		store5   = "48c70425005000000500000000" // movq $0x5,0x5000
		store6   = "48c70425005000000600000000" // movq $0x6,0x5000
		tag3     = "c604250850000003"           // movb $0x3,0x5008
		storeAny = "48890a"                     // mov %rcx,(%rdx)
		load     = "488b042500500000"           // mov 0x5000,%rax
		cmpRAX6  = "4883f806"                   // cmp $0x6,%rax
	)
	ops, _ := decodeOps(t, []string{store5, tag3, store5, tag3, storeAny, store5, store6, store6, load, cmpRAX6})
	ops = append(ops, op{kind: opGuard, addr: ops[9].addr + 4, cond: x86enc.NE, exit: ops[9].addr + 4}, op{kind: opExit, addr: 0x2000, exit: 0x2000})
	m := &Machine{}
	var head [16]uint64
	entry := &sideEntry{known: []regValue{{x86enc.RSP, 0x7fff0000}}}
	p := m.optimize(ops, head, head, calleeSaved, entry, nil, frame.Slots{}, newMemView(os.Getpid()), nil)
	require.NotNil(t, p, "the compare's guard folds")
	defer p.release()
	want := []bool{false, false, true, true, false, false, false, true}
	for i, drop := range want {
		assert.Equal(t, drop, p.drop[i], "op %d", i)
	}
	assert.Equal(t, 3, p.sameStores)
	assert.True(t, p.drop[10], "the guard folds on the value stored")
}

// A value a speculation put in memory is certain only past its guard.
func TestGuardedBefore(t *testing.T) {
	o := &optimizer{specOp: []int{2, 5}, specPost: []int{-1, 9}}
	tests := []struct {
		deps assume
		at   int
		want bool
	}{
		{0, 0, true},
		{1 << x86enc.RSP, 0, true}, // a head register: guarded at the head
		{specBit(0), 3, true},      // guarded at its load, op 2
		{specBit(1), 7, false},     // loaded at 5, guarded before op 9
		{specBit(1), 9, true},
		{specBit(0) | specBit(1), 8, false},
		{specBit(5), 8, false}, // no such speculation
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, o.guardedBefore(tt.deps, tt.at), "deps %#x at %d", tt.deps, tt.at)
	}
}
