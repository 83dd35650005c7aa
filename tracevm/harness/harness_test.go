package harness

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/tracevm"
	"golang.org/x/arch/x86/x86asm"
)

// hot is the hot-loop threshold of every test.
const hot = 64

func TestMain(m *testing.M) {
	if _, err := Setup(hot); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// traced is one run of a test function with the JIT on, in a block of
// fresh loop ids, with what the machine and th_api counted meanwhile.
type traced struct {
	ids    uint64
	res    Result
	loop   Loop  // the traces of the run's loops
	api    Stats // th_api's counters, this run only
	before tracevm.Snapshot
	after  tracevm.Snapshot
}

// runJIT runs f(ids, in...) with the JIT on.
func runJIT(t *testing.T, f Func, in ...int64) traced {
	t.Helper()
	require.True(t, JIT())
	r := traced{ids: NewIDs()}
	m := Machine()
	r.before = m.Snapshot()
	s0 := ReadStats()
	r.res = f.Run(append([]int64{int64(r.ids)}, in...)...)
	r.api = ReadStats().Sub(s0)
	r.after = m.Snapshot()
	r.loop = LoopFigures(r.after, r.ids, r.ids+IDSpan())
	return r
}

// runInterp runs the switch interpreter f under the JIT and checks its
// result and step count against ref's and against a native run.
func runInterp(t *testing.T, f Func, ref func(n, k int64) (int64, int64), n, k int64) traced {
	t.Helper()
	want, steps := ref(n, k)
	r := runJIT(t, f, n, k)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, steps, r.res.Out[0])
	require.Equal(t, r.res, r.native(f, n, k))
	return r
}

// native runs f with the JIT off and the same loop ids.
func (r traced) native(f Func, in ...int64) Result {
	return f.RunNative(append([]int64{int64(r.ids)}, in...)...)
}

func (r traced) aborts(reason string) uint64 {
	return r.after.Aborts[reason] - r.before.Aborts[reason]
}

// log returns the disassembly of every trace of the run.
func (r traced) log() string {
	var b strings.Builder
	for _, h := range r.loop.Heads {
		b.WriteString(TraceLog(h))
	}
	return b.String()
}

// checkTraced checks that the run compiled a trace, that every back-edge
// is accounted for (run natively through th_api, taken inside a trace,
// or consumed by a recording that produced a trace) and that at least
// minShare of them ran inside traces. backEdges is the number of times
// the function's loops jumped back, computed independently.
func (r traced) checkTraced(t *testing.T, backEdges int64, minShare float64) {
	t.Helper()
	l := r.loop
	require.GreaterOrEqual(t, l.RootTraces, 1, "no trace compiled; aborts %v", r.after.Aborts)
	native := r.api.Calls[tracevm.APIBackwardsBranch]
	recorded := r.recorded()
	assert.Equal(t, uint64(backEdges), native+l.Iterations+l.Unrolled+recorded,
		"back-edges: %d run natively + %d in traces + %d unrolled in traces + %d recorded", native, l.Iterations, l.Unrolled, recorded)
	share := float64(l.Iterations+l.Unrolled) / float64(backEdges)
	assert.GreaterOrEqual(t, share, minShare, "share of back-edges inside traces")
	r.checkSites(t)
	t.Logf("figures: %d root + %d side traces, %d of %d back-edges in traces (%.2f%%), %d run natively, %d exits taken",
		l.RootTraces, l.SideTraces, l.Iterations+l.Unrolled, backEdges, 100*share, native, l.Exits)
}

// recorded counts the back-edges recordings took themselves: one for
// each whose trace ends by linking to a trace (a side trace may end in an
// exit instead), and those of other loops each went through (unrolled).
// A root trace that closes its loop leaves the recording at its
// back-edge, which then runs natively: the runtime enters the new trace.
func (r traced) recorded() uint64 {
	n := uint64(r.loop.UnrolledBackEdges)
	for _, h := range r.loop.Heads {
		log := TraceLog(h)
		if strings.Contains(log, "; link ") {
			n++
		}
	}
	return n
}

// checkSites: every shim call came from a registered site.
func (r traced) checkSites(t *testing.T) {
	t.Helper()
	assert.Zero(t, r.api.UnknownSite, "shim calls from unregistered sites")
	assert.Zero(t, r.api.APIMismatch, "shim calls whose API is not the site's")
	assert.Zero(t, r.api.CountFull, "hits with no counter")
}

func xorshift(x uint64) uint64 {
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	return x
}

func TestSites(t *testing.T) {
	shims := map[uint64]bool{}
	for _, s := range st.sites {
		shims[s.Addr] = true
	}
	want := map[string][]tracevm.API{
		"tt_nested":    {tracevm.APIBackwardsBranch, tracevm.APIFellthroughBranch},
		"tt_recurse":   {tracevm.APIBackwardsBranch, tracevm.APIBeginBranchableFrame, tracevm.APIEndBranchableFrame},
		"tt_is_traced": {tracevm.APIBackwardsBranch, tracevm.APIIsTraced},
		"tt_ensure":    {tracevm.APIBackwardsBranch, tracevm.APIEnsureNotTraced},
		"tt_merge":     {tracevm.APIBackwardsBranch, tracevm.APIBeginMergeBlock, tracevm.APIEndMergeBlock},
	}
	for _, f := range Funcs {
		t.Run(f.Name, func(t *testing.T) {
			sites := f.Sites()
			if shimsInHelpers[f.Name] {
				require.Empty(t, sites, "its annotation is in a helper")
				return
			}
			require.NotEmpty(t, sites)
			insts, err := f.Insts()
			require.NoError(t, err)
			calls := 0
			for i := range insts {
				in := &insts[i]
				if !shims[in.Addr] {
					continue
				}
				calls++
				assert.Equal(t, x86asm.CALL, in.Op, "%#x", in.Addr)
				assert.Equal(t, 5, in.Len, "%#x: not call rel32", in.Addr)
			}
			assert.Equal(t, len(sites), calls, "sites found by decoding the function again")
			apis := map[tracevm.API]bool{}
			for _, s := range sites {
				apis[s.API] = true
				assert.Equal(t, s.Addr, st.sites[s.GSite].Addr)
			}
			for _, a := range want[f.Name] {
				assert.True(t, apis[a], "no call of API %d", a)
			}
		})
	}
}

func TestCountedLoop(t *testing.T) {
	const n, k = 200000, 7
	want := int64(3*n*(n-1)/2 + k*n)
	r := runJIT(t, Sum, n, k)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, want, r.native(Sum, n, k).Ret)
	r.checkTraced(t, n, 0.99)
	assert.Equal(t, 1, r.loop.RootTraces)
	assert.Zero(t, r.loop.SideTraces)
}

func refBranchy(n int64, seed uint64) (s, odd int64, x uint64) {
	x = seed | 1
	for i := int64(0); i < n; i++ {
		x = xorshift(x)
		if x&1 != 0 {
			s += int64(x >> 40)
			odd++
		} else {
			s ^= int64(x >> 20)
		}
	}
	return s, odd, x
}

// branchyN and branchySeed: the run of Branchy the tests make.
const branchyN = 200000

var branchySeed = uint64(0x9e3779b97f4a7c15)

// runBranchy runs Branchy with the JIT on and checks its results against
// refBranchy's.
func runBranchy(t *testing.T) traced {
	t.Helper()
	s, odd, x := refBranchy(branchyN, branchySeed)
	r := runJIT(t, Branchy, branchyN, int64(branchySeed))
	require.Equal(t, s, r.res.Ret)
	require.Equal(t, odd, r.res.Out[0])
	require.Equal(t, int64(x), r.res.Out[1])
	return r
}

