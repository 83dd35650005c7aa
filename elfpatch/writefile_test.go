package elfpatch

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

// copyFile copies src to dir/name with mode, applying edit to the bytes.
func copyFile(t *testing.T, src, dir, name string, mode os.FileMode, edit func([]byte)) string {
	t.Helper()
	testenv.NeedFile(t, src)
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	if edit != nil {
		edit(b)
	}
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, b, 0o755))
	require.NoError(t, os.Chmod(path, mode)) // WriteFile's mode is subject to the umask
	return path
}

// goBinary builds a small Go program.
func goBinary(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	testenv.NeedFile(t, goTool)
	src := filepath.Join(dir, "hello.go")
	require.NoError(t, os.WriteFile(src, []byte("package main\n\nfunc main() { println(42) }\n"), 0o644))
	out := filepath.Join(dir, "hello")
	cmd := exec.Command(goTool, "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=")
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", msg)
	return out
}

// TestRefusals is test 4: every input the writer must not patch is refused
// with a one-line error that names the file and the cause.
func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	mainC := `#include <stdio.h>
int main(void) { puts("hi"); return 0; }`
	cases := []struct {
		name  string
		setup func(t *testing.T) string
		kind  error  // for errors.Is, or nil for elfimage's errors
		msg   string // in the error
	}{
		{"static", func(t *testing.T) string {
			testenv.NeedFile(t, "/usr/lib/x86_64-linux-gnu/libc.a")
			return testenv.BuildC(t, dir, "static", mainC, "-static")
		}, ErrStatic, "statically linked"},
		{"static PIE", func(t *testing.T) string {
			testenv.NeedFile(t, "/usr/lib/x86_64-linux-gnu/libc.a")
			return testenv.BuildC(t, dir, "static-pie", mainC, "-static-pie")
		}, ErrStatic, "statically linked"},
		{"Go binary", func(t *testing.T) string { return goBinary(t, dir) }, ErrGoBinary, "Go binary"},
		{"setuid", func(t *testing.T) string { return copyFile(t, lua, dir, "suid", 0o755|os.ModeSetuid, nil) }, ErrPrivileged, "setuid"},
		{"setgid", func(t *testing.T) string { return copyFile(t, lua, dir, "sgid", 0o755|os.ModeSetgid, nil) }, ErrPrivileged, "setgid"},
		{"file capabilities", func(t *testing.T) string {
			testenv.NeedTool(t, "setcap")
			path := copyFile(t, lua, dir, "caps", 0o755, nil)
			if msg, err := exec.Command("setcap", "cap_net_raw+ep", path).CombinedOutput(); err != nil {
				t.Skipf("setcap: %v %s", err, msg)
			}
			return path
		}, ErrPrivileged, "file capabilities"},
		{"not regular", func(t *testing.T) string { return dir }, ErrUnsupported, "not a regular file"},
		{"32-bit", func(t *testing.T) string {
			return copyFile(t, lua, dir, "class32", 0o755, func(b []byte) { b[elf.EI_CLASS] = byte(elf.ELFCLASS32) })
		}, nil, "32-bit ELF; only x86-64"},
		{"ARM", func(t *testing.T) string {
			return copyFile(t, lua, dir, "arm", 0o755, func(b []byte) { le.PutUint16(b[18:], uint16(elf.EM_AARCH64)) })
		}, nil, "only x86-64 is supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.setup(t)
			st, err := os.Stat(path)
			require.NoError(t, err)
			var hash [32]byte
			if st.Mode().IsRegular() {
				hash = fileSHA(t, path)
			}
			err = openAndLayout(path)
			require.Error(t, err)
			t.Log(err)
			if c.kind != nil {
				assert.ErrorIs(t, err, c.kind)
				var pe *Error
				require.ErrorAs(t, err, &pe)
				assert.Equal(t, path, pe.File)
			} else {
				var fe *elfimage.FormatError
				assert.ErrorAs(t, err, &fe)
			}
			assert.Contains(t, err.Error(), c.msg)
			assert.True(t, strings.HasPrefix(err.Error(), path+": "), "error names the file: %v", err)
			assert.NotContains(t, err.Error(), "\n")
			if st.Mode().IsRegular() {
				assert.Equal(t, hash, fileSHA(t, path), "the refused file is unchanged")
			}
		})
	}
}

// openAndLayout is what the command does before planning.
func openAndLayout(path string) error {
	f, raw, err := Open(path)
	if err != nil {
		return err
	}
	_, err = NewLayout(f, raw)
	return err
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	entries := func() []string {
		es, err := os.ReadDir(dir)
		require.NoError(t, err)
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		slices.Sort(names)
		return names
	}

	path := filepath.Join(dir, "out")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
	require.NoError(t, WriteFileAtomic(path, []byte("new contents"), 0o755|os.ModeSetuid))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new contents", string(b))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), st.Mode(), "permission bits only")
	assert.Equal(t, []string{"out"}, entries(), "no temporary file left")

	// A rename that fails (the target is a non-empty directory) leaves the
	// target alone and removes the temporary file.
	target := filepath.Join(dir, "target")
	require.NoError(t, os.MkdirAll(filepath.Join(target, "x"), 0o755))
	err = WriteFileAtomic(target, []byte("data"), 0o644)
	require.Error(t, err)
	assert.Contains(t, err.Error(), target)
	assert.Equal(t, []string{"out", "target"}, entries())
	st, err = os.Stat(target)
	require.NoError(t, err)
	assert.True(t, st.IsDir())

	// A missing directory.
	err = WriteFileAtomic(filepath.Join(dir, "missing", "f"), []byte("data"), 0o644)
	assert.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
}

// TestCreateAtomicErrors: errors name the destination, and the directory
// when that is what is wrong; never a temporary file.
func TestCreateAtomicErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	tests := []struct {
		name, path string
		want       []string
	}{
		{"missing directory", filepath.Join(dir, "nodir", "out"), []string{"/nodir/out: directory ", "/nodir: no such file or directory"}},
		{"directory is a file", filepath.Join(file, "out"), []string{"/file/out: ", "/file is not a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CreateAtomic(tt.path, 0o644)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tt.path+": "), err.Error())
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), ".tmp")
			assert.NotContains(t, err.Error(), "elfpatch")
		})
	}
	// A failed rename names the destination.
	target := filepath.Join(dir, "target")
	require.NoError(t, os.MkdirAll(filepath.Join(target, "x"), 0o755))
	err := WriteFileAtomic(target, []byte("data"), 0o644)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), target+": "), err.Error())
	assert.NotContains(t, err.Error(), ".tmp")
}

// TestCreateAtomicAbort: an aborted file leaves the destination as it was
// and no temporary file.
func TestCreateAtomicAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	a, err := CreateAtomic(path, 0o755)
	require.NoError(t, err)
	assert.Equal(t, path, a.Path())
	_, err = a.Write([]byte("new"))
	require.NoError(t, err)
	a.Abort()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "old", string(b))
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, es, 1)
}

// TestCheckPatchableErrors: a missing input is named with the cause only.
func TestCheckPatchableErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	err := CheckPatchable(missing)
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Equal(t, missing+": no such file or directory", err.Error())
	_, _, err = Open(missing)
	assert.Equal(t, missing+": no such file or directory", err.Error())
}
