package tracevm

import (
	"os"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMergeCut: a side recording rejoins its root at the first instruction
// where an exit of the root leaves with registers that the recording's
// concrete run holds with the same values, under the same inlined calls;
// not before minMergeOps ops, nor where fewer than minMergeRest would
// follow; and a shared point (a continuation, or another side trace's)
// wins over an earlier one within mergeWindow ops.
func TestMergeCut(t *testing.T) {
	const (
		step = "4983c402" // add $0x2,%r12: the next bytecode
		nop  = "90"
	)
	// A path of ten bytecodes (each an add and two nops), then the rest
	// of the body; the bytecode pointer starts at 0x5000.
	var code []string
	for range 10 {
		code = append(code, step, nop, nop)
	}
	for range minMergeRest + 8 {
		code = append(code, nop)
	}
	ops, insts := decodeOps(t, code)
	for i := range ops {
		ops[i].inst = insts[i]
	}
	ops = append(ops, op{kind: opLink, addr: 0x8000})
	var head [16]uint64
	head[x86enc.R12] = 0x5000
	// Bytecode k starts at op 3k, where the pointer is 0x5000+2k; an
	// exit of the root at op i knows the pointer is pc.
	point := func(exit uint32, i int, pc uint64, stack ...uint64) (uint64, mergePoint) {
		return ops[i].addr, mergePoint{exit: exit, known: []regValue{{x86enc.R12, pc}}, stack: stack}
	}
	mg := func(pts ...func() (uint64, mergePoint)) *merging {
		m := &merging{points: map[uint64][]mergePoint{}}
		for _, p := range pts {
			a, pt := p()
			m.points[a] = append(m.points[a], pt)
		}
		return m
	}
	pt := func(exit uint32, i int, pc uint64, stack ...uint64) func() (uint64, mergePoint) {
		return func() (uint64, mergePoint) { return point(exit, i, pc, stack...) }
	}
	none := func(uint32) bool { return false }
	for _, tc := range []struct {
		name      string
		mg        *merging
		initStack []uint64
		shared    func(uint32) bool
		cut       int
		point     uint32
		isShared  bool
	}{
		{name: "the first point the run holds", mg: mg(pt(7, 9, 0x5006), pt(9, 15, 0x500a)), shared: none, cut: 9, point: 7},
		{name: "another bytecode at the same instruction", mg: mg(pt(7, 9, 0x5008)), shared: none, cut: -1},
		{name: "too early", mg: mg(pt(7, 3, 0x5002)), shared: none, cut: -1},
		{name: "late, enough left", mg: mg(pt(7, 27, 0x5012)), shared: none, cut: 27, point: 7},
		{name: "too late", mg: mg(pt(7, 45, 0x5014)), shared: none, cut: -1},
		{name: "other inlined calls", mg: mg(pt(7, 9, 0x5006, 0x4444)), shared: none, cut: -1},
		{name: "the same inlined calls", mg: mg(pt(7, 9, 0x5006, 0x4444)), initStack: []uint64{0x4444}, shared: none, cut: 9, point: 7},
		{name: "a later point with its continuation", mg: mg(pt(7, 9, 0x5006), pt(9, 15, 0x500a)),
			shared: func(p uint32) bool { return p == 9 }, cut: 15, point: 9, isShared: true},
		{name: "a continuation too far past the first match", mg: mg(pt(7, 9, 0x5006), pt(9, 9+mergeWindow+3, 0x5014)),
			shared: func(p uint32) bool { return p == 9 }, cut: 9, point: 7},
		{name: "the first point, shared", mg: mg(pt(7, 9, 0x5006), pt(9, 15, 0x500a)),
			shared: func(p uint32) bool { return true }, cut: 9, point: 7, isShared: true},
		{name: "no points", mg: nil, shared: none, cut: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cut, point, shared := mergeCut(ops, &head, newMemView(os.Getpid()), tc.initStack, tc.mg, tc.shared)
			assert.Equal(t, tc.cut, cut)
			if cut >= 0 {
				assert.Equal(t, tc.point, point)
				assert.Equal(t, tc.isShared, shared)
			}
		})
	}
	// A path shorter than what a continuation would save is not cut.
	short := append(ops[:12:12], op{kind: opLink, addr: 0x8000})
	cut, _, _ := mergeCut(short, &head, newMemView(os.Getpid()), nil, mg(pt(7, 9, 0x5006)), none)
	assert.Equal(t, -1, cut)
}

// TestRootMerging: a root's merge points are its exits that know some
// register, one per address and state.
func TestRootMerging(t *testing.T) {
	origs := []uint64{0x100, 0x200, 0x200, 0x200, 0x300}
	known := [][]regValue{
		nil, // a head guard's exit knows nothing
		{{x86enc.R12, 0x5000}},
		{{x86enc.R12, 0x5000}}, // the same state again
		{{x86enc.R12, 0x5010}},
		{{x86enc.RBX, 1}},
	}
	stacks := [][]uint64{nil, nil, nil, nil, {0x4444}}
	mg := rootMerging(origs, known, stacks)
	require.NotNil(t, mg)
	assert.Empty(t, mg.points[0x100])
	assert.Equal(t, []mergePoint{{exit: 1, known: known[1]}, {exit: 3, known: known[3]}}, mg.points[0x200])
	assert.Equal(t, []mergePoint{{exit: 4, known: known[4], stack: []uint64{0x4444}}}, mg.points[0x300])
	assert.Nil(t, rootMerging(origs[:1], known[:1], stacks[:1]))
}
