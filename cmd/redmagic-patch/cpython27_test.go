package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

// cpython27 returns the interpreter of the original redmagic's own client,
// the annotated CPython 2.7 that scripts/cpython27.sh builds from the seed
// (REDMAGIC_TEST_CPYTHON27 names its install prefix; scripts/test.sh sets
// it), or skips the test when it has not been built.
func cpython27(t *testing.T, root string) string {
	t.Helper()
	prefix := os.Getenv("REDMAGIC_TEST_CPYTHON27")
	if prefix == "" {
		out, err := exec.Command("bash", filepath.Join(root, "scripts", "cpython27.sh"), "--prefix").Output()
		require.NoError(t, err, "scripts/cpython27.sh --prefix")
		prefix = strings.TrimSpace(string(out))
	}
	py := filepath.Join(prefix, "bin", "python2.7")
	if _, err := os.Stat(py); err != nil {
		t.Skipf("the annotated CPython 2.7 is not built (%v): run make cpython27 (scripts/cpython27.sh), or scripts/test.sh", err)
	}
	return py
}

// TestCPython27Programs runs each loop program of testdata/cpython27 under
// the annotated CPython 2.7 and under a copy patched with the annotated
// profile, at the default threshold, at threshold 1 and disabled: every
// run prints the program's known output (NAME.out). At threshold 1 the
// JIT must have compiled traces. busywait.py waits, in a hot loop, for a
// flag only another thread sets: it ends only if the GIL is handed over
// inside traces.
func TestCPython27Programs(t *testing.T) {
	requireRuntime(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	orig := cpython27(t, root)
	progs, err := filepath.Glob(filepath.Join(root, "testdata", "cpython27", "*.py"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(progs), 8, "testdata/cpython27 programs")
	jit := filepath.Join(t.TempDir(), "python2.7-jit")
	patch(t, orig, jit, "--profile", "annotated")
	configs := []jitConfig{
		{"default", nil, false},
		{"threshold=1", []string{"REDMAGIC_THRESHOLD=1"}, true},
		{"disabled", []string{"REDMAGIC_DISABLE=1"}, false},
	}
	for _, prog := range progs {
		name := strings.TrimSuffix(filepath.Base(prog), ".py")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			known, err := os.ReadFile(strings.TrimSuffix(prog, ".py") + ".out")
			require.NoError(t, err, "the known output of %s", name)
			want := runPython(t, orig, prog, nil, "")
			require.Equal(t, string(known), want.stdout, "%s: unpatched", name)
			require.Empty(t, want.stderr, "%s: unpatched", name)
			for _, c := range configs {
				comparePython(t, jit, prog, c, want)
			}
		})
	}
}
