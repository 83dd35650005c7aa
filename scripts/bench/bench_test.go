package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const repoRoot = "../.."

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{1.5, 1.5, 9, 1.5, 0.1}, 1.5},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		assert.Equal(t, tt.want, Median(tt.in), "%v", tt.in)
		assert.Equal(t, in, tt.in, "Median must not reorder its input")
	}
	assert.True(t, math.IsNaN(Median(nil)))
}

func TestSpeedup(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name        string
		orig, cfg   []float64
		ok          bool
		med, lo, hi float64
		rounds      int
	}{
		{"twice as fast", []float64{2, 2, 2}, []float64{1, 1, 1}, true, 2, 2, 2, 3},
		{"spread", []float64{1, 2, 3}, []float64{2, 1, 1}, true, 2, 0.5, 3, 3},
		// The medians (2 and 1) give the ratio, not the mean of ratios.
		{"slower", []float64{1, 1}, []float64{2, 4}, true, 1.0 / 3, 0.25, 0.5, 2},
		{"failed rounds skipped", []float64{1, nan, 4}, []float64{1, 1, nan}, true, 1, 1, 1, 1},
		{"nothing paired", []float64{nan}, []float64{1}, false, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := Speedup(tt.orig, tt.cfg)
			require.Equal(t, tt.ok, ok)
			if !ok {
				return
			}
			assert.InDelta(t, tt.med, r.Median, 1e-12)
			assert.InDelta(t, tt.lo, r.Min, 1e-12)
			assert.InDelta(t, tt.hi, r.Max, 1e-12)
			assert.Equal(t, tt.rounds, r.Rounds)
		})
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name      string
		want, got string
		line      int
	}{
		{"equal", "a\nb\n", "a\nb\n", 0},
		{"second line", "a\nb\n", "a\nc\n", 2},
		{"missing line", "a\nb\n", "a\n", 2},
		{"extra line", "a\n", "a\nb\n", 2},
		{"missing final newline", "a\n", "a", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify("x.out", []byte(tt.want), []byte(tt.got))
			if tt.line == 0 {
				require.NoError(t, err)
				return
			}
			var wo *WrongOutputError
			require.ErrorAs(t, err, &wo)
			assert.Equal(t, tt.line, wo.Line)
			assert.Contains(t, err.Error(), "x.out")
		})
	}
}

// The Lua and Python classics are separate implementations printing the
// same text, so their expected files (recorded from different interpreters)
// must agree: a wrong expected file would show up as a mismatch here.
func TestExpectedOutputsAgreeAcrossLanguages(t *testing.T) {
	for _, c := range classics {
		lua := Program{Name: "lua/" + c.name}
		py := Program{Name: "python/" + c.name}
		for _, size := range []string{c.small} {
			l, err := os.ReadFile(lua.ExpectedPath(repoRoot, size))
			require.NoError(t, err)
			p, err := os.ReadFile(py.ExpectedPath(repoRoot, size))
			require.NoError(t, err)
			assert.Equal(t, string(l), string(p), "%s at size %s", c.name, size)
		}
	}
}

// Every program has an expected output for each size the suite uses, and
// the VM loop's expected output matches the formula in loop_n.vm's header.
func TestExpectedOutputsExist(t *testing.T) {
	suite, err := DefaultSuite(repoRoot)
	require.NoError(t, err)
	for _, p := range suite {
		for _, size := range []string{p.Small, p.Full} {
			data, err := os.ReadFile(p.ExpectedPath(repoRoot, size))
			require.NoError(t, err, p.Name)
			require.NotEmpty(t, data, p.Name)
			if strings.HasSuffix(p.Name, "/loop_n") {
				n, err := strconv.Atoi(size)
				require.NoError(t, err)
				var s, c int
				for i := 0; i < n; i++ {
					s += i * i % 7
					if i%3 == 0 {
						c++
					}
				}
				assert.Equal(t, strconv.Itoa(s)+"\n"+strconv.Itoa(c)+"\n", string(data), "%s %s", p.Name, size)
			}
		}
	}
}

func suiteProgram(t *testing.T, name string) Program {
	suite, err := DefaultSuite(repoRoot)
	require.NoError(t, err)
	for _, p := range suite {
		if p.Name == name {
			return p
		}
	}
	require.FailNow(t, "not in the suite", name)
	return Program{}
}

