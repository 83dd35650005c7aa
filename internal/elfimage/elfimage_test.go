package elfimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/ehframe"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

var update = flag.Bool("update", false, "regenerate testdata/fuzz/FuzzNewFile/tiny with gcc")

const (
	python = "/usr/bin/python3.11"
	lua    = "/usr/bin/lua5.4"
	libc   = "/lib/x86_64-linux-gnu/libc.so.6"
)

func openReal(t testing.TB, path string) *File {
	t.Helper()
	testenv.NeedFile(t, path)
	f, err := Open(path)
	require.NoError(t, err)
	return f
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	testenv.NeedTool(t, name)
	out, err := exec.Command(name, args...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, ee.Stderr)
	}
	require.NoError(t, err)
	return string(out)
}

func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

func hexU64(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	require.NoError(t, err, "parse %q", s)
	return v
}

// Reference data from binutils.

var pltLine = regexp.MustCompile(`^([0-9a-f]+) <(.+)@plt>:$`)

// objdumpImports returns objdump's names for the PLT stubs of bin. Stubs of
// IRELATIVE slots, which objdump names "*ABS*+0x...", import nothing.
func objdumpImports(t *testing.T, f *File) map[uint64]string {
	args := []string{"-d"}
	for _, s := range []string{".plt", ".plt.sec", ".plt.got"} {
		if f.Section(s) != nil {
			args = append(args, "-j", s)
		}
	}
	want := map[uint64]string{}
	for _, l := range lines(run(t, "objdump", append(args, f.Name)...)) {
		if m := pltLine.FindStringSubmatch(l); m != nil && !strings.HasPrefix(m[2], "*ABS*") {
			want[hexU64(t, m[1])] = m[2]
		}
	}
	return want
}

type readelfRelocs struct {
	gotSlots map[uint64]string
	relative map[uint64]uint64 // RELATIVE addends
	relr     []uint64          // DT_RELR addresses
}

// readelfRelocations parses `readelf -rW`.
func readelfRelocations(t *testing.T, bin string) readelfRelocs {
	r := readelfRelocs{gotSlots: map[uint64]string{}, relative: map[uint64]uint64{}}
	inRELR := false
	for _, l := range lines(run(t, "readelf", "-rW", bin)) {
		if strings.HasPrefix(l, "Relocation section") {
			inRELR = strings.Contains(l, ".relr.")
			continue
		}
		fs := strings.Fields(l)
		if inRELR {
			if len(fs) >= 1 && len(fs[0]) == 16 {
				r.relr = append(r.relr, hexU64(t, fs[0]))
			}
			continue
		}
		if len(fs) < 4 {
			continue
		}
		switch fs[2] {
		case "R_X86_64_RELATIVE":
			r.relative[hexU64(t, fs[0])] = hexU64(t, fs[3])
		case "R_X86_64_GLOB_DAT", "R_X86_64_JUMP_SLOT":
			r.gotSlots[hexU64(t, fs[0])] = cutVersion(fs[4])
		}
	}
	return r
}

type symKey struct {
	name string
	addr uint64
}

// readelfFuncSymbols returns the defined FUNC/IFUNC symbols readelf lists,
// and which of them are in .dynsym.
func readelfFuncSymbols(t *testing.T, bin string) (all, dynamic map[symKey]bool) {
	all, dynamic = map[symKey]bool{}, map[symKey]bool{}
	inDyn := false
	for _, l := range lines(run(t, "readelf", "-sW", bin)) {
		if strings.HasPrefix(l, "Symbol table") {
			inDyn = strings.Contains(l, "'.dynsym'")
			continue
		}
		fs := strings.Fields(l)
		if len(fs) < 8 || !strings.HasSuffix(fs[0], ":") || fs[6] == "UND" {
			continue
		}
		if fs[3] != "FUNC" && fs[3] != "IFUNC" {
			continue
		}
		k := symKey{cutVersion(fs[7]), hexU64(t, fs[1])}
		all[k] = true
		if inDyn {
			dynamic[k] = true
		}
	}
	return all, dynamic
}

var buildIDLine = regexp.MustCompile(`Build ID: ([0-9a-f]+)`)

func readelfBuildID(t *testing.T, bin string) string {
	m := buildIDLine.FindStringSubmatch(run(t, "readelf", "-nW", bin))
	if m == nil {
		return ""
	}
	return m[1]
}

