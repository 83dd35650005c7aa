package cfgio

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cloneGraph deep-copies g so that a test can mutate the copy.
func cloneGraph(g *cfg.Graph) *cfg.Graph {
	c := *g
	c.Functions = make([]*cfg.Function, len(g.Functions))
	for i, f := range g.Functions {
		fc := *f
		fc.Parts = slices.Clone(f.Parts)
		fc.Sources = slices.Clone(f.Sources)
		fc.Blocks = make([]*cfg.Block, len(f.Blocks))
		for k, b := range f.Blocks {
			bc := *b
			bc.Succs = slices.Clone(b.Succs)
			fc.Blocks[k] = &bc
		}
		fc.Indirect = make([]*cfg.IndirectJump, len(f.Indirect))
		for k, j := range f.Indirect {
			jc := *j
			jc.Targets = slices.Clone(j.Targets)
			fc.Indirect[k] = &jc
		}
		if f.Indirect == nil {
			fc.Indirect = nil
		}
		c.Functions[i] = &fc
	}
	return &c
}

// relink moves every code address of g by delta and every data address
// (tables) by dataDelta, as a relink at another base would.
func relink(g *cfg.Graph, delta, dataDelta uint64) *cfg.Graph {
	c := cloneGraph(g)
	c.Path += ".relinked"
	for _, f := range c.Functions {
		f.Start += delta
		f.End += delta
		for i := range f.Parts {
			f.Parts[i].Start += delta
			f.Parts[i].End += delta
		}
		for _, b := range f.Blocks {
			b.Start += delta
			b.End += delta
			if b.Last != 0 {
				b.Last += delta
			}
			for i := range b.Succs {
				if b.Succs[i].Target != 0 {
					b.Succs[i].Target += delta
				}
			}
		}
		for _, j := range f.Indirect {
			j.Addr += delta
			if j.Table != 0 {
				j.Table += dataDelta
			}
			if j.BoundFrom != 0 {
				j.BoundFrom += delta
			}
			for i := range j.Targets {
				j.Targets[i] += delta
			}
		}
	}
	return c
}

func named(g *cfg.Graph) *cfg.Graph {
	for _, f := range g.Functions {
		if f.Name == "" {
			f.Name = "anon"
		}
	}
	return g
}

func TestDiffEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b *cfg.Graph
	}{
		{"itself", smallGraph(), smallGraph()},
		{"stored order", smallGraph(), shuffled(smallGraph())},
		{"relinked, all named", named(smallGraph()), relink(named(smallGraph()), 0x10000, 0x2000)},
		{"synthetic relinked", named(synthGraph(200, 3000, 5)), relink(named(synthGraph(200, 3000, 5)), 0x7000, 0)},
		{"lua5.4 itself", realLua(t), cloneGraph(realLua(t))},
		{"empty", &cfg.Graph{}, &cfg.Graph{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Diff(tt.a, tt.b)
			var buf bytes.Buffer
			require.NoError(t, r.WriteText(&buf))
			assert.True(t, r.Equal(), "%.2000s", buf.String())
			assert.Equal(t, len(tt.a.Functions), r.Matched)
			assert.True(t, strings.Contains(buf.String(), "\nequal: "))
		})
	}
}

func TestDiffRelinkedUnnamed(t *testing.T) {
	// Unnamed functions are matched by address, so a relink shows the
	// unnamed function as removed and added, and its named caller as
	// changed (the call's target is absolute); nothing else differs.
	a := smallGraph()
	r := Diff(a, relink(a, 0x100, 0))
	require.Len(t, r.Removed, 1)
	require.Len(t, r.Added, 1)
	assert.Equal(t, FuncRef{Start: 0x3000, End: 0x3001, Blocks: 1}, r.Removed[0])
	assert.Equal(t, FuncRef{Start: 0x3100, End: 0x3101, Blocks: 1}, r.Added[0])
	require.Len(t, r.Changed, 1)
	d := r.Changed[0]
	assert.Equal(t, "<helper & co>", d.A.Name)
	require.Len(t, d.BlocksChanged, 1)
	assert.Equal(t, []EdgeRef{{"call", "0x3000"}}, d.BlocksChanged[0].EdgesRemoved)
	assert.Equal(t, []EdgeRef{{"call", "0x3100"}}, d.BlocksChanged[0].EdgesAdded)
	assert.Equal(t, 2, r.Matched)
}