// testBench runs lua/fib at its small size with the real lua5.4, plus a
// peer whose interpreter does not exist and, if given, one more peer.
func testBench(t *testing.T, extra ...Config) (*Bench, Program) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/lua5.4"); err != nil {
		t.Skip("needs /usr/bin/lua5.4")
	}
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	fam := Family{Name: "lua5.4", Title: "Lua 5.4", Original: "/usr/bin/lua5.4",
		Peers: append([]Config{lookPeer("no such lua", "no-such-lua-interpreter")}, extra...)}
	b := NewBench(Options{
		Root: root, Tool: filepath.Join(root, "bin", "redmagic-patch"), WorkDir: t.TempDir(),
		Quick: true, Warmup: 1, Runs: 3,
	}, map[string]Family{"lua5.4": fam})
	return b, suiteProgram(t, "lua/fib")
}

func byConfig(recs []*Record) map[string]*Record {
	m := map[string]*Record{}
	for _, r := range recs {
		m[r.Config] = r
	}
	return m
}

// A missing interpreter is reported as unavailable and the other
// configurations still run and are checked.
func TestMissingInterpreterDoesNotAbort(t *testing.T) {
	b, p := testBench(t, Config{Name: "lua5.4 again", Kind: KindPeer, Path: "/usr/bin/lua5.4"})
	recs := byConfig(b.RunProgram(p))
	missing := recs["no such lua"]
	require.NotNil(t, missing)
	assert.Equal(t, StatusUnavailable, missing.Status)
	assert.Contains(t, missing.Error, "no-such-lua-interpreter")
	assert.False(t, missing.Failed())

	orig := recs["original"]
	require.Equal(t, StatusOK, orig.Status, orig.Error)
	assert.Len(t, orig.Seconds, 3)
	assert.Nil(t, orig.Speedup)
	same := recs["lua5.4 again"]
	require.Equal(t, StatusOK, same.Status, same.Error)
	require.NotNil(t, same.Speedup)
	assert.Equal(t, 3, same.Speedup.Rounds)
	assert.LessOrEqual(t, same.Speedup.Min, same.Speedup.Max)
}

// A program that prints a wrong answer fails loudly and gets no speedup;
// one that crashes is an error; the original still measures.
func TestWrongAnswerFails(t *testing.T) {
	dir := t.TempDir()
	liar := filepath.Join(dir, "liar")
	require.NoError(t, os.WriteFile(liar, []byte("#!/bin/sh\necho 'fib(20) = 6764'\n"), 0o755))
	crasher := filepath.Join(dir, "crasher")
	require.NoError(t, os.WriteFile(crasher, []byte("#!/bin/sh\necho oops >&2\nexit 3\n"), 0o755))
	var log bytes.Buffer
	b, p := testBench(t,
		Config{Name: "liar", Kind: KindPeer, Path: liar},
		Config{Name: "crasher", Kind: KindPeer, Path: crasher})
	b.Opts.Log = &log
	recs := byConfig(b.RunProgram(p))

	l := recs["liar"]
	assert.Equal(t, StatusWrongOutput, l.Status)
	assert.True(t, l.Failed())
	assert.Nil(t, l.Speedup, "a wrong answer is never a speedup")
	assert.Contains(t, l.Error, "fib(20) = 6765")
	c := recs["crasher"]
	assert.Equal(t, StatusError, c.Status)
	assert.Contains(t, c.Error, "oops")
	assert.Nil(t, c.Speedup)
	assert.Contains(t, log.String(), "FAIL lua/fib [liar]")
	assert.Equal(t, StatusOK, recs["original"].Status)

	rep := &Report{Records: b.RunProgram(p)}
	assert.Len(t, rep.Failures(), 2)
	var md bytes.Buffer
	require.NoError(t, rep.WriteMarkdown(&md))
	assert.Contains(t, md.String(), "FAIL (wrong-output)")
}

// The patched interpreter runs with the runtime on and off, answers
// correctly, and the runtime-on record carries the runtime's statistics.
func TestPatchedConfigurations(t *testing.T) {
	b, p := testBench(t)
	if _, err := os.Stat(b.Opts.Tool); err != nil {
		t.Skip("needs `make build`")
	}
	b.Opts.Runs, b.Opts.Warmup = 1, 0
	p = suiteProgram(t, "lua/loops") // fib has no loops; loops has 3 x 10^5 back-edges
	recs := byConfig(b.RunProgram(p))
	off, on := recs["patched, runtime off"], recs["patched, runtime on"]
	require.Equal(t, StatusOK, off.Status, off.Error)
	require.Equal(t, StatusOK, on.Status, on.Error)
	assert.Empty(t, off.RuntimeStats)
	require.NotEmpty(t, on.RuntimeStats, on.StatsError)
	edges, ok := backEdges(on)
	require.True(t, ok)
	// Three loops of 10^5 iterations each; a recorded iteration's own
	// back-edge is neither a hit nor a trace iteration (a few per trace).
	assert.InDelta(t, 300000, edges, 100, "three loops of 10^5 iterations each")
}

