package elfpatch

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

const (
	python    = "/usr/bin/python3.11"
	lua       = "/usr/bin/lua5.4"
	libpython = "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0"
	pyenvPy   = "/root/.pyenv/versions/3.11.7/bin/python3.11"
	testLib   = "librmtest.so"
	loadedMsg = "rm-test-loaded"
)

// testLibC is the library the test plans add as DT_NEEDED: its constructor
// proves that ld.so loaded it.
const testLibC = `#include <stdio.h>
__attribute__((constructor)) static void init(void) { fputs("` + loadedMsg + `\n", stderr); }
`

// buildTestLib builds librmtest.so into dir.
func buildTestLib(t testing.TB, dir string) {
	testenv.BuildC(t, dir, testLib, testLibC, "-shared", "-fPIC", "-O2")
}

// openFile opens path with Open and checks its layout.
func openFile(t testing.TB, path string) (*elfimage.File, []byte, *Layout) {
	t.Helper()
	testenv.NeedFile(t, path)
	f, raw, err := Open(path)
	require.NoError(t, err)
	l, err := NewLayout(f, raw)
	require.NoError(t, err)
	return f, raw, l
}

// testText is a tiny text segment: int3; int3; ret.
var testText = []byte{0xcc, 0xcc, 0xc3}

// testTag is the dynamic entry the test plans add, as a planner marks its
// patch: a tag of the OS-specific range, which ld.so ignores.
const testTag = elf.DT_LOOS + 0x100

// The sections the test plans add.
const (
	testTextSection = ".planned.text"
	testDataSection = ".planned.data"
)

// testPlan is the plan of test 1: a tiny text, a data segment starting with
// a header-like magic and a zero tail, librmtest.so, $ORIGIN, testTag and
// the two sections.
func testPlan(l *Layout, text []byte) *Plan {
	data := append([]byte("PLANNED\x00"), make([]byte, 120)...)
	dataAddr := l.PlaceData(uint64(len(text)))
	p := &Plan{
		Text:        text,
		Data:        data,
		DataMemSize: 0x1800, // a zero tail past a page boundary
		Needed:      []string{testLib},
		RunPath:     "$ORIGIN",
		DynTags:     []DynEntry{{testTag, dataAddr}},
		Sections: []NewSection{
			{Name: testDataSection, Type: elf.SHT_PROGBITS, Flags: elf.SHF_ALLOC | elf.SHF_WRITE, Addr: dataAddr, Size: 0x1800, Addralign: 8},
		},
	}
	if len(text) > 0 {
		p.Sections = append(p.Sections, NewSection{Name: testTextSection, Type: elf.SHT_PROGBITS,
			Flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR, Addr: l.TextAddr, Size: uint64(len(text)), Addralign: 16})
	}
	return p
}

// writeOut writes out as dir/name (mode 0755).
func writeOut(t testing.TB, dir, name string, out []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, WriteFileAtomic(path, out, 0o755))
	return path
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

func fileSHA(t testing.TB, path string) [32]byte {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha(b)
}

// run runs a command and returns stdout, stderr and the error.
func run(env []string, name string, args ...string) (string, string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	return so.String(), se.String(), err
}

// toolComplaint returns the first diagnostic of readelf or objdump in
// out, or "". Symbol names such as PyExc_TypeError never carry the colon.
// (A case-insensitive regexp takes seconds on objdump's output.)
func toolComplaint(out string) string {
	for _, w := range []string{"warning:", "Warning:", "WARNING:", "error:", "Error:", "ERROR:"} {
		if i := strings.Index(out, w); i >= 0 {
			return out[max(0, i-200):min(len(out), i+200)]
		}
	}
	return ""
}

// toolProblems runs readelf -a and objdump -d on path and returns what
// they complain about: a failure, anything on stderr, a diagnostic in
// stdout.
func toolProblems(t *testing.T, path string) []string {
	t.Helper()
	testenv.NeedTool(t, "readelf")
	testenv.NeedTool(t, "objdump")
	var probs []string
	for _, args := range [][]string{{"readelf", "-a", "-W", path}, {"objdump", "-d", path}} {
		so, se, err := run(nil, args[0], args[1:]...)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%v: %v", args, err))
		}
		if se != "" {
			probs = append(probs, fmt.Sprintf("%v stderr: %.400s", args, se))
		}
		if m := toolComplaint(so); m != "" {
			probs = append(probs, fmt.Sprintf("%v: %q", args, m))
		}
	}
	return probs
}