func TestDataDependentBranch(t *testing.T) {
	const n = branchyN
	r := runBranchy(t)
	require.Equal(t, r.res, r.native(Branchy, n, int64(branchySeed)))
	// Both sides are common: the root trace's guard exits, and the other
	// side gets a side trace linked back to the root.
	r.checkTraced(t, n, 0.95)
	assert.GreaterOrEqual(t, r.loop.SideTraces, 1)
	assert.Greater(t, r.loop.Exits, uint64(0))
	assert.Contains(t, r.log(), "side of")
}

// TestBackgroundCompile: with the compiler on a goroutine of its own (as
// in a patched program), a finished recording's thread goes on at once in
// the original code and its trace is installed meanwhile; the loop and its
// exits get one trace each, and the results stay exact. A second run of
// the same loops runs in the traces the first one left.
func TestBackgroundCompile(t *testing.T) {
	m := Machine()
	m.SetBackground(true)
	defer m.SetBackground(false)
	r := runBranchy(t)
	require.True(t, m.WaitCompiled(time.Minute), "recordings still waiting for the compiler")
	after := m.Snapshot()
	l := LoopFigures(after, r.ids, r.ids+IDSpan())
	assert.Equal(t, 1, l.RootTraces, "one root trace for the loop; aborts %v", after.Aborts)
	assert.Zero(t, after.Aborts["internal-error"]-r.before.Aborts["internal-error"])
	assert.Zero(t, after.Aborts["compile"]-r.before.Aborts["compile"])

	again := Branchy.Run(int64(r.ids), branchyN, int64(branchySeed))
	require.Equal(t, r.res, again, "the second run, in the traces")
	l2 := LoopFigures(m.Snapshot(), r.ids, r.ids+IDSpan())
	assert.Greater(t, l2.Iterations, l.Iterations, "iterations in the traces")
}

// TestBlockCache records the same loop body twice (fresh loop ids): the
// second recording runs the body's blocks from the recorder's cache,
// chained without a switch to the recorder, and its trace computes what
// the first's did.
func TestBlockCache(t *testing.T) {
	const n = 100000
	for _, k := range []int64{0x15, 0x0a} {
		first := runJIT(t, Chain, n, k)
		want := first.native(Chain, n, k)
		require.Equal(t, want, first.res)
		first.checkTraced(t, n, 0.95)
		second := runJIT(t, Chain, n, k)
		require.Equal(t, want, second.res)
		second.checkTraced(t, n, 0.95)
		chained := second.after.ChainedBlocks - second.before.ChainedBlocks
		assert.GreaterOrEqual(t, chained, uint64(4), "k %#x: the second recording's blocks ran chained", k)
		t.Logf("k %#x: %d blocks chained", k, chained)
	}
}

// TestBlockCacheReturn: a kept block's branch that leads to a return is
// never chained past the return (recorded twice, the second recording
// would run on with the return address still on the stack); a kept block
// that ends with an inlined call is chained into the callee.
func TestBlockCacheReturn(t *testing.T) {
	const n = 50000
	for _, k := range []int64{7, 5, 6} {
		for run := 0; run < 2; run++ {
			r := runJIT(t, ChainRet, n, k)
			require.Equal(t, r.native(ChainRet, n, k), r.res, "k %d run %d", k, run)
			r.checkTraced(t, n, 0.9)
			if run == 1 {
				// The call ends a kept block chained into the
				// helper's first block, and so on.
				assert.GreaterOrEqual(t, r.after.ChainedBlocks-r.before.ChainedBlocks, uint64(2), "k %d", k)
			}
		}
	}
}

// TestBlockCacheIndirect: a switch interpreter's dispatch (an indirect
// jump through a jump table) recorded a second time runs from the cache,
// the jump's targets tested in the chain stubs, and the traces compute
// the same.
func TestBlockCacheIndirect(t *testing.T) {
	const n, k = 20000, 0x5a5
	want, steps := refInterp(n, k)
	var chained [2]uint64
	for run := range chained {
		r := runJIT(t, Interp, n, k)
		require.Equal(t, want, r.res.Ret, "run %d", run)
		require.Equal(t, steps, r.res.Out[0], "run %d", run)
		chained[run] = r.after.ChainedBlocks - r.before.ChainedBlocks
		r.checkTraced(t, n-1, 0.95)
	}
	// The second recording chains through the dispatch, which the first
	// linked as it went.
	assert.Greater(t, chained[1], chained[0]+5, "chained blocks, first and second run: %v", chained)
}

// TestBlockCacheLogFull: chained blocks that loop fill the chain log; the
// recording then hears of them, too late for its instruction limit, and
// the original code goes on from where the chain stopped.
func TestBlockCacheLogFull(t *testing.T) {
	const n, m, k = 3000, 20000, 5
	r := runJIT(t, ChainLong, n, m, k)
	require.Equal(t, r.native(ChainLong, n, m, k), r.res)
	assert.Greater(t, r.aborts("too-long"), uint64(0))
	chained := r.after.ChainedBlocks - r.before.ChainedBlocks
	assert.GreaterOrEqual(t, chained, uint64(4096), "a full log of chained blocks (tracevm.chainLogCap)")
	t.Logf("%d blocks chained, %d recordings too long", chained, r.aborts("too-long"))
}

func TestNestedLoops(t *testing.T) {
	const n, m = 300, 500
	want := int64(n*(n-1)/2*(m*(m-1)/2) + n*(m*(m-1)/2) + n*(n-1)/2)
	r := runJIT(t, Nested, n, m, 0)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, want, r.native(Nested, n, m, 0).Ret)
	outer := LoopFigures(r.after, r.ids, r.ids+1)
	inner := LoopFigures(r.after, r.ids+1, r.ids+2)
	assert.Equal(t, 1, inner.RootTraces, "inner loop trace")
	assert.Equal(t, 1, outer.RootTraces, "outer loop trace")
	// The outer trace enters the inner one.
	var outerLog string
	for _, h := range outer.Heads {
		outerLog += TraceLog(h)
	}
	assert.Contains(t, outerLog, "; link ")
	r.checkTraced(t, n*m+n, 0.95)
	t.Logf("inner: %d back-edges in traces of %d; outer: %d of %d", inner.Iterations, n*m, outer.Iterations, n)
}

// A trace that links into another loop's trace leaves for the original
// code once the governor drops that trace: the link jumps to its code
// directly, and the loop would otherwise run on in a trace that loses.
func TestLinkIntoDroppedTrace(t *testing.T) {
	const n, m = 300, 500
	want := int64(n*(n-1)/2*(m*(m-1)/2) + n*(m*(m-1)/2) + n*(n-1)/2)
	r := runJIT(t, Nested, n, m, 0)
	require.Equal(t, want, r.res.Ret)
	inner := LoopFigures(r.after, r.ids+1, r.ids+2)
	outer := LoopFigures(r.after, r.ids, r.ids+1)
	require.Equal(t, 1, inner.RootTraces)
	require.Equal(t, 1, outer.RootTraces)
	var outerLog string
	for _, h := range outer.Heads {
		outerLog += TraceLog(h)
	}
	require.Contains(t, outerLog, "; link ", "the outer trace enters the inner one")

	DropTraces(r.ids + 1)
	require.Equal(t, want, Nested.Run(int64(r.ids), n, m, 0).Ret)
	after := Machine().Snapshot()
	inner2 := LoopFigures(after, r.ids+1, r.ids+2)
	outer2 := LoopFigures(after, r.ids, r.ids+1)
	assert.Equal(t, inner.Iterations, inner2.Iterations, "no iteration in the dropped trace")
	// The outer trace still runs, and leaves at its link (an exit listed
	// with the periodic ones: never a side trace).
	assert.GreaterOrEqual(t, outer2.Periodic-outer.Periodic, uint64(n/2), "exits at the link")
	assert.Equal(t, 1, inner2.RootTraces, "never recorded again")
}

