package main

import (
	"context"
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/elfpatch/redmagic"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

const origLua = "/usr/bin/lua5.4"

// luaPrograms are the programs in testdata/lua. status is the exit
// status the original gives: it checks the programs themselves, so that
// one failing early (a typo) cannot make the comparison vacuous.
var luaPrograms = []struct {
	name   string
	status int
}{
	{"arith.lua", 0},
	{"closures.lua", 0},
	{"compare.lua", 0},
	{"cond_phases.lua", 0},
	{"coroutines.lua", 0},
	{"errors.lua", 0},
	{"exit.lua", 108}, // os.exit(s % 200 + 3) from inside a loop
	{"exit_close.lua", 1},
	{"exit_coroutine.lua", 86}, // os.exit(s % 100 + 1) inside a coroutine
	{"gc.lua", 0},
	{"genfor.lua", 0},
	{"goto.lua", 0},
	{"hook.lua", 0},
	{"ifchain.lua", 0},
	{"metatables.lua", 0},
	{"midloop.lua", 0},
	{"nested.lua", 0},
	{"numfor.lua", 0},
	{"recursion.lua", 0},
	{"rejoin.lua", 0},
	{"repeat_until.lua", 0},
	{"stack_debug.lua", 0},
	{"strings.lua", 0},
	{"toperror.lua", 1},
	{"toperror_table.lua", 1},
	{"while_repeat.lua", 0},
}

// luaConfigs are the environments the patched interpreter runs under.
// A threshold of 1 records every loop on its second iteration; a side
// threshold of 1 records a side trace from every exit the first time it
// is taken, so the recordings run on well past the loops.
var luaConfigs = []struct {
	name string
	env  []string
	// background: the JIT loads and compiles on threads of its own, as
	// by default, so a short program may end before any trace is ready.
	background bool
}{
	{"default", nil, false},
	{"threshold=1", []string{"REDMAGIC_THRESHOLD=1"}, false},
	// Other loops' back-edges linked to, never unrolled into traces.
	{"threshold=7,no unrolling", []string{"REDMAGIC_THRESHOLD=7", "REDMAGIC_LOOPUNROLL=0"}, false},
	// Compiled on the JIT's own thread, as by default: the traces arrive
	// while the program runs on.
	{"threshold=7,side=1,background", []string{"REDMAGIC_THRESHOLD=7", "REDMAGIC_SIDE_THRESHOLD=1", "REDMAGIC_JIT_BACKGROUND=1"}, true},
}

// luaSlots bounds the interpreters running at once, whatever -parallel
// says: the machines this runs on have two cores.
var luaSlots = make(chan struct{}, 2)

// runLua runs `bin script` in dir with argv[0] "lua5.4", so that the
// interpreter's messages ("lua5.4: file:line: ...") do not depend on where
// the binary is. The environment is this process's without REDMAGIC_
// variables, plus env. A process killed by a signal gets status 128+signal,
// as a shell reports it.
func runLua(t *testing.T, bin, dir, script string, env []string) result {
	t.Helper()
	luaSlots <- struct{}{}
	defer func() { <-luaSlots }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, script)
	cmd.Args[0] = "lua5.4"
	cmd.Dir = dir
	cmd.Env = append(environWithout("REDMAGIC_"), jitNow...)
	cmd.Env = append(cmd.Env, env...)
	r := runCmd(t, cmd)
	require.NoError(t, ctx.Err(), "%s %s %v: timed out", bin, script, env)
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.status = 128 + int(ws.Signal())
	}
	return r
}

// readJIT returns the "jit" section of a statistics file, nil when the
// JIT never started.
func readJIT(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var stats map[string]any
	if err := json.Unmarshal(data, &stats); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	jit, _ := stats["jit"].(map[string]any)
	return jit, nil
}

