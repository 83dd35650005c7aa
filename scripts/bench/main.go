// Command bench is the benchmark harness of redmagic-patch: it runs three
// suites (bench: testdata/bench and the test VMs' programs; pyperf:
// pyperformance's pure-Python benchmarks from ../shared/third_party, with
// the pyperf stand-in of scripts/bench/pyperf; luacorpus:
// testdata/bench/corpus/*.lua) under each original interpreter, its
// patched copy with the runtime off and on, and peer interpreters,
// interleaved; checks every run's output; and writes results.json,
// results.md and speedup.svg. Unless --quick, it ends with the programs'
// verdicts against the speed bars (verdict.go), per suite.
//
//	go run ./scripts/bench [--quick] [--runs N] [--warmup N] [--instructions] [--only REGEXP] [--out DIR]
//	go run ./scripts/bench --cold [--runs N] [--out DIR]
//
// --cold measures what a process that never runs a hot loop pays: start-up,
// peak RSS and threads of the original and the patched interpreters
// (cold.md, cold.json), instead of running the suite.
//
// It exits 1 if any run printed a wrong answer or failed, 2 on bad usage;
// configurations that are not installed are reported and skipped.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root")
	tool := fs.String("tool", "bin/redmagic-patch", "the redmagic-patch binary (relative to --root)")
	out := fs.String("out", "out/bench", "directory for the reports and the patched interpreters (relative to --root)")
	quick := fs.Bool("quick", false, "small sizes, no warm-up, one counted run: proves correctness, not speed")
	runs := fs.Int("runs", 5, "counted runs per configuration")
	warmup := fs.Int("warmup", 1, "warm-up runs per configuration (not counted)")
	confirm := fs.Int("confirm", 10, "more interleaved runs of the original and the patched configurations for a program below a bar after --runs; the verdict is taken over all (0: none)")
	instr := fs.Bool("instructions", false, "also count instructions and simulated instruction-cache misses under valgrind (cachegrind) at the small sizes")
	only := fs.String("only", "", "run only programs whose name matches this regular expression")
	timeout := fs.Duration("timeout", 5*time.Minute, "limit for one run")
	render := fs.String("render", "", "redraw results.md and speedup.svg in --out from this results.json, run nothing")
	bless := fs.Bool("bless", false, "write the expected outputs from the original interpreters (review the diff!) and exit")
	cold := fs.Bool("cold", false, "measure start-up, RSS and threads before the first hot loop (default 31 runs), run nothing else")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *quick {
		setFlags := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })
		if !setFlags["runs"] {
			*runs = 1
		}
		if !setFlags["warmup"] {
			*warmup = 0
		}
		if !setFlags["confirm"] {
			*confirm = 0
		}
	}
	if *runs < 1 || *warmup < 0 || *confirm < 0 {
		fmt.Fprintln(stderr, "bench: --runs must be >= 1, --warmup and --confirm >= 0")
		return 2
	}
	var filter *regexp.Regexp
	if *only != "" {
		var err error
		if filter, err = regexp.Compile(*only); err != nil {
			fmt.Fprintf(stderr, "bench: --only: %v\n", err)
			return 2
		}
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	outDir := joinRoot(absRoot, *out)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if *render != "" {
		return renderFrom(*render, outDir, stderr)
	}
	b := NewBench(Options{
		Root: absRoot, Tool: joinRoot(absRoot, *tool), WorkDir: filepath.Join(outDir, "work"),
		Quick: *quick, Warmup: *warmup, Runs: *runs, Confirm: *confirm, Instructions: *instr, Timeout: *timeout, Log: stderr,
	}, Families())

	if *cold {
		n := 31 // start-up differences are fractions of a millisecond
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "runs" {
				n = *runs
			}
		})
		if err := writeCold(b.MeasureCold(n), n, outDir, stdout); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 2
		}
		return 0
	}
	// Only now: --cold needs no suite, so a bad corpus file cannot stop it.
	suite, err := DefaultSuite(absRoot)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if *bless {
		return blessAll(b, suite, filter, stdout, stderr)
	}
	mode := "full"
	if *quick {
		mode = "quick"
	}
	rep := &Report{Date: time.Now().Format("2006-01-02"), Machine: DescribeMachine(), Mode: mode, Warmup: *warmup, Runs: *runs, Confirm: *confirm}
	start := time.Now()
	for _, p := range suite {
		if filter != nil && !filter.MatchString(p.Name) {
			continue
		}
		t0 := time.Now()
		recs := b.RunProgram(p)
		rep.Records = append(rep.Records, recs...)
		fmt.Fprintf(stdout, "%-24s %s\n", p.Name, summaryLine(recs, time.Since(t0)))
	}
	rep.Duration = time.Since(start).Seconds()
	if err := writeReports(rep, outDir); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "bench: %d records in %.0f s; reports in %s/{results.json,results.md,speedup.svg}\n",
		len(rep.Records), rep.Duration, outDir)
	// The verdicts inform; they never change the exit status, which is
	// about answers (timings on a shared machine are too noisy to gate on).
	if rep.Judged() {
		if err := WriteVerdicts(stdout, Summarize(rep.Verdicts())); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 2
		}
	}
	if fails := rep.Failures(); len(fails) > 0 {
		fmt.Fprintf(stderr, "bench: FAILED: %d program/configuration pairs gave a wrong answer or failed:\n", len(fails))
		for _, f := range fails {
			fmt.Fprintf(stderr, "  %s [%s]: %s\n", f.Program, f.Config, f.Error)
		}
		return 1
	}
	return 0
}