func TestDiffChanges(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(g *cfg.Graph)
		check  func(t *testing.T, r *Report)
	}{
		{"function removed", func(g *cfg.Graph) { g.Functions = g.Functions[:2] }, func(t *testing.T, r *Report) {
			require.Len(t, r.Removed, 1)
			assert.Equal(t, uint64(0x3000), r.Removed[0].Start)
			// main's caller edge into the removed function is absolute either way.
			assert.Len(t, r.Changed, 0)
		}},
		{"function renamed", func(g *cfg.Graph) { g.Functions[0].Name = "main2" }, func(t *testing.T, r *Report) {
			require.Len(t, r.Removed, 1)
			require.Len(t, r.Added, 1)
			assert.Equal(t, "main", r.Removed[0].Name)
			assert.Equal(t, "main2", r.Added[0].Name)
		}},
		{"named on one side only", func(g *cfg.Graph) { g.Functions[2].Name = "found_later" }, func(t *testing.T, r *Report) {
			// Matched by address; its caller now names it.
			require.Len(t, r.Changed, 2)
			assert.Equal(t, []EdgeRef{{"call", "0x3000"}}, r.Changed[0].BlocksChanged[0].EdgesRemoved)
			assert.Equal(t, []EdgeRef{{"call", "found_later+0x0"}}, r.Changed[0].BlocksChanged[0].EdgesAdded)
			assert.Equal(t, []Change{{"name", "", "found_later"}}, r.Changed[1].Fields)
			assert.Empty(t, r.Changed[1].BlocksChanged)
		}},
		{"noreturn, size, sources, parts", func(g *cfg.Graph) {
			f := g.Functions[0]
			f.NoReturn, f.End, f.Sources = true, f.End+1, []string{"symbol", "fde", "fde"}
			f.Parts[0].End += 2
		}, func(t *testing.T, r *Report) {
			require.Len(t, r.Changed, 1)
			assert.Equal(t, []Change{
				{"size", "0x40", "0x41"},
				{"parts", "[0x10]", "[0x12]"},
				{"noreturn", "false", "true"},
			}, r.Changed[0].Fields, "sources compare as sets")
		}},
		{"block insts and last", func(g *cfg.Graph) {
			b := g.Functions[0].Blocks[1]
			b.Insts++
			b.Last++
		}, func(t *testing.T, r *Report) {
			require.Len(t, r.Changed, 1)
			require.Len(t, r.Changed[0].BlocksChanged, 1)
			bd := r.Changed[0].BlocksChanged[0]
			assert.Equal(t, "+0x10", bd.At)
			assert.Equal(t, []Change{{"insts", "3", "4"}, {"last", "+0xb", "+0xc"}}, bd.Fields)
		}},
		{"block split", func(g *cfg.Graph) {
			f := g.Functions[0]
			b := f.Blocks[0]
			b.End, b.Insts, b.Last, b.Succs = 0x1008, 2, 0x1004, []cfg.Edge{{Kind: cfg.EdgeFallthrough, Target: 0x1008}}
			f.Blocks = slices.Insert(f.Blocks, 1, &cfg.Block{Start: 0x1008, End: 0x1010, Insts: 2, Last: 0x100c,
				Succs: []cfg.Edge{{Kind: cfg.EdgeCond, Target: 0x1020}, {Kind: cfg.EdgeFallthrough, Target: 0x1010}}})
		}, func(t *testing.T, r *Report) {
			require.Len(t, r.Changed, 1)
			d := r.Changed[0]
			assert.Equal(t, []BlockRef{{"+0x8", 0x1008, 0x1010}}, d.BlocksAdded)
			require.Len(t, d.BlocksChanged, 1)
			assert.Equal(t, []EdgeRef{{"fallthrough", "+0x10"}, {"cond", "+0x20"}}, d.BlocksChanged[0].EdgesRemoved)
			assert.Equal(t, []EdgeRef{{"fallthrough", "+0x8"}}, d.BlocksChanged[0].EdgesAdded)
		}},
		{"cold block removed", func(g *cfg.Graph) {
			f := g.Functions[0]
			f.Blocks = f.Blocks[:len(f.Blocks)-1]
		}, func(t *testing.T, r *Report) {
			require.Len(t, r.Changed, 1)
			assert.Equal(t, []BlockRef{{"part0+0x0", 0x9000, 0x9010}}, r.Changed[0].BlocksRemoved)
		}},
		{"edge kinds", func(g *cfg.Graph) {
			g.Functions[0].Blocks[4].Succs[0].Kind = cfg.EdgeJump
			g.Functions[0].Blocks[5].Succs[1] = cfg.Edge{Kind: cfg.EdgeReturn}
		}, func(t *testing.T, r *Report) {
			require.Len(t, r.Changed, 1)
			bc := r.Changed[0].BlocksChanged
			require.Len(t, bc, 2)
			assert.Equal(t, "+0x38", bc[0].At)
			assert.Equal(t, []EdgeRef{{"tailcall", "<helper & co>+0x0"}}, bc[0].EdgesRemoved)
			assert.Equal(t, []EdgeRef{{"jump", "<helper & co>+0x0"}}, bc[0].EdgesAdded)
			assert.Equal(t, "part0+0x0", bc[1].At)
			assert.Equal(t, []EdgeRef{{Kind: "unresolved"}}, bc[1].EdgesRemoved)
			assert.Equal(t, []EdgeRef{{Kind: "return"}}, bc[1].EdgesAdded)
		}},
		{"indirect targets and kind", func(g *cfg.Graph) {
			j := g.Functions[0].Indirect[0]
			j.Targets = []uint64{0x1030, 0x9004}
			j.Table += 0x100 // data moved: not a difference
			k := g.Functions[0].Indirect[1]
			k.Kind, k.Entries, k.Targets = cfg.TableAbsolute, 4, []uint64{0x9000}
		}, func(t *testing.T, r *Report) {
			require.Len(t, r.Changed, 1)
			ic := r.Changed[0].IndirectChanged
			require.Len(t, ic, 2)
			assert.Equal(t, IndirectDiff{At: "+0x2a", AAddr: 0x102a, BAddr: 0x102a,
				TargetsRemoved: []string{"+0x38"}, TargetsAdded: []string{"part0+0x4"}}, ic[0])
			assert.Equal(t, IndirectDiff{At: "part0+0xc", AAddr: 0x900c, BAddr: 0x900c,
				Fields:       []Change{{"kind", "none", "absolute"}, {"entries", "0", "4"}},
				TargetsAdded: []string{"part0+0x0"}}, ic[1])
		}},
		{"indirect jump added", func(g *cfg.Graph) {
			f := g.Functions[1]
			f.Indirect = append(f.Indirect, &cfg.IndirectJump{Addr: 0x2004})
		}, func(t *testing.T, r *Report) {
			require.Len(t, r.Changed, 1)
			assert.Equal(t, []string{"+0x4"}, r.Changed[0].IndirectAdded)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := smallGraph()
			b := cloneGraph(a)
			tt.mutate(b)
			r := Diff(a, b)
			assert.False(t, r.Equal())
			tt.check(t, r)

			// Reversed, additions and removals swap.
			rr := Diff(b, a)
			assert.Equal(t, len(r.Added), len(rr.Removed))
			assert.Equal(t, len(r.Removed), len(rr.Added))
			assert.Equal(t, len(r.Changed), len(rr.Changed))

			var text bytes.Buffer
			require.NoError(t, r.WriteText(&text))
			assert.Contains(t, text.String(), "different: ")
			js, err := json.Marshal(r)
			require.NoError(t, err)
			var back Report
			require.NoError(t, json.Unmarshal(js, &back))
			assert.Equal(t, *r, back)
		})
	}
}