func TestInstructions(t *testing.T) {
	if _, err := exec.LookPath("valgrind"); err != nil {
		t.Skip("needs valgrind")
	}
	b, p := testBench(t)
	b.Opts.Runs, b.Opts.Warmup, b.Opts.Instructions = 1, 0, true
	b.Opts.Tool = "/nonexistent/redmagic-patch" // patched configurations unavailable: keeps this test short
	recs := byConfig(b.RunProgram(p))
	orig := recs["original"]
	require.Empty(t, orig.InstructionsError)
	// lua5.4 start-up alone is well over 10^5 instructions; fib(20) adds ~10^7.
	assert.Greater(t, orig.Instructions, int64(1_000_000))
	// Cold misses alone: the interpreter's code is far more than a line.
	assert.Greater(t, orig.I1Misses, int64(100))
	assert.Equal(t, StatusUnavailable, recs["patched, runtime on"].Status)
	assert.NotEmpty(t, recs["patched, runtime on"].InstructionsError)
}

func TestParseCachegrindSummary(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, body string
		want       Counts
		ok         bool
	}{
		{"instructions only", "events: Ir\nfl=x\n1 2\nsummary: 34249230\n", Counts{Instructions: 34249230}, true},
		{"cache model", "events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw\nfl=x\n1 2 0 0 0 0 0 0 0 0\n" +
			"summary: 1655854277 11191437 39615 511413744 2393970 144473 292938319 344622 126746\n",
			Counts{Instructions: 1655854277, I1Misses: 11191437}, true},
		{"JIT's share by file", "events: Ir I1mr\n" +
			"fl=./runtime/proc.go\nfn=runtime.schedule\n10 100 1\n11 50\n" +
			"fl=./string/../sysdeps/x86_64/multiarch/memmove-vec-unaligned-erms.S\nfn=memmove\n5 1000 2\n" +
			"fl=/_/github.com/redmagic-patch/redmagic-patch/tracevm/tv.c\nfn=tv_switch\n7 30\n" +
			"fl=./runtime/asm_amd64.s\nfn=runtime.asmcgocall\n3 20\n" +
			"fl=/build/python3.11/Python/ceval.c\nfn=_PyEval_EvalFrameDefault\n9 4000 7\n" +
			"summary: 5200 10\n",
			Counts{Instructions: 5200, JITInstructions: 200, I1Misses: 10, JITI1Misses: 1}, true},
		{"missing", "events: Ir\n", Counts{}, false},
		{"garbage", "events: Ir\nsummary: lots\n", Counts{}, false},
		{"no events line", "summary: 34249230\n", Counts{}, false},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, tt.name)
		require.NoError(t, os.WriteFile(path, []byte(tt.body), 0o644))
		n, err := parseCachegrindSummary(path)
		if !tt.ok {
			assert.Error(t, err, tt.name)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tt.want, n)
	}
}

func sampleReport() *Report {
	r := &Report{Date: "2000-01-01", Mode: "full", Runs: 3, Machine: Machine{CPU: "Test & CPU <x>", Cores: 2}}
	add := func(prog, fam, cfg string, kind ConfigKind, st Status, sp *Ratio) {
		r.Records = append(r.Records, &Record{Program: prog, Interpreter: fam, Config: cfg, Kind: kind,
			Status: st, Speedup: sp, Seconds: []float64{1}, Median: 1})
	}
	add("lua/fib", "lua5.4", "original", KindOriginal, StatusOK, nil)
	add("lua/fib", "lua5.4", "patched, runtime on", KindPatchedOn, StatusOK, &Ratio{0.9, 0.8, 1.0, 3})
	add("lua/fib", "lua5.4", "luajit", KindPeer, StatusOK, &Ratio{20, 15, 30, 3})
	add("lua/<odd & name>", "lua5.4", "original", KindOriginal, StatusOK, nil)
	add("lua/<odd & name>", "lua5.4", "patched, runtime on", KindPatchedOn, StatusWrongOutput, nil)
	add("lua/<odd & name>", "lua5.4", "luajit", KindPeer, StatusUnavailable, nil)
	return r
}