// TestLuaPrograms runs each program of testdata/lua under the original
// lua5.4 and under a patched copy with the JIT on, in several
// configurations: standard output, standard error and the exit status must
// be the same, and the JIT must have compiled traces.
func TestLuaPrograms(t *testing.T) {
	requireRuntime(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	dir := filepath.Join(root, "testdata", "lua")

	// Every program in the directory is in the table, and the reverse.
	files, err := filepath.Glob(filepath.Join(dir, "*.lua"))
	require.NoError(t, err)
	var have, listed []string
	for _, f := range files {
		have = append(have, filepath.Base(f))
	}
	for _, p := range luaPrograms {
		listed = append(listed, p.name)
	}
	sort.Strings(listed)
	require.Equal(t, have, listed, "testdata/lua and luaPrograms")

	tmp := t.TempDir()
	patched := filepath.Join(tmp, "lua5.4")
	patch(t, origLua, patched)

	for _, p := range luaPrograms {
		p := p
		t.Run(strings.TrimSuffix(p.name, ".lua"), func(t *testing.T) {
			t.Parallel()
			want := runLua(t, origLua, dir, p.name, nil)
			// The programs must be deterministic for the comparison to
			// mean anything (no addresses, times or hash orders printed).
			again := runLua(t, origLua, dir, p.name, nil)
			require.Equal(t, want, again, "%s: the original gives different output on two runs", p.name)
			require.Equal(t, p.status, want.status, "%s under the original: stderr %s", p.name, want.stderr)
			if p.status == 0 {
				require.Empty(t, want.stderr, "%s under the original", p.name)
			}
			for i, c := range luaConfigs {
				statsPath := filepath.Join(t.TempDir(), fmt.Sprintf("stats%d.json", i))
				env := append([]string{"REDMAGIC_STATS=" + statsPath}, c.env...)
				got := runLua(t, patched, dir, p.name, env)
				ok := assert.Equal(t, want.stdout, got.stdout, "%s %v: stdout", p.name, c.env)
				ok = assert.Equal(t, want.stderr, got.stderr, "%s %v: stderr", p.name, c.env) && ok
				ok = assert.Equal(t, want.status, got.status, "%s %v: exit status", p.name, c.env) && ok
				if got.status > 128 {
					// Killed by a signal: no statistics to read.
					continue
				}
				jit, err := readJIT(statsPath)
				if !assert.NoError(t, err, "%s %v: statistics", p.name, c.env) {
					continue
				}
				if c.background && jit == nil {
					continue // ended before the JIT was loaded
				}
				// Every program has loops of 5000 or more iterations:
				// even the default threshold makes them hot.
				if !assert.NotNil(t, jit, "%s %v: the JIT never started", p.name, c.env) {
					continue
				}
				compiled := jit["traces_compiled"].(float64)
				if !c.background {
					assert.Greater(t, compiled, 0.0, "%s %v: traces compiled", p.name, c.env)
				}
				assertNoInternalError(t, jit, p.name+" "+c.name)
				if ok {
					t.Logf("%-18s %-18s traces %4.0f (side %4.0f), iterations in traces %8.0f, exits %6.0f, aborts %v",
						p.name, c.name, compiled, jit["side_traces"], jit["trace_iterations"], jit["side_exits"], jit["aborts"])
				}
			}
		})
	}
}

// luaScript patches lua5.4 into a temporary directory and runs
// testdata/lua/script with args under the original: the patched file, the
// full argument list and the original's result (which must succeed).
func luaScript(t *testing.T, script string, args ...string) (patched string, argv []string, want runResult) {
	t.Helper()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	patched = filepath.Join(t.TempDir(), "lua5.4")
	patch(t, origLua, patched)
	argv = append([]string{filepath.Join(root, "testdata", "lua", script)}, args...)
	want = runBin(t, origLua, argv, nil, false)
	require.Equal(t, 0, want.status, want.stderr)
	return patched, argv, want
}

// runKept runs patched with args under env (one of everyTraceKept) and
// checks that it gives want's result and that the JIT started and hit no
// defect of its own; it returns the run and the JIT's report.
func runKept(t *testing.T, patched string, args, env []string, want runResult) (runResult, map[string]any) {
	t.Helper()
	got := runBin(t, patched, args, env, true)
	require.Equal(t, want.result, got.result, "%v", env)
	jit, ok := got.stats["jit"].(map[string]any)
	require.True(t, ok, "%v: the JIT never started", env)
	assertNoInternalError(t, jit, fmt.Sprint(env))
	return got, jit
}

// everyTraceKept: the governor off (no trace dropped), at the default
// threshold and 1, and unoptimised: the settings under which a loop's
// share of iterations in traces is checked.
var everyTraceKept = [][]string{
	{"REDMAGIC_GOVERNOR=0"},
	{"REDMAGIC_GOVERNOR=0", "REDMAGIC_THRESHOLD=1"},
	{"REDMAGIC_GOVERNOR=0", "REDMAGIC_OPT=0"},
}

// optimises reports whether env (one of everyTraceKept) leaves the
// optimiser on: the side-trace mechanisms that rest on it are checked
// only then.
func optimises(env []string) bool {
	return !slices.Contains(env, "REDMAGIC_OPT=0")
}

// siteNames are the names of the sites a statistics report lists, by
// global site index (one object).
func siteNames(stats map[string]any) []string {
	var names []string
	for _, s := range stats["sites"].([]any) {
		names = append(names, s.(map[string]any)["name"].(string))
	}
	return names
}

// TestLuaLoopByHeader: a Lua loop is its header. In ifchain.lua each
// branch of an if/elseif chain that ends a while body jumps back to the
// header on its own (Lua's code generator sends every jump to a jump
// straight to the final target); before loops were keyed by header each
// of those back jumps was a loop of its own, and every recording reached
// another one and gave up (inner-loop). Each while loop must be one hot
// loop, and nearly every back jump taken inside traces.
func TestLuaLoopByHeader(t *testing.T) {
	requireRuntime(t)
	const n = 200000
	patched, args, want := luaScript(t, "ifchain.lua", fmt.Sprint(n))
	for _, env := range everyTraceKept {
		got, jit := runKept(t, patched, args, env, want)
		// Two while loops (chain's, run twice, and dispatch's), keyed by
		// their headers whatever number of back jumps each has: at
		// OP_JMP, and at the comparisons whose false branch Lua sends
		// straight back to the header (dispatch's innermost ifs), which
		// count at their own sites.
		loops := map[float64]float64{}
		for _, h := range got.stats["hot_loops"].([]any) {
			h := h.(map[string]any)
			loops[h["id"].(float64)] += h["hits"].(float64)
		}
		assert.LessOrEqual(t, len(loops), 2, "%v: hot loops %v", env, loops)
		iters := jit["trace_iterations"].(float64)
		if optimises(env) {
			// The branches other than the root's are side traces,
			// optimised from what the root knows at their exits.
			assert.Greater(t, jit["side_traces_optimized"].(float64), 0.0, "%v", env)
		}
		backJumps := float64(n + n + n/3)
		assert.GreaterOrEqual(t, iters, 0.9*backJumps, "%v: back jumps in traces; aborts %v", env, jit["aborts"])
		t.Logf("%v: hot loops %v, traces %v, %.0f of %.0f back jumps in traces, aborts %v",
			env, loops, jit["traces_compiled"], iters, backJumps, jit["aborts"])
	}
}

// TestLuaSideTracesRejoin: in rejoin.lua a loop's body branches three
// ways and then runs a long common part. The side traces of the branches
// end where they rejoin the root trace's path and enter a continuation
// shared from there (tracevm/merge.go), rather than each copying the
// common part; the output stays the original's and nearly every iteration
// runs in traces.
func TestLuaSideTracesRejoin(t *testing.T) {
	requireRuntime(t)
	const n = 200000
	patched, args, want := luaScript(t, "rejoin.lua", fmt.Sprint(n))
	for _, env := range everyTraceKept {
		_, jit := runKept(t, patched, args, env, want)
		if optimises(env) {
			assert.Greater(t, jit["merged_side_traces"].(float64), 0.0, "%v", env)
			assert.Greater(t, jit["continuations"].(float64), 0.0, "%v", env)
		}
		assert.GreaterOrEqual(t, jit["trace_iterations"].(float64), 0.9*n, "%v: aborts %v", env, jit["aborts"])
		t.Logf("%v: traces %v, merged side traces %v, continuations %v, %v KiB of code", env,
			jit["traces_compiled"], jit["merged_side_traces"], jit["continuations"], jit["code_bytes"].(float64)/1024)
	}
}

// TestLuaRepeatUntil: a repeat-until loop closes inside the comparison
// or test that ends its body, which takes the jump back itself; before the
// comparisons were sites such loops were not even counted. Each loop of
// the program must be one hot loop at its comparison's site, and nearly
// all of its iterations inside traces.
func TestLuaRepeatUntil(t *testing.T) {
	requireRuntime(t)
	const n = 200000
	patched, args, want := luaScript(t, "repeat_until.lua", fmt.Sprint(n))
	r := inProcess("inspect", patched, "--json")
	require.Equal(t, 0, r.status, r.stderr)
	var info redmagic.Info
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &info))
	for _, s := range info.Sites {
		if strings.HasPrefix(s.Name, "OP_LE") || s.Name == "OP_TEST" {
			assert.Contains(t, s.FlagNames(), "lua-cond-sj", s.Name)
			// One entry, compared after the backward test.
			assert.Contains(t, s.FlagNames(), "inline-cache", s.Name)
		}
	}
	// Counted with the JIT off and every hit counted: the first loop's
	// n iterations at OP_LE, the second's n/4 at OP_TEST.
	got := runBin(t, patched, args, []string{"REDMAGIC_JIT=0", "REDMAGIC_SAMPLE=1"}, true)
	require.Equal(t, want.result, got.result)
	sites := siteNames(got.stats)
	hits := map[string]float64{}
	for _, h := range got.stats["hot_loops"].([]any) {
		h := h.(map[string]any)
		hits[sites[int(h["site"].(float64))]] += h["hits"].(float64)
	}
	assert.Equal(t, float64(n), hits["OP_LE"], "hot loops by site %v", hits)
	assert.Equal(t, float64(n/4), hits["OP_TEST"], "hot loops by site %v", hits)
	for _, env := range everyTraceKept {
		_, jit := runKept(t, patched, args, env, want)
		inTraces := map[string]float64{}
		for _, tr := range jit["traces"].([]any) {
			tr := tr.(map[string]any)
			inTraces[sites[int(tr["site"].(float64))]] += tr["iterations"].(float64)
		}
		assert.Greater(t, inTraces["OP_LE"], 0.9*n, "%v: iterations in traces by site %v", env, inTraces)
		assert.Greater(t, inTraces["OP_TEST"], 0.9*n/4, "%v: iterations in traces by site %v", env, inTraces)
	}
}

