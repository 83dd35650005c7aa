package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/elfpatch/redmagic"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
	"github.com/redmagic-patch/redmagic-patch/internal/testvms"
)

// These tests patch real binaries and run them. They need the runtime
// library embedded, which `make build` (and so `make test`) provides.
func requireRuntime(t *testing.T) {
	t.Helper()
	if _, err := runtimeLibraries(); err != nil {
		t.Fatalf("%v (run the tests through `make test`)", err)
	}
}

// patch runs `redmagic-patch IN -o OUT extra...` in-process.
func patch(t *testing.T, in, out string, extra ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	status := run(append([]string{in, "-o", out}, extra...), &stdout, &stderr)
	require.Equal(t, 0, status, "patch %s: %s", in, stderr.String())
	return stdout.String()
}

// jitNow makes a patched interpreter load its JIT at the first hot loop,
// not after the default delay that spares short programs its start-up nor
// only once its hot loops run fast (REDMAGIC_JIT_RATE), on the thread that found the loop (not in the background, where it
// would arrive some milliseconds later), and lifts the JIT's share of run
// time: the tests' programs are short, and what they check is the JIT's
// correctness. (The CPython regression runs keep the defaults;
// TestJITBudget checks the budget.)
var jitNow = []string{"REDMAGIC_JIT_DELAY=0", "REDMAGIC_JIT_RATE=0", "REDMAGIC_JIT_BACKGROUND=0", "REDMAGIC_JIT_BUDGET=0"}

type runResult struct {
	result
	stats map[string]any
}

// runBin runs a binary with env additions and, when withStats is set,
// collects the runtime's statistics.
func runBin(t *testing.T, bin string, args []string, env []string, withStats bool) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), jitNow...)
	cmd.Env = append(cmd.Env, env...)
	statsPath := ""
	if withStats {
		statsPath = filepath.Join(t.TempDir(), "stats.json")
		cmd.Env = append(cmd.Env, "REDMAGIC_STATS="+statsPath)
	}
	r := runResult{result: runCmd(t, cmd)}
	if withStats {
		data, err := os.ReadFile(statsPath)
		require.NoError(t, err, "stats of %s %v (stderr %s)", bin, args, r.stderr)
		require.NoError(t, json.Unmarshal(data, &r.stats))
	}
	return r
}

