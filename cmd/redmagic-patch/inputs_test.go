package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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
// its size, before it is read (a sparse file of 3 GiB). The command runs
// with 1 GiB of address space, in which reading the file cannot succeed:
// a tool that read first would die of it instead of refusing. (A peak RSS
// would not do: the child's counts the test process's own, inherited when
// Go starts it.)
func TestHugeInputRefusedUnread(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("no prlimit")
	}
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
		r := runCmd(t, exec.Command("prlimit", append([]string{fmt.Sprintf("--as=%d", 1<<30), testBinary}, args...)...))
		assertOneLineError(t, r, huge+": file larger than 1 GiB (0xc0000000)")
	}
	assertOnlyFiles(t, dir, "huge")
}
