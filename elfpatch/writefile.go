package elfpatch

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// CheckPatchable refuses files whose mode makes patching pointless or
// unsafe: non-regular files, and setuid, setgid or capability-carrying
// executables (ld.so runs those in secure mode, ignoring $ORIGIN and
// LD_LIBRARY_PATH, so a library the plan adds could not be found; and a
// patched privileged program would be a privilege hazard). The contents
// are checked by NewLayout.
func CheckPatchable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, elfimage.Cause(err))
	}
	switch m := st.Mode(); {
	case !m.IsRegular():
		return newErr(path, ErrUnsupported, "not a regular file (%s)", elfimage.FileKind(m))
	case m&os.ModeSetuid != 0:
		return newErr(path, ErrPrivileged, "refusing to patch a setuid executable")
	case m&os.ModeSetgid != 0:
		return newErr(path, ErrPrivileged, "refusing to patch a setgid executable")
	}
	if n, err := syscall.Getxattr(path, "security.capability", nil); err == nil && n > 0 {
		return newErr(path, ErrPrivileged, "refusing to patch an executable with file capabilities")
	}
	return nil
}

// WriteFileAtomic writes data to path so that path holds either its old
// contents or all of data, never a mix: see CreateAtomic. On error nothing
// new is left and path is as it was.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	a, err := CreateAtomic(path, mode)
	if err != nil {
		return err
	}
	if _, err := a.Write(data); err != nil {
		a.Abort()
		return err
	}
	return a.Commit()
}

// AtomicFile is a file written under a temporary name in the directory of
// its destination and renamed over it by Commit, so that the destination
// holds its old contents or the new ones, never a mix. Errors name the
// destination, never the temporary file.
type AtomicFile struct {
	path, tmp string
	f         *os.File
}

// CreateAtomic starts writing path. The temporary file is created with the
// permission bits of mode (setuid, setgid and sticky bits are dropped), to
// which the kernel applies the umask, as it does for any new file. A
// missing or unusable directory is reported as such.
func CreateAtomic(path string, mode os.FileMode) (*AtomicFile, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	for range 100 {
		tmp := filepath.Join(dir, "."+base+".tmp"+strconv.FormatUint(uint64(rand.Uint32()), 10))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, mode.Perm())
		if err == nil {
			return &AtomicFile{path: path, tmp: tmp, f: f}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, dirError(path, dir, err)
		}
	}
	return nil, fmt.Errorf("%s: cannot create a temporary file in %s", path, dir)
}

// dirError explains why no file could be created in dir, for path.
func dirError(path, dir string, err error) error {
	dir = filepath.Clean(dir)
	st, serr := os.Stat(dir)
	switch {
	case serr != nil:
		return fmt.Errorf("%s: directory %s: %w", path, dir, elfimage.Cause(serr))
	case !st.IsDir():
		return fmt.Errorf("%s: %s is not a directory", path, dir)
	}
	return fmt.Errorf("%s: cannot create a file in %s: %w", path, dir, elfimage.Cause(err))
}

// Path is the destination.
func (a *AtomicFile) Path() string { return a.path }

// Write writes to the temporary file.
func (a *AtomicFile) Write(p []byte) (int, error) {
	n, err := a.f.Write(p)
	if err != nil {
		return n, fmt.Errorf("%s: %w", a.path, elfimage.Cause(err))
	}
	return n, nil
}

// Commit syncs the temporary file and renames it over the destination; the
// directory is then synced (best effort: the new file is in place already,
// and some file systems cannot sync directories). On error the temporary
// file is removed and the destination is as it was.
func (a *AtomicFile) Commit() error {
	err := a.f.Sync()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(a.tmp, a.path)
	}
	if err != nil {
		os.Remove(a.tmp)
		return fmt.Errorf("%s: %w", a.path, elfimage.Cause(err))
	}
	if d, err := os.Open(filepath.Dir(a.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort removes the temporary file; the destination is as it was.
func (a *AtomicFile) Abort() {
	a.f.Close()
	os.Remove(a.tmp)
}

// Open checks path with CheckPatchable, reads it with elfimage.ReadFile
// (which refuses a non-regular or oversized file before reading it) and
// validates it with elfimage. It returns the image and the bytes it was
// built from, ready for NewLayout. elfimage's errors (not ELF, not x86-64,
// malformed) are returned unchanged; they name the file.
func Open(path string) (*elfimage.File, []byte, error) {
	if err := CheckPatchable(path); err != nil {
		return nil, nil, err
	}
	raw, err := elfimage.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	f, err := elfimage.NewFile(raw, path)
	if err != nil {
		return nil, nil, err
	}
	return f, raw, nil
}