// checkTools requires readelf -a and objdump -d to be silent on path.
func checkTools(t *testing.T, path string) {
	t.Helper()
	assert.Empty(t, toolProblems(t, path))
}

// readelf returns readelf's stdout for path.
func readelf(t *testing.T, args ...string) string {
	t.Helper()
	testenv.NeedTool(t, "readelf")
	so, se, err := run(nil, "readelf", args...)
	require.NoError(t, err, se)
	require.Empty(t, se)
	return so
}

var loadLine = regexp.MustCompile(`(?m)^\s+LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(.{3})\s+(0x[0-9a-f]+)$`)

// checkOutput checks the patched file out (written at path) against the
// input and the plan: unchanged existing bytes, program headers, dynamic
// entries, sections, and what binutils makes of it.
func checkOutput(t *testing.T, in string, raw []byte, l *Layout, p *Plan, out []byte, path string) {
	t.Helper()
	// Every existing byte is still there, except the edited ones.
	changed := make([]bool, len(raw))
	for i := range ehdrSize {
		changed[i] = true
	}
	f0, err := elfimage.NewFile(raw, in)
	require.NoError(t, err)
	for _, e := range p.Writes {
		for i := range e.Bytes {
			off, ok := (&Layout{f: f0}).fileOffset(e.Addr+uint64(i), 1)
			require.True(t, ok)
			changed[off] = true
		}
	}
	for _, e := range p.Relatives {
		for _, off := range relaAddendOffsets(t, raw, e.Location) {
			for i := range 8 {
				changed[off+uint64(i)] = true
			}
		}
	}
	// The dynamic entries are rewritten where they are when they fit.
	dyn0, dyn := progOf(t, raw, elf.PT_DYNAMIC), progOf(t, out, elf.PT_DYNAMIC)
	inPlace := dyn0 != nil && dyn != nil && *dyn0 == *dyn
	if inPlace {
		for i := dyn0.Off; i < dyn0.Off+dyn0.Filesz; i++ {
			changed[i] = true
		}
	}
	ndiff := 0
	for i := range raw {
		if raw[i] != out[i] && !changed[i] {
			ndiff++
		}
	}
	assert.Zero(t, ndiff, "bytes of the input changed outside the ELF header and the edits")

	// Program headers: the input's, then ours with the right flags.
	ef, err := elf.NewFile(bytes.NewReader(out))
	require.NoError(t, err)
	in0, err := elf.NewFile(bytes.NewReader(raw))
	require.NoError(t, err)
	require.Len(t, ef.Progs, len(in0.Progs)+2)
	var loads []*elf.Prog
	for _, ph := range ef.Progs {
		if ph.Type == elf.PT_LOAD {
			loads = append(loads, ph)
		}
	}
	for i := 1; i < len(loads); i++ {
		assert.Less(t, loads[i-1].Vaddr+loads[i-1].Memsz, loads[i].Vaddr+1, "PT_LOADs ascend")
	}
	data, text := loads[len(loads)-1], loads[len(loads)-2]
	assert.Equal(t, elf.PF_R|elf.PF_W, data.Flags)
	assert.Equal(t, l.DataAddr, data.Vaddr)
	assert.Equal(t, l.DataOff, data.Off)
	assert.Equal(t, l.SegAddr, text.Vaddr)
	assert.Equal(t, l.SegOff, text.Off)
	assert.Equal(t, l.TextAddr-l.SegAddr+uint64(len(p.Text)), text.Filesz)
	assert.True(t, bytes.Equal(p.Text, out[l.TextOff:l.TextOff+uint64(len(p.Text))]))
	if len(p.Text) > 0 {
		assert.Equal(t, elf.PF_R|elf.PF_X, text.Flags)
	} else {
		assert.Equal(t, elf.PF_R, text.Flags)
	}
	assert.Equal(t, p.Data, out[l.DataOff:l.DataOff+uint64(len(p.Data))])
	phoff := le.Uint64(out[offPhoff:])
	assert.Equal(t, l.SegOff, phoff, "the program header table starts the new text segment")
	for _, ph := range ef.Progs {
		switch ph.Type {
		case elf.PT_PHDR:
			assert.Equal(t, phoff, ph.Off)
			assert.Equal(t, l.SegAddr, ph.Vaddr, "PT_PHDR maps its table")
		case elf.PT_DYNAMIC:
			if !inPlace {
				assert.True(t, ph.Off >= data.Off && ph.Off+ph.Filesz <= data.Off+data.Filesz, "PT_DYNAMIC moved into the new data")
				assert.Equal(t, ph.Off-data.Off+data.Vaddr, ph.Vaddr)
			}
		}
	}
	// The dynamic entries stay where they were when they fit there
	// (after the first DT_NULL the input holds only spare ones), so that
	// a dynamic section that was read-only after relocation still is.
	r0, err := parseRaw(raw, in)
	require.NoError(t, err)
	r1, err := parseRaw(out, path)
	require.NoError(t, err)
	spare := !slices.ContainsFunc(r0.dynTail, func(d elf.Dyn64) bool { return d.Tag != 0 })
	if fits := spare && uint64(len(r1.dyn)+1)*dynSize <= dyn0.Filesz; fits {
		assert.True(t, inPlace, "the dynamic entries rewritten in place")
		assert.Equal(t, progOf(t, raw, elf.PT_GNU_RELRO), progOf(t, out, elf.PT_GNU_RELRO))
	} else {
		assert.False(t, inPlace, "the dynamic entries moved: they do not fit")
	}
	if l.Linear {
		first := loads[0]
		assert.Equal(t, first.Vaddr-first.Off+phoff, l.SegAddr, "AT_PHDR by the pre-5.18 formula")
	}

	// Dynamic entries.
	needed, err := ef.ImportedLibraries()
	require.NoError(t, err)
	needed0, err := in0.ImportedLibraries()
	require.NoError(t, err)
	var added []string
	for _, n := range p.Needed {
		if !strings.Contains(strings.Join(needed0, "\x00")+"\x00", n+"\x00") {
			added = append(added, n)
		}
	}
	assert.Equal(t, append(needed0, added...), needed, "DT_NEEDED: the old ones, then ours")
	for _, d := range p.DynTags {
		v, err := ef.DynValue(d.Tag)
		require.NoError(t, err)
		assert.Equal(t, []uint64{d.Val}, v)
	}
	ds := ef.Section(".dynamic")
	require.NotNil(t, ds)
	assert.Equal(t, dyn.Vaddr, ds.Addr, ".dynamic is PT_DYNAMIC")
	assert.Equal(t, dyn.Off, ds.Offset, ".dynamic is PT_DYNAMIC")

	// Sections: the old ones keep their index and name; ours follow.
	require.Len(t, ef.Sections, len(in0.Sections)+len(p.Sections))
	for i, s := range in0.Sections {
		assert.Equal(t, s.Name, ef.Sections[i].Name)
		assert.Equal(t, s.Type, ef.Sections[i].Type)
	}
	for i, s := range p.Sections {
		got := ef.Sections[len(in0.Sections)+i]
		assert.Equal(t, s.Name, got.Name)
		assert.Equal(t, s.Addr, got.Addr)
	}

	// The output is a valid image with the same analysis view.
	fo, err := elfimage.NewFile(out, path)
	require.NoError(t, err)
	assert.Equal(t, len(f0.Symbols), len(fo.Symbols))
	assert.Equal(t, f0.Imports, fo.Imports)
	assert.Equal(t, len(f0.FDEs), len(fo.FDEs))

	// binutils: silent, same dynamic symbols and version information,
	// the two new PT_LOADs, the trampolines disassembled.
	checkTools(t, path)
	for _, args := range [][]string{{"--dyn-syms", "-W"}, {"-V", "-W"}} {
		assert.Equal(t, readelf(t, append(args, in)...), readelf(t, append(args, path)...), "readelf %v", args)
	}
	ls := loadLine.FindAllStringSubmatch(readelf(t, "-lW", path), -1)
	require.Len(t, ls, len(loads))
	assert.Equal(t, "RW ", ls[len(ls)-1][5])
	assert.Equal(t, fmt.Sprintf("%#016x", l.DataAddr), ls[len(ls)-1][2])
	assert.Equal(t, fmt.Sprintf("%#016x", l.SegAddr), ls[len(ls)-2][2])
	if len(p.Text) > 0 {
		assert.Equal(t, "R E", ls[len(ls)-2][5])
		so, _, err := run(nil, "objdump", "-d", "-j", testTextSection, path)
		require.NoError(t, err)
		assert.Contains(t, so, "int3")
	}
}

