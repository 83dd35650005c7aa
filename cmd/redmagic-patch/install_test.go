package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/elfpatch"
)

// TestOutputModes: new files get their modes less the umask, as any new
// file does.
func TestOutputModes(t *testing.T) {
	requireRuntime(t)
	dir := t.TempDir()
	sh := func(args ...string) result {
		script := `umask 027; exec "$@"`
		return runCmd(t, exec.Command("sh", append([]string{"-c", script, "sh", testBinary}, args...)...))
	}
	r := sh(lua, "-o", filepath.Join(dir, "lua"))
	require.Equal(t, 0, r.status, r.stderr)
	r = sh("cfg", lua, "-o", filepath.Join(dir, "lua.json"))
	require.Equal(t, 0, r.status, r.stderr)
	want := map[string]os.FileMode{"lua": 0o750, elfpatch.RuntimeName: 0o750, elfpatch.JITName: 0o750, "lua.json": 0o640}
	for name, mode := range want {
		st, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, mode, st.Mode().Perm(), name)
	}
}
