package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/elfpatch/redmagic"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

const origPython = "/usr/bin/python3.11"

// pythonRun is one run of a program: what it printed, its exit status
// and, when asked for, the runtime's statistics.
type pythonRun struct {
	result
	pid   int
	stats map[string]any
}

// runPython runs prog under python with env added to a cleaned copy of
// this process's environment. Occurrences of python's path in the output
// become "PYTHON", so that the original and a patched copy compare equal.
// A run killed by a signal has status -signal (a timeout kills it), and
// statistics only if the file was written.
func runPython(t *testing.T, python, prog string, env []string, statsPath string) pythonRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, prog)
	cmd.Dir = t.TempDir()
	// Inherited REDMAGIC_* settings would change what is being compared,
	// and string hashing is randomised per process without a fixed seed.
	cmd.Env = append(append(environWithout("REDMAGIC_", "PYTHON"), "PYTHONHASHSEED=0"), jitNow...)
	cmd.Env = append(cmd.Env, env...)
	if statsPath != "" {
		cmd.Env = append(cmd.Env, "REDMAGIC_STATS="+statsPath)
	}
	r := pythonRun{result: runCmd(t, cmd), pid: cmd.Process.Pid}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.status = -int(ws.Signal()) // as Python's subprocess reports it
	}
	r.stdout = strings.ReplaceAll(r.stdout, python, "PYTHON")
	r.stderr = strings.ReplaceAll(r.stderr, python, "PYTHON")
	if statsPath != "" {
		// A process that dies of a signal writes none: the caller
		// reports the missing statistics next to the status.
		if data, err := os.ReadFile(statsPath); err == nil {
			require.NoError(t, json.Unmarshal(data, &r.stats), "stats of %s", prog)
		}
	}
	return r
}

// TestPythonPrograms runs each program of testdata/python under Debian's
// python3.11 and under a patched copy with several JIT settings: output,
// error text and exit status must be the same. The programs stress what a
// trace of the interpreter's own code can get wrong: exceptions and
// generators inside hot loops, recursion limits, threads switching the GIL
// every microsecond, fork in the middle of a traced loop, signals, tracing
// and profiling switched on while a loop runs (with trace functions of
// several kinds), values that change type under a specialised loop, and
// the file descriptors a program finds open.
func TestPythonPrograms(t *testing.T) {
	requireRuntime(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	progs, err := filepath.Glob(filepath.Join(root, "testdata", "python", "*.py"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(progs), 10, "testdata/python programs")
	jit := filepath.Join(t.TempDir(), "python3-jit")
	patch(t, origPython, jit)
	configs := []jitConfig{
		{"default", nil, false},
		{"threshold=1", []string{"REDMAGIC_THRESHOLD=1"}, true},
		// Compiled on the JIT's own thread, as by default: the
		// traces arrive while the program runs on.
		{"threshold=7,side=1,background", []string{"REDMAGIC_THRESHOLD=7", "REDMAGIC_SIDE_THRESHOLD=1", "REDMAGIC_JIT_BACKGROUND=1"}, false},
	}
	for _, prog := range progs {
		prog := prog
		name := strings.TrimSuffix(filepath.Base(prog), ".py")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want := runPython(t, origPython, prog, nil, "")
			for _, c := range configs {
				if name == "fds" && strings.HasSuffix(c.name, "background") {
					// A JIT loading on its own thread holds
					// descriptors for moments (its files, the
					// maps) that a listing of /proc/self/fd
					// made meanwhile shows (README: the JIT's
					// descriptors); with stdin, stdout or stderr
					// closed it loads on the program's thread.
					continue
				}
				comparePython(t, jit, prog, c, want)
			}
		})
	}
}

// jitConfig is one setting a patched interpreter runs the test programs
// with.
type jitConfig struct {
	name  string
	env   []string
	stats bool // check that the JIT compiled traces
}

// comparePython runs prog under the patched python with c and checks its
// output, error text and exit status against the original's (want) and,
// when c asks, that the JIT compiled traces.
func comparePython(t *testing.T, python, prog string, c jitConfig, want pythonRun) {
	t.Helper()
	name := strings.TrimSuffix(filepath.Base(prog), ".py")
	statsPath := ""
	if c.stats {
		statsPath = filepath.Join(t.TempDir(), "stats.json")
	}
	got := runPython(t, python, prog, c.env, statsPath)
	assert.Equal(t, want.stdout, got.stdout, "%s %s: stdout", name, c.name)
	assert.Equal(t, want.stderr, got.stderr, "%s %s: stderr", name, c.name)
	assert.Equal(t, want.status, got.status, "%s %s: exit status", name, c.name)
	if !c.stats || !assert.NotNil(t, got.stats, "%s %s: no statistics (exit status %d)", name, c.name, got.status) {
		return
	}
	// Forked children write no statistics: the file is the parent's,
	// whatever its children did.
	assert.Equal(t, float64(got.pid), got.stats["pid"], "%s %s: stats writer", name, c.name)
	j, ok := got.stats["jit"].(map[string]any)
	if !assert.True(t, ok, "%s %s: no jit section in the statistics", name, c.name) {
		return
	}
	assert.Greater(t, j["traces_compiled"].(float64), 0.0, "%s %s: traces compiled", name, c.name)
	assertNoInternalError(t, j, name+" "+c.name)
	t.Logf("%s %s: traces %v (side %v), trace iterations %v, site hits %d, exits %v, aborts %v",
		name, c.name, j["traces_compiled"], j["side_traces"], j["trace_iterations"], siteHits(got.stats),
		j["side_exits"], j["aborts"])
}