// TestLuaComparisonSitesStepAside: a comparison site through which no
// loop closes puts its dispatch entry back (fib's n < 2, all forward: a
// comparison then costs what it did before patching), and is re-armed
// when a loop becomes hot, so that a repeat-until loop closing there
// later is still counted exactly and traced.
func TestLuaComparisonSitesStepAside(t *testing.T) {
	requireRuntime(t)
	patched, args, want := luaScript(t, "cond_phases.lua")
	const n = 2000 * 100 // the repeat loop's iterations
	got := runBin(t, patched, args, []string{"REDMAGIC_JIT=0", "REDMAGIC_SAMPLE=1"}, true)
	require.Equal(t, want.result, got.result)
	assert.GreaterOrEqual(t, got.stats["dispatch_restored"].(float64), 1.0, "fib's comparison site put back")
	hits := map[string]float64{}
	for _, s := range got.stats["sites"].([]any) {
		s := s.(map[string]any)
		hits[s["name"].(string)] = s["hits"].(float64)
	}
	assert.Equal(t, float64(n), hits["OP_LTI"], "the repeat loop counted at its re-armed site: %v", hits)
	got = runBin(t, patched, args, []string{"REDMAGIC_GOVERNOR=0"}, true)
	require.Equal(t, want.result, got.result)
	jit, ok := got.stats["jit"].(map[string]any)
	require.True(t, ok, "the JIT never started")
	assertNoInternalError(t, jit, "cond_phases")
	sites := siteNames(got.stats)
	inTraces := 0.0
	for _, tr := range jit["traces"].([]any) {
		tr := tr.(map[string]any)
		if sites[int(tr["site"].(float64))] == "OP_LTI" {
			inTraces += tr["iterations"].(float64)
		}
	}
	assert.Greater(t, inTraces, 0.9*n, "iterations of the repeat loop in traces")
}

