package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInputsNeverBlock: commands given a FIFO refuse it at once instead of
// waiting for a writer.
func TestInputsNeverBlock(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	for _, args := range [][]string{
		{"cfg", fifo},
		{"sites", fifo},
		{"inspect", fifo},
		{"cfg", "diff", fifo, lua},
		{"cfg", "diff", lua, fifo},
		{fifo, "-o", filepath.Join(dir, "out")},
	} {
		// The deadline only stops a hang; the test asserts no timing.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, testBinary, args...)
		r := runCmd(t, cmd)
		cancel()
		assertOneLineError(t, r, fifo+": not a regular file")
	}
}

// TestHugeInputRefusedUnread: an input over the size limit is refused by
// its size, before it is read (a sparse file of 3 GiB).
func TestHugeInputRefusedUnread(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge")
	f, err := os.Create(huge)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(3<<30))
	require.NoError(t, f.Close())
	for _, args := range [][]string{
		{huge, "-o", filepath.Join(dir, "out")},
		{"cfg", huge},
		{"inspect", huge},
	} {
		cmd := exec.Command(testBinary, args...)
		r := runCmd(t, cmd)
		assertOneLineError(t, r, huge+": file larger than 1 GiB (0xc0000000)")
		rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
		assert.Less(t, rss, int64(256<<10), "%v: peak RSS %d KiB: the file was read", args, rss)
	}
	assertOnlyFiles(t, dir, "huge")
}
