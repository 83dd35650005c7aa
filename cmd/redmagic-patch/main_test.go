package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testBinary is the command built once by TestMain, with its version set
// through -ldflags as a release build would.
var testBinary string

const testVersion = "v0.0.0-test"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "redmagic-patch-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	testBinary = filepath.Join(dir, "redmagic-patch")
	build := exec.Command("go", "build", "-o", testBinary, "-ldflags", "-X main.version="+testVersion, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	status         int
}

// inProcess runs the command tree in this process.
func inProcess(args ...string) result {
	var out, errb bytes.Buffer
	status := run(args, &out, &errb)
	return result{out.String(), errb.String(), status}
}

// binary runs the built command.
func binary(t *testing.T, args ...string) result {
	t.Helper()
	return runCmd(t, exec.Command(testBinary, args...))
}

// runCmd runs cmd and returns its output and exit status; failing to
// start it fails the test.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	status := 0
	if ee, ok := err.(*exec.ExitError); ok {
		status = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{out.String(), errb.String(), status}
}

// assertOneLineError checks the error convention: status 2, nothing on
// stdout, one "redmagic-patch: " line on stderr holding each of want.
func assertOneLineError(t *testing.T, r result, want ...string) {
	t.Helper()
	assert.Equal(t, statusError, r.status, "stderr: %s", r.stderr)
	assert.Empty(t, r.stdout)
	assert.True(t, strings.HasPrefix(r.stderr, "redmagic-patch: "), "stderr: %q", r.stderr)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "stderr: %q", r.stderr)
	assert.True(t, strings.HasSuffix(r.stderr, "\n"))
	assert.NotContains(t, r.stderr, "goroutine ")
	for _, w := range want {
		assert.Contains(t, r.stderr, w)
	}
}

func TestVersion(t *testing.T) {
	suffix := fmt.Sprintf(" (%s, %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := inProcess(args...)
		assert.Equal(t, 0, r.status)
		assert.Regexp(t, `^redmagic-patch \S+ \(`, r.stdout)
		assert.True(t, strings.HasSuffix(r.stdout, suffix), r.stdout)
		assert.Empty(t, r.stderr)

		r = binary(t, args...)
		assert.Equal(t, "redmagic-patch "+testVersion+suffix, r.stdout)
		assert.Equal(t, 0, r.status)
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "redmagic-patch [command]"},
		{[]string{"help", "cfg"}, "redmagic-patch cfg BINARY [flags]"},
		{[]string{"cfg", "--help"}, "--format format"},
		{[]string{"cfg", "diff", "-h"}, "Exit status: 0 equal, 1 different, 2 error."},
	}
	for _, tt := range tests {
		r := inProcess(tt.args...)
		assert.Equal(t, 0, r.status, tt.args)
		assert.Contains(t, r.stdout, tt.want)
		assert.Empty(t, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"-v"}, "unknown shorthand flag: 'v'"},
		{[]string{"version", "extra"}, "version: want 0 argument(s), got 1"},
		{[]string{"cfg"}, "cfg: want 1 argument(s), got 0"},
		{[]string{"cfg", "a", "b", "c"}, "cfg: want 1 argument(s), got 3"},
		{[]string{"cfg", "x", "--bogus"}, "cfg: unknown flag: --bogus"},
		{[]string{"cfg", "/usr/bin/lua5.4", "--format", "svg"}, `--format "svg": want json, dot or text`},
		{[]string{"cfg", "/usr/bin/lua5.4", "--func", "0xnothex"}, "--func 0xnothex: not a valid address"},
		{[]string{"cfg", "/usr/bin/lua5.4", "--func", ""}, "--func: empty function name"},
		{[]string{"cfg", "/usr/bin/lua5.4", "--stats=maybe"}, `invalid argument "maybe"`},
		{[]string{"cfg", "diff", "a"}, "cfg diff: want 2 argument(s), got 1"},
		{[]string{"cfg", "diff", "a", "b", "--json=2"}, `invalid argument "2"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{"args:"}, tt.args...), " "), func(t *testing.T) {
			assertOneLineError(t, inProcess(tt.args...), tt.want)
		})
	}
	// The built command exits with the same status.
	assertOneLineError(t, binary(t, "cfg"), "want 1 argument(s)")
}

func TestPanicIsOneLine(t *testing.T) {
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.AddCommand(&cobra.Command{Use: "boom", Run: func(*cobra.Command, []string) {
		var m map[string]int
		m["x"]++ // a real runtime panic: assignment to entry in nil map
	}})
	status := execute(root, []string{"boom"}, &errb)
	assertOneLineError(t, result{out.String(), errb.String(), status}, "internal error: assignment to entry in nil map")
}

func TestOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a\nb", "a; b"},
		{"unknown command\n\nDid you mean this?\n\tcfg\n", "unknown command; ; Did you mean this?; cfg;"},
		{"  spaced   out  ", "spaced out"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, oneLine(tt.in))
	}
}
