package main

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSizesHeader(t *testing.T) {
	tests := []struct {
		line        string
		full, small string
		errPart     string
	}{
		{"-- sizes: 200 5", "200", "5", ""},
		{"--sizes:200 5\r", "200", "5", ""},
		{"  --  sizes:  1e5   10  ", "1e5", "10", ""},
		{"-- sizes: 200", "", "", "want two sizes"},
		{"-- sizes: 200 5 1", "", "", "want two sizes"},
		{"-- size: 200 5", "", "", "is not"},
		{"local n = 200", "", "", "is not"},
		{"", "", "", "is not"},
		{"-- sizes: 200 a/b", "", "", `size "a/b"`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			full, small, err := parseSizesHeader(tt.line)
			if tt.errPart != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.errPart)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.full, full)
			assert.Equal(t, tt.small, small)
		})
	}
}

func TestCorpusSuite(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string // under CorpusDir; nil: no directory at all
		want    []Program
		errPart []string // each must appear in the error
	}{
		{name: "no directory"},
		{name: "empty directory", files: map[string]string{}},
		{
			name: "two programs in name order, other files ignored",
			files: map[string]string{
				"zeta.lua":  "-- sizes: 200 5\nprint(arg[1])\n",
				"alpha.lua": "-- sizes: 3000 40\n",
				"README.md": "not a program\n",
			},
			want: []Program{
				{Name: "luacorpus/alpha", Family: "lua5.4", Script: "testdata/bench/corpus/alpha.lua", Full: "3000", Small: "40", NoPeers: corpusNoPeers},
				{Name: "luacorpus/zeta", Family: "lua5.4", Script: "testdata/bench/corpus/zeta.lua", Full: "200", Small: "5", NoPeers: corpusNoPeers},
			},
		},
		{
			name: "every file without the header is named",
			files: map[string]string{
				"good.lua":   "-- sizes: 200 5\n",
				"nohead.lua": "print(1)\n-- sizes: 200 5\n",
				"empty.lua":  "",
			},
			errPart: []string{"nohead.lua", "empty.lua", "-- sizes: FULL SMALL"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.files != nil {
				dir := filepath.Join(root, CorpusDir)
				require.NoError(t, os.MkdirAll(dir, 0o755))
				for name, body := range tt.files {
					require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
				}
			}
			ps, err := CorpusSuite(root)
			if tt.errPart != nil {
				require.Error(t, err)
				for _, p := range tt.errPart {
					assert.Contains(t, err.Error(), p)
				}
				assert.NotContains(t, err.Error(), "good.lua")
				// The whole suite refuses to start rather than run without them.
				_, serr := DefaultSuite(root)
				assert.Error(t, serr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, ps)
			for _, p := range ps {
				assert.Equal(t, SuiteLuaCorpus, SuiteOf(p.Name))
			}
		})
	}
}

func TestSuiteOf(t *testing.T) {
	tests := []struct{ program, suite string }{
		{"lua/fib", SuiteBench},
		{"switchvm/loop_n", SuiteBench},
		{"python/while_func", SuiteBench},
		{"pyperf/richards", SuitePyperf},
		{"luacorpus/json", SuiteLuaCorpus},
		{"pyperfx/y", SuiteBench},
		{"pyperf", SuiteBench},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.suite, SuiteOf(tt.program), tt.program)
	}
}

func TestPyperfSuite(t *testing.T) {
	ps := PyperfSuite()
	require.NotEmpty(t, ps)
	seen := map[string]bool{}
	for _, p := range ps {
		assert.False(t, seen[p.Name], "duplicate %s", p.Name)
		seen[p.Name] = true
		assert.Equal(t, SuitePyperf, SuiteOf(p.Name))
		assert.Equal(t, "python3.11", p.Family)
		assert.True(t, p.External, p.Name)
		assert.Contains(t, p.Env, "PYTHONPATH="+RootVar+"/scripts/bench/pyperf", p.Name)
		assert.NotEmpty(t, p.Full, p.Name)
		assert.NotEmpty(t, p.Small, p.Name)
	}
	// Every pyperformance benchmark here is either in the suite or left
	// out on purpose (pyperf.go says why).
	dirs, _ := filepath.Glob(filepath.Join(repoRoot, PyperformanceDir, "bm_*"))
	if len(dirs) == 0 {
		t.Skip("no pyperformance under " + PyperformanceDir)
	}
	leftOut := map[string]bool{"btree": true}
	for _, d := range dirs {
		name := strings.TrimPrefix(filepath.Base(d), "bm_")
		assert.True(t, seen["pyperf/"+name] != leftOut[name], "%s: in the suite or left out, not both or neither", name)
		if seen["pyperf/"+name] {
			assert.FileExists(t, filepath.Join(d, "run_benchmark.py"))
		}
	}
}