func joinRoot(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

func summaryLine(recs []*Record, took time.Duration) string {
	s := ""
	for _, r := range recs {
		switch {
		case r.Kind == KindOriginal && r.Status == StatusOK:
			s += fmt.Sprintf(" original %.3fs", r.Median)
		case r.Status == StatusUnavailable:
			s += fmt.Sprintf(" | %s n/a", r.Config)
		case r.Failed():
			s += fmt.Sprintf(" | %s FAIL", r.Config)
		case r.Speedup != nil:
			s += fmt.Sprintf(" | %s %.2fx", r.Config, r.Speedup.Median)
		}
		if r.Instructions > 0 {
			s += fmt.Sprintf(" [%d instr, %d I1 misses]", r.Instructions, r.I1Misses)
		}
	}
	return s + fmt.Sprintf("  (%.1fs)", took.Seconds())
}

func writeReports(rep *Report, dir string) error {
	for name, write := range map[string]func(io.Writer) error{
		"results.json": rep.WriteJSON,
		"results.md":   rep.WriteMarkdown,
		"speedup.svg":  rep.WriteSVG,
	} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		werr := write(f)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("%s: %w", name, werr)
		}
	}
	return nil
}

// blessAll records the original interpreter's output at both sizes of each
// program as its expected output. The Lua and Python classics must then
// agree with each other, which the tests check.
func blessAll(b *Bench, suite []Program, filter *regexp.Regexp, stdout, stderr io.Writer) int {
	status := 0
	for _, p := range suite {
		if filter != nil && !filter.MatchString(p.Name) {
			continue
		}
		if why := b.MissingScript(p); why != "" {
			fmt.Fprintf(stderr, "bless %s: %s\n", p.Name, why)
			status = 1
			continue
		}
		cs, err := b.Configs(p.Family)
		if err != nil || cs[0].Unavailable != "" {
			fmt.Fprintf(stderr, "bless %s: original unavailable\n", p.Name)
			status = 1
			continue
		}
		for _, size := range []string{p.Small, p.Full} {
			out, wall, err := Run(Command(b.Opts.Root, cs[0], p, size), b.Opts.Timeout)
			if err != nil {
				fmt.Fprintf(stderr, "bless %s %s: %v\n", p.Name, size, err)
				status = 1
				continue
			}
			path := p.ExpectedPath(b.Opts.Root, size)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				err = os.WriteFile(path, out, 0o644)
			}
			if err != nil {
				fmt.Fprintf(stderr, "bless: %v\n", err)
				status = 1
				continue
			}
			fmt.Fprintf(stdout, "%s %s: %.2fs -> %s\n", p.Name, size, wall.Seconds(), path)
		}
	}
	return status
}

// renderFrom redraws the reports of an earlier session, so that changes
// to the table or chart need no new measurement.
func renderFrom(path, outDir string, stderr io.Writer) int {
	data, err := os.ReadFile(path)
	if err == nil {
		var rep Report
		if err = json.Unmarshal(data, &rep); err == nil {
			err = writeReports(&rep, outDir)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: --render %s: %v\n", path, err)
		return 2
	}
	return 0
}
