package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// Status of one program under one configuration.
type Status string

const (
	StatusOK          Status = "ok"
	StatusWrongOutput Status = "wrong-output" // a failure: never a speedup
	StatusError       Status = "error"        // crashed, non-zero exit, timeout
	StatusUnavailable Status = "unavailable"  // not installed or not patchable: skipped
)

// Record is the result of one program under one configuration.
type Record struct {
	Program     string     `json:"program"`
	Interpreter string     `json:"interpreter"`
	Config      string     `json:"config"`
	Kind        ConfigKind `json:"kind"`
	Command     []string   `json:"command,omitempty"`
	Size        string     `json:"size"`
	Status      Status     `json:"status"`
	Error       string     `json:"error,omitempty"`
	// Seconds holds the counted runs' wall times in round order.
	Seconds []float64 `json:"seconds,omitempty"`
	Median  float64   `json:"median_seconds,omitempty"`
	Min     float64   `json:"min_seconds,omitempty"`
	Max     float64   `json:"max_seconds,omitempty"`
	// Speedup is original/this over the interleaved rounds (absent for the
	// original itself and for anything that failed).
	Speedup *Ratio `json:"speedup,omitempty"`

	// The run under valgrind, at the small size (countInstructions):
	// what it counted and, for the runtime on, the loop back-edges it
	// took (its statistics).
	InstructionsSize string `json:"instructions_size,omitempty"`
	Counts
	Iterations        int64  `json:"iterations,omitempty"`
	InstructionsError string `json:"instructions_error,omitempty"`

	// RuntimeStats is the REDMAGIC_STATS object of the last counted
	// runtime-on run.
	RuntimeStats json.RawMessage `json:"runtime_stats,omitempty"`
	StatsError   string          `json:"runtime_stats_error,omitempty"`

	// ConfirmRounds counts the rounds of Seconds run to confirm a
	// verdict (Options.Confirm); 0 if none were needed.
	ConfirmRounds int `json:"confirm_rounds,omitempty"`

	rounds []float64 // per round, NaN where no time (warm-up excluded)
}

// Failed reports whether the record must fail the benchmark.
func (r *Record) Failed() bool { return r.Status == StatusWrongOutput || r.Status == StatusError }

// Options control one benchmark session.
type Options struct {
	Root    string // repository root
	Tool    string // redmagic-patch binary
	WorkDir string // patched interpreters, stats files
	Quick   bool   // small sizes
	Warmup  int
	Runs    int
	// Confirm is how many more interleaved rounds of the original and
	// the two patched configurations a program gets when, after Runs, it
	// is below a bar: on this machine one median of 5 moves by +-5%, and a
	// verdict should say what the runtime does, not what the neighbours
	// did that minute. The verdict is then taken over all the rounds.
	Confirm      int
	Instructions bool
	Timeout      time.Duration
	Log          io.Writer
}

// Bench runs programs under their families' configurations.
type Bench struct {
	Opts     Options
	Families map[string]Family
	configs  map[string][]Config // resolved (patched) per family
}

// NewBench checks the options; patching happens lazily per family.
func NewBench(opts Options, fams map[string]Family) *Bench {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	return &Bench{Opts: opts, Families: fams, configs: map[string][]Config{}}
}

func (b *Bench) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(b.Opts.Root, p)
}

// Configs resolves a family into its configurations: the original, the
// patched file without and with the runtime, then the peers. A failure to
// patch makes the two patched configurations unavailable, nothing else.
func (b *Bench) Configs(family string) ([]Config, error) {
	if cs, ok := b.configs[family]; ok {
		return cs, nil
	}
	f, ok := b.Families[family]
	if !ok {
		return nil, fmt.Errorf("unknown interpreter family %q", family)
	}
	orig := Config{Name: "original", Kind: KindOriginal, Path: b.abs(f.Original)}
	if _, err := os.Stat(orig.Path); err != nil {
		orig.Unavailable = fmt.Sprintf("original interpreter missing: %v", err)
	}
	patchedPath, perr := b.patch(f, orig)
	if orig.Unavailable == "" {
		if cp, err := b.copyOriginal(f, orig.Path); err != nil {
			orig.Unavailable = err.Error()
		} else {
			orig.Path = cp
		}
	}
	off := Config{Name: "patched, runtime off", Kind: KindPatchedOff, Path: patchedPath, Env: []string{"REDMAGIC_DISABLE=1"}}
	on := Config{Name: "patched, runtime on", Kind: KindPatchedOn, Path: patchedPath}
	if perr != nil {
		off.Unavailable = perr.Error()
		on.Unavailable = perr.Error()
	}
	cs := append([]Config{orig, off, on}, f.Peers...)
	b.configs[family] = cs
	return cs, nil
}