// Command takes a script outside the repository as it is and gives the
// program's environment, with the root filled in, to every configuration.
func TestCommandScriptAndEnv(t *testing.T) {
	tests := []struct {
		name       string
		p          Program
		c          Config
		wantScript string
		wantEnv    []string
	}{
		{"in the repository", Program{Script: "testdata/bench/lua/fib.lua"}, Config{Path: "/bin/lua"},
			"/repo/testdata/bench/lua/fib.lua", nil},
		{"beside it", Program{Script: "../shared/x/run.py", Env: []string{"PYTHONPATH=" + RootVar + "/scripts/bench/pyperf"}},
			Config{Path: "/bin/py", Env: []string{"REDMAGIC_DISABLE=1"}},
			"/shared/x/run.py", []string{"PYTHONPATH=/repo/scripts/bench/pyperf", "REDMAGIC_DISABLE=1"}},
		{"absolute", Program{Script: "/opt/b.py"}, Config{Path: "/bin/py", Args: []string{"-X", "y"}},
			"/opt/b.py", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := Command("/repo", tt.c, tt.p, "7")
			require.GreaterOrEqual(t, len(inv.Argv), 3)
			assert.Equal(t, append([]string{tt.c.Path}, tt.c.Args...), inv.Argv[:len(inv.Argv)-2])
			assert.Equal(t, []string{tt.wantScript, "7"}, inv.Argv[len(inv.Argv)-2:])
			assert.Equal(t, tt.wantEnv, inv.Env)
			assert.Equal(t, "/repo", inv.Dir)
		})
	}
	// The program's environment survives cleanEnv, which drops an
	// inherited PYTHONPATH.
	t.Setenv("PYTHONPATH", "/inherited")
	env := cleanEnv(Command("/repo", Config{Path: "/bin/py"}, Program{Script: "a.py", Env: pyperfEnv}, "1").Env)
	assert.Contains(t, env, "PYTHONPATH=/repo/scripts/bench/pyperf")
	assert.NotContains(t, env, "PYTHONPATH=/inherited")
}

// shBench is a bench whose only family runs /bin/sh, cannot be patched
// and has /bin/sh as its peer too.
func shBench(t *testing.T) *Bench {
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	fam := Family{Name: "sh", Title: "sh", Original: "/bin/sh", Peers: []Config{{Name: "sh peer", Kind: KindPeer, Path: "/bin/sh"}}}
	return NewBench(Options{Root: root, Tool: "/nonexistent/redmagic-patch", WorkDir: t.TempDir(), Runs: 1},
		map[string]Family{"sh": fam})
}

// A third-party script that is not on this machine makes its program
// unavailable everywhere, never failed; the repository's own scripts are
// not excused.
func TestMissingExternalScriptIsUnavailable(t *testing.T) {
	b := shBench(t)
	p := Program{Name: "pyperf/gone", Family: "sh", Script: "../no-such-shared-dir/run.py", Full: "1", Small: "1", External: true}
	recs := b.RunProgram(p)
	require.NotEmpty(t, recs)
	for _, r := range recs {
		assert.Equal(t, StatusUnavailable, r.Status, r.Config)
		assert.False(t, r.Failed())
	}
	assert.Contains(t, recs[0].Error, "no-such-shared-dir")
	assert.Empty(t, (&Report{Records: recs}).Failures())

	p.External = false
	assert.Empty(t, b.MissingScript(p))
	assert.True(t, b.RunProgram(p)[0].Failed(), "a missing script of the repository's own fails")
}