// fileBytesAt reads n bytes at vaddr through debug/elf's program headers,
// independently of File.Read.
func fileBytesAt(t *testing.T, bin string, vaddr uint64, n int) []byte {
	ef, err := elf.Open(bin)
	require.NoError(t, err)
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && vaddr >= p.Vaddr && vaddr+uint64(n) <= p.Vaddr+p.Filesz {
			b := make([]byte, n)
			_, err := p.ReadAt(b, int64(vaddr-p.Vaddr))
			require.NoError(t, err)
			return b
		}
	}
	t.Fatalf("%#x not file-backed in %s", vaddr, bin)
	return nil
}

// arrayPointers reads .init_array and .fini_array through readelf's
// RELATIVE relocations and debug/elf's file bytes.
func arrayPointers(t *testing.T, f *File) []uint64 {
	ef, err := elf.Open(f.Name)
	require.NoError(t, err)
	defer ef.Close()
	rel := readelfRelocations(t, f.Name).relative
	var out []uint64
	for _, name := range []string{".preinit_array", ".init_array", ".fini_array"} {
		s := ef.Section(name)
		if s == nil {
			continue
		}
		data, err := s.Data()
		require.NoError(t, err)
		for i := 0; i+8 <= len(data); i += 8 {
			p, ok := rel[s.Addr+uint64(i)]
			if !ok {
				p = binary.LittleEndian.Uint64(data[i:])
			}
			out = append(out, p)
		}
	}
	return out
}

// checkAgainstBinutils compares everything binutils can also tell about f.
func checkAgainstBinutils(t *testing.T, f *File) {
	bin := f.Name
	t.Run("BuildID", func(t *testing.T) {
		assert.Equal(t, readelfBuildID(t, bin), f.BuildID)
	})
	t.Run("Symbols", func(t *testing.T) {
		wantAll, wantDyn := readelfFuncSymbols(t, bin)
		gotAll, gotDyn := map[symKey]bool{}, map[symKey]bool{}
		for _, s := range f.Symbols {
			k := symKey{s.Name, s.Addr}
			assert.False(t, gotAll[k], "duplicate symbol %v", k)
			gotAll[k] = true
			if s.Dynamic {
				gotDyn[k] = true
			}
		}
		assert.Equal(t, wantAll, gotAll)
		assert.Equal(t, wantDyn, gotDyn)
		for i := 1; i < len(f.Symbols); i++ {
			a, b := f.Symbols[i-1], f.Symbols[i]
			require.True(t, a.Addr < b.Addr || a.Addr == b.Addr && a.Name < b.Name, "symbols not sorted: %+v, %+v", a, b)
		}
	})
	t.Run("Relocations", func(t *testing.T) {
		want := readelfRelocations(t, bin)
		assert.Equal(t, want.gotSlots, f.GOTSlots)
		wantRel := want.relative
		for _, a := range want.relr {
			wantRel[a] = binary.LittleEndian.Uint64(fileBytesAt(t, bin, a, 8))
		}
		assert.Equal(t, wantRel, f.Relative)
	})
	t.Run("Imports", func(t *testing.T) {
		assert.Equal(t, objdumpImports(t, f), f.Imports)
	})
}

