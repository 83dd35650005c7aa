package cfg_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/internal/testvms"
)

// TestGraphInvariants checks the structure of whole-binary graphs: blocks
// lie inside their function and do not overlap, and every edge that stays
// inside the function lands on the start of one of its blocks.
func TestGraphInvariants(t *testing.T) {
	bins := []string{python, lua}
	vms, err := testvms.Build()
	require.NoError(t, err)
	for _, vm := range vms {
		bins = append(bins, vm.Stripped)
	}
	for _, bin := range bins {
		bin := bin
		t.Run(bin, func(t *testing.T) {
			g, err := cfg.Open(bin, cfg.Options{})
			require.NoError(t, err)
			bad := 0
			check := func(ok bool, format string, args ...any) {
				if !ok {
					bad++
					if bad <= 10 {
						t.Errorf(format, args...)
					}
				}
			}
			for _, f := range g.Functions {
				inside := func(a uint64) bool { return g.FunctionAt(a) == f }
				starts := map[uint64]bool{}
				var prevEnd uint64
				for _, b := range f.Blocks {
					check(b.Start < b.End && b.Last >= b.Start && b.Last < b.End, "%s: block %#x-%#x last %#x", f.Name, b.Start, b.End, b.Last)
					check(b.Start >= prevEnd, "%s: block %#x overlaps the previous one (ends %#x)", f.Name, b.Start, prevEnd)
					check(inside(b.Start), "block %#x outside its function %#x", b.Start, f.Start)
					prevEnd = b.End
					starts[b.Start] = true
				}
				for _, b := range f.Blocks {
					for _, e := range b.Succs {
						switch e.Kind {
						case cfg.EdgeJump, cfg.EdgeIndirect:
							if inside(e.Target) {
								check(starts[e.Target], "%#x: %s edge to %#x, not a block start", b.Last, e.Kind, e.Target)
							}
						case cfg.EdgeCond, cfg.EdgeFallthrough:
							if inside(e.Target) && e.Target != b.End || e.Kind == cfg.EdgeCond && inside(e.Target) {
								check(starts[e.Target], "%#x: %s edge to %#x, not a block start", b.Last, e.Kind, e.Target)
							}
						case cfg.EdgeTailCall:
							check(!inside(e.Target), "%#x: tail call %#x inside its own function", b.Last, e.Target)
						}
					}
				}
			}
			s := g.Stats()
			t.Logf("%+v", s)
			assert.Zero(t, bad)
		})
	}
}