// progOf returns the first program header of type typ in the ELF file
// data, or nil.
func progOf(t *testing.T, data []byte, typ elf.ProgType) *elf.ProgHeader {
	t.Helper()
	ef, err := elf.NewFile(bytes.NewReader(data))
	require.NoError(t, err)
	for _, p := range ef.Progs {
		if p.Type == typ {
			h := p.ProgHeader
			return &h
		}
	}
	return nil
}

// noSpareDynamic copies the binary at path into dir with its dynamic
// table (PT_DYNAMIC and the .dynamic section) cut after its first DT_NULL,
// as a linker that leaves no spare entries writes it.
func noSpareDynamic(t *testing.T, path, dir string) string {
	t.Helper()
	testenv.NeedFile(t, path)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	r, err := parseRaw(data, path)
	require.NoError(t, err)
	require.GreaterOrEqual(t, r.dynIdx, 0)
	size := uint64(len(r.dyn)+1) * dynSize
	ph := le.Uint64(data[offPhoff:]) + uint64(r.dynIdx)*phdrSize
	le.PutUint64(data[ph+32:], size) // p_filesz
	le.PutUint64(data[ph+40:], size) // p_memsz
	for i, sh := range r.sects {
		if elf.SectionType(sh.Type) == elf.SHT_DYNAMIC {
			le.PutUint64(data[le.Uint64(data[offShoff:])+uint64(i)*shdrSize+32:], size) // sh_size
		}
	}
	out := filepath.Join(dir, "nospare-"+filepath.Base(path))
	require.NoError(t, os.WriteFile(out, data, 0o755))
	return out
}