// environWithout returns this process's environment without the
// variables whose names start with one of prefixes.
func environWithout(prefixes ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// siteHits sums the hits of the sites whose name is in names (all if empty).
func siteHits(stats map[string]any, names ...string) int64 {
	var n int64
	for _, s := range stats["sites"].([]any) {
		m := s.(map[string]any)
		if len(names) == 0 || contains(names, m["name"].(string)) {
			n += int64(m["hits"].(float64))
		}
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestPatchTestVMs(t *testing.T) {
	requireRuntime(t)
	vms, err := testvms.Build()
	require.NoError(t, err)
	progs, err := testvms.Programs()
	require.NoError(t, err)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	dir := t.TempDir()
	for _, vm := range vms {
		vm := vm
		t.Run(vm.Name, func(t *testing.T) {
			out := filepath.Join(dir, vm.Name)
			var extra []string
			backEdgeSites := []string{"redmagic_backwards_branch"}
			if vm.Name != "annotvm" {
				extra = []string{"--profile", filepath.Join(root, "testdata/vms/vm-profile.json")}
				backEdgeSites = []string{"JMP_BACK", "JMP_BACK_IF_FALSE", "JMP_BACK_IF_TRUE"}
			}
			patch(t, vm.Stripped, out, extra...)
			if vm.Name == "annotvm" {
				// Every backwards_branch call site counts down before it
				// calls the runtime; no other API call does.
				r := inProcess("inspect", out, "--json")
				require.Equal(t, 0, r.status, r.stderr)
				var info redmagic.Info
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &info))
				n := 0
				for _, s := range info.Sites {
					sampled := contains(s.FlagNames(), "sampled")
					assert.Equal(t, s.Name == "redmagic_backwards_branch", sampled, "%s at %#x: %v", s.Name, s.Addr, s.FlagNames())
					if sampled {
						n++
					}
				}
				assert.Positive(t, n)
			}
			for _, p := range progs {
				args := append([]string{p.Path}, p.Args...)
				want := runBin(t, vm.Stripped, args, nil, false)
				// Counting alone: with the JIT, iterations inside traces
				// are not counted (TestAnnotVMJIT checks those).
				got := runBin(t, out, args, []string{"REDMAGIC_JIT=0", "REDMAGIC_SAMPLE=1"}, true)
				assert.Equal(t, want.result, got.result, "%s %s", vm.Name, p.Name)
				hits := siteHits(got.stats, backEdgeSites...)
				if vm.Name == "annotvm" {
					// The API is called on every taken back-edge, exactly.
					assert.Equal(t, p.BackEdges, hits, "%s %s: back-edge hits", vm.Name, p.Name)
					// Its call sites sample by default: each call the
					// runtime sees stands for those its countdown skipped,
					// and only the calls since a site's last sample (fewer
					// than 1.5 periods of 64 at most) go uncounted.
					sampled := runBin(t, out, args, []string{"REDMAGIC_JIT=0"}, true)
					sh := siteHits(sampled.stats, backEdgeSites...)
					assert.LessOrEqual(t, sh, p.BackEdges, "%s %s: sampled back-edge hits", vm.Name, p.Name)
					var nsites int64
					for _, st := range sampled.stats["sites"].([]any) {
						if st.(map[string]any)["name"] == backEdgeSites[0] {
							nsites++
						}
					}
					assert.GreaterOrEqual(t, sh, p.BackEdges-96*nsites, "%s %s: sampled back-edge hits (%d sites)", vm.Name, p.Name, nsites)
				} else {
					// Conditional back-jump handlers run whether or not they jump.
					assert.GreaterOrEqual(t, hits, p.BackEdges, "%s %s: back-edge hits", vm.Name, p.Name)
				}
				off := runBin(t, out, args, []string{"REDMAGIC_DISABLE=1"}, false)
				assert.Equal(t, want.result, off.result, "%s %s with REDMAGIC_DISABLE=1", vm.Name, p.Name)
			}
		})
	}
}

// The JIT on the test VMs: every program gives the original's output,
// exit status and error text, and the loop iterations run inside compiled
// traces. annotvm enters traces from its annotation calls, switchvm and
// gotovm from their patched back-edge handlers. Thresholds of 1 and 2 make
// even the small programs trace; a loop spends its first iteration in the
// original code and its second recording, so programs with few iterations
// cannot reach 90%. The governor is off: whether a trace pays is a
// measurement of time, and these runs check coverage, not timing.
func TestVMJIT(t *testing.T) {
	requireRuntime(t)
	vms, err := testvms.Build()
	require.NoError(t, err)
	progs, err := testvms.Programs()
	require.NoError(t, err)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	env := []string{"REDMAGIC_THRESHOLD=1", "REDMAGIC_SIDE_THRESHOLD=2", "REDMAGIC_GOVERNOR=0"}
	var annot string
	for _, vm := range vms {
		out := filepath.Join(t.TempDir(), vm.Name)
		var extra []string
		if vm.Name != "annotvm" {
			extra = []string{"--profile", filepath.Join(root, "testdata/vms/vm-profile.json")}
		} else {
			annot = out
		}
		patch(t, vm.Stripped, out, extra...)
		for _, p := range progs {
			args := append([]string{p.Path}, p.Args...)
			want := runBin(t, vm.Stripped, args, nil, false)
			got := runBin(t, out, args, env, true)
			assert.Equal(t, want.result, got.result, "%s %s", vm.Name, p.Name)
			if p.BackEdges < 20 {
				continue
			}
			jit, ok := got.stats["jit"].(map[string]any)
			require.True(t, ok, "%s %s: no jit section in the statistics", vm.Name, p.Name)
			iters := int64(jit["trace_iterations"].(float64))
			assert.Greater(t, jit["traces_compiled"].(float64), 0.0, "%s %s", vm.Name, p.Name)
			assertNoInternalError(t, jit, vm.Name+" "+p.Name)
			if vm.Name == "annotvm" {
				// Each back-edge is counted in the original code, or
				// is taken in a trace, or closes a recording: never two.
				// (The other VMs' conditional back-jump handlers count
				// when they fall through too.)
				hits := siteHits(got.stats, "redmagic_backwards_branch")
				assert.LessOrEqual(t, hits+iters, p.BackEdges, "%s: hits %d + trace iterations %d", p.Name, hits, iters)
			}
			if p.BackEdges >= 500 {
				assert.GreaterOrEqual(t, float64(iters), 0.9*float64(p.BackEdges), "%s %s: trace iterations", vm.Name, p.Name)
			}
			t.Logf("%-8s %-10s back-edges %6d, in traces %6d (%5.1f%%), traces %v, exits %v, aborts %v", vm.Name,
				p.Name, p.BackEdges, iters, 100*float64(iters)/float64(p.BackEdges), jit["traces_compiled"], jit["side_exits"], jit["aborts"])
		}
	}
	// A code cache too small for float.vm's traces: it flushes (every
	// trace dropped, a new generation) and the answers stay the same.
	for _, p := range progs {
		if p.Name != "float" {
			continue
		}
		args := append([]string{p.Path}, p.Args...)
		got := runBin(t, annot, args, append(env, "REDMAGIC_MAX_CODE=32768"), true)
		assert.Equal(t, result{p.Stdout, p.Stderr, p.Status}, got.result, "float with a 32 KiB code cache")
		jit := got.stats["jit"].(map[string]any)
		assert.GreaterOrEqual(t, jit["flushes"].(float64), 1.0, "float with a 32 KiB code cache")
	}
	out := annot
	// REDMAGIC_LOG writes each trace's disassembly beside the original
	// addresses.
	logPath := filepath.Join(t.TempDir(), "jit.log")
	loop := progs[0]
	for _, p := range progs {
		if p.Name == "loop_n" {
			loop = p
		}
	}
	r := runBin(t, out, append([]string{loop.Path}, loop.Args...), append(env, "REDMAGIC_LOG="+logPath), false)
	require.Equal(t, 0, r.status, r.stderr)
	log, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^redmagic: trace 0 \(root\) site \d+ id 0x[0-9a-f]+: \d+ instructions recorded`, string(log))
	assert.Regexp(t, `(?m)^  0x[0-9a-f]+: \S.*; insn 0x[0-9a-f]+$`, string(log))
}

// The annotated stress program (testdata/stress): loops traced while two
// threads share them, a signal arrives every 200 us, a fork happens in the
// middle of one, with floating point, vector code and %rip-relative data.
// The patched copy prints exactly what the original prints, with and
// without the optimiser, and nearly all iterations run in traces.
func TestAnnotatedStress(t *testing.T) {
	requireRuntime(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	mk := exec.Command("make", "-s", "-C", filepath.Join(root, "testdata", "stress"))
	msg, err := mk.CombinedOutput()
	require.NoError(t, err, "make: %s", msg)
	orig := filepath.Join(root, "testdata", "build", "stress")
	out := filepath.Join(t.TempDir(), "stress")
	patch(t, orig, out, "--profile", "annotated")
	const n = 500000
	args := []string{fmt.Sprint(n)}
	want := runBin(t, orig, args, nil, false)
	require.Equal(t, 0, want.status, want.stderr)
	// With the governor on (the default) only the output is checked: it
	// keeps or drops traces by timing them, and a loaded machine times
	// them differently. The coverage runs turn it off.
	got := runBin(t, out, args, []string{"REDMAGIC_THRESHOLD=100", "REDMAGIC_SIDE_THRESHOLD=4"}, true)
	assert.Equal(t, want.result, got.result, "governor on")
	for _, env := range [][]string{
		{"REDMAGIC_THRESHOLD=100", "REDMAGIC_SIDE_THRESHOLD=4", "REDMAGIC_GOVERNOR=0"},
		{"REDMAGIC_THRESHOLD=100", "REDMAGIC_SIDE_THRESHOLD=4", "REDMAGIC_GOVERNOR=0", "REDMAGIC_OPT=0"},
	} {
		got := runBin(t, out, args, env, true)
		assert.Equal(t, want.result, got.result, "%v", env)
		jit, ok := got.stats["jit"].(map[string]any)
		require.True(t, ok, "no jit section")
		assert.GreaterOrEqual(t, jit["traces_compiled"].(float64), 4.0, "%v", env)
		// 14 loops of n iterations in the parent (the forked child's
		// half is not counted: it writes no statistics). The per-thread
		// hit counters are exact, the trace counters lose increments
		// when two threads share a trace: the back-edges the original
		// code took must be under 10%.
		hits := siteHits(got.stats, "redmagic_backwards_branch")
		assert.Less(t, float64(hits), 0.1*14*n, "%v: back-edges taken in the original code", env)
		t.Logf("%v: %v traces, %d of %d back-edges in the original code, trace counters %v, aborts %v",
			env, jit["traces_compiled"], hits, 14*n, jit["trace_iterations"], jit["aborts"])
	}
}

func TestPatchPython(t *testing.T) {
	requireRuntime(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "python3-jit")
	patch(t, "/usr/bin/python3.11", out)
	r := runBin(t, out, []string{"-c", "print(1)"}, nil, false)
	assert.Equal(t, result{"1\n", "", 0}, r.result)
	loop := func(n int) int64 {
		src := fmt.Sprintf("i = 0\nwhile i < %d:\n    i += 1\nfor j in range(%d):\n    pass\nprint(i, j)\n", n, n)
		// Counting only: a loop that runs in a trace is not counted.
		r := runBin(t, out, []string{"-c", src}, []string{"REDMAGIC_JIT=0", "REDMAGIC_SAMPLE=1"}, true)
		require.Equal(t, fmt.Sprintf("%d %d\n", n, n-1), r.stdout)
		return siteHits(r.stats)
	}
	// Two loops of n iterations each: 2n back-edges, plus a constant
	// from start-up code that does not depend on n.
	h1, h2 := loop(1000), loop(21000)
	assert.Equal(t, int64(2*20000), h2-h1, "hits(21000)=%d hits(1000)=%d", h2, h1)
	t.Logf("start-up and two 1000-iteration loops: %d hits", h1)
	// The runtime opens no descriptor the interpreter can see (CPython's
	// subprocess tests list them), even after the JIT has started.
	fds := "for i in range(5000): pass\nimport os\nprint(sorted(os.listdir('/proc/self/fd')))"
	wantFDs := runBin(t, "/usr/bin/python3.11", []string{"-c", fds}, nil, false)
	gotFDs := runBin(t, out, []string{"-c", fds}, []string{"REDMAGIC_THRESHOLD=100"}, false)
	assert.Equal(t, wantFDs.result, gotFDs.result)
	want := runBin(t, "/usr/bin/python3.11", []string{"-c", "import sys; print(sys.flags, sorted(sys.modules)[:5])"}, nil, false)
	off := runBin(t, out, []string{"-c", "import sys; print(sys.flags, sorted(sys.modules)[:5])"}, []string{"REDMAGIC_DISABLE=1"}, false)
	assert.Equal(t, want.result, off.result)
}

func TestPatchLua(t *testing.T) {
	requireRuntime(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "lua-jit")
	patch(t, "/usr/bin/lua5.4", out)
	for _, c := range []struct {
		src  string
		hits int64 // back-edge hits the program must add
	}{
		{"local s=0 for i=1,5000 do s=s+i end print(s)", 5000},
		// Generic for: OP_TFORLOOP jumps back to OP_TFORCALL once per
		// iteration, which is dispatched through the table; OP_TFORPREP
		// reaches the first OP_TFORCALL by a goto.
		{"local t={} for i=1,300 do t[i]=i end local s=0 for _,v in ipairs(t) do s=s+v end print(s)", 300 + 300},
		{"local i=0 while i<700 do i=i+1 end print(i)", 700},
		// repeat-until jumps back from inside the comparison handler
		// (donextjump), not through OP_JMP: counted at the comparison.
		{"local i=0 repeat i=i+1 until i>=400 print(i)", 400},
		{"local n=0 ::top:: n=n+1 if n<250 then goto top end print(n)", 249},
	} {
		want := runBin(t, "/usr/bin/lua5.4", []string{"-e", c.src}, nil, false)
		// Counting only: a loop that runs in a trace is not counted.
		got := runBin(t, out, []string{"-e", c.src}, []string{"REDMAGIC_JIT=0", "REDMAGIC_SAMPLE=1"}, true)
		assert.Equal(t, want.result, got.result, c.src)
		assert.Equal(t, c.hits, siteHits(got.stats), c.src)
	}
}

func TestPatchRefusals(t *testing.T) {
	requireRuntime(t)
	dir := t.TempDir()
	patched := filepath.Join(dir, "lua-jit")
	patch(t, "/usr/bin/lua5.4", patched)
	goBin, err := os.Executable() // this test binary is a Go program
	require.NoError(t, err)
	setuid := filepath.Join(dir, "lua-setuid")
	data, err := os.ReadFile("/usr/bin/lua5.4")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(setuid, data, 0o755))
	require.NoError(t, os.Chmod(setuid, 0o755|os.ModeSetuid))
	for _, c := range []struct{ in, want string }{
		{patched, "already patched"},
		{goBin, "Go"},
		{setuid, "setuid"},
		{"/bin/ls", "unrecognised interpreter"},
	} {
		out := filepath.Join(dir, "out-"+filepath.Base(c.in))
		var stdout, stderr bytes.Buffer
		status := run([]string{c.in, "-o", out}, &stdout, &stderr)
		assert.Equal(t, 2, status, c.in)
		msg := strings.TrimSpace(stderr.String())
		assert.Contains(t, msg, c.in)
		assert.Contains(t, msg, c.want)
		assert.NotContains(t, msg, "\n")
		_, err := os.Stat(out)
		assert.True(t, os.IsNotExist(err), "%s: no output file", c.in)
	}
}

func TestBatch(t *testing.T) {
	requireRuntime(t)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	status := run([]string{"batch", "--out-dir", dir, "-j", "2", "/usr/bin/lua5.4", "/bin/ls", "/usr/bin/python3.11"}, &stdout, &stderr)
	assert.Equal(t, 2, status, "one input fails")
	assert.Contains(t, stderr.String(), "1 of 3 inputs failed")
	out := stdout.String()
	assert.Contains(t, out, "[3/3]")
	assert.Regexp(t, `/usr/bin/lua5.4\s+\S+lua5.4\s+lua5.4\s+15\s+\S+\s+ok`, out)
	assert.Regexp(t, `/bin/ls\s+.*failed`, out)
	for _, name := range []string{"lua5.4", "python3.11", "libredmagic.so", "libredmagic-jit.so"} {
		_, err := os.Stat(filepath.Join(dir, name))
		assert.NoError(t, err)
	}
	_, err := os.Stat(filepath.Join(dir, "ls"))
	assert.True(t, os.IsNotExist(err))
	r := runBin(t, filepath.Join(dir, "lua5.4"), []string{"-e", "print(6*7)"}, nil, false)
	assert.Equal(t, "42\n", r.stdout)
}

// TestSelfContained moves a patched file's directory: $ORIGIN keeps the
// runtime library found, and nothing refers back to the build tree.
func TestSelfContained(t *testing.T) {
	requireRuntime(t)
	a := filepath.Join(t.TempDir(), "a")
	require.NoError(t, os.Mkdir(a, 0o755))
	patch(t, "/usr/bin/lua5.4", filepath.Join(a, "lua"))
	b := filepath.Join(t.TempDir(), "moved")
	require.NoError(t, os.Rename(a, b))
	r := runBin(t, filepath.Join(b, "lua"), []string{"-e", "local s=0 for i=1,10 do s=s+i end print(s)"}, []string{"REDMAGIC_SAMPLE=1"}, true)
	assert.Equal(t, "55\n", r.stdout)
	assert.Equal(t, int64(10), siteHits(r.stats))
}

// TestPatchOtherPythonBuild patches a second Debian build of python3.11,
// whose addresses all differ from the installed one (scripts/test.sh
// fetches it): site discovery must find its sites on its own.
func TestPatchOtherPythonBuild(t *testing.T) {
	requireRuntime(t)
	other := os.Getenv("REDMAGIC_TEST_OTHER_PYTHON")
	if other == "" {
		t.Skip("REDMAGIC_TEST_OTHER_PYTHON unset: run through scripts/test.sh, which fetches another build")
	}
	out := filepath.Join(t.TempDir(), "python3-other-jit")
	summary := patch(t, other, out, "--json")
	var sum struct {
		Sites []struct{ Addr uint64 } `json:"sites"`
	}
	require.NoError(t, json.Unmarshal([]byte(summary), &sum))
	require.Len(t, sum.Sites, 9, "the back-edge opcodes but the yield from loop's, and the three compare-and-jumps")
	mine := patch(t, "/usr/bin/python3.11", filepath.Join(t.TempDir(), "python3-jit"), "--json")
	assert.NotEqual(t, mine, summary, "the two builds have different addresses")
	// Its stdlib is the installed one; exact counts for the bound below;
	// no governor, whose interpreter sample (20,000 iterations) would
	// outlast the loop.
	env := []string{"PYTHONHOME=/usr", "REDMAGIC_SAMPLE=1", "REDMAGIC_GOVERNOR=0"}
	r := runBin(t, out, []string{"-c", "i = 0\nwhile i < 5000: i += 1\nprint(i)"}, env, true)
	assert.Equal(t, "5000\n", r.stdout)
	jit, _ := r.stats["jit"].(map[string]any)
	iters, _ := jit["trace_iterations"].(float64)
	assert.GreaterOrEqual(t, siteHits(r.stats)+int64(iters), int64(5000), "back-edges run, in traces or not")
	assert.Positive(t, iters, "its loop ran in a trace")
}

// regrtest runs CPython's regression tests named in
// scripts/cpython-core-tests.txt with python and returns the names of the
// tests that did not pass, and the summary line.
func regrtest(t *testing.T, python string, tests []string) ([]string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := append([]string{"-m", "test", "-j2", "--timeout", "300"}, tests...)
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = t.TempDir()
	out, _ := cmd.CombinedOutput()
	text := string(out)
	require.Contains(t, text, "Tests result:", "%s did not finish the regression tests:\n%s", python, text)
	var bad []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		// Per-test result lines: "0:00:03 load avg: 1.2 [ 3/53/1] test_x failed (...)"
		for i, w := range f {
			if strings.HasPrefix(w, "test_") && i+1 < len(f) && (f[i+1] == "failed" || f[i+1] == "crashed" || strings.HasPrefix(f[i+1], "timed")) {
				bad = append(bad, w)
			}
		}
	}
	summary := ""
	if i := strings.LastIndex(text, "Tests result:"); i >= 0 {
		summary = strings.TrimSpace(strings.SplitN(text[i:], "\n", 2)[0])
	}
	return bad, summary
}

// TestCPythonCoreSubset runs the CPython regression core subset under the
// patched python3.11 and under the original: the same tests must pass.
func TestCPythonCoreSubset(t *testing.T) {
	requireRuntime(t)
	if testing.Short() {
		t.Skip("-short: the regression subset takes about a minute per interpreter")
	}
	if _, err := os.Stat("/usr/lib/python3.11/test/regrtest.py"); err != nil {
		t.Fatalf("CPython's test suite is missing: scripts/install-deps.sh installs libpython3.11-testsuite")
	}
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	list, err := os.ReadFile(filepath.Join(root, "scripts/cpython-core-tests.txt"))
	require.NoError(t, err)
	var tests []string
	for _, line := range strings.Split(string(list), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			tests = append(tests, line)
		}
	}
	require.Greater(t, len(tests), 40)
	out := filepath.Join(t.TempDir(), "python3-jit")
	patch(t, "/usr/bin/python3.11", out)
	wantBad, wantSum := regrtest(t, "/usr/bin/python3.11", tests)
	gotBad, gotSum := regrtest(t, out, tests)
	t.Logf("original: %s %v; patched: %s %v", wantSum, wantBad, gotSum, gotBad)
	assert.Equal(t, wantBad, gotBad)
	assert.Equal(t, wantSum, gotSum)
}

// TestOutputsReadCleanly runs readelf -a and objdump -d on patched files:
// no warnings, and objdump shows the trampolines.
func TestOutputsReadCleanly(t *testing.T) {
	requireRuntime(t)
	vms, err := testvms.Build()
	require.NoError(t, err)
	dir := t.TempDir()
	inputs := []string{"/usr/bin/python3.11", "/usr/bin/lua5.4"}
	for _, vm := range vms {
		if vm.Name == "annotvm" {
			inputs = append(inputs, vm.Stripped)
		}
	}
	for _, in := range inputs {
		out := filepath.Join(dir, filepath.Base(in))
		patch(t, in, out)
		for _, tool := range [][]string{{"readelf", "-a", "-W", out}, {"objdump", "-d", "-j", ".redmagic.text", out}} {
			cmd := exec.Command(tool[0], tool[1:]...)
			var so, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &so, &se
			require.NoError(t, cmd.Run(), "%v: %s", tool, se.String())
			// binutils prints its warnings on stderr, as "readelf: Warning: ...".
			assert.Empty(t, se.String(), "%v", tool)
			assert.NotContains(t, so.String(), tool[0]+": Warning", "%v", tool)
			if tool[0] == "objdump" {
				assert.Contains(t, so.String(), "<.redmagic.text>:", "%s: trampolines disassemble", out)
				if !strings.Contains(in, "annotvm") {
					assert.Contains(t, so.String(), "lahf", "%s: back-edge trampolines save the flags", out)
					assert.Contains(t, so.String(), "sahf", "%s: and restore them", out)
				}
			}
		}
	}
}

// TestPatchedPythonForkThreadsSignals runs loop-heavy work in forked
// children (multiprocessing's default start method), in threads that
// hand the GIL back and forth, and under a SIGALRM handler: the patched
// interpreter must neither hang nor differ from the original.
func TestPatchedPythonForkThreadsSignals(t *testing.T) {
	requireRuntime(t)
	out := filepath.Join(t.TempDir(), "python3-jit")
	patch(t, "/usr/bin/python3.11", out)
	src := `
import multiprocessing as mp, threading, signal

def work(n):
    s = 0
    for i in range(n):
        s += i % 7
    return s

if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as pool:
        print("fork", pool.map(work, [10000, 20000, 30000]))
    results = []
    def run(n):
        results.append(work(n))
    ts = [threading.Thread(target=run, args=(50000 + k,)) for k in range(4)]
    for th in ts: th.start()
    for th in ts: th.join()
    print("threads", sorted(results))
    fired = []
    signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
    i = 0
    while len(fired) < 5:
        i += 1
    signal.setitimer(signal.ITIMER_REAL, 0)
    print("alarms", len(fired) >= 5)
`
	want := runBin(t, "/usr/bin/python3.11", []string{"-c", src}, nil, false)
	got := runBin(t, out, []string{"-c", src}, nil, true)
	assert.Equal(t, want.result, got.result)
	// Back-edges run in the original code are counted as hits, those in
	// traces as iterations (one shared counter a trace: racy across
	// threads, so only a bound).
	jit, _ := got.stats["jit"].(map[string]any)
	require.NotNil(t, jit, "the JIT started")
	iters, _ := jit["trace_iterations"].(float64)
	assert.Positive(t, jit["traces_compiled"], "loops ran in traces")
	assert.Greater(t, siteHits(got.stats)+int64(iters), int64(4*50000)/2, "the threads' loops are counted")
}

// BenchmarkPatchPython times the whole patch of /usr/bin/python3.11:
// read, recover the CFG, find the sites, generate and write in memory.
func BenchmarkPatchPython(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, _, err := planPatch("/usr/bin/python3.11", "auto", "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPatchSharedObject patches pyenv's libpython3.11.so (where the
// machine has it) and runs pyenv's unmodified python3.11 against it
// through LD_LIBRARY_PATH.
func TestPatchSharedObject(t *testing.T) {
	requireRuntime(t)
	libs, _ := filepath.Glob(os.ExpandEnv("$HOME/.pyenv/versions/3.11.*/lib/libpython3.11.so.1.0"))
	if len(libs) == 0 {
		t.Skip("no pyenv CPython 3.11 on this machine")
	}
	lib := libs[0]
	python := filepath.Join(filepath.Dir(filepath.Dir(lib)), "bin", "python3.11")
	dir := t.TempDir()
	patch(t, lib, filepath.Join(dir, "libpython3.11.so.1.0"))
	// A while loop closed by COMPARE_OP_INT_JUMP once f is quickened,
	// whose trampoline reads the code at the site's id register: this
	// build keeps the instruction in r14, not in the profile's r15.
	src := "def f(n):\n    i = 0\n    while i < n:\n        i += 1\n    return i\nfor _ in range(16): f(2)\nprint(f(30000))"
	env := []string{"LD_LIBRARY_PATH=" + dir, "REDMAGIC_SAMPLE=1"} // exact counts for the bound below
	want := runBin(t, python, []string{"-c", src}, nil, false)
	got := runBin(t, python, []string{"-c", src}, env, true)
	assert.Equal(t, want.result, got.result)
	objects := got.stats["objects"].([]any)
	require.Len(t, objects, 1, "the patched library was loaded")
	assert.Contains(t, objects[0].(map[string]any)["path"], dir)
	jit, _ := got.stats["jit"].(map[string]any)
	iters, _ := jit["trace_iterations"].(float64)
	assert.GreaterOrEqual(t, siteHits(got.stats)+int64(iters), int64(30000), "the while loop's back-edges are counted")
}

// TestDynamicReadOnly: the dynamic section ld.so reads (PT_DYNAMIC) lies in
// PT_GNU_RELRO, as in the original, and is read-only in the running
// process once relocated.
func TestDynamicReadOnly(t *testing.T) {
	requireRuntime(t)
	dir := t.TempDir()
	for _, c := range []struct {
		in   string
		args []string // says "ready", then waits for the end of its input
	}{
		{"/usr/bin/python3.11", []string{"-c", "import sys; print('ready', flush=True); sys.stdin.read()"}},
		{"/usr/bin/lua5.4", []string{"-e", "io.write('ready\\n') io.flush() io.read('a')"}},
	} {
		t.Run(filepath.Base(c.in), func(t *testing.T) {
			out := filepath.Join(dir, filepath.Base(c.in))
			patch(t, c.in, out)
			ef, err := elf.Open(out)
			require.NoError(t, err)
			defer ef.Close()
			var dyn, relro *elf.Prog
			for _, p := range ef.Progs {
				switch p.Type {
				case elf.PT_DYNAMIC:
					dyn = p
				case elf.PT_GNU_RELRO:
					relro = p
				}
			}
			require.NotNil(t, dyn)
			require.NotNil(t, relro)
			assert.True(t, dyn.Vaddr >= relro.Vaddr && dyn.Vaddr+dyn.Memsz <= relro.Vaddr+relro.Memsz,
				"PT_DYNAMIC [%#x, +%#x) in PT_GNU_RELRO [%#x, +%#x)", dyn.Vaddr, dyn.Memsz, relro.Vaddr, relro.Memsz)

			cmd := exec.Command(out, c.args...)
			cmd.Env = append(os.Environ(), jitNow...)
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			defer func() {
				stdin.Close()
				assert.NoError(t, cmd.Wait())
			}()
			// Once the program runs, ld.so has relocated it and applied
			// RELRO.
			line, err := bufio.NewReader(stdout).ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "ready\n", line)
			maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", cmd.Process.Pid))
			require.NoError(t, err)
			assert.Equal(t, "r--p", mappingPerms(t, string(maps), out, ef.Type == elf.ET_DYN, dyn.Vaddr), "the page of the dynamic section")
		})
	}
}

// mappingPerms returns the permissions of the mapping of /proc/PID/maps
// that holds the link-time address vaddr of the file path (pie: loaded at
// the start of its mapping at offset 0).
func mappingPerms(t *testing.T, maps, path string, pie bool, vaddr uint64) string {
	t.Helper()
	type mapping struct {
		lo, hi, off uint64
		perms, path string
	}
	var ms []mapping
	var bias uint64
	for _, line := range strings.Split(strings.TrimSpace(maps), "\n") {
		f := strings.Fields(line)
		var m mapping
		_, err := fmt.Sscanf(f[0]+" "+f[2], "%x-%x %x", &m.lo, &m.hi, &m.off)
		require.NoError(t, err, line)
		m.perms = f[1]
		if len(f) >= 6 {
			m.path = f[5]
		}
		if pie && m.path == path && m.off == 0 && bias == 0 {
			bias = m.lo
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		if bias+vaddr >= m.lo && bias+vaddr < m.hi {
			return m.perms
		}
	}
	t.Fatalf("%#x (bias %#x) is not mapped", vaddr, bias)
	return ""
}
