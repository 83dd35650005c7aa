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

// CountInstructions runs inv under cachegrind without cache simulation and
// returns its output and the total instructions executed (I refs).
func CountInstructions(inv Invocation, tmpDir string, timeout time.Duration) ([]byte, int64, error) {
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		return nil, 0, ErrNoValgrind
	}
	f, err := os.CreateTemp(tmpDir, "cachegrind-*.out")
	if err != nil {
		return nil, 0, err
	}
	f.Close()
	defer os.Remove(f.Name())
	vinv := inv
	// --smc-check=all: the JIT writes code through a second mapping and
	// rewrites its recording buffers, which valgrind would otherwise run
	// from stale translations.
	vinv.Argv = append([]string{vg, "--tool=cachegrind", "--cache-sim=no", "--smc-check=all", "--cachegrind-out-file=" + f.Name()}, inv.Argv...)
	// The Go runtime of the JIT reads the time-stamp counter with rdtscp
	// where cpuid offers it, and valgrind 3.19 offers it but cannot run
	// it (SIGILL in runtime.cputicks): rdtsc instead.
	vinv.Env = append(slices.Clone(inv.Env), "GODEBUG=cpu.rdtscp=off")
	out, _, err := Run(vinv, timeout)
	if err != nil {
		return out, 0, err
	}
	n, err := parseCachegrindSummary(f.Name())
	return out, n, err
}

// parseCachegrindSummary reads the "summary: N" line of a cachegrind output
// file; with --cache-sim=no the first event is Ir.
func parseCachegrindSummary(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "summary:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				break
			}
			n, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: bad summary line %q: %w", path, sc.Text(), err)
			}
			return n, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no summary line", path)
}