// The stand-in, run by python3.11 on small scripts of its own: the count
// comes from the trailing argument, the benchmark's own arguments still
// parse, and a broken benchmark exits non-zero.
func TestPyperfStandIn(t *testing.T) {
	py := "/usr/bin/python3.11"
	if _, err := os.Stat(py); err != nil {
		t.Skip("needs " + py)
	}
	standIn, err := filepath.Abs(filepath.Join(repoRoot, "scripts", "bench", "pyperf"))
	require.NoError(t, err)
	tests := []struct {
		name   string
		script string
		args   []string
		want   string // stdout; "" with errPart
		errArg string // part of stderr of a failing run
	}{
		{"bench_func runs N times", `
import pyperf
calls = []
r = pyperf.Runner(processes=1, values=3)
r.metadata["description"] = "x"
r.bench_func("f", calls.append, 1)
assert len(calls) == 7, calls
`, []string{"7"}, "f: 7 runs ok\n", ""},
		{"bench_time_func gets the loop count", `
import pyperf
def tf(loops, k):
    assert loops == 5 and k == "k"
    t0 = pyperf.perf_counter()
    return pyperf.perf_counter() - t0
r = pyperf.Runner()
r.bench_time_func("t", tf, "k", inner_loops=10)
`, []string{"5"}, "t: 5 runs ok\n", ""},
		{"own arguments and an optional positional", `
import pyperf
r = pyperf.Runner(add_cmdline_args=lambda cmd, args: None)
r.argparser.add_argument("--level", type=int, default=1)
r.argparser.add_argument("which", nargs="?", choices=["a", "b"])
args = r.parse_args()
assert r.args is args
r.bench_func("lvl%d-%s" % (args.level, args.which), lambda: None)
`, []string{"--level", "3", "b", "2"}, "lvl3-b: 2 runs ok\n", ""},
		{"no count runs once", `
import pyperf
pyperf.Runner().bench_func("once", lambda: None)
`, nil, "once: 1 runs ok\n", ""},
		{"async", `
import pyperf
n = []
async def f():
    n.append(1)
pyperf.Runner().bench_async_func("a", f)
assert len(n) == 3
`, []string{"3"}, "a: 3 runs ok\n", ""},
		{"a failing check fails the run", `
import pyperf
def bad():
    raise ValueError("wrong answer")
pyperf.Runner().bench_func("bad", bad)
`, []string{"2"}, "", "wrong answer"},
		{"a time function must return seconds", `
import pyperf
pyperf.Runner().bench_time_func("nt", lambda loops: None)
`, []string{"2"}, "", "not seconds"},
		{"duplicate names", `
import pyperf
r = pyperf.Runner()
r.bench_func("d", lambda: None)
r.bench_func("d", lambda: None)
`, []string{"1"}, "", "duplicate"},
		{"zero runs", `
import pyperf
pyperf.Runner()
`, []string{"0"}, "", "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := filepath.Join(t.TempDir(), "bm.py")
			require.NoError(t, os.WriteFile(script, []byte(tt.script), 0o644))
			cmd := exec.Command(py, append([]string{script}, tt.args...)...)
			cmd.Env = cleanEnv(pyperfEnv)
			for i, kv := range cmd.Env {
				cmd.Env[i] = strings.ReplaceAll(kv, RootVar+"/scripts/bench/pyperf", standIn)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if tt.errArg != "" {
				require.Error(t, err, stdout.String())
				assert.Contains(t, stderr.String(), tt.errArg)
				return
			}
			require.NoError(t, err, stderr.String())
			assert.Equal(t, tt.want, stdout.String())
		})
	}
}

// One real pyperformance program at its small size under the original
// python3.11 only: the stand-in is found and the output is as blessed.
func TestPyperfProgramRuns(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3.11"); err != nil {
		t.Skip("needs /usr/bin/python3.11")
	}
	p := suiteProgram(t, "pyperf/richards")
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	if _, err := os.Stat(p.ScriptPath(root)); err != nil {
		t.Skip("no pyperformance here: ", err)
	}
	b := NewBench(Options{Root: root, Tool: "/nonexistent/redmagic-patch", WorkDir: t.TempDir(), Quick: true, Runs: 1},
		map[string]Family{"python3.11": {Name: "python3.11", Original: "/usr/bin/python3.11"}})
	recs := byConfig(b.RunProgram(p))
	orig := recs["original"]
	require.Equal(t, StatusOK, orig.Status, orig.Error)
	assert.Equal(t, StatusUnavailable, recs["patched, runtime on"].Status)
}