func (b *Bench) patch(f Family, orig Config) (string, error) {
	if orig.Unavailable != "" {
		return "", errors.New("cannot patch: " + orig.Unavailable)
	}
	dir := filepath.Join(b.Opts.WorkDir, "patched", f.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(orig.Path))
	args := []string{orig.Path, "-o", out}
	if f.Profile != "" {
		args = append(args, "--profile", b.abs(f.Profile))
	}
	cmd := exec.Command(b.Opts.Tool, args...)
	cmd.Dir = b.Opts.Root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("patch %s: %v: %s", orig.Path, err, tail(string(msg), 400))
	}
	return out, nil
}

// copyOriginal writes a copy of the original interpreter next to the
// patched one, the same way (one write of the whole file), and the
// original configuration runs that copy. How a file's pages came into the
// page cache changes how fast the same bytes run: on the development
// machine /usr/bin/python3.11, faulted in page by page long ago, ran a
// program in 0.51-0.60 s, and a copy written in one piece, or the same
// file evicted and read back with read(), in 0.42-0.45 s (valgrind: the
// same instructions). Measuring the patched file (just written) against
// the installed one measured that, not the runtime.
func (b *Bench) copyOriginal(f Family, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("copy original: %w", err)
	}
	dir := filepath.Join(b.Opts.WorkDir, "original", f.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("copy original: %w", err)
	}
	out := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(out, data, 0o755); err != nil {
		return "", fmt.Errorf("copy original: %w", err)
	}
	return out, nil
}

// Size is the argument a program runs with in this session.
func (b *Bench) Size(p Program) string {
	if b.Opts.Quick {
		return p.Small
	}
	return p.Full
}

// MissingScript says why an external program cannot run here ("" if it
// can). A missing script of the repository's own is not excused: it fails
// like any other broken run.
func (b *Bench) MissingScript(p Program) string {
	if !p.External {
		return ""
	}
	if _, err := os.Stat(p.ScriptPath(b.Opts.Root)); err != nil {
		return fmt.Sprintf("third-party script not on this machine: %v", err)
	}
	return ""
}

// RunProgram measures one program under every configuration of its family,
// interleaved: each round runs every live configuration once, in order.
// A configuration that fails stops being run; the others continue.
func (b *Bench) RunProgram(p Program) []*Record {
	cs, err := b.Configs(p.Family)
	if err != nil {
		return []*Record{{Program: p.Name, Interpreter: p.Family, Config: "original", Kind: KindOriginal,
			Status: StatusError, Error: err.Error()}}
	}
	size := b.Size(p)
	recs := make([]*Record, len(cs))
	var want []byte
	expPath := p.ExpectedPath(b.Opts.Root, size)
	want, expErr := os.ReadFile(expPath)
	missing := b.MissingScript(p)
	for i, c := range cs {
		recs[i] = &Record{Program: p.Name, Interpreter: p.Family, Config: c.Name, Kind: c.Kind, Size: size, Status: StatusOK}
		switch {
		case c.Unavailable != "":
			recs[i].Status, recs[i].Error = StatusUnavailable, c.Unavailable
		case missing != "":
			recs[i].Status, recs[i].Error = StatusUnavailable, missing
		case c.Kind == KindPeer && p.NoPeers != "":
			recs[i].Status, recs[i].Error = StatusUnavailable, p.NoPeers
		case expErr != nil:
			recs[i].Status, recs[i].Error = StatusError, fmt.Sprintf("no expected output: %v", expErr)
		default:
			recs[i].Command = Command(b.Opts.Root, c, p, size).Argv
		}
	}
	run := rounds{p: p, cs: cs, recs: recs, size: size, expPath: expPath, want: want,
		statsPath: filepath.Join(b.Opts.WorkDir, "stats", p.Key()+".json")}
	_ = os.MkdirAll(filepath.Dir(run.statsPath), 0o755)
	b.runRounds(&run, b.Opts.Warmup, b.Opts.Runs, nil)
	b.summarize(recs)
	if b.Opts.Confirm > 0 && belowAnyBar(recs) {
		fmt.Fprintf(b.Opts.Log, "%s: below a bar after %d runs; %d more to confirm\n", p.Name, b.Opts.Runs, b.Opts.Confirm)
		b.runRounds(&run, 0, b.Opts.Confirm, func(c Config) bool { return c.Kind != KindPeer })
		for i, c := range cs {
			if c.Kind != KindPeer && recs[i].Status == StatusOK {
				recs[i].ConfirmRounds = b.Opts.Confirm
			}
		}
		b.summarize(recs)
	}
	if b.Opts.Instructions {
		b.countInstructions(p, cs, recs)
	}
	return recs
}

// rounds is one program's measurement in progress.
type rounds struct {
	p         Program
	cs        []Config
	recs      []*Record
	size      string
	expPath   string
	want      []byte
	statsPath string
}