// TestShortInnerLoop: an inner loop of a few iterations each time (the
// same count, or one that changes from one outer iteration to the next)
// gets hot first and gets a trace, entered and left every few iterations.
// The outer loop's trace, recorded once that shows, runs the inner loop
// unrolled instead of linking to it (side traces take the other trip
// counts); with unrolling off it links.
func TestShortInnerLoop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		k, vary int64
		unroll  bool
	}{
		{"three each time", 3, 0, true},
		{"zero to four", 5, 1, true},
		{"three each time, not unrolled", 3, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.unroll {
				Machine().SetLoopUnroll(-1)
				defer Machine().SetLoopUnroll(0)
			}
			const n = 20000
			var want, backEdges int64
			for i := int64(0); i < n; i++ {
				m := tc.k
				if tc.vary != 0 {
					m = i % tc.k
				}
				for j := int64(0); j < m; j++ {
					want += i*j + j
				}
				want += i
				backEdges += m + 1
			}
			r := runJIT(t, Nested, n, tc.k, tc.vary)
			require.Equal(t, want, r.res.Ret)
			require.Equal(t, want, r.native(Nested, n, tc.k, tc.vary).Ret)
			outer := LoopFigures(r.after, r.ids, r.ids+1)
			require.Equal(t, 1, outer.RootTraces, "outer loop trace; aborts %v", r.after.Aborts)
			unrolled := r.after.BackEdgesUnrolled - r.before.BackEdgesUnrolled
			if !tc.unroll {
				assert.Zero(t, unrolled)
				assert.Contains(t, r.log(), "; link ", "the outer trace enters the inner one")
				r.checkTraced(t, backEdges, 0.5)
				return
			}
			assert.NotZero(t, unrolled, "back-edges unrolled")
			assert.Greater(t, outer.Unrolled, uint64(n/2), "inner back-edges inside the outer loop's traces")
			r.checkTraced(t, backEdges, 0.98)
		})
	}
}

func TestInlinedCalls(t *testing.T) {
	const n, k = 100000, 0x1234
	var want int64
	for i := int64(0); i < n; i++ {
		want += (i * 31) ^ k
		want += (i & 255) * (i & 255)
	}
	r := runJIT(t, Calls, n, k)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, want, r.native(Calls, n, k).Ret)
	r.checkTraced(t, n, 0.99)
	log := r.log()
	// Both helpers are inlined: a pushed return address, the body, and
	// the return turned into a pop; no native call.
	assert.Equal(t, 2, strings.Count(log, "; push-ret "), log)
	assert.Equal(t, 2, strings.Count(log, "; pop-ret "), log)
	assert.NotContains(t, log, "; call ")
}

// TestCalleeLoop: a helper whose own loop runs a data-dependent number of
// times is called natively (after one recording that finds its loop),
// while the loop-free helper beside it is still inlined.
func TestCalleeLoop(t *testing.T) {
	const n = 100000
	var want int64
	for i := int64(0); i < n; i++ {
		x := uint64(i) * 0x9e3779b9
		for ; x != 0; x >>= 1 {
			want += int64(x & 1)
		}
		want += (i * 31) ^ 3
	}
	checkCalleeNative(t, CalleeLp, n, want, "tt_h_bits")
}

// checkCalleeNative runs f (n iterations of a loop calling a helper with
// a loop of its own, and tt_h_mix): the result is want, natively and
// traced; after one recording that finds the helper's loop, the trace
// calls it natively and inlines tt_h_mix, and no side trace depends on
// the helper's trip count.
func checkCalleeNative(t *testing.T, f Func, n, want int64, helper string) {
	t.Helper()
	r := runJIT(t, f, n)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, want, r.native(f, n).Ret)
	r.checkTraced(t, n, 0.99)
	assert.Equal(t, uint64(1), r.aborts("callee-loop"))
	log := r.log()
	assert.Equal(t, 1, strings.Count(log, "; call "), "%s runs natively: %s", helper, log)
	assert.Equal(t, 1, strings.Count(log, "; push-ret "), "tt_h_mix is inlined: %s", log)
	assert.Zero(t, r.loop.SideTraces, "no guard depends on the helper's trip count")
}

// TestCalleeLoopOnce: a helper's loop that ran once while the trace was
// recorded (its back-branch not taken) makes the helper native, as one
// that ran twice does: unrolled once, the trace would leave at that
// branch whenever the data gave the loop more trips.
func TestCalleeLoopOnce(t *testing.T) {
	const n = 100000
	var want int64
	for i := int64(0); i < n; i++ {
		x := uint64(i) * 0x9e3779b9
		if i < n/2 {
			x = uint64(1 + i&1)
		}
		for {
			if x&3 == 3 {
				want++
			}
			x >>= 2
			if x == 0 {
				break
			}
		}
		want += (i * 31) ^ 5
	}
	checkCalleeNative(t, CalleeOnce, n, want, "tt_h_pairs")
}

func refRecurse(depth, n, below int64, act, edges *int64) int64 {
	var s int64
	for i := int64(0); i < n; i++ {
		s += i + depth*1000
		if depth > 0 {
			s += refRecurse(depth-1, below, below, act, edges) % 100003
		}
		*edges++
	}
	*act++
	return s
}

func TestRecursionInBranchableFrame(t *testing.T) {
	const depth, n, below = 2, 200, 30
	var act, edges int64
	want := refRecurse(depth, n, below, &act, &edges)
	r := runJIT(t, Recurse, depth, n, below)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, act, r.res.Out[0], "activations")
	require.Equal(t, r.res, r.native(Recurse, depth, n, below))
	// Every level's loop has a trace; above level 0 it calls the next
	// level natively from inside the branchable frame (the log names the
	// call instruction).
	insts, err := Recurse.Insts()
	require.NoError(t, err)
	var self []uint64
	for i := range insts {
		if to, ok := insts[i].Target(); ok && insts[i].Op == x86asm.CALL && to == Recurse.Addr() {
			self = append(self, insts[i].Addr)
		}
	}
	require.Len(t, self, 1, "the recursive call")
	call := fmt.Sprintf("; call %#x", self[0])
	for d := uint64(0); d <= depth; d++ {
		l := LoopFigures(r.after, r.ids+d, r.ids+d+1)
		require.Equal(t, 1, l.RootTraces, "level %d", d)
		if d > 0 {
			log := ""
			for _, h := range l.Heads {
				log += TraceLog(h)
			}
			assert.Contains(t, log, call, "level %d", d)
		}
		t.Logf("level %d: %d back-edges in %d+%d traces", d, l.Iterations, l.RootTraces, l.SideTraces)
	}
	r.checkTraced(t, edges, 0.95)
}

func refInterp(n, k int64) (r1, steps int64) {
	for c := n; c > 0; c-- {
		r1 += (c * c) ^ k
		r1 += (c >> 1) & 7
	}
	return r1, 3 + 11*n + 1
}

func TestSwitchInterpreter(t *testing.T) {
	const n, k = 100000, 0x5a5
	insts, err := Interp.Insts()
	require.NoError(t, err)
	jumps := 0
	for i := range insts {
		if insts[i].Flow() == x86dec.FlowIndirectJump {
			jumps++
		}
	}
	require.Positive(t, jumps, "gcc compiled the switch without a jump table")
	r := runInterp(t, Interp, refInterp, n, k)
	// The program array is on the interpreter's stack, at addresses the
	// trace knows (%rsp is the same at every annotation call): each
	// dispatch becomes a guard on the opcode it reads, not on the jump
	// table's target.
	assert.Zero(t, strings.Count(r.log(), "; guard-target "), r.log())
	r.checkTraced(t, n-1, 0.99)
}

