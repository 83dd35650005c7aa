package elfpatch

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

var update = flag.Bool("update", false, "regenerate testdata/fuzz/FuzzWrite with gcc")

const seedDir = "testdata/fuzz/FuzzWrite"

// seedC is the seed programs' source: a constructor, a pointer table (so
// PIE seeds carry RELATIVE relocations) and an import.
const seedC = `#include <stdio.h>
static int counter;
static int one(void) { return 1; }
static int two(void) { return 2; }
static int (*const table[])(void) = {one, two};
__attribute__((constructor)) static void init(void) { counter = 1; }
int main(int argc, char **argv) { printf("%d\n", table[argc & 1]() + counter); return 0; }
`

// seeds are the committed seed inputs: small stripped executables of the
// three kinds the writer handles.
var seeds = []struct {
	name  string
	flags []string
}{
	{"pie", []string{"-O2", "-s", "-fPIE", "-pie", "-Wl,-z,noseparate-code"}},
	{"exec", []string{"-O2", "-s", "-no-pie", "-Wl,-z,noseparate-code"}},
	{"shared", []string{"-O2", "-s", "-shared", "-fPIC", "-Wl,-z,noseparate-code"}},
}

// TestSeedCorpus regenerates the seeds with -update and checks that each
// one patches.
func TestSeedCorpus(t *testing.T) {
	for _, s := range seeds {
		path := filepath.Join(seedDir, s.name)
		if *update {
			bin := testenv.BuildC(t, t.TempDir(), s.name, seedC, s.flags...)
			b, err := os.ReadFile(bin)
			require.NoError(t, err)
			require.NoError(t, os.MkdirAll(seedDir, 0o755))
			require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644))
		}
		data := readSeed(t, s.name)
		assert.Less(t, len(data), 20<<10)
		f, err := elfimage.NewFile(data, s.name)
		require.NoError(t, err)
		l, err := NewLayout(f, data)
		require.NoError(t, err)
		out, err := Write(f, data, l, fuzzPlan(f, l))
		require.NoError(t, err, s.name)
		assert.Greater(t, len(out), len(data))
	}
}

func readSeed(t testing.TB, name string) []byte {
	vals, err := testenv.FuzzValues(filepath.Join(seedDir, name))
	if err != nil {
		t.Skipf("no seed: %v (run go test -run TestSeedCorpus -update)", err)
	}
	require.NotEmpty(t, vals)
	b, err := testenv.FuzzBytes(vals[0])
	require.NoError(t, err)
	return b
}

// fuzzPlan is the fixed small plan of FuzzWrite: the test plan plus a
// write at the start of the first code section and an edit of the lowest
// relative relocation, when the input has them.
func fuzzPlan(f *elfimage.File, l *Layout) *Plan {
	p := testPlan(l, testText)
	// The byte edit goes into real code: a mutated file can flag any
	// section executable (one fuzz input made .gnu.version_r "code"), and
	// an int3 over version records would make the output unreadable for
	// reasons that have nothing to do with the writer.
	for _, cs := range f.CodeSections() {
		if cs.Type == elf.SHT_PROGBITS {
			p.Writes = []ByteEdit{{cs.Addr, []byte{0xcc}}}
			break
		}
	}
	if len(f.Relative) > 0 {
		locs := make([]uint64, 0, len(f.Relative))
		for loc := range f.Relative {
			locs = append(locs, loc)
		}
		p.Relatives = []RelativeEdit{{slices.Min(locs), l.TextAddr}}
	}
	return p
}