func TestRealBinaries(t *testing.T) {
	tests := []struct {
		path      string
		typ       elf.Type
		pie       bool
		dynSyms   []string // defined and exported
		imports   []string
		relatives bool
	}{
		{python, elf.ET_EXEC, false, []string{"_PyEval_EvalFrameDefault", "Py_BytesMain"}, []string{"malloc", "memcpy"}, false},
		{lua, elf.ET_DYN, true, []string{"lua_pcallk", "luaL_newstate"}, []string{"realloc", "strcoll"}, true},
		{libc, elf.ET_DYN, false, []string{"malloc", "memcpy"}, []string{"malloc", "free"}, true},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			f := openReal(t, tt.path)
			assert.Equal(t, tt.typ, f.Type)
			assert.Equal(t, tt.pie, f.PIE)
			assert.False(t, f.Static)
			assert.False(t, f.GoBinary)
			assert.False(t, f.HasSymtab, "Debian strips these")
			assert.Equal(t, "/lib64/ld-linux-x86-64.so.2", f.Interp)
			assert.Equal(t, tt.relatives, len(f.Relative) > 0)

			byName := map[string]Symbol{}
			for _, s := range f.Symbols {
				byName[s.Name] = s
			}
			for _, name := range tt.dynSyms {
				s, ok := byName[name]
				if assert.True(t, ok, name) {
					assert.True(t, s.Dynamic, name)
					assert.True(t, f.IsCode(s.Addr), name)
				}
			}
			imported := map[string]bool{}
			for stub, name := range f.Imports {
				imported[name] = true
				assert.True(t, f.IsCode(stub), "stub %#x", stub)
			}
			for _, name := range tt.imports {
				assert.True(t, imported[name], name)
			}

			require.NotEmpty(t, f.FDEs)
			fdeStarts := map[uint64]bool{}
			for _, fde := range f.FDEs {
				fdeStarts[fde.Start] = true
			}
			require.NotEmpty(t, f.CodePointers)
			assert.Equal(t, arrayPointers(t, f), f.CodePointers)
			if assert.NotNil(t, f.SectionAt(f.Entry)) {
				assert.Equal(t, ".text", f.SectionAt(f.Entry).Name)
			}
			assert.True(t, fdeStarts[f.Entry])

			checkAgainstBinutils(t, f)
			t.Logf("%s: %d sections, %d symbols, %d imports, %d GOT slots, %d relative, %d FDEs, %d code pointers",
				tt.path, len(f.Sections), len(f.Symbols), len(f.Imports), len(f.GOTSlots), len(f.Relative), len(f.FDEs), len(f.CodePointers))
		})
	}
}

func BenchmarkOpenPython(b *testing.B) {
	for b.Loop() {
		if _, err := Open(python); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMemory checks the address-based accessors on lua5.4 (PIE, with .bss,
// .data.rel.ro and RELATIVE relocations).
func TestMemory(t *testing.T) {
	f := openReal(t, lua)
	sec := func(name string) *Section {
		s := f.Section(name)
		require.NotNil(t, s, name)
		return s
	}
	text, rodata, data, bss, relro := sec(".text"), sec(".rodata"), sec(".data"), sec(".bss"), sec(".data.rel.ro")

	got, err := f.Read(f.Entry, 16)
	require.NoError(t, err)
	assert.Equal(t, fileBytesAt(t, lua, f.Entry, 16), got)
	u, ok := f.ReadUint32(rodata.Addr)
	require.True(t, ok)
	assert.Equal(t, binary.LittleEndian.Uint32(fileBytesAt(t, lua, rodata.Addr, 4)), u)

	// A RELATIVE location reads as its addend, not the file bytes.
	for loc, v := range f.Relative {
		p, ok := f.ReadPointer(loc)
		require.True(t, ok)
		assert.Equal(t, v, p, "%#x", loc)
	}
	// .bss is zero but not file-backed.
	p, ok := f.ReadPointer(bss.Addr)
	assert.True(t, ok)
	assert.Zero(t, p)
	_, err = f.Read(bss.Addr, 8)
	var ae *AddrError
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, err.Error(), lua)

	last := f.Segments[len(f.Segments)-1]
	end := last.Vaddr + last.Memsz
	_, ok = f.ReadPointer(end - 4) // straddles the end of the image
	assert.False(t, ok)
	_, ok = f.ReadUint32(end)
	assert.False(t, ok)
	_, err = f.Read(end-4, 8)
	assert.Error(t, err)
	_, err = f.Read(f.Entry, -1)
	assert.Error(t, err)
	assert.Nil(t, f.SegmentAt(end))
	assert.Nil(t, f.SegmentAt(^uint64(0)))
	assert.Equal(t, &f.Segments[len(f.Segments)-1], f.SegmentAt(end-1))

	tests := []struct {
		addr     uint64
		section  string
		code, ro bool
	}{
		{text.Addr, ".text", true, true},
		{text.Addr + text.Size - 1, ".text", true, true},
		{sec(".plt").Addr, ".plt", true, true},
		{rodata.Addr + 8, ".rodata", false, true},
		{relro.Addr, ".data.rel.ro", false, true},
		{data.Addr, ".data", false, false},
		{bss.Addr + bss.Size - 1, ".bss", false, false},
		{end, "", false, false},
		{0x10, "", false, true}, // the ELF header: mapped read-only, in no section
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%#x", tt.addr), func(t *testing.T) {
			s := f.SectionAt(tt.addr)
			if tt.section == "" {
				assert.Nil(t, s)
			} else if assert.NotNil(t, s) {
				assert.Equal(t, tt.section, s.Name)
			}
			assert.Equal(t, tt.code, f.IsCode(tt.addr))
			assert.Equal(t, tt.ro, f.IsReadOnlyData(tt.addr))
		})
	}

	b, err := f.SectionData(text)
	require.NoError(t, err)
	assert.Len(t, b, int(text.Size))
	_, err = f.SectionData(bss)
	assert.ErrorContains(t, err, "SHT_NOBITS")
	_, err = f.SectionData(&Section{Name: "bogus", Type: elf.SHT_PROGBITS, Offset: 1 << 40, Size: 8})
	assert.ErrorContains(t, err, "out of file bounds")

	var names []string
	for _, s := range f.CodeSections() {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{".init", ".plt", ".plt.got", ".text", ".fini"}, names)
}