// The chart must be well-formed XML and name every program, every
// configuration and the failure.
func TestSVGWellFormed(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, sampleReport().WriteSVG(&buf))
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	var text strings.Builder
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		switch tk := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tk.Name.Local
			}
		case xml.CharData:
			text.Write(tk)
		}
	}
	assert.Equal(t, "svg", root)
	for _, want := range []string{"lua/fib", "lua/<odd & name>", "luajit", "patched, runtime on", "FAIL", "1x", "20x", "Lua 5.4"} {
		assert.Contains(t, text.String(), want)
	}
}

func TestAxisRange(t *testing.T) {
	tests := []struct {
		vals   []float64
		lo, hi float64
	}{
		{nil, 0.8, 1.25},
		{[]float64{0.95, 1.02}, 0.8, 1.25},
		{[]float64{0.6, 30}, 0.5, 50},
	}
	for _, tt := range tests {
		lo, hi, ticks := axisRange(tt.vals)
		assert.Equal(t, tt.lo, lo, "%v", tt.vals)
		assert.Equal(t, tt.hi, hi, "%v", tt.vals)
		assert.Contains(t, ticks, 1.0)
		for _, v := range tt.vals {
			assert.True(t, v >= lo && v <= hi)
		}
	}
}

func TestReportJSONAndMarkdown(t *testing.T) {
	r := sampleReport()
	var js bytes.Buffer
	require.NoError(t, r.WriteJSON(&js))
	var back Report
	require.NoError(t, json.Unmarshal(js.Bytes(), &back))
	require.Len(t, back.Records, len(r.Records))
	assert.Equal(t, 20.0, back.Records[2].Speedup.Median)

	var md bytes.Buffer
	require.NoError(t, r.WriteMarkdown(&md))
	assert.Contains(t, md.String(), "| lua/fib |")
	assert.Contains(t, md.String(), "20.00x (15.00-30.00)")
	assert.Contains(t, md.String(), "**FAIL (wrong-output)**")
	assert.Contains(t, md.String(), "n/a")
}

// run with --only on a program whose family is fine but whose expected
// output is missing exits 1 (failure), and bad flags exit 2.
func TestRunExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, 2, run([]string{"--runs", "0"}, &out, &errb))
	assert.Equal(t, 2, run([]string{"--only", "("}, &out, &errb))
	if _, err := os.Stat("/usr/bin/lua5.4"); err != nil {
		t.Skip("needs /usr/bin/lua5.4")
	}
	dir := t.TempDir()
	code := run([]string{"--root", repoRoot, "--quick", "--only", "^lua/fib$", "--out", dir, "--tool", "/nonexistent"}, &out, &errb)
	assert.Equal(t, 0, code, errb.String())
	for _, f := range []string{"results.json", "results.md", "speedup.svg"} {
		assert.FileExists(t, filepath.Join(dir, f))
	}
}

// The report's loop columns: back-edges in traces as a share of all, and
// the abandoned recordings by reason, most first.
func TestLoopCoverageCells(t *testing.T) {
	rec := &Record{RuntimeStats: json.RawMessage(`{"site_hits": 250, "jit": {"trace_iterations": 750, "aborts": {"inner-loop": 3, "budget": 7, "callee-loop": 3}}}`)}
	c, ok := coverageOf(rec)
	require.True(t, ok)
	assert.Equal(t, "75.0%", c.inTracesCell())
	assert.Equal(t, "budget 7, callee-loop 3, inner-loop 3", c.abortsCell())
	n, ok := backEdges(rec)
	require.True(t, ok)
	assert.Equal(t, int64(1000), n)

	// The JIT never started: all in the original code, nothing abandoned.
	c, ok = coverageOf(&Record{RuntimeStats: json.RawMessage(`{"site_hits": 40, "jit": null}`)})
	require.True(t, ok)
	assert.Equal(t, "0.0%", c.inTracesCell())
	assert.Equal(t, "", c.abortsCell())
	// ... because its hot loops ran too slowly for it.
	c, ok = coverageOf(&Record{RuntimeStats: json.RawMessage(`{"site_hits": 4000000, "jit_rate_best": 4250000, "jit": null}`)})
	require.True(t, ok)
	assert.Equal(t, "0.0% (no JIT: loops 4.2M/s)", c.inTracesCell())

	_, ok = coverageOf(&Record{})
	assert.False(t, ok)
}