// runRounds runs warmup uncounted and n counted rounds, each running every
// live configuration (those only accepts, if only is not nil) once, in
// order. A configuration that fails stops being run; the others continue.
// A configuration left out of a counted round gets no time for it.
func (b *Bench) runRounds(run *rounds, warmup, n int, only func(Config) bool) {
	for round := 0; round < warmup+n; round++ {
		counted := round >= warmup
		for i, c := range run.cs {
			r := run.recs[i]
			if r.Status != StatusOK || (only != nil && !only(c)) {
				if counted {
					r.rounds = append(r.rounds, math.NaN())
				}
				continue
			}
			inv := Command(b.Opts.Root, c, run.p, run.size)
			if c.Kind == KindPatchedOn {
				os.Remove(run.statsPath)
				inv.Env = append(append([]string(nil), inv.Env...), "REDMAGIC_STATS="+run.statsPath)
			}
			out, wall, err := Run(inv, b.Opts.Timeout)
			if err == nil {
				err = Verify(run.expPath, run.want, out)
			}
			if err != nil {
				r.Status, r.Error = StatusError, err.Error()
				var wo *WrongOutputError
				if errors.As(err, &wo) {
					r.Status = StatusWrongOutput
				}
				fmt.Fprintf(b.Opts.Log, "FAIL %s [%s]: %s\n", run.p.Name, c.Name, r.Error)
				if counted {
					r.rounds = append(r.rounds, math.NaN())
				}
				continue
			}
			if !counted {
				continue
			}
			r.rounds = append(r.rounds, wall.Seconds())
			r.Seconds = append(r.Seconds, wall.Seconds())
			if c.Kind == KindPatchedOn {
				r.RuntimeStats, r.StatsError = readStats(run.statsPath)
			}
		}
	}
}

// belowAnyBar reports whether a patched configuration that ran is, so far,
// below its bar (a failure is not: more runs cannot mend it).
func belowAnyBar(recs []*Record) bool {
	for _, r := range recs {
		if r.Status != StatusOK || r.Speedup == nil {
			continue
		}
		if bar, ok := barFor(r.Kind); ok && r.Speedup.Median < bar {
			return true
		}
	}
	return false
}

func readStats(path string) (json.RawMessage, string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err.Error()
	}
	var probe map[string]any
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Sprintf("%s: not JSON: %v", path, err)
	}
	return json.RawMessage(bytes.TrimSpace(data)), ""
}

func (b *Bench) summarize(recs []*Record) {
	orig := recs[0]
	for _, r := range recs {
		if r.Status != StatusOK || len(r.Seconds) == 0 {
			r.Seconds = nil
			continue
		}
		r.Median = Median(r.Seconds)
		r.Min, r.Max = MinMax(r.Seconds)
		if r == orig || orig.Status != StatusOK {
			continue
		}
		if ratio, ok := Speedup(orig.rounds, r.rounds); ok {
			r.Speedup = &ratio
		}
	}
}

// deterministicJIT is the runtime-on configuration's environment under
// valgrind: every trace kept and compiled on the program's thread as soon
// as its loop is hot, so that the counts say what the traces do and do
// not depend on the clock (the governor, the budget and the JIT's delay
// go by it, and valgrind's is some 50 times slow).
var deterministicJIT = []string{"REDMAGIC_GOVERNOR=0", "REDMAGIC_JIT_BUDGET=0", "REDMAGIC_JIT_DELAY=0", "REDMAGIC_JIT_RATE=0", "REDMAGIC_JIT_BACKGROUND=0"}

// countInstructions runs each live configuration once under valgrind at
// the small size, checking its output like any other run; the runtime on
// runs with deterministicJIT and its statistics.
func (b *Bench) countInstructions(p Program, cs []Config, recs []*Record) {
	expPath := p.ExpectedPath(b.Opts.Root, p.Small)
	want, expErr := os.ReadFile(expPath)
	statsPath := filepath.Join(b.Opts.WorkDir, "stats", p.Key()+".valgrind.json")
	for i, c := range cs {
		r := recs[i]
		r.InstructionsSize = p.Small
		switch {
		case r.Status == StatusUnavailable:
			r.InstructionsError = r.Error
			continue
		case r.Failed():
			r.InstructionsError = "skipped: timed runs failed"
			continue
		case expErr != nil:
			r.InstructionsError = fmt.Sprintf("no expected output: %v", expErr)
			continue
		}
		inv := Command(b.Opts.Root, c, p, p.Small)
		if c.Kind == KindPatchedOn {
			os.Remove(statsPath)
			inv.Env = append(append(slices.Clone(inv.Env), deterministicJIT...), "REDMAGIC_STATS="+statsPath)
		}
		out, n, err := CountInstructions(inv, b.Opts.WorkDir, b.Opts.Timeout)
		if err == nil {
			err = Verify(expPath, want, out)
			if err != nil {
				r.Status, r.Error = StatusWrongOutput, err.Error()
				r.Speedup = nil
			}
		}
		if err != nil {
			r.InstructionsError = err.Error()
			fmt.Fprintf(b.Opts.Log, "FAIL %s [%s] under valgrind: %s\n", p.Name, c.Name, err)
			continue
		}
		r.Counts = n
		if c.Kind == KindPatchedOn {
			if st, msg := readStats(statsPath); msg == "" {
				if c, ok := statsCoverage(st); ok {
					r.Iterations = c.backEdges()
				}
			}
		}
	}
}
