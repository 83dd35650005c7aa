package ehframe

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

var update = flag.Bool("update", false, "regenerate the seed files under testdata/fuzz from the binaries on this machine")

const (
	python = "/usr/bin/python3.11"
	lua    = "/usr/bin/lua5.4"
	libc   = "/lib/x86_64-linux-gnu/libc.so.6"
)

// section returns the contents and address of bin's .eh_frame.
func section(t testing.TB, bin string) ([]byte, uint64) {
	t.Helper()
	f, err := elf.Open(bin)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s not installed", bin)
	}
	require.NoError(t, err)
	defer f.Close()
	s := f.Section(".eh_frame")
	require.NotNil(t, s, "%s has no .eh_frame", bin)
	data, err := s.Data()
	require.NoError(t, err)
	return data, s.Addr
}

// fdeLine matches readelf's FDE header lines:
// "00000018 0000000000000014 0000001c FDE cie=00000000 pc=0000000000007720..0000000000007742"
var fdeLine = regexp.MustCompile(`^([0-9a-f]+) [0-9a-f]+ [0-9a-f]+ FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.([0-9a-f]+)$`)

type readelfFDE struct {
	FDE
	augData []byte // the FDE's augmentation data as readelf prints it
}

// readelfFDEs runs readelf on bin and returns its FDEs in section order.
func readelfFDEs(t *testing.T, bin string) []readelfFDE {
	t.Helper()
	if _, err := exec.LookPath("readelf"); err != nil {
		t.Skip("readelf (binutils) not installed")
	}
	// no-follow-links: do not also dump the .eh_frame of a separate debug file.
	out, err := exec.Command("readelf", "--debug-dump=frames,no-follow-links", bin).Output()
	require.NoError(t, err)
	var fdes []readelfFDE
	fdeHeaders := 0
	inFDE := false // the lines being read belong to the last FDE
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line != "" && !strings.HasPrefix(line, " ") {
			inFDE = false
		}
		if strings.Contains(line, " FDE ") {
			fdeHeaders++
		}
		if m := fdeLine.FindStringSubmatch(line); m != nil {
			var v [3]uint64
			for i := range v {
				v[i], err = strconv.ParseUint(m[i+1], 16, 64)
				require.NoError(t, err)
			}
			fdes = append(fdes, readelfFDE{FDE: FDE{Offset: v[0], Start: v[1], End: v[2]}})
			inFDE = true
			continue
		}
		if rest, ok := strings.CutPrefix(line, "  Augmentation data:"); ok && inFDE {
			for _, b := range strings.Fields(rest) {
				x, err := strconv.ParseUint(b, 16, 8)
				require.NoError(t, err)
				fdes[len(fdes)-1].augData = append(fdes[len(fdes)-1].augData, byte(x))
			}
		}
	}
	require.NoError(t, sc.Err())
	require.Equal(t, fdeHeaders, len(fdes), "every readelf FDE line must parse")
	return fdes
}

func TestParseMatchesReadelf(t *testing.T) {
	for _, bin := range []string{python, lua, libc} {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			data, addr := section(t, bin)
			want := readelfFDEs(t, bin)
			require.NotEmpty(t, want)

			got, err := Parse(data, addr)
			require.NoError(t, err)
			require.True(t, slices.IsSortedFunc(got, func(a, b FDE) int {
				if a.Start != b.Start {
					return cmpU64(a.Start, b.Start)
				}
				return cmpU64(a.Offset, b.Offset)
			}), "FDEs must be sorted by Start")

			byOffset := slices.Clone(got)
			slices.SortFunc(byOffset, func(a, b FDE) int { return cmpU64(a.Offset, b.Offset) })
			require.Equal(t, len(want), len(byOffset))
			for i, w := range want {
				g := byOffset[i]
				require.Equal(t, [3]uint64{w.Offset, w.Start, w.End}, [3]uint64{g.Offset, g.Start, g.End}, "FDE %d", i)
			}
			t.Logf("%s: %d FDEs match readelf", bin, len(got))
		})
	}
}

