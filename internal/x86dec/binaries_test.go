package x86dec

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The binaries of the target platform whose whole executable code must
// decode exactly as objdump decodes it.
var realBinaries = []string{
	"/usr/bin/python3.11",
	"/usr/bin/lua5.4",
	"/lib/x86_64-linux-gnu/libc.so.6",
}

// execSection is one executable section's bytes.
type execSection struct {
	name string
	addr uint64
	data []byte
}

// execSections returns the executable PROGBITS sections of the ELF file at
// path (.init, .plt, .plt.got, .plt.sec, .text, .fini, ...).
func execSections(t testing.TB, path string) []execSection {
	t.Helper()
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []execSection
	for _, s := range f.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_EXECINSTR == 0 || s.Size == 0 {
			continue
		}
		data, err := s.Data()
		require.NoError(t, err, "%s %s", path, s.Name)
		out = append(out, execSection{name: s.Name, addr: s.Addr, data: data})
	}
	require.NotEmpty(t, out, "%s has no executable sections", path)
	return out
}

// sweepStats counts what a linear sweep compared with objdump found.
type sweepStats struct {
	insts, specials int
	lenMismatch     int // decoded fine but the next boundary differs from objdump's
	decodeErrors    int // error where objdump decoded a valid instruction
	bothBad         int // error where objdump printed (bad)
	oursOnly        int // decoded where objdump printed (bad)
	flowMismatch    int
	targetMismatch  int
	ripMismatch     int
	ripChecked      int
	targetsChecked  int
	specialCount    map[Special]int
	examples        []string
}

func (s *sweepStats) note(format string, args ...any) {
	if len(s.examples) < 40 {
		s.examples = append(s.examples, fmt.Sprintf(format, args...))
	}
}

// compareWithObjdump sweeps every executable section of path linearly and
// compares each instruction with objdump's line at the same address:
// boundary, Flow, direct target and %rip-relative target. After a
// disagreement the sweep resynchronises at objdump's next boundary so that
// every disagreement is counted.
func compareWithObjdump(t *testing.T, path string) {
	secs := execSections(t, path)
	var lines []objLine
	scanObjdump(t, false, func(ol objLine) { lines = append(lines, ol) },
		"-d", "-z", "--no-show-raw-insn", "-w", path)
	sort.Slice(lines, func(a, b int) bool { return lines[a].addr < lines[b].addr })

	st := sweepStats{specialCount: map[Special]int{}}
	var bytesSwept int
	for _, sec := range secs {
		end := sec.addr + uint64(len(sec.data))
		// lines[k:] are objdump's boundaries from this section on.
		k := sort.Search(len(lines), func(i int) bool { return lines[i].addr >= sec.addr })
		require.True(t, k < len(lines) && lines[k].addr == sec.addr,
			"%s: objdump has no instruction at the start of %s (%#x)", path, sec.name, sec.addr)
		bytesSwept += len(sec.data)
		for k < len(lines) && lines[k].addr < end {
			ol := lines[k]
			next := end
			if k+1 < len(lines) && lines[k+1].addr < end {
				next = lines[k+1].addr
			}
			k++
			st.insts++
			off := ol.addr - sec.addr
			inst, err := Decode(sec.data[off:], ol.addr)
			objBad := strings.Contains(ol.text, "(bad)")
			if err != nil {
				var de *Error
				require.True(t, errors.As(err, &de), "error is not *Error: %v", err)
				if objBad {
					st.bothBad++
				} else {
					st.decodeErrors++
					st.note("%s: error, objdump %q: %v", sec.name, ol.text, err)
				}
				continue
			}
			if objBad {
				st.oursOnly++
				st.note("%s %#x: decoded %q (len %d) where objdump says %q", sec.name, ol.addr, inst.String(), inst.Len, ol.text)
				continue
			}
			if inst.End() != next {
				st.lenMismatch++
				st.note("%s %#x: len %d %q, objdump len %d %q [% x]", sec.name, ol.addr, inst.Len, inst.String(),
					next-ol.addr, ol.text, sec.data[off:min(off+15, uint64(len(sec.data)))])
				continue
			}
			if inst.Special != SpecialNone {
				st.specials++
				st.specialCount[inst.Special]++
			}
			if f, want := inst.Flow(), objFlow(ol.text); f != want {
				st.flowMismatch++
				st.note("%#x: flow %v, objdump %q is %v", ol.addr, f, ol.text, want)
			}
			switch inst.Flow() {
			case FlowJump, FlowCondJump, FlowCall:
				st.targetsChecked++
				got, ok := inst.Target()
				want, wok := objTarget(ol.text)
				if !ok || !wok || got != want {
					st.targetMismatch++
					st.note("%#x: target %#x %v, objdump %q", ol.addr, got, ok, ol.text)
				}
			}
			got, ok := inst.MemRIPTarget()
			want, wok := objRIPTarget(ol.text)
			if ok || wok {
				st.ripChecked++
				if ok != wok || got != want {
					st.ripMismatch++
					st.note("%#x: rip target %#x %v, objdump %q", ol.addr, got, ok, ol.text)
				}
			}
		}
	}

	// Decode speed: a plain linear sweep, nothing else timed.
	start := time.Now()
	n := 0
	for _, sec := range secs {
		n += sweep(sec.data, sec.addr)
	}
	el := time.Since(start)

	for _, e := range st.examples {
		t.Log(e)
	}
	t.Logf("%s: %d instructions in %d bytes of %d sections; %d Special (%v); %d objdump (bad) also rejected",
		path, st.insts, bytesSwept, len(secs), st.specials, st.specialCount, st.bothBad)
	t.Logf("%s: checked %d direct targets, %d %%rip-relative operands", path, st.targetsChecked, st.ripChecked)
	t.Logf("%s: linear sweep %d instructions in %v: %.1f MB/s", path, n, el.Round(time.Millisecond),
		float64(bytesSwept)/el.Seconds()/1e6)
	assert.Zero(t, st.lenMismatch, "length mismatches")
	assert.Zero(t, st.decodeErrors, "decode errors on valid instructions")
	assert.Zero(t, st.oursOnly, "decoded where objdump says (bad)")
	assert.Zero(t, st.flowMismatch, "flow mismatches")
	assert.Zero(t, st.targetMismatch, "target mismatches")
	assert.Zero(t, st.ripMismatch, "%rip target mismatches")
	assert.Greater(t, st.insts, 10000)
}

// sweep decodes code linearly, skipping one byte after an error, and
// returns the number of instructions decoded.
func sweep(code []byte, addr uint64) int {
	n := 0
	for off := 0; off < len(code); {
		inst, err := Decode(code[off:], addr+uint64(off))
		if err != nil {
			off++
			continue
		}
		off += inst.Len
		n++
	}
	return n
}

func TestRealBinariesMatchObjdump(t *testing.T) {
	for _, path := range realBinaries {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("reference binary missing: %v", err)
			}
			t.Parallel()
			compareWithObjdump(t, path)
		})
	}
}

func BenchmarkDecodePythonText(b *testing.B) {
	f, err := elf.Open("/usr/bin/python3.11")
	require.NoError(b, err)
	defer f.Close()
	s := f.Section(".text")
	require.NotNil(b, s)
	text, err := s.Data()
	require.NoError(b, err)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		sweep(text, s.Addr)
	}
}
