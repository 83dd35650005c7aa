package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/redmagic-patch/redmagic-patch/elfpatch"
	"github.com/redmagic-patch/redmagic-patch/elfpatch/redmagic"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// checkOutput refuses to patch in into out when writing would destroy or
// shadow a file that must survive, or cannot give a runnable result:
//
//   - out's directory must exist (the message names it);
//   - out must not be named as a runtime library (redmagic.RuntimeFiles),
//     which is installed beside it under that name;
//   - out and the runtime libraries' destinations, where they exist, must
//     be regular files: a patched file is an executable with its runtime
//     libraries beside it, which a device, a FIFO or a directory cannot be
//     (`--dry-run` checks a patch without writing anything);
//   - out and the libraries' destinations must not be the input, and out
//     must not be one of those libraries: files are compared by device and
//     inode, so that a symbolic or hard link cannot hide the clash.
//
// It runs before the analysis, so that a doomed output costs nothing, and
// again just before anything is written.
func checkOutput(in, out string) error {
	dir := filepath.Dir(out)
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s: directory %s: %w", out, dir, elfimage.Cause(err))
	} else if !st.IsDir() {
		return fmt.Errorf("%s: %s is not a directory", out, dir)
	}
	if base := filepath.Base(out); slices.Contains(redmagic.RuntimeFiles, base) {
		return fmt.Errorf("%s: %s is the name of a runtime library, which is installed beside the patched file; choose another output name", out, base)
	}
	inSt, err := os.Stat(in)
	if err != nil {
		return fmt.Errorf("%s: %w", in, elfimage.Cause(err))
	}
	outSt, err := os.Stat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		outSt = nil
	case err != nil:
		return fmt.Errorf("%s: %w", out, elfimage.Cause(err))
	case !outSt.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file (%s): a patched file is written only as a regular file, with its runtime libraries beside it (--dry-run writes nothing)", out, elfimage.FileKind(outSt.Mode()))
	case os.SameFile(inSt, outSt):
		return fmt.Errorf("%s: is the input %s (the same file): the output must not replace the input", out, in)
	}
	for _, name := range redmagic.RuntimeFiles {
		lib := filepath.Join(dir, name)
		libSt, err := os.Stat(lib)
		switch {
		case err != nil:
			continue // written as a new file, or the write reports why not
		case !libSt.Mode().IsRegular():
			return fmt.Errorf("%s: not a regular file (%s): the runtime library is installed under that name", lib, elfimage.FileKind(libSt.Mode()))
		case os.SameFile(inSt, libSt):
			return fmt.Errorf("%s: the runtime library %s would replace the input (the same file)", in, lib)
		case outSt != nil && os.SameFile(outSt, libSt):
			return fmt.Errorf("%s: is the runtime library %s (the same file): the patched file would replace it", out, lib)
		}
	}
	return nil
}

// installPatched writes the patched file to out and the runtime libraries
// beside it; the input is never opened for writing. Every new file is
// written in full under a temporary name before any is renamed into place,
// so that a failed write (a full disk) leaves nothing new; the libraries
// are renamed first, so that the patched file never exists without its
// runtime.
func installPatched(in, out string, patched []byte) error {
	a, err := createPatched(in, out, patched)
	if err != nil {
		return err
	}
	rt, err := installRuntime(filepath.Dir(out))
	if err != nil {
		a.Abort()
		return err
	}
	if err := a.Commit(); err != nil {
		rt.undo()
		return err
	}
	return nil
}

// createPatched checks the output (checkOutput) and writes the patched file under
// a temporary name, for the caller to commit. It gets the input's
// permission bits and u+x (setuid and setgid are dropped), less the umask.
func createPatched(in, out string, patched []byte) (*elfpatch.AtomicFile, error) {
	if err := checkOutput(in, out); err != nil {
		return nil, err
	}
	st, err := os.Stat(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, elfimage.Cause(err))
	}
	a, err := elfpatch.CreateAtomic(out, st.Mode().Perm()|0o100)
	if err != nil {
		return nil, err
	}
	if _, err := a.Write(patched); err != nil {
		a.Abort()
		return nil, err
	}
	return a, nil
}

// runtimeInstall records what installRuntime added to a directory.
type runtimeInstall struct {
	created []string // libraries that did not exist before
}

// installRuntime puts the runtime libraries (redmagic.RuntimeFiles) into
// dir. A library already there with the same contents is left alone. All
// are written in full before any is renamed into place; on error nothing
// new is left.
func installRuntime(dir string) (*runtimeInstall, error) {
	libs, err := runtimeLibraries()
	if err != nil {
		return nil, err
	}
	var pending []*elfpatch.AtomicFile
	abort := func() {
		for _, a := range pending {
			a.Abort()
		}
	}
	for i, name := range redmagic.RuntimeFiles {
		path := filepath.Join(dir, name)
		if sameContents(path, libs[i]) {
			continue
		}
		a, err := elfpatch.CreateAtomic(path, 0o755)
		if err != nil {
			abort()
			return nil, err
		}
		pending = append(pending, a)
		if _, err := a.Write(libs[i]); err != nil {
			abort()
			return nil, err
		}
	}
	rt := &runtimeInstall{}
	for i, a := range pending {
		_, statErr := os.Lstat(a.Path())
		if err := a.Commit(); err != nil {
			for _, b := range pending[i+1:] {
				b.Abort()
			}
			rt.undo()
			return nil, err
		}
		if errors.Is(statErr, fs.ErrNotExist) {
			rt.created = append(rt.created, a.Path())
		}
	}
	return rt, nil
}

// undo removes the libraries the install added. (A library of other
// contents that it replaced stays replaced: the old one is not kept.)
func (rt *runtimeInstall) undo() {
	for _, p := range rt.created {
		os.Remove(p)
	}
	rt.created = nil
}

// sameContents reports whether path is a regular file holding data.
func sameContents(path string, data []byte) bool {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() || st.Size() != int64(len(data)) {
		return false
	}
	old, err := os.ReadFile(path)
	return err == nil && bytes.Equal(old, data)
}