// runSquaresXor runs f, an interpreter of the five-instruction program
// r1 = sum over c = n..1 of (c*c ^ k), under the JIT and checks its
// result and step count against the sum and against a native run.
func runSquaresXor(t *testing.T, f Func, n, k int64) traced {
	t.Helper()
	var want int64
	for c := n; c > 0; c-- {
		want += (c * c) ^ k
	}
	r := runJIT(t, f, n, k)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, 5*n+1, r.res.Out[0], "steps")
	require.Equal(t, r.res, r.native(f, n, k))
	return r
}

// An interpreter whose pc lives in memory: the trace forwards each
// stored pc to the load that reads it back, so every dispatch is on a
// known instruction of read-only code and its jump-table guard goes.
func TestMemoryPCInterpreter(t *testing.T) {
	const n, k = 100000, 0x3c9
	r := runSquaresXor(t, MemInterp, n, k)
	r.checkTraced(t, n-1, 0.99)
	log := r.log()
	assert.Zero(t, strings.Count(log, "; guard-target "), "dispatches left to check:\n%s", log)
}

// TestVariantForAnotherFrame: the memory-pc interpreter run twice with its
// state in two frames (tt_frames): the second run enters the root trace,
// specialised on the first frame, and leaves at its head guard; the side
// trace recorded there is optimised as a variant of the root, specialised
// on the second frame, and dispatches without checking targets as the
// root does. Both runs' iterations run in traces.
func TestVariantForAnotherFrame(t *testing.T) {
	const n, k = 100000, 0x2f1
	var want int64
	for c := int64(n); c > 0; c-- {
		want += (c * c) ^ k
	}
	r := runJIT(t, Frames, n, k)
	require.Equal(t, 2*want, r.res.Ret)
	require.Equal(t, int64(2*(5*n+1)), r.res.Out[0], "steps")
	require.Equal(t, r.res, r.native(Frames, n, k))
	log := r.log()
	require.Equal(t, 1, strings.Count(log, "optimised as a variant of its root"), log)
	variant := log[strings.Index(log, "optimised as a variant"):]
	if i := strings.Index(variant, "redmagic: trace"); i >= 0 {
		variant = variant[:i]
	}
	assert.Zero(t, strings.Count(variant, "; guard-target "), "dispatches left to check in the variant:\n%s", variant)
	r.checkTraced(t, 2*(n-1), 0.99)
}

// TestPeeledTaggedInterpreter: a tagged register machine whose registers
// and frame lie far from its program and from the C frame (tt_tagged): the
// loop calls nothing natively, so its peeled copy takes every location it
// reads at a known address as known unless the loop changes it: the
// registers' tags (stored back unchanged), the frame's register count and
// the function's constant k, which neither the first copy's guards nor
// the bytecode's neighbourhood cover. The second copy checks fewer of
// them, and the results are the native ones.
func TestPeeledTaggedInterpreter(t *testing.T) {
	const n, k = 100000, 0x2b5
	r := runSquaresXor(t, Tagged, n, k)
	log := r.log()
	require.Greater(t, r.after.LoopsPeeled, r.before.LoopsPeeled, log)
	regs := uint64(r.res.Out[1])
	const tagOff, tvalSize = 8, 16
	// r3 is written before it is read: its tag is the store's, not an
	// assumption.
	for _, reg := range []uint64{0, 1} {
		assert.Contains(t, log, fmt.Sprintf("[%#x]=0x3/1", regs+reg*tvalSize+tagOff), "register %d's tag", reg)
	}
	assert.NotContains(t, log, fmt.Sprintf("[%#x]=", regs+3*tvalSize+tagOff), "r3's tag")
	// k is only xored in: the first copy has no guard to gain by it.
	consts := uint64(r.res.Out[3])
	assert.Contains(t, log, fmt.Sprintf("[%#x]=0x%x/8", consts, k), "the constant k")
	assert.Contains(t, log, fmt.Sprintf("[%#x]=0x3/1", consts+tagOff), "the constant's tag")
	assert.Contains(t, log, fmt.Sprintf("[%#x]=0x8/8", uint64(r.res.Out[2])), "the register count")
	// The close checks the pointer to the constants before them: had
	// the constants been freed and the pointer moved, reading them at
	// their old address could fault.
	ptr := strings.Index(log, fmt.Sprintf("[%#x]=%#x/8", uint64(r.res.Out[4]), consts))
	kAt := strings.Index(log, fmt.Sprintf("[%#x]=0x%x/8", consts, k))
	require.GreaterOrEqual(t, ptr, 0, "the pointer to the constants is assumed")
	assert.Less(t, ptr, kAt, "the pointer is checked before what it points to")
	first, second, ok := strings.Cut(log, "; peeled:")
	require.True(t, ok, log)
	assert.Less(t, strings.Count(second, "cmp"), strings.Count(first, "cmp")/2, log)
	r.checkTraced(t, n-1, 0.99)
}

// runTVStack runs the stack machine of 16-byte tagged values (tt_tvstack)
// under the JIT, retagging its accumulator at c == retag, and checks its
// results against the closed form and a native run.
func runTVStack(t *testing.T, n, retag int64) traced {
	t.Helper()
	r := runJIT(t, TVStack, n, retag)
	log := r.log()
	require.Equal(t, n*(n+1)/2, r.res.Out[1], log)
	require.Equal(t, 11*n+1, r.res.Out[0], "steps")
	tag := int64(3)
	if retag >= 1 && retag <= n {
		tag = 5
	}
	require.Equal(t, tag, r.res.Out[2], "the accumulator's tag")
	require.Equal(t, r.res, r.native(TVStack, n, retag))
	return r
}

// TestVectorCopies: the stack machine copies out, at each pop after an
// add, a value whose tag a whole copy stored and whose payload the add's
// 8-byte store changed. Its pushes and pops go through general registers
// (vecpair.go), and a 16-byte load the trace still makes after stores of
// its halves apart is made in halves (widesplit.go).
func TestVectorCopies(t *testing.T) {
	const n = 100000
	r := runTVStack(t, n, 0)
	r.checkTraced(t, n-1, 0.99)
	log := r.log()
	pairs := r.after.VectorCopiesPaired - r.before.VectorCopiesPaired
	require.NotZero(t, pairs, log)
	split := r.after.WideLoadsSplit - r.before.WideLoadsSplit
	assert.Equal(t, strings.Count(log, "movhps"), int(split), log)
	// Five pushes and pops an iteration, in each of the two copies.
	assert.GreaterOrEqual(t, pairs, uint64(4), log)
}

// TestVectorCopiesExits: the accumulator takes another tag halfway, and
// from then on the trace's tag guard fails in every iteration, right
// after a copy through general registers the trace took from registers it
// knows: each exit leaves the machine state the interpreter expects (the
// results are the native ones), and a side trace takes over.
func TestVectorCopiesExits(t *testing.T) {
	const n = 100000
	r := runTVStack(t, n, n/2)
	require.NotZero(t, r.after.VectorCopiesPaired-r.before.VectorCopiesPaired, r.log())
	require.NotZero(t, r.after.SideTraces-r.before.SideTraces, r.log())
	r.checkTraced(t, n-1, 0.9)
	for _, retag := range []int64{1, 2, 7, n - 1, n} {
		runTVStack(t, 5000, retag)
	}
}

// TestCarriedRegisters: the tagged machine's peeled copy knows its
// dispatch registers (the program counter's, the register file's) with
// the same values where it starts and where it closes: its close leaves
// them to the exits instead of setting them for every iteration.
func TestCarriedRegisters(t *testing.T) {
	const n, k = 100000, 0x1d3
	r := runSquaresXor(t, Tagged, n, k)
	log := r.log()
	_, second, ok := strings.Cut(log, "; peeled:")
	require.True(t, ok, log)
	_, close, ok := strings.Cut(second, "; close ")
	require.True(t, ok, log)
	close, _, _ = strings.Cut(close, "jmpq")
	assert.NotContains(t, close, "mov $", log)
	r.checkTraced(t, n-1, 0.99)
}