// TestLSDA checks LSDA pointers in libc (its C++-style cancellation
// handlers use "zPLR" CIEs): an FDE has an LSDA exactly when readelf shows
// non-zero augmentation data for it, and every LSDA points into
// .gcc_except_table.
func TestLSDA(t *testing.T) {
	data, addr := section(t, libc)
	want := readelfFDEs(t, libc)
	f, err := elf.Open(libc)
	require.NoError(t, err)
	defer f.Close()
	get := f.Section(".gcc_except_table")
	require.NotNil(t, get)

	got, err := Parse(data, addr)
	require.NoError(t, err)
	lsda := map[uint64]uint64{}
	for _, fde := range got {
		if fde.LSDA != 0 {
			lsda[fde.Offset] = fde.LSDA
			assert.True(t, fde.LSDA >= get.Addr && fde.LSDA < get.Addr+get.Size,
				"FDE at %#x: LSDA %#x outside .gcc_except_table", fde.Offset, fde.LSDA)
		}
	}
	n := 0
	for _, w := range want {
		nonZero := slices.ContainsFunc(w.augData, func(b byte) bool { return b != 0 })
		_, has := lsda[w.Offset]
		assert.Equal(t, nonZero, has, "FDE at %#x: augmentation data % x", w.Offset, w.augData)
		if nonZero {
			n++
		}
	}
	require.NotZero(t, n)
	t.Logf("libc: %d FDEs with an LSDA", n)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Builders for hand-made sections.

// entry returns a 32-bit-length entry with the given id and body.
func entry(id uint32, body ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0)
	b = binary.LittleEndian.AppendUint32(b, id)
	for _, x := range body {
		b = append(b, x...)
	}
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// entry64 returns the same with the 64-bit length form.
func entry64(id uint32, body ...[]byte) []byte {
	b := []byte{0xff, 0xff, 0xff, 0xff}
	b = binary.LittleEndian.AppendUint64(b, 0)
	b = binary.LittleEndian.AppendUint32(b, id)
	for _, x := range body {
		b = append(b, x...)
	}
	binary.LittleEndian.PutUint64(b[4:], uint64(len(b)-12))
	return b
}

// cieBody is version, augmentation, code align 1, data align -8, RA 16,
// then augmentation data (with its uleb length when aug starts with 'z').
func cieBody(version byte, aug string, augData ...byte) []byte {
	b := []byte{version}
	b = append(b, aug...)
	b = append(b, 0)
	if version == 4 {
		b = append(b, 8, 0)
	}
	b = append(b, 1, 0x78, 16)
	if strings.HasPrefix(aug, "z") {
		b = append(b, byte(len(augData)))
		b = append(b, augData...)
	}
	return append(b, 0x0c, 0x07, 0x08) // DW_CFA_def_cfa rsp+8
}

func le32(v int32) []byte  { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// cieZR is a "zR" CIE with pcrel|sdata4 FDE pointers, as GCC emits.
var cieZR = entry(0, cieBody(1, "zR", 0x1b))

func TestParseValid(t *testing.T) {
	const addr = 0x10000
	// A "zPLR" CIE: personality indirect|pcrel|sdata4, LSDA pcrel|sdata4.
	ciePLR := entry(0, cieBody(1, "zPLR", cat([]byte{0x9b}, le32(0x1234), []byte{0x1b, 0x1b})...))
	n := uint32(len(ciePLR))
	// FDE: pc_begin at field offset n+8 (length, CIE pointer), LSDA field at
	// n+8+4+4+1.
	fdePLR := entry(n+4, le32(-0x100), le32(0x40), []byte{4}, le32(0x200))
	beginField := uint64(addr) + uint64(n) + 8
	lsdaField := beginField + 9

	cie3 := entry(0, []byte{3, 'z', 'R', 0, 1, 0x78, 0x10, 1, 0x1b})
	cie4 := entry(0, cieBody(4, "zR", 0x1b))
	n4 := uint32(len(cie4))
	cieAbs := entry(0, cieBody(1, ""))        // no augmentation: absptr
	cieU2 := entry(0, cieBody(1, "zR", 0x02)) // udata2
	cieSleb := entry(0, cieBody(1, "zRS", 0x19))
	cieU4B := entry(0, cieBody(1, "zRB", 0x03))

	tests := []struct {
		name string
		data []byte
		want []FDE
	}{
		{"empty", nil, nil},
		{"terminator only", make([]byte, 4), nil},
		{"CIE only", cieZR, nil},
		{
			"zPLR with LSDA", cat(ciePLR, fdePLR),
			[]FDE{{Start: beginField - 0x100, End: beginField - 0x100 + 0x40, LSDA: lsdaField + 0x200, Offset: uint64(n)}},
		},
		{
			"CIE version 3, uleb RA", cat(cie3, entry(uint32(len(cie3))+4, le32(8), le32(0x10), []byte{0})),
			[]FDE{{Start: addr + uint64(len(cie3)) + 8 + 8, End: addr + uint64(len(cie3)) + 8 + 8 + 0x10, Offset: uint64(len(cie3))}},
		},
		{
			// The first FDE has a zero start and is dropped; the second's
			// start field is at n4+17+8 and holds -8.
			"CIE version 4", cat(cie4, entry(n4+4, le32(0), le32(4), []byte{0}), entry(n4+17+4, le32(-8), le32(4), []byte{0})),
			[]FDE{{Start: addr + uint64(n4) + 17, End: addr + uint64(n4) + 17 + 4, Offset: uint64(n4) + 17}},
		},
		{
			"absptr, no augmentation", cat(cieAbs, entry(uint32(len(cieAbs))+4, le64(0x401000), le64(0x20))),
			[]FDE{{Start: 0x401000, End: 0x401020, Offset: uint64(len(cieAbs))}},
		},
		{
			"udata2", cat(cieU2, entry(uint32(len(cieU2))+4, []byte{0x34, 0x12, 0x10, 0x00, 0})),
			[]FDE{{Start: 0x1234, End: 0x1244, Offset: uint64(len(cieU2))}},
		},
		{
			"pcrel sleb128 with S", cat(cieSleb, entry(uint32(len(cieSleb))+4, []byte{0x7f, 0x05, 0})),
			[]FDE{{Start: addr + uint64(len(cieSleb)) + 8 - 1, End: addr + uint64(len(cieSleb)) + 8 - 1 + 5, Offset: uint64(len(cieSleb))}},
		},
		{
			"udata4 with B, zero-length FDE kept", cat(cieU4B, entry(uint32(len(cieU4B))+4, le32(0x5000), le32(0), []byte{0})),
			[]FDE{{Start: 0x5000, End: 0x5000, Offset: uint64(len(cieU4B))}},
		},
		{
			"64-bit lengths", cat(entry64(0, cieBody(1, "zR", 0x03)), entry64(uint32(len(entry64(0, cieBody(1, "zR", 0x03))))+12, le32(0x7000), le32(0x30), []byte{0})),
			[]FDE{{Start: 0x7000, End: 0x7030, Offset: uint64(len(entry64(0, cieBody(1, "zR", 0x03))))}},
		},
		{
			"sorted by start; stops at terminator",
			cat(cieU4B,
				entry(uint32(len(cieU4B))+4, le32(0x9000), le32(1), []byte{0}),
				entry(uint32(len(cieU4B))+4+17, le32(0x8000), le32(1), []byte{0}),
				make([]byte, 4),
				entry(uint32(len(cieU4B))+4+17+17+4, le32(0x1000), le32(1), []byte{0})),
			[]FDE{
				{Start: 0x8000, End: 0x8001, Offset: uint64(len(cieU4B)) + 17},
				{Start: 0x9000, End: 0x9001, Offset: uint64(len(cieU4B))},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.data, addr)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseHostile(t *testing.T) {
	nZR := uint32(len(cieZR))
	// fde returns a well-formed FDE body for cieZR placed at offset at.
	fde := func(at uint32) []byte { return entry(at+4, le32(0x100), le32(0x10), []byte{0}) }
	giant := bytes.Repeat([]byte{0xff}, 20)
	cieU8 := entry(0, cieBody(1, "zR", 0x04))
	nU8 := uint32(len(cieU8))
	cieLR := entry(0, cieBody(1, "zLR", 0x1b, 0x1b))
	nLR := uint32(len(cieLR))
	tests := []struct {
		name    string
		data    []byte
		off     uint64
		wantMsg string
	}{
		{"truncated length", []byte{0x14, 0}, 0, "truncated"},
		{"truncated 64-bit length", []byte{0xff, 0xff, 0xff, 0xff, 1, 2}, 4, "truncated"},
		{"length past end", cieZR[:len(cieZR)-1], 0, "length past end of section"},
		{"64-bit length past end", cat([]byte{0xff, 0xff, 0xff, 0xff}, le64(^uint64(0)), make([]byte, 16)), 0, "length past end of section"},
		{"reserved length", cat(le32(-2), make([]byte, 8)), 0, "reserved initial length"},
		{"truncated CIE", entry(0, []byte{1, 'z', 'R', 0, 1}), 13, "truncated LEB128"},
		{"CIE without version", entry(0), 8, "truncated byte"},
		{"unterminated augmentation", entry(0, []byte{1, 'z', 'R'}), 9, "unterminated augmentation string"},
		{"bad version", entry(0, cieBody(2, "zR", 0x1b)), 8, "unsupported CIE version (0x2)"},
		{"bad augmentation", entry(0, cieBody(1, "zX", 0x1b)), 10, `unknown augmentation character in "zX" ("X")`},
		{"legacy eh augmentation", entry(0, cieBody(1, "eh")), 9, `unsupported augmentation string ("eh")`},
		{"augmentation data past end", entry(0, []byte{1, 'z', 'R', 0, 1, 0x78, 16, 0x40, 0x1b}), 9, "augmentation data past end of CIE"},
		{"giant LEB128", entry(0, cat([]byte{1, 0}, giant)), 10, "LEB128 overflows 64 bits"},
		{"LEB128 10th byte overflow", entry(0, cat([]byte{1, 0}, bytes.Repeat([]byte{0x80}, 9), []byte{0x02, 0x78, 16})), 10, "LEB128 overflows 64 bits"},
		{"SLEB128 10th byte overflow", entry(0, cat([]byte{1, 0, 1}, bytes.Repeat([]byte{0x80}, 9), []byte{0x40, 16})), 11, "LEB128 overflows 64 bits"},
		{"datarel FDE encoding", entry(0, cieBody(1, "zR", 0x3b)), 16, "unsupported pointer encoding DW_EH_PE_datarel (0x3b)"},
		{"textrel personality", entry(0, cieBody(1, "zP", 0x23, 0, 0, 0, 0)), 16, "DW_EH_PE_textrel"},
		{"funcrel LSDA", entry(0, cieBody(1, "zL", 0x43)), 16, "DW_EH_PE_funcrel"},
		{"aligned", entry(0, cieBody(1, "zR", 0x50)), 16, "DW_EH_PE_aligned"},
		{"unknown format", entry(0, cieBody(1, "zR", 0x05)), 16, "unknown pointer encoding format (0x5)"},
		{"omit FDE encoding", entry(0, cieBody(1, "zR", 0xff)), 16, "unsupported FDE pointer encoding (0xff)"},
		{"indirect FDE encoding", entry(0, cieBody(1, "zR", 0x9b)), 16, "unsupported FDE pointer encoding (0x9b)"},
		{"truncated personality", entry(0, cieBody(1, "zP", 0x9b, 0, 0)), 17, "truncated 4-byte value"},
		{"CIE pointer loop", cat(cieZR, entry(4, le32(0), le32(1), []byte{0})), uint64(nZR) + 4, "CIE pointer does not reference a CIE"},
		{"CIE pointer to FDE", cat(cieZR, fde(nZR), entry(4+17, le32(0), le32(1), []byte{0})), uint64(nZR) + 17 + 4, "CIE pointer does not reference a CIE"},
		{"CIE pointer into CIE", cat(cieZR, entry(nZR, le32(0), le32(1), []byte{0})), uint64(nZR) + 4, "CIE pointer does not reference a CIE (0x4)"},
		{"CIE pointer out of range", cat(cieZR, entry(nZR+8, le32(0), le32(1), []byte{0})), uint64(nZR) + 4, "CIE pointer before start of section"},
		{"truncated FDE", cat(cieZR, entry(nZR+4, le32(0x100))), uint64(nZR) + 12, "truncated 4-byte value"},
		{"FDE augmentation past end", cat(cieZR, entry(nZR+4, le32(0x100), le32(1), []byte{5})), uint64(nZR) + 16, "augmentation data past end of FDE"},
		{"range wraps", cat(cieU8, entry(nU8+4, le64(^uint64(0)-0xf), le64(0x100), []byte{0})), uint64(nU8) + 8, "PC range wraps around"},
		{"truncated LSDA", cat(cieLR, entry(nLR+4, le32(0x100), le32(1), []byte{2, 0, 0})), uint64(nLR) + 17, "truncated 4-byte value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fdes, err := Parse(tt.data, 0x400000)
			require.Error(t, err, "got %v", fdes)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Contains(t, err.Error(), tt.wantMsg)
			assert.Equal(t, tt.off, fe.Off, "error offset: %v", err)
			assert.True(t, strings.HasPrefix(err.Error(), fmt.Sprintf(".eh_frame offset %#x: ", fe.Off)), err.Error())
		})
	}
}

// TestSeedCorpus regenerates (with -update) or checks the committed seeds
// taken from real sections: they must still parse.
func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if *update {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		data, addr := section(t, lua)
		head := firstEntries(t, data, 1024)
		writeSeed(t, filepath.Join(dir, "lua54_head"), append(head, 0, 0, 0, 0), addr)

		data, addr = section(t, libc)
		pair, off := entriesWithAugmentation(t, data, "zPLR")
		writeSeed(t, filepath.Join(dir, "libc_zPLR"), pair, addr+off)
	}
	for _, name := range []string{"lua54_head", "libc_zPLR"} {
		data, addr := readSeed(t, filepath.Join(dir, name))
		fdes, err := Parse(data, addr)
		require.NoError(t, err, name)
		require.NotEmpty(t, fdes, name)
	}
}

// firstEntries returns the whole entries of data that start below limit.
func firstEntries(t *testing.T, data []byte, limit int) []byte {
	off := 0
	for off < limit {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		require.NotZero(t, n)
		require.NotEqual(t, 0xffffffff, n)
		off += 4 + n
	}
	return slices.Clone(data[:off])
}

// entriesWithAugmentation returns the first CIE with augmentation string aug
// together with the FDE that follows it, and the CIE's offset.
func entriesWithAugmentation(t *testing.T, data []byte, aug string) ([]byte, uint64) {
	for off := 0; off+8 < len(data); {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		require.NotZero(t, n)
		id := binary.LittleEndian.Uint32(data[off+4:])
		if id == 0 && bytes.HasPrefix(data[off+9:], append([]byte(aug), 0)) {
			m := int(binary.LittleEndian.Uint32(data[off+4+n:]))
			return slices.Clone(data[off : off+4+n+4+m]), uint64(off)
		}
		off += 4 + n
	}
	t.Fatalf("no CIE with augmentation %q", aug)
	return nil, 0
}

// writeSeed writes a corpus file in the format of 'go test fuzz v1'.
func writeSeed(t *testing.T, path string, data []byte, addr uint64) {
	s := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint64(%d)\n", data, addr)
	require.NoError(t, os.WriteFile(path, []byte(s), 0o644))
}

func readSeed(t *testing.T, path string) ([]byte, uint64) {
	vals, err := testenv.FuzzValues(path)
	require.NoError(t, err, "run 'go test -run TestSeedCorpus -update' to create it")
	require.Len(t, vals, 2)
	data, err := testenv.FuzzBytes(vals[0])
	require.NoError(t, err)
	a, ok := strings.CutPrefix(vals[1], "uint64(")
	require.True(t, ok)
	addr, err := strconv.ParseUint(strings.TrimSuffix(a, ")"), 10, 64)
	require.NoError(t, err)
	return data, addr
}

func FuzzParse(f *testing.F) {
	f.Add(cieZR, uint64(0x1000))
	f.Add(cat(cieZR, entry(uint32(len(cieZR))+4, le32(-0x40), le32(0x10), []byte{0})), uint64(0x401000))
	f.Add(cat(entry64(0, cieBody(1, "zPLR", cat([]byte{0x9b}, le32(0x10), []byte{0x1b, 0x1b})...)), make([]byte, 4)), uint64(0))
	f.Add(entry(0, cieBody(4, "zRS", 0x19)), ^uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, addr uint64) {
		fdes, err := Parse(data, addr)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if fe.Off > uint64(len(data)) {
				t.Fatalf("error offset %#x beyond section of %d bytes", fe.Off, len(data))
			}
			return
		}
		for i, fde := range fdes {
			if fde.End < fde.Start || fde.Start == 0 || fde.Offset >= uint64(len(data)) {
				t.Fatalf("bad FDE %+v", fde)
			}
			if i > 0 && fdes[i-1].Start > fde.Start {
				t.Fatalf("FDEs not sorted at %d", i)
			}
		}
	})
}
