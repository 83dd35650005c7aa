package x86dec

import (
	"bufio"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// GNU binutils is the reference: `as --64` assembles test snippets and
// `objdump -d` disassembles them and the real binaries.

// objLine is one instruction line of objdump output.
type objLine struct {
	addr  uint64
	bytes []byte // empty with --no-show-raw-insn
	text  string // mnemonic and operands, whitespace collapsed
}

// parseObjdumpAddr parses the address of an "  addr:\t..." line.
func parseObjdumpAddr(l string) (uint64, bool) {
	if len(l) == 0 || l[0] != ' ' {
		return 0, false
	}
	k := strings.Index(l, ":\t")
	if k < 0 {
		return 0, false
	}
	a, err := strconv.ParseUint(strings.TrimSpace(l[:k]), 16, 64)
	return a, err == nil
}

// parseObjdumpLine parses "  addr:\t[bytes\t]text" lines; other lines
// (headers, labels, continuation lines of raw bytes) return false.
func parseObjdumpLine(l string, rawBytes bool) (objLine, bool) {
	a, ok := parseObjdumpAddr(l)
	if !ok {
		return objLine{}, false
	}
	f := strings.Split(l, "\t")
	ol := objLine{addr: a}
	if rawBytes {
		if len(f) < 3 {
			return objLine{}, false
		}
		b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(f[1]), " ", ""))
		if err != nil {
			return objLine{}, false
		}
		ol.bytes = b
		f = f[1:]
	}
	ol.text = strings.Join(strings.Fields(strings.Join(f[1:], " ")), " ")
	return ol, true
}

// scanObjdump runs objdump with args and calls fn for every instruction line.
func scanObjdump(t testing.TB, rawBytes bool, fn func(objLine), args ...string) {
	t.Helper()
	scanObjdumpAt(t, rawBytes, nil, fn, args...)
}

// scanObjdumpAt is scanObjdump for the lines whose address keep accepts
// (all when keep is nil); the others are skipped unparsed.
func scanObjdumpAt(t testing.TB, rawBytes bool, keep func(uint64) bool, fn func(objLine), args ...string) {
	t.Helper()
	cmd := exec.Command("objdump", args...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		if keep != nil {
			if a, ok := parseObjdumpAddr(sc.Text()); !ok || !keep(a) {
				continue
			}
		}
		if ol, ok := parseObjdumpLine(sc.Text(), rawBytes); ok {
			fn(ol)
		}
	}
	require.NoError(t, sc.Err())
	_, _ = io.Copy(io.Discard, out)
	require.NoError(t, cmd.Wait(), "objdump %v: %s", args, stderr.String())
}

// assemble assembles src with `as --64` and returns the bytes of .text and
// objdump's view of them.
func assemble(t testing.TB, src string) ([]byte, []objLine) {
	t.Helper()
	dir := t.TempDir()
	s := filepath.Join(dir, "t.s")
	o := filepath.Join(dir, "t.o")
	require.NoError(t, os.WriteFile(s, []byte(src), 0o644))
	out, err := exec.Command("as", "--64", "-o", o, s).CombinedOutput()
	require.NoError(t, err, "as: %s", out)
	f, err := elf.Open(o)
	require.NoError(t, err)
	defer f.Close()
	sec := f.Section(".text")
	require.NotNil(t, sec)
	code, err := sec.Data()
	require.NoError(t, err)
	var lines []objLine
	scanObjdump(t, true, func(ol objLine) { lines = append(lines, ol) }, "-d", "-z", "-w", "-j", ".text", o)
	return code, lines
}

// Classification of objdump's text, independent of x86asm.

// objPrefixWords are words objdump prints before a mnemonic for prefixes.
var objPrefixWords = map[string]bool{
	"data16": true, "data32": true, "addr32": true, "rex": true, "rex.W": true, "rex64": true,
	"cs": true, "ds": true, "es": true, "ss": true, "fs": true, "gs": true,
	"lock": true, "rep": true, "repz": true, "repnz": true, "repe": true, "repne": true,
	"bnd": true, "notrack": true, "xacquire": true, "xrelease": true,
}

var rexWord = regexp.MustCompile(`^rex\.[WRXB]+$`)

// objMnemonic splits objdump text into the mnemonic and its operands,
// skipping prefix words.
func objMnemonic(text string) (mn, operands string) {
	w := strings.Fields(text)
	for k, x := range w {
		if objPrefixWords[x] || rexWord.MatchString(x) {
			continue
		}
		return x, strings.Join(w[k+1:], " ")
	}
	return "", ""
}

// objFlow classifies objdump text the way Flow should.
func objFlow(text string) Flow {
	mn, ops := objMnemonic(text)
	mn = strings.SplitN(mn, ",", 2)[0] // "jne,pn"
	indirect := strings.HasPrefix(ops, "*")
	switch {
	case mn == "jmp" || mn == "jmpq" || mn == "jmpw":
		if indirect {
			return FlowIndirectJump
		}
		return FlowJump
	case mn == "ljmp" || mn == "ljmpq" || mn == "ljmpw":
		return FlowIndirectJump
	case mn == "call" || mn == "callq" || mn == "callw":
		if indirect {
			return FlowIndirectCall
		}
		return FlowCall
	case mn == "lcall" || mn == "lcallq" || mn == "lcallw":
		return FlowIndirectCall
	case strings.HasPrefix(mn, "ret") || strings.HasPrefix(mn, "lret") || strings.HasPrefix(mn, "iret") ||
		strings.HasPrefix(mn, "sysret") || strings.HasPrefix(mn, "sysexit"):
		return FlowReturn
	case mn == "hlt" || mn == "ud0" || mn == "ud1" || mn == "ud2":
		return FlowHalt
	case strings.HasPrefix(mn, "loop") || mn == "jrcxz" || mn == "jecxz" || mn == "xbegin" || mn == "xbeginq" || mn == "xbeginw":
		return FlowCondJump
	case strings.HasPrefix(mn, "j"):
		return FlowCondJump
	}
	return FlowNone
}

// objTarget parses the absolute target objdump prints for a direct branch.
func objTarget(text string) (uint64, bool) {
	_, ops := objMnemonic(text)
	f := strings.Fields(ops)
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(f[0], "0x"), 16, 64)
	return v, err == nil
}

// objRIPTarget parses the "# addr" comment objdump adds to %rip-relative operands.
func objRIPTarget(text string) (uint64, bool) {
	k := strings.Index(text, " # ")
	if k < 0 || !strings.Contains(text[:k], "(%rip)") && !strings.Contains(text[:k], "(%eip)") {
		return 0, false
	}
	f := strings.Fields(text[k+3:])
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(f[0], "0x"), 16, 64)
	return v, err == nil
}
