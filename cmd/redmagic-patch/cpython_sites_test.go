package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

// TestCPythonBackEdgeTraces runs a loop closed by each of CPython 3.11's
// back-edge opcodes (testdata/python-sites/backedges.py) at threshold 1:
// every loop opcode must lead into traces that run the loop's iterations,
// as must the comparisons that take their jump back themselves
// (COMPARE_OP_INT_JUMP, _FLOAT_JUMP, _STR_JUMP: a while loop whose
// condition compares ints, floats or strings, in a quickened function).
// The yield from loop (JUMP_BACKWARD_NO_INTERRUPT) switches generators
// on every iteration, where a recording must end: it is not a site, and
// runs in the original code, uncounted.
func TestCPythonBackEdgeTraces(t *testing.T) {
	requireRuntime(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	prog := filepath.Join(root, "testdata/python-sites/backedges.py")
	out := filepath.Join(t.TempDir(), "python3-jit")
	patch(t, "/usr/bin/python3.11", out)
	want := runBin(t, "/usr/bin/python3.11", []string{prog}, nil, false)
	statsPath := filepath.Join(t.TempDir(), "stats.json")
	got := runBin(t, out, []string{prog}, []string{"REDMAGIC_THRESHOLD=1", "REDMAGIC_GOVERNOR=0", "REDMAGIC_STATS=" + statsPath}, false)
	require.Equal(t, want.result, got.result)
	data, err := os.ReadFile(statsPath)
	require.NoError(t, err)
	var st struct {
		Sites []struct {
			Index int    `json:"index"`
			Name  string `json:"name"`
			Hits  int64  `json:"hits"`
		} `json:"sites"`
		JIT struct {
			Traces []struct {
				Site       int   `json:"site"`
				Iterations int64 `json:"iterations"`
			} `json:"traces"`
		} `json:"jit"`
	}
	require.NoError(t, json.Unmarshal(data, &st))
	name := map[int]string{}
	hits := map[string]int64{}
	for _, s := range st.Sites {
		name[s.Index] = s.Name
		hits[s.Name] = s.Hits
	}
	traces := map[string]int{}
	iters := map[string]int64{}
	for _, tr := range st.JIT.Traces {
		traces[name[tr.Site]]++
		iters[name[tr.Site]] += tr.Iterations
	}
	t.Logf("traces by site %v, iterations %v, hits outside traces %v", traces, iters, hits)
	for _, site := range []string{"JUMP_BACKWARD", "JUMP_BACKWARD_QUICK", "POP_JUMP_BACKWARD_IF_TRUE",
		"POP_JUMP_BACKWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_NOT_NONE", "POP_JUMP_BACKWARD_IF_NONE",
		"COMPARE_OP_INT_JUMP", "COMPARE_OP_FLOAT_JUMP", "COMPARE_OP_STR_JUMP"} {
		assert.Positive(t, traces[site], "%s: no trace", site)
		assert.Positive(t, iters[site], "%s: no iteration in a trace", site)
	}
	// Each loop runs 3,000 times; all but a few iterations of the
	// while loops run in traces.
	for _, site := range []string{"POP_JUMP_BACKWARD_IF_TRUE", "POP_JUMP_BACKWARD_IF_FALSE",
		"POP_JUMP_BACKWARD_IF_NOT_NONE", "POP_JUMP_BACKWARD_IF_NONE",
		"COMPARE_OP_INT_JUMP", "COMPARE_OP_FLOAT_JUMP", "COMPARE_OP_STR_JUMP"} {
		assert.Greater(t, iters[site], int64(2500), site)
	}
	_, counted := hits["JUMP_BACKWARD_NO_INTERRUPT"]
	assert.False(t, counted, "the yield from loop is not a site")
}

// TestCPythonComparisonLoopInlineCache: a short while loop closed by
// COMPARE_OP_INT_JUMP, run 100,000 times from a native call, enters its
// trace through the site's inline cache (its one entry, ic_id[1]; ic_id[0]
// counts forward comparisons down) rather than a call into the runtime
// per run of the loop.
func TestCPythonComparisonLoopInlineCache(t *testing.T) {
	requireRuntime(t)
	src := `
def f():
    i = 0
    while i < 3:
        i += 1
    return i
for _ in range(16):
    f()
print(sum(map(lambda _: f(), range(100000))))
`
	out := filepath.Join(t.TempDir(), "python3-jit")
	patch(t, "/usr/bin/python3.11", out)
	want := runBin(t, "/usr/bin/python3.11", []string{"-c", src}, nil, false)
	got := runBin(t, out, []string{"-c", src}, []string{"REDMAGIC_GOVERNOR=0"}, true)
	require.Equal(t, want.result, got.result)
	jit, _ := got.stats["jit"].(map[string]any)
	require.NotNil(t, jit, "the JIT started")
	entries, _ := jit["trace_entries"].(float64)
	iters, _ := jit["trace_iterations"].(float64)
	t.Logf("trace entries through the runtime %v, iterations %v, inline cache fills %v", entries, iters, got.stats["inline_cache_fills"])
	assert.Greater(t, iters, float64(150000), "the while loop runs in its trace")
	assert.Less(t, entries, float64(10000), "entered through the inline cache, not the runtime")
}
