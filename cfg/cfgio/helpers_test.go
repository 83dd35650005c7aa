package cfgio

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/stretchr/testify/require"
)

// smallGraph has one of everything the schema can say: a named and an
// unnamed function, a cold part, every edge kind, resolved and unresolved
// indirect jumps, a call into another function and a name that JSON must
// escape.
func smallGraph() *cfg.Graph {
	return &cfg.Graph{
		Path:    "/usr/bin/example",
		BuildID: "0123456789abcdef",
		Functions: []*cfg.Function{
			{
				Name: "main", Start: 0x1000, End: 0x1040,
				Parts:   []cfg.Range{{Start: 0x9000, End: 0x9010}},
				Sources: []string{"fde", "symbol"},
				Blocks: []*cfg.Block{
					{Start: 0x1000, End: 0x1010, Insts: 4, Last: 0x100c, Succs: []cfg.Edge{{Kind: cfg.EdgeCond, Target: 0x1020}, {Kind: cfg.EdgeFallthrough, Target: 0x1010}}},
					{Start: 0x1010, End: 0x1020, Insts: 3, Last: 0x101b, Succs: []cfg.Edge{{Kind: cfg.EdgeCall, Target: 0x2000}, {Kind: cfg.EdgeFallthrough, Target: 0x1020}}},
					{Start: 0x1020, End: 0x1030, Insts: 2, Last: 0x102a, Succs: []cfg.Edge{{Kind: cfg.EdgeIndirect, Target: 0x1030}, {Kind: cfg.EdgeIndirect, Target: 0x1038}}},
					{Start: 0x1030, End: 0x1038, Insts: 2, Last: 0x1034, Succs: []cfg.Edge{{Kind: cfg.EdgeJump, Target: 0x9000}}},
					{Start: 0x1038, End: 0x1040, Insts: 2, Last: 0x103c, Succs: []cfg.Edge{{Kind: cfg.EdgeTailCall, Target: 0x2000}}},
					{Start: 0x9000, End: 0x9010, Insts: 3, Last: 0x900c, Succs: []cfg.Edge{{Kind: cfg.EdgeCall}, {Kind: cfg.EdgeUnresolved}}},
				},
				Indirect: []*cfg.IndirectJump{
					{Addr: 0x102a, Kind: cfg.TableComputedGoto, Table: 0x5000, Entries: 256, BoundFrom: 0x1024, Targets: []uint64{0x1030, 0x1038}},
					{Addr: 0x900c},
				},
			},
			{
				Name: "<helper & co>", Start: 0x2000, End: 0x2008, Sources: []string{"call"}, NoReturn: true,
				Blocks: []*cfg.Block{{Start: 0x2000, End: 0x2008, Insts: 2, Last: 0x2004, Succs: []cfg.Edge{{Kind: cfg.EdgeCall, Target: 0x3000}}}},
			},
			{
				Start: 0x3000, End: 0x3001, Sources: []string{"gap"},
				Blocks: []*cfg.Block{{Start: 0x3000, End: 0x3001, Insts: 1, Last: 0x3000, Succs: []cfg.Edge{{Kind: cfg.EdgeReturn}}}},
			},
		},
	}
}

// synthGraph builds a deterministic graph of nfunc functions and about
// nblock blocks with python3.11's proportions: mostly small functions, a
// few huge ones, two edges per block on average, and one computed-goto
// function with ~230 dispatch jumps of 256 targets each.
func synthGraph(nfunc, nblock int, seed uint64) *cfg.Graph {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	g := &cfg.Graph{Path: "/synthetic", BuildID: "feedface"}
	addr := uint64(0x400000)
	perFunc := nblock / nfunc
	for i := 0; i < nfunc; i++ {
		n := 1 + r.IntN(2*perFunc)
		if i == nfunc/2 {
			n = 20 * perFunc // the eval loop: one huge function
		}
		f := &cfg.Function{Start: addr, Sources: []string{"fde"}}
		if i%3 != 0 {
			f.Name = "fn_" + string(rune('a'+i%26)) + "_" + strconv.Itoa(i)
		}
		for k := 0; k < n; k++ {
			size := uint64(2 + r.IntN(40))
			b := &cfg.Block{Start: addr, End: addr + size, Insts: 1 + int(size/4), Last: addr + size - 1}
			switch r.IntN(5) {
			case 0:
				b.Succs = []cfg.Edge{{Kind: cfg.EdgeCond, Target: f.Start + uint64(r.IntN(int(addr-f.Start)+1))}, {Kind: cfg.EdgeFallthrough, Target: addr + size}}
			case 1:
				callee := f.Start
				if len(g.Functions) > 0 {
					callee = g.Functions[r.IntN(len(g.Functions))].Start
				}
				b.Succs = []cfg.Edge{{Kind: cfg.EdgeCall, Target: callee}, {Kind: cfg.EdgeFallthrough, Target: addr + size}}
			case 2:
				b.Succs = []cfg.Edge{{Kind: cfg.EdgeJump, Target: f.Start}}
			case 3:
				b.Succs = []cfg.Edge{{Kind: cfg.EdgeFallthrough, Target: addr + size}}
			default:
				b.Succs = []cfg.Edge{{Kind: cfg.EdgeReturn}}
			}
			if k == n-1 {
				b.Succs = []cfg.Edge{{Kind: cfg.EdgeReturn}}
			}
			f.Blocks = append(f.Blocks, b)
			addr += size
		}
		f.End = addr
		if i == nfunc/2 {
			for k := 0; k < 230; k++ {
				j := &cfg.IndirectJump{Addr: f.Start + uint64(k)*(f.End-f.Start)/230, Kind: cfg.TableComputedGoto, Table: 0x900000, Entries: 256}
				for t := 0; t < 256; t++ {
					j.Targets = append(j.Targets, f.Start+uint64(t)*(f.End-f.Start)/256)
				}
				f.Indirect = append(f.Indirect, j)
			}
		}
		g.Functions = append(g.Functions, f)
		addr += uint64(r.IntN(16))
	}
	return g
}

// luaGraph recovers /usr/bin/lua5.4 once per test binary: recovery is
// the expensive part of the tests that use it.
var luaGraph = sync.OnceValues(func() (*cfg.Graph, error) {
	return cfg.Open(luaPath, cfg.Options{})
})

const luaPath = "/usr/bin/lua5.4"

func realLua(t testing.TB) *cfg.Graph {
	t.Helper()
	require.FileExists(t, luaPath)
	g, err := luaGraph()
	require.NoError(t, err)
	return g
}