// TestStoreThroughUnknownPointer: a value the trace stored is forwarded
// to its load for certain only while nothing could have overwritten it; a
// store through a pointer the optimiser does not know could, and once in
// 97 iterations does.
func TestStoreThroughUnknownPointer(t *testing.T) {
	const n = 100000
	var want int64
	for i := int64(0); i < n; i++ {
		if i%97 == 96 {
			want += i ^ 1
		} else {
			want += 3
		}
	}
	r := runJIT(t, Alias, n)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, r.res, r.native(Alias, n))
	r.checkTraced(t, n, 0.9)
}

// TestPrivateFrameSlots runs a loop whose frame has a slot only the
// function addresses and one whose address a helper writes through: the
// first is forwarded across the helper's store through an unknown
// pointer, the second reloaded, and the results are the native ones.
func TestPrivateFrameSlots(t *testing.T) {
	const n = 100000
	var want int64
	for i := int64(0); i < n; i++ {
		e := int64(1)
		if i%5 == 4 {
			e += i
		}
		want += e * 3
	}
	r := runJIT(t, Frame, n)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, r.res, r.native(Frame, n))
	r.checkTraced(t, n, 0.9)
	assert.Contains(t, r.log(), "the loop frame's private slots", "the frame's slots were found")
}

func refFuncPtr(n, k, mask int64) int64 {
	fs := []func(x int64) int64{
		func(x int64) int64 { return x + k },
		func(x int64) int64 { return x*3 - k },
		func(x int64) int64 { return (x ^ k) >> 1 },
		func(x int64) int64 { return x*x%1009 + k },
	}
	var s int64
	for i := int64(0); i < n; i++ {
		s += fs[i&mask](i)
	}
	return s
}

func TestIndirectCalls(t *testing.T) {
	const n, k = 100000, 77
	for _, tc := range []struct {
		mask     int64
		minShare float64
	}{
		{0, 0.99}, // one target
		{3, 0.9},  // four targets in turn: side traces chain the guards
	} {
		t.Run(fmt.Sprintf("mask%d", tc.mask), func(t *testing.T) {
			want := refFuncPtr(n, k, tc.mask)
			r := runJIT(t, FuncPtr, n, k, tc.mask)
			require.Equal(t, want, r.res.Ret)
			require.Equal(t, want, r.native(FuncPtr, n, k, tc.mask).Ret)
			log := r.log()
			assert.Contains(t, log, "; guard-target ")
			assert.Contains(t, log, "; push-ret ", "indirect call inlined")
			r.checkTraced(t, n, tc.minShare)
			if tc.mask != 0 {
				assert.GreaterOrEqual(t, r.loop.SideTraces, 3, "a side trace per other target")
			}
		})
	}
}

// refFP is what every tt_fp_* variant computes: the sum of 2*dot(i) and
// (out[0]) the same again.
func refFP(n int64) (s, total int64) {
	for i := int64(0); i < n; i++ {
		c2 := 2*(i&7) + 1
		for j := int64(0); j < 64; j++ {
			if j+1 > i&63 {
				s += (j + 1) * (64 - j) * c2
			}
		}
	}
	return s, s
}

// refFPC is what tt_fp_c computes, in integers (2*z).
func refFPC(n int64) (s, total int64) {
	var z [64]int64
	for i := int64(0); i < n; i++ {
		c2 := 2*(i&7) + 1
		for j := int64(0); j < 64; j++ {
			z[j] += (j + 1) * (64 - j) * c2
		}
		s += z[(i*5)&63]
	}
	for _, v := range z {
		total += v
	}
	return s, total
}

func TestFloatingPointAndVectors(t *testing.T) {
	const n = 20000
	for _, tc := range []struct {
		f    Func
		need Feature
		ref  func(int64) (int64, int64)
		regs []string // in the trace
	}{
		{FPC, SSE2, refFPC, []string{"mulpd", "%xmm"}},
		{FPSSE2, SSE2, refFP, []string{"cmpltpd", "%xmm"}},
		{FPAVX2, AVX2FMA, refFP, []string{"vfmadd", "%ymm"}},
		{FPAVX512, AVX512F, refFP, []string{"%zmm", "%k"}},
	} {
		t.Run(tc.f.Name, func(t *testing.T) {
			if !CPUHas(tc.need) {
				t.Skipf("no CPU support")
			}
			s, total := tc.ref(n)
			r := runJIT(t, tc.f, n)
			require.Equal(t, s, r.res.Ret)
			require.Equal(t, total, r.res.Out[0])
			require.Equal(t, r.res, r.native(tc.f, n))
			log := r.log()
			for _, w := range tc.regs {
				assert.Contains(t, log, w)
			}
			r.checkTraced(t, n, 0.99)
		})
	}
}

func TestRIPRelativeGlobals(t *testing.T) {
	const n, k = 100000, 0x55
	var hist [16]int64
	var total int64
	for i := int64(0); i < n; i++ {
		hist[(i*7)&15] += i
		total += (i ^ k) * 5
	}
	r := runJIT(t, Globals, n, k)
	require.Equal(t, total, r.res.Ret)
	require.Equal(t, hist[:], r.res.Out[:16])
	ticks, last := GlobalsExtra()
	require.Equal(t, int64(2*n), ticks)
	require.Equal(t, int64(n-1), last)
	nat := r.native(Globals, n, k)
	require.Equal(t, r.res, nat)
	r.checkTraced(t, n, 0.99)
	// The volatile globals are read and written %rip-relative by copied
	// (relocated) instructions.
	rip := 0
	for _, line := range strings.Split(r.log(), "\n") {
		if strings.Contains(line, "(%rip)") && strings.Contains(line, "; insn ") {
			rip++
		}
	}
	assert.GreaterOrEqual(t, rip, 3, r.log())
}

func TestIsTraced(t *testing.T) {
	const n = 100000
	r := runJIT(t, IsTraced, n)
	require.Equal(t, int64(n*(n-1)/2), r.res.Ret)
	nat := r.native(IsTraced, n)
	require.Equal(t, int64(n*(n-1)/2), nat.Ret)
	require.Zero(t, nat.Out[0], "probe outside traces")
	require.Zero(t, nat.Out[1], "is_traced outside traces")
	r.checkTraced(t, n, 0.99)
	// The probe sees every iteration inside a trace, each recorded one
	// (a root recording's back-edge then runs natively: recorded() counts
	// links only), and each one after a periodic exit (its back-edge then
	// ran natively before the trace was entered again); is_traced is 0
	// there too.
	assert.Equal(t, r.loop.Iterations+r.recorded()+uint64(r.loop.RootTraces)+r.loop.Periodic, uint64(r.res.Out[0]))
	assert.NotZero(t, r.loop.Periodic, "periodic exits of a loop that never leaves its trace")
	assert.Zero(t, r.res.Out[1], "is_traced inside traces")
	assert.Zero(t, r.api.FromCache, "is_traced called from a trace")
	assert.Equal(t, n-uint64(r.res.Out[0]), r.api.Calls[tracevm.APIIsTraced], "native is_traced calls")
}

