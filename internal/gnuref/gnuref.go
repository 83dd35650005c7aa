// Package gnuref runs GNU binutils (as, ld, objcopy, objdump) as the
// reference for tests of the project's x86 encoders: the bytes GNU as
// produces for AT&T text, and objdump's reading of bytes it never picks
// itself. Only tests import it.
package gnuref

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Assemble assembles each text (AT&T syntax, statements separated by ';')
// with GNU as at base+k*slot, links it with ld at base so that branches
// and %rip operands aimed at the symbols in syms (absolute addresses,
// given to ld with --defsym) are resolved, and returns each case's slot,
// its unused bytes int3.
func Assemble(t testing.TB, base uint64, slot int, texts []string, syms map[string]uint64) [][]byte {
	t.Helper()
	var src strings.Builder
	src.WriteString(".text\n.globl _start\n_start:\n")
	for k, text := range texts {
		fmt.Fprintf(&src, ".org %d, 0xcc\n%s\n", k*slot, text)
	}
	fmt.Fprintf(&src, ".org %d, 0xcc\n", len(texts)*slot)
	dir := t.TempDir()
	s, o, exe, bin := filepath.Join(dir, "t.s"), filepath.Join(dir, "t.o"), filepath.Join(dir, "t"), filepath.Join(dir, "t.bin")
	require.NoError(t, os.WriteFile(s, []byte(src.String()), 0o644))
	Run(t, "as", "--64", "-o", o, s)
	args := []string{"-e", "_start", fmt.Sprintf("-Ttext=%#x", base), "-o", exe, o}
	names := make([]string, 0, len(syms))
	for name := range syms {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		args = append(args, fmt.Sprintf("--defsym=%s=%#x", name, syms[name]))
	}
	Run(t, "ld", args...)
	Run(t, "objcopy", "-O", "binary", "-j", ".text", exe, bin)
	text, err := os.ReadFile(bin)
	require.NoError(t, err)
	require.Len(t, text, len(texts)*slot)
	out := make([][]byte, len(texts))
	for k := range texts {
		out[k] = text[k*slot : (k+1)*slot]
	}
	return out
}

// objdumpLine is one instruction line of objdump -d: address, bytes, text.
var objdumpLine = regexp.MustCompile(`^\s*[0-9a-f]+:\t[0-9a-f ]+\t(.+)$`)

// Disasm disassembles code at addr with objdump and returns each
// instruction's text with its blanks collapsed to one space. It is the
// oracle for the few encodings GNU as never picks (it prefers a shorter
// form of the same instruction).
func Disasm(t testing.TB, addr uint64, code []byte) []string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "code.bin")
	require.NoError(t, os.WriteFile(bin, code, 0o644))
	out, err := exec.Command("objdump", "-D", "-b", "binary", "-m", "i386:x86-64",
		fmt.Sprintf("--adjust-vma=%#x", addr), bin).CombinedOutput()
	require.NoError(t, err, "objdump:\n%s", out)
	var insts []string
	for _, line := range strings.Split(string(out), "\n") {
		if m := objdumpLine.FindStringSubmatch(line); m != nil {
			insts = append(insts, strings.Join(strings.Fields(m[1]), " "))
		}
	}
	return insts
}

// Run runs a binutils command and fails the test, with its output, if it
// fails.
func Run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
}

// RequireSlot checks that a case's slot as GNU as filled it holds exactly
// ours followed by int3 padding.
func RequireSlot(t testing.TB, slot, ours []byte, msg string) {
	t.Helper()
	require.LessOrEqual(t, len(ours), len(slot), msg)
	want := append([]byte(nil), ours...)
	for len(want) < len(slot) {
		want = append(want, 0xCC)
	}
	require.Equal(t, fmt.Sprintf("% x", slot), fmt.Sprintf("% x", want), msg)
}

// TrimSlot returns the slot's bytes up to its int3 padding, given the
// length of the one instruction the case holds; it fails if anything but
// padding follows.
func TrimSlot(t testing.TB, slot []byte, n int, msg string) []byte {
	t.Helper()
	for k := n; k < len(slot); k++ {
		require.Equal(t, byte(0xCC), slot[k], "%s: more than one instruction: % x", msg, slot)
	}
	return slot[:n]
}