// gotSlot must follow every PLT form the linkers emit.
func TestGotSlot(t *testing.T) {
	const pc = 0x1000
	tests := []struct {
		name string
		code string
		slot uint64 // 0: not a GOT jump
	}{
		{"jmp", "ff25 10000000 6800000000", pc + 6 + 0x10},
		{"jmp backwards", "ff25 00f0ffff", pc + 6 - 0x1000},
		{"bnd jmp", "f2ff25 f0ffffff 0f1f00", pc + 7 - 0x10},
		{"endbr64 jmp", "f30f1efa ff25 20000000", pc + 10 + 0x20},
		{"endbr64 bnd jmp", "f30f1efa f2ff25 20000000 90", pc + 11 + 0x20},
		{"endbr64 push", "f30f1efa 6800000000 f2e9e0ffffff", 0},
		{"push", "ff35 02000000", 0},
		{"absolute jmp", "ff2425 00100000", 0},
		{"jmp via register", "ffe0", 0},
		{"truncated", "ff25 1000", 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, err := hex.DecodeString(strings.ReplaceAll(tt.code, " ", ""))
			require.NoError(t, err)
			slot, ok := gotSlot(code, pc)
			assert.Equal(t, tt.slot != 0, ok)
			if ok {
				assert.Equal(t, tt.slot, slot)
			}
		})
	}
}

const tinyC = `#include <stdio.h>
#include <stdlib.h>
static int counter;
__attribute__((constructor)) static void init(void) { counter = 1; }
int main(int argc, char **argv) {
	char *p = malloc(16 + argc);
	snprintf(p, 16, "%d", argc + counter);
	puts(p);
	free(p);
	return 0;
}
`

func TestBuiltBinaries(t *testing.T) {
	dir := t.TempDir()
	t.Run("IBT PLT", func(t *testing.T) {
		// endbr64 in .plt.sec and .plt.got stubs.
		bin, err := testenv.CompileC(t, dir, "ibt", tinyC, "-O2", "-fcf-protection=full", "-Wl,-z,ibtplt")
		require.NoError(t, err)
		f := openReal(t, bin)
		require.NotNil(t, f.Section(".plt.sec"))
		assert.True(t, f.PIE)
		assert.Len(t, f.Imports, 5, "%v", f.Imports)
		checkAgainstBinutils(t, f)
	})
	t.Run("static", func(t *testing.T) {
		bin, err := testenv.CompileC(t, dir, "static", tinyC, "-O2", "-static")
		if err != nil {
			t.Skipf("gcc -static does not work here (static libc missing?): %v", err)
		}
		f := openReal(t, bin)
		assert.True(t, f.Static)
		assert.False(t, f.PIE)
		assert.Equal(t, elf.ET_EXEC, f.Type)
		assert.Empty(t, f.Interp)
		assert.True(t, f.HasSymtab)
		checkAgainstBinutils(t, f)
	})
	t.Run("static-pie", func(t *testing.T) {
		bin, err := testenv.CompileC(t, dir, "staticpie", tinyC, "-O2", "-static-pie")
		if err != nil {
			t.Skipf("gcc -static-pie does not work here: %v", err)
		}
		f := openReal(t, bin)
		assert.False(t, f.Static, "a static PIE has PT_DYNAMIC")
		assert.True(t, f.PIE, "DF_1_PIE")
		assert.Empty(t, f.Interp)
		assert.NotEmpty(t, f.Relative)
		checkAgainstBinutils(t, f)
	})
	t.Run("Go", func(t *testing.T) {
		testenv.NeedTool(t, "go")
		src := filepath.Join(dir, "gosrc")
		require.NoError(t, os.MkdirAll(src, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(src, "go.mod"), []byte("module tiny\n\ngo 1.21\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { println(\"hi\") }\n"), 0o644))
		bin := filepath.Join(dir, "gobin")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		f := openReal(t, bin)
		assert.True(t, f.GoBinary)
		assert.True(t, f.Static)
		assert.NotEmpty(t, f.BuildID)
	})
}