// runCase is one input of test 1: patch, check, run, move, run again.
type runCase struct {
	name    string
	in      string
	outName string                                   // the output's name in its directory
	run     func(dir string) (string, string, error) // runs the output in dir
	want    string                                   // expected stdout
}

// TestPatchAndRun is test 1: python3.11 (ET_EXEC), lua5.4 (PIE), a built
// shared object loaded with dlopen and libpython loaded as a dependency are
// patched with the test plan, checked, run, moved and run again.
func TestPatchAndRun(t *testing.T) {
	soDir := t.TempDir()
	demoSO := testenv.BuildC(t, soDir, "libdemo.so", `int demo_answer(void) { return 6 * 7; }`, "-shared", "-fPIC", "-O2", "-Wl,-soname,libdemo.so")
	demoMain := testenv.BuildC(t, soDir, "demo", `#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
	int (*f)(void) = (int (*)(void))dlsym(h, "demo_answer");
	if (!f) { fprintf(stderr, "%s\n", dlerror()); return 1; }
	printf("%d\n", f());
	return 0;
}`, "-O2", "-ldl")

	cases := []runCase{
		// Linkers other than GNU ld leave no spare dynamic entries: the
		// table moves to the new data segment.
		{"lua5.4 PIE, no spare dynamic entries", noSpareDynamic(t, lua, soDir), "lua5.4", func(dir string) (string, string, error) {
			return run(nil, filepath.Join(dir, "lua5.4"), "-e", "print(6*7)")
		}, "42\n"},
		{"python3.11 ET_EXEC", python, "python3.11", func(dir string) (string, string, error) {
			return run(nil, filepath.Join(dir, "python3.11"), "-c", "print(6*7)")
		}, "42\n"},
		{"lua5.4 PIE", lua, "lua5.4", func(dir string) (string, string, error) {
			return run(nil, filepath.Join(dir, "lua5.4"), "-e", "print(6*7)")
		}, "42\n"},
		{"built shared object via dlopen", demoSO, "libdemo.so", func(dir string) (string, string, error) {
			return run(nil, demoMain, filepath.Join(dir, "libdemo.so"))
		}, "42\n"},
		{"libpython3.11.so.1.0 via LD_LIBRARY_PATH", libpython, "libpython3.11.so.1.0", func(dir string) (string, string, error) {
			return run([]string{"LD_LIBRARY_PATH=" + dir}, pyenvPy, "-c", "print(6*7)")
		}, "42\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.in == libpython {
				testenv.NeedFile(t, pyenvPy)
			}
			hashBefore := fileSHA(t, filepath.Clean(c.in))
			start := time.Now()
			f, raw, l := openFile(t, c.in)
			p := testPlan(l, testText)
			rawSum := sha(raw)
			out, err := Write(f, raw, l, p)
			require.NoError(t, err)
			elapsed := time.Since(start)
			assert.Equal(t, rawSum, sha(raw), "Write must not modify its input")
			t.Logf("%s: Open+NewLayout+Write %v; in %d bytes, out %d bytes (+%d), text %#x@%#x data %#x@%#x linear=%v align=%#x",
				c.in, elapsed.Round(time.Millisecond), len(raw), len(out), len(out)-len(raw),
				l.TextOff, l.TextAddr, l.DataOff, l.DataAddr, l.Linear, l.Align)

			base := t.TempDir()
			dir := filepath.Join(base, "a")
			require.NoError(t, os.Mkdir(dir, 0o755))
			buildTestLib(t, dir)
			path := writeOut(t, dir, c.outName, out)
			checkOutput(t, c.in, raw, l, p, out, path)

			so, se, err := c.run(dir)
			require.NoError(t, err, "stderr: %s", se)
			assert.Equal(t, c.want, so)
			assert.Equal(t, loadedMsg+"\n", se, "the DT_NEEDED library was loaded through $ORIGIN")

			if c.in == python || c.in == lua {
				// ld.so as the command maps the program itself and finds
				// the program headers through the segment holding them.
				args := append([]string{filepath.Join(dir, c.outName)}, map[string][]string{python: {"-c", "print(6*7)"}, lua: {"-e", "print(6*7)"}}[c.in]...)
				so, se, err := run(nil, "/lib64/ld-linux-x86-64.so.2", args...)
				require.NoError(t, err, "via ld.so: %s", se)
				assert.Equal(t, c.want, so)
				assert.Equal(t, loadedMsg+"\n", se)
			}

			moved := filepath.Join(base, "moved")
			require.NoError(t, os.Rename(dir, moved))
			so, se, err = c.run(moved)
			require.NoError(t, err, "after the move: %s", se)
			assert.Equal(t, c.want, so)
			assert.Equal(t, loadedMsg+"\n", se)

			assert.Equal(t, hashBefore, fileSHA(t, c.in), "the input file is unchanged")
		})
	}
}

// TestUnpatchedRuns is the control: the same commands without the patch
// print no constructor line, so TestPatchAndRun's check can fail.
func TestUnpatchedRuns(t *testing.T) {
	testenv.NeedFile(t, python)
	so, se, err := run(nil, python, "-c", "print(6*7)")
	require.NoError(t, err)
	assert.Equal(t, "42\n", so)
	assert.NotContains(t, se, loadedMsg)
}

// relaAddendOffsets returns the file offsets of the addends of the
// R_X86_64_RELATIVE relocations at loc, read with debug/elf.
func relaAddendOffsets(t testing.TB, raw []byte, loc uint64) []uint64 {
	ef, err := elf.NewFile(bytes.NewReader(raw))
	require.NoError(t, err)
	var offs []uint64
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_RELA || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		d, err := s.Data()
		require.NoError(t, err)
		for i := 0; i+24 <= len(d); i += 24 {
			if le.Uint64(d[i:]) == loc && elf.R_X86_64(le.Uint64(d[i+8:])&0xffffffff) == elf.R_X86_64_RELATIVE {
				offs = append(offs, s.Offset+uint64(i)+16)
			}
		}
	}
	return offs
}
