package main

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/redmagic-patch/redmagic-patch/elfpatch"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// writeOutput writes what write produces to the file path, or to stdout
// when path is "". A regular file is written under a temporary name in the
// same directory and renamed into place once complete (elfpatch.AtomicFile),
// so that a failure leaves no output file and never a partial one; new
// files get perm less the umask. An existing device or FIFO (/dev/null) is
// written into, as a shell redirection or objcopy does, and never replaced.
func writeOutput(stdout io.Writer, path string, perm fs.FileMode, write func(io.Writer) error) error {
	if path == "" {
		if err := writeBuffered(stdout, write); err != nil {
			return fmt.Errorf("writing standard output: %w", err)
		}
		return nil
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return fmt.Errorf("%s: is a directory", path)
	case err == nil && !st.Mode().IsRegular():
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", path, elfimage.Cause(err))
		}
		err = writeBuffered(f, write)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, elfimage.Cause(err))
		}
		return nil
	}
	a, err := elfpatch.CreateAtomic(path, perm)
	if err != nil {
		return err
	}
	if err := writeBuffered(a, write); err != nil {
		a.Abort()
		return err // a's errors name path
	}
	return a.Commit()
}

// writeBuffered runs write on a buffer in front of w and flushes it.
func writeBuffered(w io.Writer, write func(io.Writer) error) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := write(bw); err != nil {
		return err
	}
	return bw.Flush()
}
