package elfpatch

import (
	"bytes"
	"debug/elf"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

// findOpcodeTargets finds CPython's opcode_targets in .rodata the way the
// brief describes: 256 pointers, at least 150 of them into
// _PyEval_EvalFrameDefault.
func findOpcodeTargets(t *testing.T, f *elfimage.File) uint64 {
	t.Helper()
	var ev *elfimage.Symbol
	for i, s := range f.Symbols {
		if s.Name == "_PyEval_EvalFrameDefault" {
			ev = &f.Symbols[i]
		}
	}
	require.NotNil(t, ev)
	ro := f.Section(".rodata")
	require.NotNil(t, ro)
	data, err := f.SectionData(ro)
	require.NoError(t, err)
	in := func(i int) int {
		v := le.Uint64(data[8*i:])
		if v >= ev.Addr && v < ev.Addr+ev.Size {
			return 1
		}
		return 0
	}
	n, count := len(data)/8, 0
	for i := 0; i < n; i++ {
		count += in(i)
		if i >= 256 {
			count -= in(i - 256)
		}
		if i >= 255 && count >= 150 {
			return ro.Addr + 8*uint64(i-255)
		}
	}
	t.Fatal("opcode_targets not found")
	return 0
}

// TestWrites is test 2 for byte edits: one entry of python3.11's
// opcode_targets, an unused opcode's, is pointed at the new text; elfimage
// reads the new pointer back from the output and the program still runs.
func TestWrites(t *testing.T) {
	f, raw, l := openFile(t, python)
	table := findOpcodeTargets(t, f)
	entries := make([]uint64, 256)
	freq := map[uint64]int{}
	for i := range entries {
		v, ok := f.ReadPointer(table + 8*uint64(i))
		require.True(t, ok)
		entries[i] = v
		freq[v]++
	}
	// The most frequent target is the "unknown opcode" label.
	unknown := entries[0]
	for v, n := range freq {
		if n > freq[unknown] {
			unknown = v
		}
	}
	require.Greater(t, freq[unknown], 20)
	k := slices.Index(entries, unknown)
	for i := 255; i >= 0; i-- {
		if entries[i] == unknown {
			k = i
			break
		}
	}
	p := testPlan(l, testText)
	p.Writes = []ByteEdit{{Addr: table + 8*uint64(k), Bytes: le.AppendUint64(nil, l.TextAddr)}}
	out, err := Write(f, raw, l, p)
	require.NoError(t, err)

	fo, err := elfimage.NewFile(out, "out")
	require.NoError(t, err)
	for i, want := range entries {
		if i == k {
			want = l.TextAddr
		}
		got, ok := fo.ReadPointer(table + 8*uint64(i))
		require.True(t, ok)
		assert.Equal(t, want, got, "opcode_targets[%d]", i)
	}
	t.Logf("opcode_targets at %#x; entry %d (one of %d unknown-opcode entries) -> %#x", table, k, freq[unknown], l.TextAddr)

	dir := t.TempDir()
	buildTestLib(t, dir)
	path := writeOut(t, dir, "python3.11", out)
	checkOutput(t, python, raw, l, p, out, path)
	so, se, err := run(nil, path, "-c", "print(6*7)")
	require.NoError(t, err, se)
	assert.Equal(t, "42\n", so)
	assert.Equal(t, loadedMsg+"\n", se)
}

// luaDispatch returns the locations of the relative relocations whose
// pointer is inside lua5.4's luaV_execute (the largest FDE): disptab.
func luaDispatch(t *testing.T, f *elfimage.File) []uint64 {
	t.Helper()
	var big struct{ start, end uint64 }
	for _, d := range f.FDEs {
		if d.End-d.Start > big.end-big.start {
			big.start, big.end = d.Start, d.End
		}
	}
	var locs []uint64
	for loc, v := range f.Relative {
		if v >= big.start && v < big.end {
			locs = append(locs, loc)
		}
	}
	slices.Sort(locs)
	return locs
}

// TestRelatives is test 2 for relocation edits: every disptab entry of
// lua5.4 (a PIE, so the pointers are R_X86_64_RELATIVE) is pointed at a
// trampoline in the new text. With `jmp original` trampolines Lua runs
// normally; with `int3` ones it dies of SIGTRAP, so the edits are live.
func TestRelatives(t *testing.T) {
	f, raw, l := openFile(t, lua)
	locs := luaDispatch(t, f)
	require.GreaterOrEqual(t, len(locs), 83, "disptab has 83 entries")
	t.Logf("%d relative relocations into luaV_execute", len(locs))

	for _, tc := range []struct {
		name string
		trap bool
	}{{"jmp trampolines", false}, {"int3 trampolines", true}} {
		t.Run(tc.name, func(t *testing.T) {
			text := make([]byte, 8*len(locs))
			var edits []RelativeEdit
			for i, loc := range locs {
				tramp := l.TextAddr + 8*uint64(i)
				orig := f.Relative[loc]
				code := []byte{0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc}
				if !tc.trap {
					code[0] = 0xe9 // jmp rel32
					le.PutUint32(code[1:], uint32(int32(int64(orig)-int64(tramp+5))))
				}
				copy(text[8*i:], code)
				edits = append(edits, RelativeEdit{Location: loc, NewValue: tramp})
			}
			p := testPlan(l, text)
			p.Relatives = edits
			out, err := Write(f, raw, l, p)
			require.NoError(t, err)
			fo, err := elfimage.NewFile(out, "out")
			require.NoError(t, err)
			for _, e := range edits {
				got, ok := fo.ReadPointer(e.Location)
				require.True(t, ok)
				assert.Equal(t, e.NewValue, got)
			}
			dir := t.TempDir()
			buildTestLib(t, dir)
			path := writeOut(t, dir, "lua5.4", out)
			checkOutput(t, lua, raw, l, p, out, path)
			so, se, err := run(nil, path, "-e", "local s = 0 for i = 1, 100 do s = s + i end print(6*7, s)")
			if tc.trap {
				var ee *exec.ExitError
				require.ErrorAs(t, err, &ee)
				ws := ee.Sys().(syscall.WaitStatus)
				assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGTRAP, "want SIGTRAP, got %v", err)
				return
			}
			require.NoError(t, err, se)
			assert.Equal(t, "42\t5050\n", so)
			assert.Equal(t, loadedMsg+"\n", se)
		})
	}
}