// The instructions table: the runtime on's cell gives the JIT's own share,
// and the last column the program's instructions besides it per back-edge.
func TestInstructionCells(t *testing.T) {
	orig := &Record{Kind: KindOriginal, Counts: Counts{Instructions: 1_000_000, I1Misses: 3000}, InstructionsSize: "10"}
	on := &Record{Kind: KindPatchedOn, Counts: Counts{Instructions: 900_000, JITInstructions: 300_000, I1Misses: 90_000, JITI1Misses: 40_000}, Iterations: 1000}
	assert.Equal(t, "1000000; I1 3000", instrCell(orig, nil))
	assert.Equal(t, "900000 (1.11x); JIT 300000; I1 90000 (JIT 40000)", instrCell(on, orig))
	assert.Equal(t, "1000 -> 600", perIterationCell(orig, on))
	assert.Equal(t, "", perIterationCell(orig, &Record{Kind: KindPatchedOn, Counts: Counts{Instructions: 5}}), "no back-edges counted")
	assert.Equal(t, "n/a", instrCell(&Record{Status: StatusUnavailable}, orig))

	r := sampleReport()
	for _, rec := range r.Records {
		if rec.Program == "lua/fib" {
			rec.InstructionsSize = "10"
			switch rec.Kind {
			case KindOriginal:
				rec.Counts = orig.Counts
			case KindPatchedOn:
				rec.Counts, rec.Iterations = on.Counts, on.Iterations
			}
		}
	}
	var md bytes.Buffer
	require.NoError(t, r.WriteMarkdown(&md))
	assert.Contains(t, md.String(), "## Instructions")
	assert.Contains(t, md.String(), "| 1000 -> 600 |")
}

// A patched configuration below its bar after the counted runs gets
// Options.Confirm more rounds, with the original and the other patched
// configuration but not the peers, and the verdict says so.
func TestConfirmRoundsForBelowBar(t *testing.T) {
	b, p := testBench(t, Config{Name: "lua5.4 again", Kind: KindPeer, Path: "/usr/bin/lua5.4"})
	// A "patcher" whose output is the original behind a pause: both
	// patched configurations are far below their bars.
	tool := filepath.Join(t.TempDir(), "slow-patcher")
	require.NoError(t, os.WriteFile(tool, []byte("#!/bin/sh\n"+
		"printf '#!/bin/sh\\nsleep 0.2\\nexec /usr/bin/lua5.4 \"$@\"\\n' > \"$3\" && chmod +x \"$3\"\n"), 0o755))
	b.Opts.Tool, b.Opts.Runs, b.Opts.Warmup, b.Opts.Confirm = tool, 2, 0, 2
	var log bytes.Buffer
	b.Opts.Log = &log
	recs := b.RunProgram(p)
	by := byConfig(recs)
	for _, name := range []string{"original", "patched, runtime off", "patched, runtime on"} {
		r := by[name]
		require.Equal(t, StatusOK, r.Status, r.Error)
		assert.Len(t, r.Seconds, 4, name)
		assert.Equal(t, 2, r.ConfirmRounds, name)
	}
	peer := by["lua5.4 again"]
	assert.Len(t, peer.Seconds, 2, "peers are not rerun")
	assert.Zero(t, peer.ConfirmRounds)
	require.NotNil(t, peer.Speedup)
	assert.Equal(t, 2, peer.Speedup.Rounds)
	assert.Equal(t, 4, by["patched, runtime on"].Speedup.Rounds)
	assert.Contains(t, log.String(), "lua/fib: below a bar after 2 runs; 2 more to confirm")

	rep := &Report{Mode: "full", Runs: 2, Confirm: 2, Records: recs}
	vs := rep.Verdicts()
	require.Len(t, vs, 1)
	assert.Equal(t, OutcomeUnproven, vs[0].On.Outcome, "4 runs prove nothing")
	assert.Equal(t, 2, vs[0].Confirmed)
	assert.Contains(t, vs[0].Cell(), "(after 2 runs to confirm)")
}

func TestBelowAnyBar(t *testing.T) {
	rec := func(k ConfigKind, s float64) *Record {
		return &Record{Kind: k, Status: StatusOK, Speedup: &Ratio{Median: s, Rounds: 5}}
	}
	tests := []struct {
		name string
		recs []*Record
		want bool
	}{
		{"both met", []*Record{{Kind: KindOriginal, Status: StatusOK}, rec(KindPatchedOff, 0.99), rec(KindPatchedOn, 0.97)}, false},
		{"on below", []*Record{rec(KindPatchedOff, 1.0), rec(KindPatchedOn, 0.96)}, true},
		{"off below", []*Record{rec(KindPatchedOff, 0.985), rec(KindPatchedOn, 1.5)}, true},
		{"a slow peer does not count", []*Record{rec(KindPeer, 0.5), rec(KindPatchedOn, 1.0)}, false},
		{"a failure cannot be confirmed away", []*Record{{Kind: KindPatchedOn, Status: StatusWrongOutput}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assert.Equal(t, tt.want, belowAnyBar(tt.recs)) })
	}
}