func TestEnsureNotTraced(t *testing.T) {
	const n, period = 100000, 97
	var s, errs int64
	for i := int64(0); i < n; i++ {
		s += i
		if i%period == period-1 {
			errs++
			s ^= i << 3
		}
	}
	r := runJIT(t, Ensure, n, period)
	require.Equal(t, s, r.res.Ret)
	require.Equal(t, errs, r.res.Out[0])
	require.Equal(t, r.res, r.native(Ensure, n, period))
	assert.Equal(t, uint64(errs), r.api.Calls[tracevm.APIEnsureNotTraced], "every error path ran natively")
	assert.GreaterOrEqual(t, r.aborts("ensure-not-traced"), uint64(1))
	r.checkTraced(t, n, 0.95)
}

func TestMergeBlock(t *testing.T) {
	const n, seed = 100000, 12345
	var s, rc, freed int64 = 0, 1, 0
	x := uint64(seed) | 1
	for i := 0; i < n; i++ {
		x = xorshift(x)
		s += int64(x & 0xff)
		if x&0x100 != 0 {
			rc++
		} else if rc--; rc == 0 {
			freed++
			rc = 1
		}
	}
	r := runJIT(t, Merge, n, seed)
	require.Equal(t, s, r.res.Ret)
	require.Equal(t, rc, r.res.Out[0])
	require.Equal(t, freed, r.res.Out[1])
	require.Equal(t, r.res, r.native(Merge, n, seed))
	r.checkTraced(t, n, 0.9)
	// The merge-block calls vanish from traces: only iterations run
	// natively call begin (one per native back-edge, and the first
	// iteration); end also runs after a guard inside the block exits.
	native := r.api.Calls[tracevm.APIBackwardsBranch]
	assert.LessOrEqual(t, r.api.Calls[tracevm.APIBeginMergeBlock], native+1)
	assert.LessOrEqual(t, r.api.Calls[tracevm.APIEndMergeBlock], native+1+r.loop.Exits)
	assert.GreaterOrEqual(t, r.api.Calls[tracevm.APIEndMergeBlock], r.api.Calls[tracevm.APIBeginMergeBlock])
}

// TestHelperReturn: the loop annotation in an out-of-line helper, called
// from two sites of the loop. A recording starts in the helper, whose
// return address it did not push: the return is guarded and the loop
// closes at the helper's depth; side traces recorded from exits inside
// the helper must guard it too (the trace's exits start from that
// unknown frame), or one would return to the call site it was recorded
// through whichever site called.
func TestHelperReturn(t *testing.T) {
	const n, seed = 100000, 4242
	var s, a, b int64
	x := uint64(seed) | 1
	step := func(x uint64) uint64 {
		x = xorshift(x)
		if x&2 != 0 {
			s += int64(x >> 50)
		} else {
			s ^= int64(x >> 30)
		}
		return x
	}
	for i := 0; i < n; i++ {
		if x&1 != 0 {
			x = step(x)
			a++
		} else {
			x = step(x + 2)
			b += int64(x & 7)
		}
	}
	r := runJIT(t, HelperRet, n, seed)
	require.Equal(t, s, r.res.Ret)
	require.Equal(t, a, r.res.Out[0])
	require.Equal(t, b, r.res.Out[1])
	require.Equal(t, r.res, r.native(HelperRet, n, seed))
	r.checkTraced(t, n, 0.9)
	assert.Positive(t, r.loop.SideTraces)
	assert.Zero(t, r.aborts("return-from-root"))
}

func TestSignalsInTrace(t *testing.T) {
	t.Run("long", func(t *testing.T) {
		// A long run inside one trace: most signals interrupt it.
		const n, seed = 20000000, 99
		var s int64
		var d float64
		x := uint64(seed) | 1
		for i := 0; i < n; i++ {
			x = xorshift(x)
			s += int64(x >> 48)
			d += float64(x&0xffff) * 0.5
		}
		r, sig := runSignals(t, Spin, 20*time.Microsecond, n, seed)
		require.Equal(t, s, r.res.Ret)
		require.Equal(t, int64(d), r.res.Out[0])
		assert.Positive(t, sig.Delivered, "signals")
		assert.Positive(t, sig.InCache, "signals that interrupted a trace")
		r.checkTraced(t, n, 0.99)
		t.Logf("%d signals, %d of them inside the code cache", sig.Delivered, sig.InCache)
	})
	t.Run("recording", func(t *testing.T) {
		// Fresh loops, recorded (root and side traces) while signals
		// arrive every 25us: they land in recording blocks, in the
		// switch to the recorder and in the recorder itself.
		const n, runs = 100000, 20
		var delivered, inCache, traces int64
		for k := 0; k < runs; k++ {
			seed := uint64(k)*0x9e3779b97f4a7c15 + 1
			s, odd, x := refBranchy(n, seed)
			r, sig := runSignals(t, Branchy, 25*time.Microsecond, n, int64(seed))
			require.Equal(t, s, r.res.Ret, "run %d", k)
			require.Equal(t, odd, r.res.Out[0], "run %d", k)
			require.Equal(t, int64(x), r.res.Out[1], "run %d", k)
			require.Equal(t, 1, r.loop.RootTraces, "run %d", k)
			r.checkSites(t)
			delivered += sig.Delivered
			inCache += sig.InCache
			traces += int64(r.loop.RootTraces + r.loop.SideTraces)
		}
		assert.Positive(t, delivered)
		t.Logf("%d runs, %d traces recorded, %d signals, %d of them inside the code cache", runs, traces, delivered, inCache)
	})
}

// runSignals runs f(fresh ids, in...) under SIGALRM every interval.
func runSignals(t *testing.T, f Func, interval time.Duration, in ...int64) (traced, Signals) {
	t.Helper()
	r := traced{ids: NewIDs()}
	m := Machine()
	r.before = m.Snapshot()
	s0 := ReadStats()
	res, sig, err := f.RunWithSignals(interval, append([]int64{int64(r.ids)}, in...)...)
	require.NoError(t, err)
	r.res, r.api, r.after = res, ReadStats().Sub(s0), m.Snapshot()
	r.loop = LoopFigures(r.after, r.ids, r.ids+IDSpan())
	return r, sig
}

func TestThreadsRace(t *testing.T) {
	const n = 200000
	seeds := [2]uint64{0x1234567, 0x7654321}
	var want [2]Result
	for th := range want {
		s, odd, x := refBranchy(n, seeds[th])
		want[th].Ret, want[th].Out[0], want[th].Out[1] = s, odd, int64(x)
	}
	check := func(t *testing.T, res []Result) {
		t.Helper()
		for i, got := range res {
			require.Equal(t, want[i%2], got, "round %d thread %d", i/2, i%2)
		}
	}
	t.Run("shared", func(t *testing.T) {
		// One loop, recorded once: both threads run its traces and take
		// its exits at the same time, round after round.
		const rounds = 100
		ids := NewIDs()
		m := Machine()
		before := m.Snapshot()
		s0 := ReadStats()
		res, ov, err := Branchy.Race(rounds, []int64{int64(ids), n, int64(seeds[0])}, []int64{int64(ids), n, int64(seeds[1])})
		require.NoError(t, err)
		// How much the threads overlap depends on the machine's load.
		t.Logf("the threads ran together %v of %v", ov.Both, ov.Either)
		assert.Positive(t, ov.Both, "the threads never overlapped")
		r := traced{ids: ids, api: ReadStats().Sub(s0), before: before, after: m.Snapshot()}
		r.loop = LoopFigures(r.after, ids, ids+IDSpan())
		check(t, res)
		require.GreaterOrEqual(t, r.loop.RootTraces, 1)
		r.checkSites(t)
		// th_api counts atomically; a trace's iteration counter is a
		// plain incq, which loses updates when two threads run the same
		// trace. So the share inside traces comes from th_api's count
		// of the back-edges that ran natively.
		total := uint64(2 * rounds * n)
		native, recorded := r.api.Calls[tracevm.APIBackwardsBranch], r.recorded()
		inTraces := total - native - recorded
		assert.GreaterOrEqual(t, float64(inTraces)/float64(total), 0.9)
		assert.LessOrEqual(t, r.loop.Iterations, inTraces)
		t.Logf("figures: %d root + %d side traces, %d of %d back-edges in traces (%.2f%%), %d run natively; the traces' own counters say %d (%d updates lost)",
			r.loop.RootTraces, r.loop.SideTraces, inTraces, total, 100*float64(inTraces)/float64(total), native, r.loop.Iterations, inTraces-r.loop.Iterations)
	})
	t.Run("fresh", func(t *testing.T) {
		// A new loop every round: both threads reach the hot threshold
		// together and record (or find the other recording) at once.
		const rounds = 30
		var roots, sides int
		var native, total uint64
		for k := 0; k < rounds; k++ {
			ids := NewIDs()
			s0 := ReadStats()
			res, _, err := Branchy.Race(1, []int64{int64(ids), n, int64(seeds[0])}, []int64{int64(ids), n, int64(seeds[1])})
			require.NoError(t, err)
			check(t, res)
			d := ReadStats().Sub(s0)
			assert.Zero(t, d.UnknownSite)
			l := LoopFigures(Machine().Snapshot(), ids, ids+IDSpan())
			require.Equal(t, 1, l.RootTraces, "round %d", k)
			roots, sides = roots+l.RootTraces, sides+l.SideTraces
			native += d.Calls[tracevm.APIBackwardsBranch]
			total += 2 * n
		}
		share := 1 - float64(native)/float64(total)
		assert.GreaterOrEqual(t, share, 0.9)
		t.Logf("figures: %d rounds, %d root + %d side traces, %d of %d back-edges run natively (%.2f%% not)", rounds, roots, sides, native, total, 100*share)
	})
}

