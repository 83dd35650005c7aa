package elfpatch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/redmagic-patch/redmagic-patch/cfg/elfimage"
)

// CheckPatchable refuses files whose mode makes patching pointless or
// unsafe: non-regular files, and setuid, setgid or capability-carrying
// executables (ld.so runs those in secure mode, ignoring $ORIGIN and
// LD_LIBRARY_PATH, so the runtime library could not be found; and a patched
// privileged program would be a privilege hazard). The contents are
// checked by NewLayout.
func CheckPatchable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, causeOf(err))
	}
	switch m := st.Mode(); {
	case !m.IsRegular():
		return newErr(path, ErrUnsupported, "not a regular file (%v)", m)
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
// contents or all of data, never a mix: a temporary file in the same
// directory is written, synced, given the permission bits of mode (setuid,
// setgid and sticky bits are dropped) and renamed over path; the directory
// is then synced (best effort). On error the temporary file is removed and path is left
// as it was.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("elfpatch: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("elfpatch: writing %s: %w", path, err)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(mode.Perm()); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is synced. Best effort: the
	// new file is in place already, and some file systems cannot sync
	// directories.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// causeOf strips the operation and the (temporary) path from an
// *fs.PathError or *os.LinkError: errors name the file the caller gave.
func causeOf(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
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
