// Package testenv owns what tests ask of the machine they run on: the
// repository root (for testdata and the C headers), the tools and installed
// files a test skips without, and small C programs compiled with gcc. Only
// tests import it.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// RepoRoot returns the repository root: the nearest directory holding
// go.mod above this source file.
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", fmt.Errorf("testenv: source path of the package unknown (%q)", file)
	}
	for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if parent := filepath.Dir(dir); parent == dir {
			return "", fmt.Errorf("testenv: no go.mod above %s", filepath.Dir(file))
		}
	}
}

// NeedFile skips the test when path does not exist (an interpreter or
// library that is not installed here).
func NeedFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not installed", path)
	}
}

// NeedTool skips the test when the command name is not on PATH.
func NeedTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
}

// CompileC writes src to dir/name.c and compiles it with gcc into
// dir/name, flags after the source (so that libraries such as -ldl link).
// It returns the binary's path, or an error with gcc's output: some flags
// (-static) need what a machine may lack, and the caller decides whether
// that skips the test. It skips the test when there is no gcc.
func CompileC(t testing.TB, dir, name, src string, flags ...string) (string, error) {
	t.Helper()
	NeedTool(t, "gcc")
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	if msg, err := exec.Command("gcc", append([]string{"-o", out, c}, flags...)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("gcc %v: %v\n%s", flags, err, msg)
	}
	return out, nil
}

// BuildC is CompileC for a program that must build: a failure fails the
// test.
func BuildC(t testing.TB, dir, name, src string, flags ...string) string {
	t.Helper()
	out, err := CompileC(t, dir, name, src, flags...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzValues reads a file of Go's fuzz corpus (testdata/fuzz/FuzzX/NAME:
// the line "go test fuzz v1", then one value a line) and returns its
// value lines.
func FuzzValues(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("%s: not a fuzz corpus file (first line %q)", path, lines[0])
	}
	return lines[1:], nil
}

// FuzzBytes decodes a []byte("...") value line of a fuzz corpus file.
func FuzzBytes(line string) ([]byte, error) {
	q, ok := strings.CutPrefix(line, "[]byte(")
	if !ok || !strings.HasSuffix(q, ")") {
		return nil, fmt.Errorf("not a []byte value: %.40q", line)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
	if err != nil {
		return nil, fmt.Errorf("[]byte value: %w", err)
	}
	return []byte(s), nil
}
