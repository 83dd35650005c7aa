package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// patchedPythonWith patches python3.11 into a temporary directory and
// writes prog there as name: the patched interpreter, the program and
// the directory.
func patchedPythonWith(t *testing.T, name, prog string) (py, path, dir string) {
	t.Helper()
	requireRuntime(t)
	dir = t.TempDir()
	py = filepath.Join(dir, "python3.11")
	patch(t, origPython, py)
	path = filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(prog), 0o644))
	return py, path, dir
}

// The governor measures each trace's loop against the interpreter and
// drops a trace that does not pay. REDMAGIC_GOVERNOR_PCT moves the bar:
// at 0 every measured trace loses, at 1000 every one is kept. Either way
// the program's output is the original's, and the verdicts are reported.
func TestGovernorVerdicts(t *testing.T) {
	// A loop in a function called many times: every call enters its trace
	// at a back-edge hit, where the governor looks.
	py, prog, dir := patchedPythonWith(t, "calls.py", `def f(n):
    s = 0
    for i in range(n):
        s += i
    return s
t = 0
for _ in range(2000):
    t += f(1000)
print(t)
`)
	want := runPython(t, origPython, prog, nil, "")
	require.Equal(t, 0, want.status, want.stderr)

	verdicts := func(st map[string]any) (dropped float64, seen map[string]int) {
		jit, ok := st["jit"].(map[string]any)
		require.True(t, ok, "no JIT report: %v", st)
		seen = map[string]int{}
		for _, tr := range jit["traces"].([]any) {
			if v, ok := tr.(map[string]any)["verdict"].(string); ok {
				seen[v]++
				assert.Positive(t, tr.(map[string]any)["interp_cycles"], "interpreter measured")
				assert.Positive(t, tr.(map[string]any)["trace_cycles"], "trace measured")
			}
		}
		return jit["traces_dropped"].(float64), seen
	}
	for _, tc := range []struct {
		pct     string
		dropped bool
	}{{"0", true}, {"1000", false}} {
		statsPath := filepath.Join(dir, "stats-"+tc.pct+".json")
		got := runPython(t, py, prog, []string{"REDMAGIC_GOVERNOR_PCT=" + tc.pct}, statsPath)
		assert.Equal(t, want.result, got.result, "GOVERNOR_PCT=%s", tc.pct)
		dropped, seen := verdicts(got.stats)
		if tc.dropped {
			assert.Positive(t, dropped)
			assert.Positive(t, seen["dropped"])
			assert.Zero(t, seen["kept"])
			// Most of the 2,000,000 iterations ran in the original code
			// (windows of up to 131,072 iterations, dropped after 8 pairs).
			assert.Less(t, got.stats["jit"].(map[string]any)["trace_iterations"].(float64), 1000000.0)
		} else {
			assert.Zero(t, dropped)
			assert.Positive(t, seen["kept"])
			assert.Zero(t, seen["dropped"])
		}
	}
	got := runPython(t, py, prog, []string{"REDMAGIC_GOVERNOR=0"}, filepath.Join(dir, "off.json"))
	assert.Equal(t, want.result, got.result)
	_, seen := verdicts(got.stats)
	assert.Empty(t, seen, "no verdicts with the governor off")
}

// When traces are dropped and none kept, the governor puts the dispatch
// entries back (the program then runs the original's dispatch, uncounted)
// and re-arms them after a quiet period from a thread of its own: no Go
// timer, so no descriptor appears in the program's table.
func TestGovernorQuiet(t *testing.T) {
	// Each phase runs 6M back-edges of two loops; a verdict takes some
	// 100k-300k of them, so both loops are dropped early in the first
	// phase whatever the machine's load, and the second phase goes quiet
	// again after RM_GOV_QUIET_HITS. The first quiet period (200 ms) ends
	// well inside the sleep between the phases.
	py, prog, dir := patchedPythonWith(t, "quiet.py", `import os, time
def f(n):
    s = 0
    for i in range(n):
        s += i
    return s
def h(n):
    s = 0
    for i in range(n):
        s ^= i
    return s
t = 0
for _ in range(1500):
    t += f(2000) + h(2000)
print(t, sorted(os.listdir('/proc/self/fd')))
time.sleep(1.5)
for _ in range(1500):
    t += f(2000) + h(2000)
print(t, sorted(os.listdir('/proc/self/fd')))
`)
	want := runPython(t, origPython, prog, nil, "")
	require.Equal(t, 0, want.status, want.stderr)
	got := runPython(t, py, prog, []string{"REDMAGIC_GOVERNOR_PCT=0", "REDMAGIC_GOVERNOR_QUIET=200"},
		filepath.Join(dir, "stats.json"))
	assert.Equal(t, want.result, got.result)
	require.NotNil(t, got.stats)
	jit := got.stats["jit"].(map[string]any)
	assert.GreaterOrEqual(t, jit["traces_dropped"].(float64), 2.0)
	// Quiet once, re-armed, quiet again.
	assert.GreaterOrEqual(t, got.stats["governor_quiets"].(float64), 2.0, "two quiet periods")
	nsites := float64(len(got.stats["sites"].([]any)))
	assert.GreaterOrEqual(t, got.stats["dispatch_restored"].(float64), 2*nsites, "two quiet periods")
	hits := float64(siteHits(got.stats))
	assert.Less(t, hits+jit["trace_iterations"].(float64), 6e6, "back-edges went uncounted while quiet")
}

// The JIT's budget: with 1% of the run time allowed, a program with many
// hot loops gets some of them refused (aborts.budget), and its output is
// the original's.
func TestJITBudget(t *testing.T) {
	var src strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&src, "def f%d(n):\n    s = 0\n    for i in range(n):\n        s += i * %d\n    return s\n", i, i+1)
	}
	src.WriteString("print(sum(f(5000) for f in [")
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&src, "f%d, ", i)
	}
	src.WriteString("]))\n")
	py, prog, dir := patchedPythonWith(t, "loops.py", src.String())
	want := runPython(t, origPython, prog, nil, "")
	require.Equal(t, 0, want.status, want.stderr)
	got := runPython(t, py, prog, []string{"REDMAGIC_JIT_BUDGET=1"}, filepath.Join(dir, "stats.json"))
	assert.Equal(t, want.result, got.result)
	aborts := got.stats["jit"].(map[string]any)["aborts"].(map[string]any)
	assert.Positive(t, aborts["budget"], "aborts %v", aborts)
}