// Rejections.

// patch returns a copy of lua5.4 with edit applied.
func patch(t *testing.T, edit func(b []byte, ef *elf.File)) []byte {
	data, err := os.ReadFile(lua)
	if err != nil {
		t.Skipf("%s: %v", lua, err)
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	require.NoError(t, err)
	b := slices.Clone(data)
	edit(b, ef)
	return b
}

var le = binary.LittleEndian

// shdr returns the header bytes of the named section in b.
func shdr(b []byte, ef *elf.File, name string) []byte {
	shoff := le.Uint64(b[offShoff:])
	for i, s := range ef.Sections {
		if s.Name == name {
			return b[shoff+uint64(i)*shdrSize:][:shdrSize]
		}
	}
	panic("no section " + name)
}

// phdrs returns the program header bytes of b.
func phdrs(b []byte) [][]byte {
	phoff := le.Uint64(b[offPhoff:])
	var out [][]byte
	for i := range uint64(le.Uint16(b[offPhnum:])) {
		out = append(out, b[phoff+i*phdrSize:][:phdrSize])
	}
	return out
}

func TestRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		data  func(t *testing.T) []byte
		cause string
	}{
		{"text file", func(*testing.T) []byte { return []byte("#!/bin/sh\necho hello\n") }, "not an ELF file (bad magic number)"},
		{"empty file", func(*testing.T) []byte { return nil }, "not an ELF file (bad magic number)"},
		{"ident only", func(*testing.T) []byte { return []byte("\x7fELF\x02\x01") }, "truncated ELF header"},
		{"short header", func(t *testing.T) []byte { return patch(t, func([]byte, *elf.File) {})[:40] }, "truncated ELF header"},
		{"32-bit", func(t *testing.T) []byte {
			bin, err := testenv.CompileC(t, dir, "m32", "void _start(void) { for (;;); }\n", "-m32", "-nostdlib", "-static")
			if err != nil {
				// No 32-bit toolchain: an ELFCLASS32 header by hand.
				h := make([]byte, 52)
				copy(h, "\x7fELF\x01\x01\x01")
				le.PutUint16(h[16:], uint16(elf.ET_EXEC))
				le.PutUint16(h[18:], uint16(elf.EM_386))
				return h
			}
			b, err := os.ReadFile(bin)
			require.NoError(t, err)
			return b
		}, "32-bit ELF; only x86-64 (ELFCLASS64) is supported"},
		{"big-endian", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { b[elf.EI_DATA] = byte(elf.ELFDATA2MSB) })
		}, "big-endian ELF"},
		{"ARM", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint16(b[offMachine:], uint16(elf.EM_AARCH64)) })
		}, "machine EM_AARCH64; only x86-64 is supported"},
		{"object file", func(t *testing.T) []byte {
			obj, err := testenv.CompileC(t, dir, "obj.o", tinyC, "-c")
			require.NoError(t, err)
			b, err := os.ReadFile(obj)
			require.NoError(t, err)
			return b
		}, "relocatable object (ET_REL), not an executable or shared object"},
		{"core file", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint16(b[offType:], uint16(elf.ET_CORE)) })
		}, "core file (ET_CORE), not an executable or shared object"},
		{"e_shoff huge", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint64(b[offShoff:], 1<<62) })
		}, "section header table out of file bounds"},
		{"e_shoff near end", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint64(b[offShoff:], uint64(len(b)-10)) })
		}, "section header table out of file bounds"},
		{"e_shnum too large", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint16(b[offShnum:], 0xfeff) })
		}, "section header table out of file bounds"},
		{"e_shnum extended and bogus", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) {
				le.PutUint16(b[offShnum:], 0)
				le.PutUint64(b[le.Uint64(b[offShoff:])+32:], 1<<40)
			})
		}, "section header table out of file bounds"},
		{"e_shentsize", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint16(b[offShentsz:], 40) })
		}, "bad e_shentsize (0x28)"},
		{"e_shstrndx out of range", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint16(b[offShstrnd:], 0x2000) })
		}, "section name string table index out of range (0x2000)"},
		{"e_shstrndx not a string table", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint16(b[offShstrnd:], 1) })
		}, "section name string table is not SHT_STRTAB"},
		{"e_phnum PN_XNUM", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint16(b[offPhnum:], 0xffff) })
		}, "PN_XNUM"},
		{"e_phnum too large", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint16(b[offPhnum:], 0xfff0) })
		}, "program header table out of file bounds"},
		{"e_phoff huge", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint64(b[offPhoff:], ^uint64(0)-8) })
		}, "program header table out of file bounds"},
		{"e_phentsize", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint16(b[offPhentsz:], 32) })
		}, "bad e_phentsize (0x20)"},
		{"section past end", func(t *testing.T) []byte {
			return patch(t, func(b []byte, ef *elf.File) { le.PutUint64(shdr(b, ef, ".rodata")[32:], uint64(len(b))) })
		}, "data out of file bounds"},
		{"section offset overflow", func(t *testing.T) []byte {
			return patch(t, func(b []byte, ef *elf.File) { le.PutUint64(shdr(b, ef, ".text")[24:], ^uint64(0)-4) })
		}, "data out of file bounds"},
		{"compressed .dynsym", func(t *testing.T) []byte {
			return patch(t, func(b []byte, ef *elf.File) {
				h := shdr(b, ef, ".dynsym")
				le.PutUint64(h[8:], le.Uint64(h[8:])|uint64(elf.SHF_COMPRESSED))
			})
		}, "compressed SHT_DYNSYM section not supported"},
		{"segment past end", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) { le.PutUint64(phdrs(b)[2][32:], uint64(len(b))+1) })
		}, "data out of file bounds"},
		{"PT_LOAD filesz > memsz", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) {
				for _, p := range phdrs(b) {
					if elf.ProgType(le.Uint32(p)) == elf.PT_LOAD {
						le.PutUint64(p[40:], le.Uint64(p[32:])-1)
						return
					}
				}
			})
		}, "file size exceeds memory size"},
		{"PT_LOAD out of order", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) {
				var loads [][]byte
				for _, p := range phdrs(b) {
					if elf.ProgType(le.Uint32(p)) == elf.PT_LOAD {
						loads = append(loads, p)
					}
				}
				tmp := slices.Clone(loads[0])
				copy(loads[0], loads[1])
				copy(loads[1], tmp)
			})
		}, "overlaps or precedes the previous PT_LOAD"},
		{"no PT_LOAD", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) {
				for _, p := range phdrs(b) {
					if elf.ProgType(le.Uint32(p)) == elf.PT_LOAD {
						le.PutUint32(p, uint32(elf.PT_NULL))
					}
				}
			})
		}, "no PT_LOAD segment"},
		{"no executable code", func(t *testing.T) []byte {
			return patch(t, func(b []byte, _ *elf.File) {
				for _, p := range phdrs(b) {
					le.PutUint32(p[4:], le.Uint32(p[4:])&^uint32(elf.PF_X))
				}
			})
		}, "no executable code"},
		{"garbage .eh_frame", func(t *testing.T) []byte {
			return patch(t, func(b []byte, ef *elf.File) {
				s := ef.Section(".eh_frame")
				for i := range s.Size {
					b[s.Offset+i] = byte(i*7 + 3)
				}
			})
		}, "malformed .eh_frame at offset"},
		{"CIE pointer loop in .eh_frame", func(t *testing.T) []byte {
			return patch(t, func(b []byte, ef *elf.File) {
				// The second entry is lua's first FDE: point it at itself.
				s := ef.Section(".eh_frame")
				first := le.Uint32(b[s.Offset:])
				le.PutUint32(b[s.Offset+4+uint64(first)+4:], 4)
			})
		}, ".eh_frame offset 0x1c: CIE pointer does not reference a CIE (0x18)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			require.NoError(t, os.WriteFile(path, tt.data(t), 0o644))
			_, err := Open(path)
			require.Error(t, err)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, path, fe.File)
			assert.True(t, strings.HasPrefix(err.Error(), path+": "), err.Error())
			assert.Contains(t, err.Error(), tt.cause)
			assert.NotContains(t, err.Error(), "\n")
			if strings.Contains(tt.name, "eh_frame") {
				var ee *ehframe.FormatError
				assert.ErrorAs(t, err, &ee)
			}
			t.Log(err)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-binary")
	_, err := Open(missing)
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), missing)

	dir := t.TempDir()
	_, err = Open(dir)
	assert.ErrorContains(t, err, dir+": not a regular file")

	// A FIFO is refused without waiting for a writer, a file over the
	// limit by its size, without reading it.
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	_, err = Open(fifo)
	assert.ErrorContains(t, err, fifo+": not a regular file")
	huge := filepath.Join(dir, "huge")
	require.NoError(t, os.WriteFile(huge, nil, 0o644))
	require.NoError(t, os.Truncate(huge, 3<<30))
	_, err = ReadFile(huge)
	assert.EqualError(t, err, huge+": file larger than 1 GiB (0xc0000000)")

	unreadable := filepath.Join(dir, "unreadable")
	require.NoError(t, os.WriteFile(unreadable, []byte("x"), 0o000))
	if os.Geteuid() != 0 { // root reads anything
		_, err = Open(unreadable)
		require.ErrorIs(t, err, fs.ErrPermission)
		assert.Contains(t, err.Error(), unreadable)
	}
}

