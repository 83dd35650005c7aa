// Package testvms builds the test interpreters from testdata/vms and describes their programs.
//
// The three interpreters (switchvm, gotovm, annotvm) run one bytecode ISA
// with three dispatch shapes: a switch jump table, computed goto, and a
// switch annotated with the redmagic API. Every program under
// testdata/vms/programs runs on all of them with the same expected stdout,
// stderr, exit status and back-edge count, so tests of CFG recovery, site
// discovery and patching can run real interpreters whose behaviour is known
// exactly.
package testvms

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

// Names of the interpreters, in the order Build returns them.
var Names = []string{"switchvm", "gotovm", "annotvm"}

// Environment variables the interpreters read.
const (
	// EnvCountBackEdges=1 makes an interpreter end its stderr with
	// "backedges: N", N being the back-edges taken (see Program.BackEdges).
	EnvCountBackEdges = "VM_COUNT_BACKEDGES"
	// EnvReportTraced=1 makes annotvm report on stderr, at a normal exit,
	// how many PRINTs ran while redmagic_is_traced() was nonzero.
	EnvReportTraced = "VM_REPORT_TRACED"
)

// VM is one built interpreter.
type VM struct {
	Name     string // switchvm, gotovm or annotvm
	Path     string // absolute path of the binary built with -O2 -g
	Stripped string // absolute path of its strip --strip-all copy
}

// Program is one test program and what running it must produce.
type Program struct {
	Name string   // base name without .vm
	Path string   // absolute path of NAME.vm
	Args []string // arguments after the program path (header "; args:")
	// Stdout and Stderr are the exact expected output (NAME.out, NAME.err);
	// Stderr excludes the back-edge report.
	Stdout, Stderr string
	Status         int   // expected exit status (header "; status:", default 0)
	BackEdges      int64 // back-edges taken with Args (header "; backedges:")
}

// Command returns the command that runs p on the interpreter binary.
func (p Program) Command(ctx context.Context, binary string) *exec.Cmd {
	return exec.CommandContext(ctx, binary, append([]string{p.Path}, p.Args...)...)
}

// ProgramError reports a program whose header or golden files are malformed.
type ProgramError struct {
	Path string // file at fault
	Line int    // 1-based line, or 0 when not about a line
	Msg  string
	Err  error // underlying error, if any
}

func (e *ProgramError) Error() string {
	s := e.Path
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ProgramError) Unwrap() error { return e.Err }

// BuildError reports a failed make, with its output.
type BuildError struct {
	Dir    string // the directory make ran in
	Output string // make's combined stdout and stderr
	Err    error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("testvms: make -C %s: %v\n%s", e.Dir, e.Err, e.Output)
}

func (e *BuildError) Unwrap() error { return e.Err }

// Build runs make on testdata/vms (once per process) and returns the
// interpreters, in the order of Names.
func Build() ([]VM, error) {
	vms, err := buildOnce()
	// A copy, so that a caller cannot change what later callers see.
	return append([]VM(nil), vms...), err
}

// buildOnce is the one piece of package state: make is idempotent, so
// caching its result only saves the cost of asking again (tens of ms per
// call, in every test that needs an interpreter); it never changes an answer.
var buildOnce = sync.OnceValues(build)