// assertNoInternalError fails the test when the JIT's statistics (the
// "jit" object) count a recording ended by a panic of the recorder, which
// the program never sees.
func assertNoInternalError(t *testing.T, jit map[string]any, what string) {
	t.Helper()
	aborts, _ := jit["aborts"].(map[string]any)
	assert.Nil(t, aborts["internal-error"], "%s: recordings ended by an internal error of the recorder", what)
}

// TestJITLogHoldsNoDescriptor: the trace log (REDMAGIC_LOG=FILE) is never
// held open in the program's descriptor table. A program that lists its
// descriptors sees what the original sees; one that closes them and opens
// a file of its own never gets the log written into that file.
func TestJITLogHoldsNoDescriptor(t *testing.T) {
	requireRuntime(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "python3-jit")
	patch(t, origPython, out)
	logPath, mine := filepath.Join(dir, "jit.log"), filepath.Join(dir, "mine.txt")
	src := fmt.Sprintf(`import os
def loop(n):
    s = 0
    for i in range(n):
        s += i
    return s
loop(5000)  # the JIT starts and logs a trace
print(sorted(os.listdir('/proc/self/fd')))
os.closerange(3, 4096)
fd = os.open(%q, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
def other(n):
    t = 0
    while t < n:
        t += 1
    return t
print(other(5000), fd)  # another trace, logged while fd is open
os.close(fd)
`, mine)
	want := runBin(t, origPython, []string{"-c", src}, nil, false)
	got := runBin(t, out, []string{"-c", src}, []string{"REDMAGIC_THRESHOLD=100", "REDMAGIC_LOG=" + logPath}, false)
	assert.Equal(t, want.result, got.result)
	data, err := os.ReadFile(mine)
	require.NoError(t, err)
	assert.Empty(t, string(data), "the program's own file holds what it wrote: nothing")
	log, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, strings.Count(string(log), "redmagic: trace "), 2, "both loops were traced and logged:\n%s", log)
}

// TestPythonLoopIsItsHeader: a loop whose body ends in if/elif/else jumps
// back from each branch, through one JUMP_BACKWARD each; the runtime keys
// all of them by the header they land at (oparg code units back from past
// the jump), so the loop is counted as one and gets one root trace, its
// other branches side traces of it, instead of one root trace per branch
// whose recordings each ended at another branch's jump.
func TestPythonLoopIsItsHeader(t *testing.T) {
	requireRuntime(t)
	const n = 300000
	prog := filepath.Join(t.TempDir(), "branches.py")
	require.NoError(t, os.WriteFile(prog, []byte(`import sys
def run(n):
    s = t = 0
    for i in range(n):
        if i % 3 == 0:
            s += i
        elif i % 3 == 1:
            t += 1
        else:
            s -= 1
    return s, t
print(run(int(sys.argv[1]) if len(sys.argv) > 1 else `+fmt.Sprint(n)+`))
`), 0o644))
	jit := filepath.Join(t.TempDir(), "python3-jit")
	patch(t, origPython, jit)
	// inspect reads the header back and names the back jumps' keying.
	r := inProcess("inspect", jit, "--json")
	require.Equal(t, 0, r.status, r.stderr)
	var info redmagic.Info
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &info))
	for _, s := range info.Sites {
		if s.Name == "JUMP_BACKWARD" {
			assert.Contains(t, s.FlagNames(), "oparg-back")
		}
	}
	want := runPython(t, origPython, prog, nil, "")
	// Counted with the JIT off and every hit counted: one loop.
	statsPath := filepath.Join(t.TempDir(), "counts.json")
	got := runPython(t, jit, prog, []string{"REDMAGIC_JIT=0", "REDMAGIC_SAMPLE=1"}, statsPath)
	require.Equal(t, want.stdout, got.stdout, got.stderr)
	require.NotNil(t, got.stats, got.stderr)
	var loops []struct {
		ID   float64 `json:"id"`
		Hits float64 `json:"hits"`
	}
	data, err := json.Marshal(got.stats["hot_loops"])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &loops))
	require.NotEmpty(t, loops)
	top := loops[0]
	for _, l := range loops {
		if l.Hits > top.Hits {
			top = l
		}
	}
	// The adaptive JUMP_BACKWARD counts the first iterations at a site
	// of its own until it is quickened.
	assert.Greater(t, top.Hits, 0.95*n, "the three branches' jumps back counted as one loop: %+v", loops)
	// Traced: one root trace, entered from every branch's jump back.
	statsPath = filepath.Join(t.TempDir(), "stats.json")
	got = runPython(t, jit, prog, []string{"REDMAGIC_GOVERNOR=0", "REDMAGIC_JIT_BUDGET=0"}, statsPath)
	require.Equal(t, want.stdout, got.stdout, got.stderr)
	require.Equal(t, want.status, got.status, got.stderr)
	require.NotNil(t, got.stats, got.stderr)
	j := got.stats["jit"].(map[string]any)
	assert.Equal(t, 1.0, j["traces_compiled"].(float64)-j["side_traces"].(float64), "one root trace: %v", j["traces"])
	traces := j["traces"].([]any)
	require.NotEmpty(t, traces)
	for _, tr := range traces {
		assert.Equal(t, traces[0].(map[string]any)["id"], tr.(map[string]any)["id"], "every trace is the loop's (ids differ from run to run)")
	}
	assert.Greater(t, j["trace_iterations"].(float64), 0.9*n, "iterations in traces")
	assertNoInternalError(t, j, "branches")
}
