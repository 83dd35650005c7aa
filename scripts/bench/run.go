package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WrongOutputError is a run whose standard output differs from the
// expected file: the program computed the wrong answer.
type WrongOutputError struct {
	Expected string // the expected-output file
	Line     int    // first differing line, 1-based
	Got      string
	Want     string
}

func (e *WrongOutputError) Error() string {
	return fmt.Sprintf("wrong output (vs %s) at line %d: got %q, want %q", e.Expected, e.Line, e.Got, e.Want)
}

// RunError is a run that did not complete: it could not start, exited
// non-zero, or timed out.
type RunError struct {
	Command []string
	Err     error
	Stderr  string // the tail of standard error
}

func (e *RunError) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Command, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *RunError) Unwrap() error { return e.Err }

// Verify compares output with the expected bytes and says where they
// first differ.
func Verify(expectedPath string, want, got []byte) error {
	if bytes.Equal(want, got) {
		return nil
	}
	wl := strings.Split(string(want), "\n")
	gl := strings.Split(string(got), "\n")
	for i := 0; ; i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g || i >= len(wl) || i >= len(gl) {
			return &WrongOutputError{Expected: expectedPath, Line: i + 1, Got: g, Want: w}
		}
	}
}

// Invocation is one command to run for a program and configuration.
type Invocation struct {
	Argv []string
	Env  []string // added to a cleaned environment
	Dir  string
}

// Command builds the invocation of program p at size under configuration
// c: the program's environment first, then the configuration's.
func Command(root string, c Config, p Program, size string) Invocation {
	argv := append([]string{c.Path}, c.Args...)
	argv = append(argv, p.ScriptPath(root), size)
	var env []string
	for _, kv := range p.Env {
		env = append(env, strings.ReplaceAll(kv, RootVar, root))
	}
	env = append(env, c.Env...)
	return Invocation{Argv: argv, Env: env, Dir: root}
}

// cleanEnv drops variables that would change what is measured: the
// runtime's own switches and Python's start-up hooks.
func cleanEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "REDMAGIC_") || k == "PYTHONSTARTUP" || k == "PYTHONPATH" || k == "LUA_INIT" || k == "LUA_INIT_5_4" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// Run executes inv once and returns its standard output and wall time.
func Run(inv Invocation, timeout time.Duration) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, inv.Argv[0], inv.Argv[1:]...)
	cmd.Dir = inv.Dir
	cmd.Env = cleanEnv(inv.Env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", timeout)
	}
	if err != nil {
		return stdout.Bytes(), wall, &RunError{Command: inv.Argv, Err: err, Stderr: tail(stderr.String(), 400)}
	}
	return stdout.Bytes(), wall, nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// ErrNoValgrind is reported for every configuration when --instructions is
// asked for on a machine without valgrind.
var ErrNoValgrind = errors.New("valgrind not installed")

// Counts is what a run under cachegrind counted.
type Counts struct {
	Instructions int64 `json:"instructions,omitempty"` // instructions executed (I refs)
	// JITInstructions: of those, the JIT's own (its Go code and the
	// recorder's C in the same library: recording and compiling), by
	// source file.
	JITInstructions int64 `json:"jit_instructions,omitempty"`
	// I1Misses: misses of a simulated instruction cache (simulatedCaches).
	// A trace is a copy of the interpreter's code for each bytecode it
	// runs through; a loop whose traces outgrow the cache the interpreter
	// fits in runs fewer instructions and more slowly. JITI1Misses: of
	// those, in the JIT's own code.
	I1Misses    int64 `json:"i1_misses,omitempty"`
	JITI1Misses int64 `json:"jit_i1_misses,omitempty"`
}

// simulatedCaches is the cache model cachegrind runs with: a level-1
// instruction cache of 32 KiB, 8-way, 64-byte lines, as in the x86-64
// cores of this decade (AMD Zen, Intel's since Sandy Bridge); D1 and LL
// are given too so that no figure depends on the host's cpuid.
var simulatedCaches = []string{"--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,16,64"}