// TestPlanErrors checks that inconsistent plans are refused with their
// cause, on lua5.4.
func TestPlanErrors(t *testing.T) {
	f, raw, l := openFile(t, lua)
	locs := luaDispatch(t, f)
	bss := f.Section(".bss")
	require.NotNil(t, bss)
	text := f.Section(".text")
	require.NotNil(t, text)
	cases := []struct {
		name string
		edit func(p *Plan)
		kind error
		msg  string
	}{
		{"overlapping writes", func(p *Plan) {
			p.Writes = []ByteEdit{{text.Addr, []byte{1, 2, 3, 4}}, {text.Addr + 2, []byte{5}}}
		}, ErrPlan, "a write overlaps a write"},
		{"write in .bss", func(p *Plan) { p.Writes = []ByteEdit{{bss.Addr + 8, []byte{1}}} }, ErrPlan, "not inside the file-backed part"},
		{"write outside segments", func(p *Plan) { p.Writes = []ByteEdit{{l.TextAddr, []byte{1}}} }, ErrPlan, "not inside the file-backed part"},
		{"write over the ELF header", func(p *Plan) { p.Writes = []ByteEdit{{f.Segments[0].Vaddr + 16, []byte{1}}} }, ErrPlan, "overlaps the ELF header"},
		{"write over a relocated pointer", func(p *Plan) { p.Writes = []ByteEdit{{locs[0] + 4, []byte{1}}} }, ErrPlan, "R_X86_64_RELATIVE relocation"},
		{"empty write", func(p *Plan) { p.Writes = []ByteEdit{{text.Addr, nil}} }, ErrPlan, "empty write"},
		{"write over an edited addend", func(p *Plan) {
			rela := f.Section(".rela.dyn")
			p.Relatives = []RelativeEdit{{locs[0], 1}}
			p.Writes = []ByteEdit{{rela.Addr, make([]byte, rela.Size)}}
		}, ErrPlan, "the addend of the relocation overlaps a write"},
		{"relative edit without a relocation", func(p *Plan) { p.Relatives = []RelativeEdit{{text.Addr, 1}} }, ErrPlan, "no R_X86_64_RELATIVE relocation"},
		{"two relative edits", func(p *Plan) { p.Relatives = []RelativeEdit{{locs[0], 1}, {locs[0], 2}} }, ErrPlan, "two relative edits"},
		{"text larger than placed", func(p *Plan) { p.Text = make([]byte, PageSize+1) }, ErrPlan, "does not fit"},
		{"DataMemSize too small", func(p *Plan) { p.DataMemSize = 4 }, ErrPlan, "DataMemSize"},
		{"section outside", func(p *Plan) { p.Sections[0].Addr = l.DataAddr + 0x2000 }, ErrPlan, "not inside the new text"},
		{"writable section over text", func(p *Plan) { p.Sections[1].Flags |= elf.SHF_WRITE }, ErrPlan, "writable section over text"},
		{"executable section over data", func(p *Plan) { p.Sections[0].Flags |= elf.SHF_EXECINSTR }, ErrPlan, "executable section over data"},
		{"section name in use", func(p *Plan) { p.Sections[0].Name = ".text" }, ErrPlan, "name already in use"},
		{"misaligned section", func(p *Plan) { p.Sections[1].Addr++; p.Sections[1].Size-- }, ErrPlan, "not aligned"},
		{"managed dynamic tag", func(p *Plan) { p.DynTags = append(p.DynTags, DynEntry{elf.DT_RUNPATH, 0}) }, ErrPlan, "managed by the writer"},
		{"dynamic tag present", func(p *Plan) { p.DynTags = append(p.DynTags, DynEntry{elf.DT_DEBUG, 0}) }, ErrPlan, "already present"},
		{"bad needed name", func(p *Plan) { p.Needed = []string{"a\x00b"} }, ErrPlan, "bad DT_NEEDED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPlan(l, testText)
			c.edit(p)
			_, err := Write(f, raw, l, p)
			require.Error(t, err)
			assert.ErrorIs(t, err, c.kind)
			assert.Contains(t, err.Error(), c.msg)
			assert.True(t, strings.HasPrefix(err.Error(), lua+": "), "error names the file: %v", err)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
	t.Run("layout of another input", func(t *testing.T) {
		_, err := Write(f, slices.Clone(raw), l, testPlan(l, testText))
		assert.ErrorIs(t, err, ErrPlan)
	})
	t.Run("PlaceData not called", func(t *testing.T) {
		l2, err := NewLayout(f, raw)
		require.NoError(t, err)
		_, err = Write(f, raw, l2, &Plan{})
		assert.ErrorContains(t, err, "PlaceData")
	})
}

// dynStrings returns the string values of tag in the file at path.
func dynStrings(t *testing.T, b []byte, tag elf.DynTag) []string {
	ef, err := elf.NewFile(bytes.NewReader(b))
	require.NoError(t, err)
	s, err := ef.DynString(tag)
	require.NoError(t, err)
	return s
}

// TestSearchPath checks how RunPath combines with the input's DT_RUNPATH
// or DT_RPATH, and that a DT_NEEDED already present is not repeated.
func TestSearchPath(t *testing.T) {
	dir := t.TempDir()
	src := `int answer(void) { return 42; }`
	cases := []struct {
		name        string
		flags       []string
		runPath     string
		runpath     []string // DT_RUNPATH after
		rpath       []string // DT_RPATH after
		neededAfter []string
	}{
		{"no path", nil, "$ORIGIN", []string{"$ORIGIN"}, nil, []string{"libc.so.6", testLib}},
		{"RUNPATH", []string{"-Wl,-rpath,/opt/x", "-Wl,--enable-new-dtags"}, "$ORIGIN", []string{"$ORIGIN:/opt/x"}, nil, []string{"libc.so.6", testLib}},
		{"RPATH only", []string{"-Wl,-rpath,/opt/x", "-Wl,--disable-new-dtags"}, "$ORIGIN", nil, []string{"$ORIGIN:/opt/x"}, []string{"libc.so.6", testLib}},
		{"already first", []string{"-Wl,-rpath,$ORIGIN:/opt/x", "-Wl,--enable-new-dtags"}, "$ORIGIN", []string{"$ORIGIN:/opt/x"}, nil, []string{"libc.so.6", testLib}},
		{"no run path asked", []string{"-Wl,-rpath,/opt/x", "-Wl,--enable-new-dtags"}, "", []string{"/opt/x"}, nil, []string{"libc.so.6", testLib}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			so := testenv.BuildC(t, dir, "lib"+string(rune('a'+i))+".so", src, append([]string{"-shared", "-fPIC"}, c.flags...)...)
			f, raw, l := openFile(t, so)
			p := testPlan(l, testText)
			p.RunPath = c.runPath
			p.Needed = []string{"libc.so.6", testLib}
			out, err := Write(f, raw, l, p)
			require.NoError(t, err)
			assert.Equal(t, c.runpath, dynStrings(t, out, elf.DT_RUNPATH))
			assert.Equal(t, c.rpath, dynStrings(t, out, elf.DT_RPATH))
			assert.Equal(t, c.neededAfter, dynStrings(t, out, elf.DT_NEEDED))
			checkTools(t, writeOut(t, dir, "out.so", out))
		})
	}
}

// TestRELR: a relative edit of a DT_RELR-encoded relocation is refused.
func TestRELR(t *testing.T) {
	dir := t.TempDir()
	bin := testenv.BuildC(t, dir, "relr", `#include <stdio.h>
static const char *names[] = {"a", "b", "c", "d"};
int main(int argc, char **argv) { puts(names[argc & 3]); return 0; }`, "-O2", "-fPIE", "-pie", "-Wl,-z,pack-relative-relocs")
	f, raw, l := openFile(t, bin)
	ef, err := elf.NewFile(bytes.NewReader(raw))
	require.NoError(t, err)
	relr, err := ef.DynValue(dtRELR)
	require.NoError(t, err)
	if len(relr) == 0 {
		t.Skip("the linker did not emit DT_RELR")
	}
	names := f.Section(".data.rel.ro")
	require.NotNil(t, names)
	_, ok := f.Relative[names.Addr]
	require.True(t, ok, "names[0] is relocated")
	p := testPlan(l, testText)
	p.Relatives = []RelativeEdit{{names.Addr, l.DataAddr}}
	_, err = Write(f, raw, l, p)
	assert.ErrorIs(t, err, ErrRELR)
	assert.ErrorContains(t, err, "RELR not supported")
	t.Log(err)

	// Without relative edits the file patches and runs.
	p.Relatives = nil
	out, err := Write(f, raw, l, p)
	require.NoError(t, err)
	buildTestLib(t, dir)
	path := writeOut(t, dir, "relr.out", out)
	checkTools(t, path)
	so, se, err := run(nil, path)
	require.NoError(t, err, se)
	assert.Equal(t, "b\n", so)
	assert.Equal(t, loadedMsg+"\n", se)
}

// TestNonLinear: an executable with a .bss larger than maxLinearPad gets
// its new segments right after the end of the file, and still runs (this
// kernel derives AT_PHDR from the segment holding the table).
func TestNonLinear(t *testing.T) {
	dir := t.TempDir()
	bin := testenv.BuildC(t, dir, "bigbss", `#include <stdio.h>
static char big[100 << 20];
int main(int argc, char **argv) { big[argc << 20] = 1; printf("%d\n", big[1 << 20] + 41); return 0; }`, "-O2")
	f, raw, l := openFile(t, bin)
	assert.False(t, l.Linear)
	assert.Equal(t, uint64(len(raw)+PageSize-1)&^(PageSize-1), l.SegOff)
	p := testPlan(l, testText)
	out, err := Write(f, raw, l, p)
	require.NoError(t, err)
	assert.Less(t, len(out), len(raw)+64<<10, "no padding for the .bss")
	buildTestLib(t, dir)
	path := writeOut(t, dir, "bigbss.out", out)
	checkOutput(t, bin, raw, l, p, out, path)
	so, se, err := run(nil, path)
	require.NoError(t, err, se)
	assert.Equal(t, "42\n", so)
	assert.Equal(t, loadedMsg+"\n", se)
}

// TestNoText: an empty text adds only the data segment.
func TestNoText(t *testing.T) {
	f, raw, l := openFile(t, lua)
	p := testPlan(l, nil)
	assert.Equal(t, l.SegAddr+PageSize, l.DataAddr)
	out, err := Write(f, raw, l, p)
	require.NoError(t, err)
	dir := t.TempDir()
	buildTestLib(t, dir)
	path := writeOut(t, dir, "lua5.4", out)
	checkOutput(t, lua, raw, l, p, out, path)
	so, se, err := run(nil, path, "-e", "print(6*7)")
	require.NoError(t, err, se)
	assert.Equal(t, "42\n", so)
}

// TestCheckToolsCatches is the control for checkTools: an output whose
// PT_PHDR no PT_LOAD covers makes readelf complain, and checkTools fails.
func TestCheckToolsCatches(t *testing.T) {
	f, raw, l := openFile(t, lua)
	out, err := Write(f, raw, l, testPlan(l, testText))
	require.NoError(t, err)
	phoff := le.Uint64(out[offPhoff:])
	require.Equal(t, uint32(elf.PT_PHDR), le.Uint32(out[phoff:]))
	le.PutUint64(out[phoff+8:], 0x10)  // p_offset
	le.PutUint64(out[phoff+16:], 0x10) // p_vaddr
	le.PutUint64(out[phoff+24:], 0x10) // p_paddr
	le.PutUint64(out[phoff+32:], 1<<20)
	path := writeOut(t, t.TempDir(), "broken", out)
	probs := toolProblems(t, path)
	assert.NotEmpty(t, probs, "readelf must complain")
	t.Log(probs)
}

// TestDeterministic: the same input and plan give the same bytes.
func TestDeterministic(t *testing.T) {
	f, raw, l := openFile(t, lua)
	locs := luaDispatch(t, f)
	p := testPlan(l, testText)
	p.Relatives = []RelativeEdit{{locs[1], l.TextAddr}, {locs[0], l.TextAddr}}
	a, err := Write(f, raw, l, p)
	require.NoError(t, err)
	b, err := Write(f, raw, l, p)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(a, b))
}

// BenchmarkWritePython measures Write alone on python3.11 with the test
// plan.
func BenchmarkWritePython(b *testing.B) {
	f, raw, l := openFile(b, python)
	p := testPlan(l, testText)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Write(f, raw, l, p); err != nil {
			b.Fatal(err)
		}
	}
}
