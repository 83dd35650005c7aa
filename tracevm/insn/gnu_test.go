package insn

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// gnuSlot is the room each case gets in the assembled .text: more than
// any case emits, the rest filled with int3.
const gnuSlot = 32

// gnuAssemble assembles each text (AT&T syntax, statements separated by
// ';') with GNU as at base+k*gnuSlot, links it with ld at base so that
// branches and %rip operands aimed at the symbols in syms (absolute
// addresses, given to ld with --defsym) are resolved, and returns each
// case's slot.
func gnuAssemble(t *testing.T, base uint64, texts []string, syms map[string]uint64) [][]byte {
	t.Helper()
	var src strings.Builder
	src.WriteString(".text\n.globl _start\n_start:\n")
	for k, text := range texts {
		fmt.Fprintf(&src, ".org %d, 0xcc\n%s\n", k*gnuSlot, text)
	}
	fmt.Fprintf(&src, ".org %d, 0xcc\n", len(texts)*gnuSlot)
	dir := t.TempDir()
	s, o, exe, bin := filepath.Join(dir, "t.s"), filepath.Join(dir, "t.o"), filepath.Join(dir, "t"), filepath.Join(dir, "t.bin")
	require.NoError(t, os.WriteFile(s, []byte(src.String()), 0o644))
	run(t, "as", "--64", "-o", o, s)
	args := []string{"-e", "_start", fmt.Sprintf("-Ttext=%#x", base), "-o", exe, o}
	names := make([]string, 0, len(syms))
	for name := range syms {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		args = append(args, fmt.Sprintf("--defsym=%s=%#x", name, syms[name]))
	}
	run(t, "ld", args...)
	run(t, "objcopy", "-O", "binary", "-j", ".text", exe, bin)
	text, err := os.ReadFile(bin)
	require.NoError(t, err)
	require.Len(t, text, len(texts)*gnuSlot)
	out := make([][]byte, len(texts))
	for k := range texts {
		out[k] = text[k*gnuSlot : (k+1)*gnuSlot]
	}
	return out
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
}

// trimSlot returns the slot's bytes up to its int3 padding, given the
// length of the one instruction the case holds; it fails if anything but
// padding follows.
func trimSlot(t *testing.T, slot []byte, n int, msg string) []byte {
	t.Helper()
	for k := n; k < len(slot); k++ {
		require.Equal(t, byte(0xCC), slot[k], "%s: more than one instruction: % x", msg, slot)
	}
	return slot[:n]
}