// TestTruncated cuts lua5.4 every 1 KiB up to 64 KiB and around the section
// header table: each copy must be refused for the right reason.
func TestTruncated(t *testing.T) {
	data, err := os.ReadFile(lua)
	if err != nil {
		t.Skip(err)
	}
	shoff := int(le.Uint64(data[offShoff:]))
	shnum := int(le.Uint16(data[offShnum:]))
	require.Equal(t, len(data), shoff+shnum*shdrSize, "lua5.4's section headers end the file")
	var cuts []int
	for n := 1024; n <= 64<<10; n += 1024 {
		cuts = append(cuts, n)
	}
	cuts = append(cuts, shoff-1, shoff, shoff+1, shoff+shdrSize, shoff+shnum*shdrSize/2, len(data)-shdrSize, len(data)-1)
	for _, n := range cuts {
		_, err := NewFile(data[:n], "lua5.4-truncated")
		var fe *FormatError
		require.ErrorAs(t, err, &fe, "cut at %d", n)
		assert.Equal(t, "lua5.4-truncated", fe.File)
		assert.Contains(t, err.Error(), "section header table out of file bounds", "cut at %d", n)
	}
	t.Logf("%d truncated copies refused", len(cuts))
}

// Fuzzing.

const seedDir = "testdata/fuzz/FuzzNewFile"