func TestForkInTrace(t *testing.T) {
	const n, at = 400000, 200000
	want := int64(3*n*(n-1)/2 + n)
	r := runJIT(t, Fork, n, at)
	require.Equal(t, want, r.res.Ret, "parent")
	require.Positive(t, r.res.Out[4], "child pid")
	require.Zero(t, r.res.Out[3], "child wait status")
	require.Equal(t, want, r.res.Out[0], "child")
	// After the fork both processes went on inside the trace.
	afterFork := int64(n - at - 1)
	assert.GreaterOrEqual(t, r.res.Out[1], afterFork*99/100, "child iterations in the trace after the fork")
	assert.GreaterOrEqual(t, r.res.Out[2], afterFork*99/100, "parent iterations in the trace after the fork")
	r.checkTraced(t, n, 0.99)
	t.Logf("after the fork: child %d, parent %d of %d iterations traced", r.res.Out[1], r.res.Out[2], afterFork)
}

func TestUnsupportedSyscall(t *testing.T) {
	const n = 20000
	pid := int64(os.Getpid())
	r := runJIT(t, Syscall, n, pid)
	require.Equal(t, int64(n*(n-1)/2), r.res.Ret)
	require.Equal(t, int64(n), r.res.Out[0], "getpid results")
	require.Equal(t, r.res, r.native(Syscall, n, pid))
	assert.Positive(t, r.api.RecordStarts, "recordings started")
	assert.Equal(t, r.api.RecordStarts, r.aborts("syscall"), "every recording aborts at the syscall")
	assert.Zero(t, r.loop.RootTraces, "no trace")
	assert.Equal(t, uint64(n), r.api.Calls[tracevm.APIBackwardsBranch], "every back-edge ran natively")
	r.checkSites(t)
}

// A side trace recorded from an exit where the recording stops at once
// (here: the inner loop's fellthrough_branch, where every inner loop
// ends) records nothing and ends in an exit to the very address it
// started from. That exit is open again, so every SideThreshold exits
// another such trace is chained behind it, until the root has
// maxSideTraces side traces.
func TestNoEmptySideTraceChain(t *testing.T) {
	const n, m = 300, 500
	r := runJIT(t, Nested, n, m, 0)
	require.Equal(t, int64(n*(n-1)/2*(m*(m-1)/2)+n*(m*(m-1)/2)+n*(n-1)/2), r.res.Ret)
	empty := 0
	for _, tr := range r.after.Traces {
		if tr.ID < r.ids || tr.ID >= r.ids+IDSpan() || !tr.Side || tr.Insns != 0 {
			continue
		}
		log := TraceLog(tr.Head)
		if !strings.Contains(log, "; link ") && !strings.Contains(log, "; close ") {
			empty++
		}
	}
	assert.Zero(t, empty, "side traces that record nothing and only exit")
}

// A root trace specialised on a loop-invariant register (mode) must still
// compute the floating-point values the loop uses.
func TestInvariantBranchBesideFloatingPoint(t *testing.T) {
	const n = 100000
	for _, mode := range []int64{1, 0} {
		t.Run(fmt.Sprintf("mode%d", mode), func(t *testing.T) {
			var want int64
			for i := int64(0); i < n; i++ {
				want += int64(float64(i&1023) * 1.5)
				if mode != 0 {
					want += i
				}
			}
			r := runJIT(t, InvFP, n, mode)
			require.Equal(t, want, r.native(InvFP, n, mode).Ret)
			assert.Equal(t, want, r.res.Ret, "%s", r.log())
			r.checkTraced(t, n, 0.99)
		})
	}
}

// Annotations that act outside traces are native calls from a trace:
// th_api sees them with a return address in the code cache and returns at
// once.
func TestNativeAnnotationFromTrace(t *testing.T) {
	const n = 100000
	var want int64
	for i := int64(0); i < n; i++ {
		want += i ^ 0x55
	}
	r := runJIT(t, NativeAPI, n)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, want, r.native(NativeAPI, n).Ret)
	r.checkTraced(t, n, 0.99)
	assert.Contains(t, r.log(), "; call ")
	// One native call per iteration inside the trace, one from the
	// recording's block, and one per iteration begun after a periodic
	// exit.
	assert.Equal(t, r.loop.Iterations+r.recorded()+uint64(r.loop.RootTraces)+r.loop.Periodic, r.api.FromCache)
	assert.Equal(t, uint64(n), r.api.Calls[tracevm.APIDisableBranch])
}

// A self-modifying program: whatever a trace assumes about the words it
// loads from the (writable) program must be checked where they are
// loaded.
func TestSelfModifyingInterpreter(t *testing.T) {
	const n, k = 100000, 0x2b5
	var want int64
	imm := int64(5)
	for c := int64(n); c > 0; c-- {
		want += (c * c) ^ k
		want += imm
		imm = c & 7
	}
	r := runJIT(t, SelfMod, n, k)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, int64(8*n+1), r.res.Out[0], "steps")
	require.Equal(t, imm, r.res.Out[1], "last poked immediate")
	require.Equal(t, r.res, r.native(SelfMod, n, k))
	r.checkTraced(t, n-1, 0.9)
}

// TestPeeledLoop: a loop whose dispatch reads a program it never writes
// is peeled (tracevm/peel.go): the second copy checks none of the
// opcodes the first guards, and the results are the native ones.
func TestPeeledLoop(t *testing.T) {
	const n, k = 100000, 0x5a5
	r := runInterp(t, Interp, refInterp, n, k)
	log := r.log()
	require.Greater(t, r.after.LoopsPeeled, r.before.LoopsPeeled, log)
	first, second, ok := strings.Cut(log, "; peeled:")
	require.True(t, ok, log)
	// The opcode guards (cmp $op, slot(%rip)) of the first copy are not
	// in the second one.
	assert.Less(t, strings.Count(second, "cmp"), strings.Count(first, "cmp"), log)
	r.checkTraced(t, n-1, 0.99)
}

