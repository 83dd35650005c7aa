package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/elfpatch/redmagic"
)

// dirState is what a directory holds: each entry's name, type and
// contents' hash, so that a test can tell that nothing changed.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	st := map[string]string{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		desc := fi.Mode().String()
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			desc += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			require.NoError(t, err)
			desc += " -> " + target
		}
		st[e.Name()] = desc
	}
	return st
}

// copyLua copies lua5.4 to path.
func copyLua(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(lua)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o755))
}

// TestOutputRefusals: outputs that would replace the input, the runtime
// library or a node that is not a regular file are refused before the
// analysis, with one line naming the file and the cause, and nothing in
// the directory changes.
func TestOutputRefusals(t *testing.T) {
	requireRuntime(t)
	libs, err := runtimeLibraries()
	require.NoError(t, err)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) (in, out string)
		want  []string
	}{
		{"input is a symbolic link to the output", func(t *testing.T, dir string) (string, string) {
			copyLua(t, filepath.Join(dir, "orig"))
			require.NoError(t, os.Symlink("orig", filepath.Join(dir, "link")))
			return filepath.Join(dir, "link"), filepath.Join(dir, "orig")
		}, []string{"/orig: is the input", "the same file"}},
		{"output is a hard link to the input", func(t *testing.T, dir string) (string, string) {
			copyLua(t, filepath.Join(dir, "orig"))
			require.NoError(t, os.Link(filepath.Join(dir, "orig"), filepath.Join(dir, "hard")))
			return filepath.Join(dir, "orig"), filepath.Join(dir, "hard")
		}, []string{"/hard: is the input", "the same file"}},
		{"output named as the runtime library", func(t *testing.T, dir string) (string, string) {
			return lua, filepath.Join(dir, redmagic.RuntimeName)
		}, []string{"/libredmagic.so: libredmagic.so is the name of a runtime library"}},
		{"output named as the JIT library", func(t *testing.T, dir string) (string, string) {
			return lua, filepath.Join(dir, redmagic.JITName)
		}, []string{"/libredmagic-jit.so: libredmagic-jit.so is the name of a runtime library"}},
		{"input is the runtime library's destination", func(t *testing.T, dir string) (string, string) {
			copyLua(t, filepath.Join(dir, redmagic.RuntimeName))
			return filepath.Join(dir, redmagic.RuntimeName), filepath.Join(dir, "lua")
		}, []string{"/libredmagic.so: the runtime library", "would replace the input"}},
		{"output is a link to the runtime library", func(t *testing.T, dir string) (string, string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, redmagic.RuntimeName), libs[0], 0o755))
			require.NoError(t, os.Symlink(redmagic.RuntimeName, filepath.Join(dir, "lua")))
			return lua, filepath.Join(dir, "lua")
		}, []string{"/lua: is the runtime library"}},
		{"output is a directory", func(t *testing.T, dir string) (string, string) {
			require.NoError(t, os.Mkdir(filepath.Join(dir, "out"), 0o755))
			return lua, filepath.Join(dir, "out")
		}, []string{"/out: not a regular file"}},
		{"output is a FIFO", func(t *testing.T, dir string) (string, string) {
			require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
			return lua, filepath.Join(dir, "fifo")
		}, []string{"/fifo: not a regular file"}},
		{"output is a device node", func(t *testing.T, dir string) (string, string) {
			return lua, devNull(t, dir)
		}, []string{"/null: not a regular file"}},
		{"a runtime library's destination is a directory", func(t *testing.T, dir string) (string, string) {
			require.NoError(t, os.Mkdir(filepath.Join(dir, redmagic.JITName), 0o755))
			return lua, filepath.Join(dir, "lua")
		}, []string{"/libredmagic-jit.so: not a regular file", "the runtime library is installed under that name"}},
		{"missing output directory", func(t *testing.T, dir string) (string, string) {
			return lua, filepath.Join(dir, "nodir", "lua")
		}, []string{"/nodir/lua: directory ", "/nodir: no such file or directory"}},
		{"output directory is a file", func(t *testing.T, dir string) (string, string) {
			copyLua(t, filepath.Join(dir, "file"))
			return lua, filepath.Join(dir, "file", "lua")
		}, []string{"/file/lua: ", "/file is not a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in, out := tt.setup(t, dir)
			before := dirState(t, dir)
			assertOneLineError(t, binary(t, in, "-o", out), tt.want...)
			assert.Equal(t, before, dirState(t, dir), "nothing in the directory changed")
		})
	}
}

// devNull makes a character device like /dev/null in dir (root only).
func devNull(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "null")
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Skipf("mknod: %v (needs root)", err)
	}
	return path
}

// TestCfgOutputDevice: cfg -o writes into a device (as a shell redirection
// or objcopy would) and never replaces the node with a regular file.
func TestCfgOutputDevice(t *testing.T) {
	dir := t.TempDir()
	null := devNull(t, dir)
	r := binary(t, "cfg", lua, "-o", null, "--stats")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Contains(t, r.stdout, `"functions":`)
	st, err := os.Lstat(null)
	require.NoError(t, err)
	assert.Equal(t, os.ModeDevice|os.ModeCharDevice, st.Mode().Type(), "still a character device")
	assertOnlyFiles(t, dir, "null") // no temporary file left
}