// FuzzWrite feeds arbitrary bytes through elfimage, NewLayout and Write.
// Nothing may panic; errors are one line and typed; an output is a valid
// image that shows the plan's dynamic entry and sections and keeps the
// input's bytes.
func FuzzWrite(f *testing.F) {
	for _, s := range seeds {
		b := readSeed(f, s.name)
		f.Add(b)
		// The same file with its section headers or dynamic section damaged.
		for _, edit := range []func(b []byte){
			func(b []byte) { le.PutUint16(b[offShstrnd:], 0) },
			func(b []byte) { b[offShnum] = 0 },
			func(b []byte) { // every PT_DYNAMIC emptied
				phoff := le.Uint64(b[offPhoff:])
				for i := range uint64(le.Uint16(b[offPhnum:])) {
					if h := b[phoff+i*phdrSize:]; le.Uint32(h) == uint32(elf.PT_DYNAMIC) {
						clear(b[le.Uint64(h[8:]) : le.Uint64(h[8:])+le.Uint64(h[32:])])
					}
				}
			},
		} {
			c := slices.Clone(b)
			edit(c)
			f.Add(c)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := elfimage.NewFile(data, "fuzz")
		if err != nil {
			return
		}
		checkErr := func(err error) {
			var pe *Error
			if !errors.As(err, &pe) || pe.File != "fuzz" || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error %T %v", err, err)
			}
		}
		l, err := NewLayout(img, data)
		if err != nil {
			checkErr(err)
			return
		}
		if l.TextOff > uint64(len(data))+1<<20 {
			return // valid, but the padding would make the fuzzer slow
		}
		sum := sha256.Sum256(data)
		p := fuzzPlan(img, l)
		out, err := Write(img, data, l, p)
		if sha256.Sum256(data) != sum {
			t.Fatal("Write modified its input")
		}
		if err != nil {
			checkErr(err)
			return
		}
		if !bytes.Equal(out[ehdrSize:len(data)], data[ehdrSize:]) {
			// Only the plan's edits may differ, and the dynamic
			// entries when they are rewritten where they are.
			var dynOff, dynEnd uint64
			r0, err0 := parseRaw(data, "in")
			r1, err1 := parseRaw(out, "out")
			if err0 == nil && err1 == nil && r0.dynIdx >= 0 && r1.dynIdx >= 0 && r0.progs[r0.dynIdx] == r1.progs[r1.dynIdx] {
				dynOff, dynEnd = r0.progs[r0.dynIdx].Off, r0.progs[r0.dynIdx].Off+r0.progs[r0.dynIdx].Filesz
			}
			n := 0
			for i := ehdrSize; i < len(data); i++ {
				if out[i] != data[i] && (uint64(i) < dynOff || uint64(i) >= dynEnd) {
					n++
				}
			}
			// One write byte, and the 8-byte addend of each
			// R_X86_64_RELATIVE relocation at an edited location (a
			// file may have several at one, all of which ld.so
			// applies: the writer edits each).
			if allowed := 1 + 8*relativesAt(img, data, l, p); n > allowed {
				t.Fatalf("%d input bytes changed, at most %d expected", n, allowed)
			}
		}
		fo, err := elfimage.NewFile(out, "out")
		if err != nil {
			t.Fatalf("output rejected: %v", err)
		}
		h, err := ReadHeaders(out, "out")
		if err != nil {
			t.Fatalf("output headers rejected: %v", err)
		}
		for _, d := range p.DynTags {
			if v, ok := h.DynValue(d.Tag); !ok || v != d.Val {
				t.Fatalf("output has %v = %#x, %v; want %#x", d.Tag, v, ok, d.Val)
			}
		}
		for _, s := range p.Sections {
			if got := fo.Section(s.Name); got == nil || got.Addr != s.Addr {
				t.Fatalf("output lacks section %s at %#x: %+v", s.Name, s.Addr, got)
			}
		}
	})
}

// relativesAt counts the R_X86_64_RELATIVE entries of data's relocation
// tables (as the writer finds them) at the locations p edits.
func relativesAt(img *elfimage.File, data []byte, l *Layout, p *Plan) int {
	r, err := parseRaw(data, "in")
	if err != nil {
		return 0
	}
	w := &writer{f: img, r: r, l: l, p: p, name: "in"}
	n := 0
	_ = w.relaTables(func(off uint64, ent []byte) {
		where, typ := le.Uint64(ent), elf.R_X86_64(uint32(le.Uint64(ent[8:])))
		for _, e := range p.Relatives {
			if typ == elf.R_X86_64_RELATIVE && where == e.Location {
				n++
			}
		}
	})
	return n
}