func refInterpBranch(n, k int64) (r1, steps int64) {
	steps = 4
	r6 := int64(0)
	for c := n; c > 0; c-- {
		r1 += (c * c) ^ k
		steps += 4
		if r6 == 0 {
			r6 = 3
			r1 -= 7
			steps += 2
		}
		r1 += 7
		r6--
		steps += 4
	}
	return r1, steps + 1
}

// TestSideTraceIntoPeeledLoop: the side trace of a peeled loop's branch
// starts where the peeled copy's assumptions hold and keeps them, so it
// closes the loop in the peeled copy, not at the head (bodyLink).
func TestSideTraceIntoPeeledLoop(t *testing.T) {
	const n, k = 100000, 0x3a7
	r := runInterp(t, InterpBranch, refInterpBranch, n, k)
	log := r.log()
	require.Greater(t, r.after.LoopsPeeled, r.before.LoopsPeeled, log)
	assert.Greater(t, r.after.SidesIntoPeeled, r.before.SidesIntoPeeled, log)
	r.checkTraced(t, n-1, 0.99)
}

// TestPeeledLoopOtherData: the peeled copy assumes the VM registers the
// loop only reads (k, in the interpreter's frame) hold what they held
// when it was compiled. Entered again with another k, the first copy's
// close finds another value and the loop runs on in the first copy: the
// results are right, and after peelMissLimit closes in a row it stops
// checking. Where the first copy itself guards k's load (the optimiser's
// choice of loads to guard varies from run to run), k2 leaves it at that
// guard before its close instead, and side traces take over: right
// results too, and no miss.
func TestPeeledLoopOtherData(t *testing.T) {
	const n, k1, k2 = 100000, 0x3a7, 0x51
	r := runJIT(t, InterpBranch, n, k1)
	want, _ := refInterpBranch(n, k1)
	require.Equal(t, want, r.res.Ret)
	require.Greater(t, r.after.LoopsPeeled, r.before.LoopsPeeled, r.log())
	want2, steps2 := refInterpBranch(n, k2)
	res := InterpBranch.Run(int64(r.ids), n, k2)
	require.Equal(t, want2, res.Ret)
	require.Equal(t, steps2, res.Out[0])
	l := LoopFigures(Machine().Snapshot(), r.ids, r.ids+IDSpan())
	if l.PeelMisses == 0 {
		assert.Greater(t, l.SideTraces, r.loop.SideTraces, "k2 neither missed at the close nor left the first copy before it")
	}
	assert.Less(t, l.PeelMisses, uint64(n/100), "it stopped checking")
}

// TestWritesNoMemory: the scan finds the functions that write no memory
// but their own frame (a loop, a switch through its table, a local
// array, calls of those) and no others (an output, a global, a call of a
// function that writes, a switch whose writing case follows in its table
// one in another function).
func TestWritesNoMemory(t *testing.T) {
	m := Machine()
	for _, f := range NoWrites {
		assert.True(t, m.WritesNoMemory(f.Addr()), f.Name)
	}
	for _, f := range Writes {
		assert.False(t, m.WritesNoMemory(f.Addr()), f.Name)
	}
}

// TestPeeledAcrossNoWritesCall: a loop that calls a native function that
// writes no memory is peeled, which any native call but an allocator's
// kept it from (the results the native ones).
func TestPeeledAcrossNoWritesCall(t *testing.T) {
	const n = 100000
	tab := []int64{5, 3, 9, 1, 7, 2, 8, 6}
	var want int64
	for i := int64(0); i < n; i++ {
		want += int64(slices.Index(tab, i&7)) * 3
	}
	r := runJIT(t, LookupLoop, n, 1)
	require.Equal(t, want, r.res.Ret)
	require.Equal(t, want, r.native(LookupLoop, n, 1).Ret)
	log := r.log()
	require.Greater(t, r.after.LoopsPeeled, r.before.LoopsPeeled, log)
	r.checkTraced(t, n, 0.99)
}

// refFind is tt_find_loop in Go.
func refFind(n, from int64) int64 {
	objs := [4][2]int64{{1, 10}, {4, 20}, {2, 30}, {3, 40}}
	var s int64
	for i := int64(0); i < n; i++ {
		o := objs[0]
		if i >= from {
			o = objs[i&3]
		}
		switch o[0] {
		case 1:
			s += o[1]
		case 2:
			s -= o[1] * 3
		case 3:
			s ^= o[1]
		case 4:
			s += o[1] << 1
		}
	}
	return s
}

// TestSpeculationOnCallResult: a trace reads through what a native call
// returned, which only the recording's call log tells; the optimiser
// speculates on the object's kind behind a guard after the load. While
// the object stays the same the trace runs without a failed guard; once
// it changes, the guard's exit retires the trace and the loop is recorded
// again without that speculation. The results are the native ones
// throughout.
func TestSpeculationOnCallResult(t *testing.T) {
	const n = 100000
	for _, tc := range []struct {
		name    string
		from    int64
		retired bool
	}{
		{"same object", n, false},
		{"object changes", n / 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runJIT(t, FindLoop, n, tc.from)
			require.Equal(t, refFind(n, tc.from), r.res.Ret)
			require.Equal(t, r.res, r.native(FindLoop, n, tc.from))
			log := r.log()
			first, _, _ := strings.Cut(strings.TrimPrefix(log, "redmagic: trace"), "redmagic: trace")
			require.NotContains(t, first, "guard-target", "the switch's jump folds in the first trace:\n%s", log)
			retired := r.after.Respecialized - r.before.Respecialized
			if tc.retired {
				require.NotZero(t, retired, log)
			} else {
				require.Zero(t, retired, log)
				r.checkTraced(t, n, 0.99)
			}
		})
	}
}

// runFStack runs the stack machine of doubles (tt_fstack) under the JIT
// and checks its results bit for bit against its own reference and a
// native run.
func runFStack(t *testing.T, n, poke int64) traced {
	t.Helper()
	r := runJIT(t, FStack, n, poke)
	x, s := 0.0, 0.0
	for c := n; c > 0; c-- {
		x = x*0.5 + 1.25
		if c == poke {
			x++
		}
		s += x * x
	}
	require.Equal(t, 15*n+1, r.res.Out[0], "steps")
	require.Equal(t, math.Float64bits(x), uint64(r.res.Out[1]), "x; %s", r.log())
	require.Equal(t, math.Float64bits(s), uint64(r.res.Out[2]), "s")
	require.Equal(t, r.res, r.native(FStack, n, poke))
	return r
}

// TestForwardedDoubles: the stack machine's results go through memory at
// every operation; the trace takes them from spare vector registers
// (xmmfwd.go), each load checked against memory, and its loop copy
// carries x, s and a constant across its close: the first copy's close
// loads them into their spares before it enters the copy. A store through a pointer
// the trace does not follow changes x once in between (poke): the
// results stay exact, and at sizes around the threshold too.
func TestForwardedDoubles(t *testing.T) {
	const n = 100000
	r := runFStack(t, n, 0)
	r.checkTraced(t, n-1, 0.99)
	log := r.log()
	fwd := r.after.DoublesForwarded - r.before.DoublesForwarded
	require.NotZero(t, fwd, log)
	first, second, ok := strings.Cut(log, "; peeled: the loop's second copy")
	require.True(t, ok, log)
	assert.Contains(t, second, "ptest", log)
	carried := regexp.MustCompile(`movq -?0x[0-9a-f]+\(%rip\),%xmm1[0-5] *\n`)
	// x and s, and the constant 0.5 the copy loads before it loads it again.
	assert.Len(t, carried.FindAllString(first, -1), 3, "loaded at the first copy's close: %s", log)
	for _, poke := range []int64{1, 2, n / 2, n - 1, n} {
		runFStack(t, 5000, poke)
	}
}