func rec(prog string, kind ConfigKind, st Status, speedup float64, rounds int) *Record {
	r := &Record{Program: prog, Config: string(kind), Kind: kind, Status: st}
	if speedup > 0 {
		r.Speedup = &Ratio{Median: speedup, Min: speedup, Max: speedup, Rounds: rounds}
	}
	return r
}

func TestJudgeBar(t *testing.T) {
	okOrig := rec("p", KindOriginal, StatusOK, 0, 0)
	tests := []struct {
		name    string
		orig    *Record
		r       *Record
		outcome Outcome
		why     string
	}{
		{"met", okOrig, rec("p", KindPatchedOn, StatusOK, 1.01, 5), OutcomeMet, ""},
		{"exactly the bar", okOrig, rec("p", KindPatchedOn, StatusOK, 0.97, 5), OutcomeMet, ""},
		{"below", okOrig, rec("p", KindPatchedOn, StatusOK, 0.95, 7), OutcomeBelow, "0.95x < 0.97x"},
		{"too few runs", okOrig, rec("p", KindPatchedOn, StatusOK, 0.5, 4), OutcomeUnproven, "4 runs (needs 5)"},
		{"wrong answer", okOrig, rec("p", KindPatchedOn, StatusWrongOutput, 0, 0), OutcomeBelow, "FAIL (wrong-output)"},
		{"crash", okOrig, rec("p", KindPatchedOn, StatusError, 0, 0), OutcomeBelow, "FAIL (error)"},
		{"unavailable", okOrig, rec("p", KindPatchedOn, StatusUnavailable, 0, 0), OutcomeUnproven, "n/a"},
		{"original failed", rec("p", KindOriginal, StatusError, 0, 0), rec("p", KindPatchedOn, StatusOK, 0, 0), OutcomeUnproven, "no original"},
		{"not run", okOrig, nil, OutcomeUnproven, "not run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judgeBar(tt.orig, tt.r, BarOn)
			assert.Equal(t, tt.outcome, v.Outcome)
			assert.Contains(t, v.Why, tt.why)
		})
	}
}

func verdictReport(mode string) *Report {
	r := &Report{Mode: mode, Runs: 5}
	add := func(prog string, on, off float64, onStatus Status) {
		r.Records = append(r.Records,
			rec(prog, KindOriginal, StatusOK, 0, 0),
			rec(prog, KindPatchedOff, StatusOK, off, 5),
			rec(prog, KindPatchedOn, onStatus, on, 5),
			rec(prog, KindPeer, StatusOK, 0.5, 5)) // peers are never judged
	}
	add("lua/fib", 2, 1, StatusOK)
	add("python/fib", 0.5, 1, StatusOK)
	add("pyperf/go", 1, 0.98, StatusOK)
	add("pyperf/nbody", 0, 1, StatusWrongOutput)
	add("pyperf/chaos", 1, 1, StatusOK)
	return r
}