// TestFailedWriteLeavesNothing: when a file cannot be written in full (a
// file size limit stands in for a full disk), the patch fails with one
// line naming that file, never a temporary one, and leaves nothing in the
// output directory: neither the patched file nor a runtime library.
func TestFailedWriteLeavesNothing(t *testing.T) {
	requireRuntime(t)
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("no prlimit")
	}
	libs, err := runtimeLibraries()
	require.NoError(t, err)
	size := func(path string) int64 {
		st, err := os.Stat(path)
		require.NoError(t, err)
		return st.Size()
	}
	runtimeSize, jitSize := int64(len(libs[0])), int64(len(libs[1]))
	tests := []struct {
		name, in, fails string
		limit, stopped  int64 // the file size limit, the size it stops
	}{
		// Both libraries fit, the patched python3.11 does not.
		{"the patched file", "/usr/bin/python3.11", "/python3.11", max(runtimeSize, jitSize) + 64<<10, size("/usr/bin/python3.11")},
		// The patched lua5.4 and libredmagic.so fit, the JIT does not.
		{"the JIT library", lua, "/" + redmagic.JITName, max(2*size(lua), runtimeSize) + 64<<10, jitSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Less(t, tt.limit, tt.stopped, "the limit must stop %s", tt.fails)
			dir := t.TempDir()
			out := filepath.Join(dir, filepath.Base(tt.in))
			r := runCmd(t, exec.Command("prlimit", fmt.Sprintf("--fsize=%d", tt.limit), testBinary, tt.in, "-o", out))
			assertOneLineError(t, r, tt.fails+": file too large")
			assert.NotContains(t, r.stderr, ".tmp")
			assertOnlyFiles(t, dir) // nothing new in the output directory
		})
	}
}

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
	want := map[string]os.FileMode{"lua": 0o750, redmagic.RuntimeName: 0o750, redmagic.JITName: 0o750, "lua.json": 0o640}
	for name, mode := range want {
		st, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, mode, st.Mode().Perm(), name)
	}
}

// TestBatchOutputNames: inputs whose base names collide get distinct
// outputs, none of which is lost.
func TestBatchOutputNames(t *testing.T) {
	tests := []struct {
		inputs, want []string
	}{
		{[]string{"x/lua", "y/lua", "z/lua.1"}, []string{"lua", "lua.2", "lua.1"}},
		{[]string{"z/lua.1", "x/lua", "y/lua"}, []string{"lua.1", "lua", "lua.2"}},
		{[]string{"a/p", "a/p", "b/p.1", "c/p.2"}, []string{"p", "p.3", "p.1", "p.2"}},
		{[]string{"p", "q"}, []string{"p", "q"}},
	}
	for _, tt := range tests {
		var want []string
		for _, w := range tt.want {
			want = append(want, filepath.Join("out", w))
		}
		assert.Equal(t, want, outputNames("out", tt.inputs), "%v", tt.inputs)
	}
}

// TestBatchCollisions patches inputs whose names collide: every one gets
// a file of its own that runs; an input named as a runtime library is
// refused and the runtime is the tool's own.
func TestBatchCollisions(t *testing.T) {
	requireRuntime(t)
	src := t.TempDir()
	var inputs []string
	for _, p := range []string{"x/lua", "y/lua", "z/lua.1", "w/" + redmagic.RuntimeName} {
		path := filepath.Join(src, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		copyLua(t, path)
		inputs = append(inputs, path)
	}
	dir := t.TempDir()
	r := binary(t, append([]string{"batch", "--out-dir", dir, "-j", "2"}, inputs...)...)
	assert.Equal(t, statusError, r.status)
	assert.Contains(t, r.stderr, "1 of 4 inputs failed")
	assert.Contains(t, r.stdout, "libredmagic.so is the name of a runtime library")
	assert.Len(t, regexp.MustCompile(`(?m)\s+ok$`).FindAllString(r.stdout, -1), 3, r.stdout)
	for _, name := range []string{"lua", "lua.1", "lua.2"} {
		got := runBin(t, filepath.Join(dir, name), []string{"-e", "print(6*7)"}, nil, false)
		assert.Equal(t, "42\n", got.stdout, name)
	}
	libs, err := runtimeLibraries()
	require.NoError(t, err)
	for i, name := range redmagic.RuntimeFiles {
		data, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(data, libs[i]), "%s is the runtime", name)
	}
	assertOnlyFiles(t, dir, "lua", "lua.1", "lua.2", redmagic.RuntimeName, redmagic.JITName)

	// When every input fails, the runtime is not left behind.
	empty := t.TempDir()
	r = binary(t, "batch", "--out-dir", empty, "/bin/ls")
	assert.Equal(t, statusError, r.status)
	assertOnlyFiles(t, empty)
}