func build() ([]VM, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	src := filepath.Join(root, "testdata", "vms")
	out := filepath.Join(root, "testdata", "build")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("testvms: %w", err)
	}
	// go test runs packages in parallel processes; a file lock keeps two
	// makes from writing the same objects at once.
	lock, err := os.OpenFile(filepath.Join(out, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testvms: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("testvms: lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	cmd := exec.Command("make", "-s", "-C", src)
	if output, err := cmd.CombinedOutput(); err != nil {
		return nil, &BuildError{Dir: src, Output: string(output), Err: err}
	}
	vms := make([]VM, len(Names))
	for i, name := range Names {
		vms[i] = VM{
			Name:     name,
			Path:     filepath.Join(out, name),
			Stripped: filepath.Join(out, name+".stripped"),
		}
		for _, p := range []string{vms[i].Path, vms[i].Stripped} {
			if _, err := os.Stat(p); err != nil {
				return nil, &BuildError{Dir: src, Err: err}
			}
		}
	}
	return vms, nil
}

// Programs parses every testdata/vms/programs/NAME.vm with its golden files,
// sorted by name.
func Programs() ([]Program, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "testdata", "vms", "programs")
	paths, err := filepath.Glob(filepath.Join(dir, "*.vm"))
	if err != nil {
		return nil, fmt.Errorf("testvms: %w", err)
	}
	if len(paths) == 0 {
		return nil, &ProgramError{Path: dir, Msg: "no programs"}
	}
	sort.Strings(paths)
	progs := make([]Program, 0, len(paths))
	for _, path := range paths {
		p, err := loadProgram(path)
		if err != nil {
			return nil, err
		}
		progs = append(progs, p)
	}
	return progs, nil
}

func loadProgram(path string) (Program, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Program{}, &ProgramError{Path: path, Msg: "read", Err: err}
	}
	p, err := parseHeader(path, src)
	if err != nil {
		return Program{}, err
	}
	base := strings.TrimSuffix(path, ".vm")
	p.Name = filepath.Base(base)
	out, err := os.ReadFile(base + ".out")
	if err != nil {
		return Program{}, &ProgramError{Path: base + ".out", Msg: "expected stdout", Err: err}
	}
	p.Stdout = string(out)
	errOut, err := os.ReadFile(base + ".err")
	switch {
	case err == nil:
		p.Stderr = string(errOut)
	case !errors.Is(err, os.ErrNotExist):
		return Program{}, &ProgramError{Path: base + ".err", Msg: "expected stderr", Err: err}
	}
	return p, nil
}

// parseHeader reads the keys of the leading comment block of a program:
//
//	; args: A B ...        arguments, split at blanks
//	; status: N            exit status, 0..255 (default 0)
//	; backedges: N (why)   back-edges taken, required; text after N is prose
//
// Other comment lines are prose; the block ends at the first line that is
// neither blank nor a comment.
func parseHeader(path string, src []byte) (Program, error) {
	p := Program{Path: path}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		body, ok := strings.CutPrefix(text, ";")
		if !ok {
			break
		}
		key, val, ok := strings.Cut(strings.TrimSpace(body), ":")
		if !ok || (key != "args" && key != "status" && key != "backedges") {
			continue
		}
		if seen[key] {
			return Program{}, &ProgramError{Path: path, Line: line, Msg: "duplicate " + key}
		}
		seen[key] = true
		fields := strings.Fields(val)
		if key == "args" {
			p.Args = fields
			continue
		}
		if len(fields) == 0 {
			return Program{}, &ProgramError{Path: path, Line: line, Msg: key + " without a value"}
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || n < 0 || (key == "status" && n > 255) {
			return Program{}, &ProgramError{Path: path, Line: line, Msg: "bad " + key + " " + strconv.Quote(fields[0])}
		}
		if key == "status" {
			p.Status = int(n)
		} else {
			p.BackEdges = n
		}
	}
	if err := sc.Err(); err != nil {
		return Program{}, &ProgramError{Path: path, Msg: "read", Err: err}
	}
	if !seen["backedges"] {
		return Program{}, &ProgramError{Path: path, Msg: "no \"; backedges:\" line in the header"}
	}
	return p, nil
}

// SplitBackEdges separates the report that EnvCountBackEdges=1 appends to an
// interpreter's stderr: it returns the stderr before it and the count.
func SplitBackEdges(stderr string) (rest string, n int64, err error) {
	const prefix = "backedges: "
	trimmed, ok := strings.CutSuffix(stderr, "\n")
	i := strings.LastIndexByte(trimmed, '\n') + 1
	if !ok || !strings.HasPrefix(trimmed[i:], prefix) {
		return "", 0, fmt.Errorf("testvms: stderr does not end with a %q line: %q", prefix, stderr)
	}
	n, err = strconv.ParseInt(trimmed[i+len(prefix):], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("testvms: back-edge report %q: %w", trimmed[i:], err)
	}
	return stderr[:i], n, nil
}