func TestVerdictsAndSummary(t *testing.T) {
	vs := verdictReport("full").Verdicts()
	require.Len(t, vs, 5)
	cells := map[string]string{}
	for _, v := range vs {
		cells[v.Program] = v.Cell()
	}
	assert.Equal(t, "meets", cells["lua/fib"])
	assert.Equal(t, "**below**: on 0.50x < 0.97x", cells["python/fib"])
	assert.Equal(t, "**below**: off 0.98x < 0.99x", cells["pyperf/go"])
	assert.Equal(t, "**below**: on FAIL (wrong-output)", cells["pyperf/nbody"])

	sums := Summarize(vs)
	require.Len(t, sums, len(Suites))
	bench, pyperf, corpus := sums[0], sums[1], sums[2]
	assert.InDelta(t, 1.0, bench.GeoMeanOn, 1e-12, "geometric mean of 2x and 0.5x")
	bench.GeoMeanOn = 0
	assert.Equal(t, SuiteSummary{Suite: "bench", Programs: 2, OnMet: 1, OffMet: 2, BothMet: 1,
		GeoMeanN: 2, Below: []Verdict{vs[1]}}, bench)
	assert.Equal(t, 3, pyperf.Programs)
	assert.Equal(t, 1, pyperf.BothMet)
	assert.Equal(t, 2, pyperf.OnMet) // go and chaos; nbody failed
	assert.Equal(t, 2, pyperf.OffMet)
	assert.Equal(t, 2, pyperf.GeoMeanN, "a failed run has no speedup to average")
	assert.InDelta(t, 1.0, pyperf.GeoMeanOn, 1e-12)
	assert.Len(t, pyperf.Below, 2)
	assert.Equal(t, 0, corpus.Programs)
	assert.True(t, math.IsNaN(corpus.GeoMeanOn))

	var out bytes.Buffer
	require.NoError(t, WriteVerdicts(&out, sums))
	for _, want := range []string{
		"runtime on >= 0.97x", "runtime off (REDMAGIC_DISABLE=1) >= 0.99x", ">= 5 interleaved runs",
		"bench:     2 programs: 1 meet both bars, runtime on 1, runtime off 2; 0 unproven (n/a, or < 5 runs); geomean runtime on / original 1.000x over 2",
		"python/fib: on 0.50x < 0.97x", "pyperf/nbody: on FAIL (wrong-output)", "pyperf/go: off 0.98x < 0.99x",
		"luacorpus: no programs run",
	} {
		assert.Contains(t, out.String(), want)
	}
}

// Quick sessions prove answers only: no verdict column or section.
func TestMarkdownVerdicts(t *testing.T) {
	var full, quick bytes.Buffer
	require.NoError(t, verdictReport("full").WriteMarkdown(&full))
	require.NoError(t, verdictReport("quick").WriteMarkdown(&quick))
	assert.Contains(t, full.String(), "| verdict |")
	assert.Contains(t, full.String(), "| **below**: off 0.98x < 0.99x |")
	assert.Contains(t, full.String(), "## Verdicts")
	assert.NotContains(t, quick.String(), "verdict")
	assert.NotContains(t, quick.String(), "Verdict")
	// Header, separator and rows have the same number of cells.
	for _, md := range []string{full.String(), quick.String()} {
		var widths []int
		for _, line := range strings.Split(md, "\n") {
			if strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "|---") {
				widths = append(widths, strings.Count(line, "|"))
			}
		}
		require.NotEmpty(t, widths)
		for _, w := range widths {
			assert.Equal(t, widths[0], w)
		}
	}
}

// A program the peers cannot run (the Lua 5.4 corpus under luajit) has
// them n/a; the original and the patched configurations are unaffected.
func TestNoPeers(t *testing.T) {
	b := shBench(t)
	p := Program{Name: "luacorpus/x", Family: "sh", Script: "testdata/bench/corpus/none.lua", Full: "1", Small: "1", NoPeers: "speaks another dialect"}
	recs := byConfig(b.RunProgram(p))
	peer := recs["sh peer"]
	require.NotNil(t, peer)
	assert.Equal(t, StatusUnavailable, peer.Status)
	assert.Equal(t, "speaks another dialect", peer.Error)
	assert.NotEqual(t, StatusUnavailable, recs["original"].Status, "the original still runs (and fails here: no expected output)")
	assert.Contains(t, recs["patched, runtime on"].Error, "nonexistent", "unpatchable, not excused by NoPeers")

	p.NoPeers = ""
	assert.NotEqual(t, StatusUnavailable, byConfig(b.RunProgram(p))["sh peer"].Status)
}

// A corpus file without its sizes header stops the run before anything is
// measured, naming the file.
func TestRunRejectsBadCorpus(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, CorpusDir)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "headless.lua"), []byte("print(1)\n"), 0o644))
	var out, errb bytes.Buffer
	assert.Equal(t, 2, run([]string{"--root", root, "--quick", "--out", t.TempDir(), "--tool", "/nonexistent"}, &out, &errb))
	assert.Contains(t, errb.String(), "headless.lua")
	assert.Empty(t, out.String())
}