func TestDiffLuaOneBlockChanged(t *testing.T) {
	a := realLua(t)
	b := cloneGraph(a)
	// Change the biggest function's blocks: the diff names exactly it.
	var big *cfg.Function
	for _, f := range b.Functions {
		if big == nil || len(f.Blocks) > len(big.Blocks) {
			big = f
		}
	}
	require.NotNil(t, big)
	require.GreaterOrEqual(t, len(big.Blocks), 3)
	big.Blocks[1].Insts += 3
	big.Blocks = slices.Delete(big.Blocks, 2, 3)
	r := Diff(a, b)
	require.Len(t, r.Changed, 1)
	assert.Equal(t, big.Start, r.Changed[0].B.Start)
	assert.Len(t, r.Changed[0].BlocksRemoved, 1)
	require.NotEmpty(t, r.Changed[0].BlocksChanged)
	var text bytes.Buffer
	require.NoError(t, r.WriteText(&text))
	assert.Equal(t, 1, strings.Count(text.String(), "~ function "))
}

func BenchmarkDiffPythonSized(b *testing.B) {
	x := named(pythonSized())
	y := relink(x, 0x1000, 0)
	for b.Loop() {
		if r := Diff(x, y); !r.Equal() {
			b.Fatal("relinked graph differs")
		}
	}
}