// TestSeedCorpus regenerates (with -update) the committed seed, a tiny
// stripped PIE built with gcc, and checks that it still opens.
func TestSeedCorpus(t *testing.T) {
	path := filepath.Join(seedDir, "tiny")
	if *update {
		bin, err := testenv.CompileC(t, t.TempDir(), "tiny", tinyC, "-O2", "-s", "-Wl,-z,noseparate-code", "-Wl,-z,norelro")
		require.NoError(t, err)
		b, err := os.ReadFile(bin)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(seedDir, 0o755))
		require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644))
	}
	st, err := os.Stat(path)
	require.NoError(t, err, "run 'go test -run TestSeedCorpus -update'")
	assert.Less(t, st.Size(), int64(20<<10))
	f, err := NewFile(readSeed(t), "tiny")
	require.NoError(t, err)
	assert.True(t, f.PIE)
	assert.NotEmpty(t, f.Imports)
	assert.NotEmpty(t, f.CodePointers)
	assert.NotEmpty(t, f.FDEs)
}

func readSeed(t testing.TB) []byte {
	vals, err := testenv.FuzzValues(filepath.Join(seedDir, "tiny"))
	if err != nil {
		t.Skipf("no seed: %v", err)
	}
	require.NotEmpty(t, vals)
	b, err := testenv.FuzzBytes(vals[0])
	require.NoError(t, err)
	return b
}