// TestStatsOfChildren: a patched lua5.4 starts another through io.popen
// and exits first (os.exit skips closing the pipe, so the child's
// io.read returns only once the parent is gone): the child inherits
// REDMAGIC_STATS and writes its report last. It never overwrites its
// parent's: without "%p" the parent's report is at the path and the
// child's beside it (PATH.<pid>); with "%p" each has its own file.
func TestStatsOfChildren(t *testing.T) {
	requireRuntime(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "lua")
	patch(t, origLua, out)
	pid := `local pid = io.open("/proc/self/stat"):read("n")`
	child := fmt.Sprintf(`exec %s -e '%s io.read() print("child", pid)'`, out, pid)
	parent := fmt.Sprintf(`%s print("parent", pid) local s = 0 for i = 1, 3000 do s = s + i end io.popen(%q, "w") os.exit(0)`, pid, child)
	tests := []struct {
		name, pattern         string
		parentFile, childFile func(stats string, parent, child int) string
	}{
		{"one path", "stats.json",
			func(s string, p, c int) string { return s },
			func(s string, p, c int) string { return fmt.Sprintf("%s.%d", s, c) }},
		{"process id", "stats.%p.json",
			func(s string, p, c int) string { return strings.ReplaceAll(s, "%p", fmt.Sprint(p)) },
			func(s string, p, c int) string { return strings.ReplaceAll(s, "%p", fmt.Sprint(c)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := t.TempDir()
			stats := filepath.Join(sub, tt.pattern)
			// Exact counts: the parent's 3,000 back-edges identify its report.
			r := runBin(t, out, []string{"-e", parent}, []string{"REDMAGIC_JIT=0", "REDMAGIC_SAMPLE=1", "REDMAGIC_STATS=" + stats}, false)
			require.Equal(t, 0, r.status, r.stderr)
			var p, c int
			_, err := fmt.Sscanf(r.stdout, "parent\t%d\nchild\t%d\n", &p, &c)
			require.NoError(t, err, "stdout %q", r.stdout)
			for _, f := range []struct {
				path string
				pid  int
				hits int64
			}{
				{tt.parentFile(stats, p, c), p, 3000},
				{tt.childFile(stats, p, c), c, 0},
			} {
				data, err := os.ReadFile(f.path)
				require.NoError(t, err)
				var st map[string]any
				require.NoError(t, json.Unmarshal(data, &st))
				assert.Equal(t, float64(f.pid), st["pid"], f.path)
				assert.Equal(t, f.hits, siteHits(st), f.path)
			}
			ents, err := os.ReadDir(sub)
			require.NoError(t, err)
			assert.Len(t, ents, 2, "two reports, nothing else")
		})
	}
}

// TestInspect: inspect reports what a patched file holds, and refuses a
// header the runtime would refuse, for the runtime's reason.
func TestInspect(t *testing.T) {
	requireRuntime(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "lua")
	patch(t, origLua, out)
	r := inProcess("inspect", out, "--json")
	require.Equal(t, 0, r.status, r.stderr)
	var info redmagic.Info
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &info))
	assert.Equal(t, "lua5.4", info.Profile)
	assert.Len(t, info.Sites, 15) // the loop handlers, OP_JMP and the 11 comparisons and tests

	// header_size (offset 12 of struct rm_patch_header) of 0xffffffff.
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	f, err := elfimage.NewFile(data, out)
	require.NoError(t, err)
	seg := f.SegmentAt(info.Header)
	require.NotNil(t, seg)
	bin.LittleEndian.PutUint32(data[seg.Offset+info.Header-seg.Vaddr+12:], 0xffffffff)
	bad := filepath.Join(dir, "lua-bad")
	require.NoError(t, os.WriteFile(bad, data, 0o755))
	assertOneLineError(t, inProcess("inspect", bad), bad+": the runtime would refuse its patch header: bad header size 4294967295")
	run := runBin(t, bad, []string{"-e", "print(1)"}, nil, false)
	assert.Equal(t, "1\n", run.stdout)
	assert.Equal(t, "redmagic: "+bad+": bad header size 4294967295, running without the runtime\n", run.stderr)

	assertOneLineError(t, inProcess("inspect", origLua), origLua+": not patched by redmagic-patch")
}