// CountInstructions runs inv under cachegrind with its cache model and
// returns its output and what it counted.
func CountInstructions(inv Invocation, tmpDir string, timeout time.Duration) ([]byte, Counts, error) {
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		return nil, Counts{}, ErrNoValgrind
	}
	f, err := os.CreateTemp(tmpDir, "cachegrind-*.out")
	if err != nil {
		return nil, Counts{}, err
	}
	f.Close()
	defer os.Remove(f.Name())
	vinv := inv
	// --smc-check=all: the JIT writes code through a second mapping and
	// rewrites its recording buffers, which valgrind would otherwise run
	// from stale translations.
	args := append([]string{vg, "--tool=cachegrind", "--cache-sim=yes"}, simulatedCaches...)
	vinv.Argv = append(append(args, "--smc-check=all", "--cachegrind-out-file="+f.Name()), inv.Argv...)
	// The Go runtime of the JIT reads the time-stamp counter with rdtscp
	// where cpuid offers it, and valgrind 3.19 offers it but cannot run
	// it (SIGILL in runtime.cputicks): rdtsc instead.
	vinv.Env = append(slices.Clone(inv.Env), "GODEBUG=cpu.rdtscp=off")
	out, _, err := Run(vinv, timeout)
	if err != nil {
		return out, Counts{}, err
	}
	c, err := parseCachegrindSummary(f.Name())
	return out, c, err
}

// parseCachegrindSummary reads the counts of a cachegrind output file:
// Ir (and I1mr with the cache model) from its "events:" and "summary:"
// lines, and those of the JIT's source files (jitSource) from the per-line
// counts under each "fl=".
func parseCachegrindSummary(path string) (Counts, error) {
	f, err := os.Open(path)
	if err != nil {
		return Counts{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	// cols: Ir's and I1mr's places among the events (-1: absent); a count
	// line puts its line number first, and leaves trailing zeros out.
	cols := [2]int{-1, -1}
	var jit [2]int64
	inJIT := false
	count := func(fields []string, k int) (int64, error) {
		if cols[k] < 0 || cols[k] >= len(fields) {
			return 0, nil
		}
		return strconv.ParseInt(fields[cols[k]], 10, 64)
	}
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "events:"); ok {
			events := strings.Fields(rest)
			cols = [2]int{slices.Index(events, "Ir"), slices.Index(events, "I1mr")}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "fl="); ok {
			inJIT = jitSource(rest)
			continue
		}
		if inJIT && line != "" && line[0] >= '0' && line[0] <= '9' {
			fields := strings.Fields(line)[1:]
			for k := range jit {
				if n, err := count(fields, k); err == nil {
					jit[k] += n
				}
			}
			continue
		}
		rest, ok := strings.CutPrefix(line, "summary:")
		if !ok {
			continue
		}
		if cols[0] < 0 {
			return Counts{}, fmt.Errorf("%s: no Ir among the events before %q", path, line)
		}
		fields := strings.Fields(rest)
		if cols[0] >= len(fields) {
			return Counts{}, fmt.Errorf("%s: no Ir in summary line %q", path, line)
		}
		ir, err := count(fields, 0)
		if err != nil {
			return Counts{}, fmt.Errorf("%s: bad summary line %q: %w", path, line, err)
		}
		i1, err := count(fields, 1)
		if err != nil {
			return Counts{}, fmt.Errorf("%s: bad summary line %q: %w", path, line, err)
		}
		return Counts{Instructions: ir, JITInstructions: jit[0], I1Misses: i1, JITI1Misses: jit[1]}, nil
	}
	if err := sc.Err(); err != nil {
		return Counts{}, err
	}
	return Counts{}, fmt.Errorf("%s: no summary line", path)
}

// jitSource reports whether a source file cachegrind names is the JIT's:
// Go (".go", and Go's assembly, ".s": glibc's is ".S") or the C built into
// the JIT's library with it (the recorder's, cgo's).
func jitSource(file string) bool {
	return strings.HasSuffix(file, ".go") || strings.HasSuffix(file, ".s") ||
		strings.Contains(file, "/tracevm/") || strings.Contains(file, "/runtime/cgo/") ||
		strings.Contains(file, "_cgo_") || strings.Contains(file, "cgo-gcc-prolog")
}