func FuzzNewFile(f *testing.F) {
	tiny := readSeed(f)
	shoff := le.Uint64(tiny[offShoff:])
	for _, n := range []int{0, 4, 16, 63, 64, 200, len(tiny) / 2, int(shoff), len(tiny) - 1} {
		f.Add(tiny[:min(n, len(tiny))])
	}
	for _, edit := range []func(b []byte){
		func(b []byte) { le.PutUint16(b[offShnum:], 0xffff) },
		func(b []byte) { le.PutUint16(b[offPhnum:], 0xffff) },
		func(b []byte) { le.PutUint64(b[offShoff:], 1<<63) },
		func(b []byte) { le.PutUint16(b[offShstrnd:], 0) },
		func(b []byte) { le.PutUint16(b[offShnum:], 0); le.PutUint16(b[offShstrnd:], 0xffff) },
		func(b []byte) { // every section size doubled
			for i := range uint64(le.Uint16(b[offShnum:])) {
				h := b[shoff+i*shdrSize:]
				le.PutUint64(h[32:], 2*le.Uint64(h[32:]))
			}
		},
	} {
		b := slices.Clone(tiny)
		edit(b)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := NewFile(data, "fuzz")
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != "fuzz" || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error %T %v", err, err)
			}
			return
		}
		exercise(t, img)
	})
}

// exercise calls every method around every interesting address and checks
// the answers are consistent.
func exercise(t *testing.T, f *File) {
	addrs := []uint64{0, 1, f.Entry, ^uint64(0), ^uint64(0) - 7}
	for _, s := range f.Sections {
		addrs = append(addrs, s.Addr, s.Addr+s.Size-1, s.Addr+s.Size, s.Addr+s.Size-4)
		if _, err := f.SectionData(&s); err == nil && s.Type == elf.SHT_NOBITS {
			t.Fatalf("SectionData(%s) of NOBITS succeeded", s.Name)
		}
	}
	for _, s := range f.Segments {
		addrs = append(addrs, s.Vaddr, s.Vaddr+s.Filesz-1, s.Vaddr+s.Filesz, s.Vaddr+s.Memsz-1, s.Vaddr+s.Memsz, s.Vaddr+s.Memsz-3)
	}
	for a := range f.Imports {
		addrs = append(addrs, a)
	}
	addrs = append(addrs, f.CodePointers...)
	for _, a := range addrs {
		if s := f.SegmentAt(a); s != nil && (a < s.Vaddr || a-s.Vaddr >= s.Memsz) {
			t.Fatalf("SegmentAt(%#x) = %+v", a, s)
		}
		if s := f.SectionAt(a); s != nil && (a < s.Addr || a-s.Addr >= s.Size) {
			t.Fatalf("SectionAt(%#x) = %+v", a, s)
		}
		for _, n := range []int{0, 1, 8, 4096} {
			if b, err := f.Read(a, n); err == nil && len(b) != n {
				t.Fatalf("Read(%#x, %d) returned %d bytes", a, n, len(b))
			}
		}
		f.ReadPointer(a)
		f.ReadUint32(a)
		if f.IsCode(a) && f.SegmentAt(a) == nil {
			t.Fatalf("IsCode(%#x) outside segments", a)
		}
		f.IsReadOnlyData(a)
	}
	for _, p := range f.CodePointers {
		if !f.IsCode(p) {
			t.Fatalf("code pointer %#x is not code", p)
		}
	}
	f.CodeSections()
	f.Section(".text")
}

func TestFileKind(t *testing.T) {
	for _, tt := range []struct {
		mode fs.FileMode
		want string
	}{
		{0o644, "a regular file"},
		{fs.ModeDir | 0o755, "a directory"},
		{fs.ModeSymlink | 0o777, "a symbolic link"},
		{fs.ModeNamedPipe | 0o644, "a named pipe"},
		{fs.ModeSocket | 0o755, "a socket"},
		{fs.ModeDevice | fs.ModeCharDevice | 0o666, "a character device"},
		{fs.ModeDevice | 0o660, "a block device"},
		{fs.ModeIrregular, "a special file"},
	} {
		assert.Equal(t, tt.want, FileKind(tt.mode), "%v", tt.mode)
	}
}

// A name read from a hostile file keeps a FormatError on one line.
func TestFormatErrorGraphic(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"section .text", "section .text"},
		{"section .rela.dyn\n.rela.plt", `section .rela.dyn\n.rela.plt`},
		{"section \xff\x01é", `section \xff\x01é`},
	} {
		err := &FormatError{File: "f", Off: -1, Msg: tc.in}
		assert.Equal(t, "f: "+tc.want, err.Error())
	}
}
