package x86dec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A differential sweep of the opcode maps against objdump: every opcode
// of the legacy maps (1-byte, 0F, 0F 38, 0F 3A) under common prefixes and
// ModRM shapes, and of the VEX and EVEX maps under a spread of
// prefix-field values. Where both decode, length and Flow must agree.
// This is how the silent x86asm errors beyond the real binaries were found
// (mov %crN with mod != 11; prefixed VEX; vzeroupper with a vvvv).

// opcodeSlot is the spacing of cases; the gap is filled with 1-byte NOPs,
// so objdump resynchronises at once whatever it made of a case, and any
// immediate is read from the filler.
const opcodeSlot = 16

func legacyCases() [][]byte {
	prefixes := [][]byte{nil, {0x66}, {0xF2}, {0xF3}, {0x48}, {0x66, 0x48}, {0x67}, {0x64}}
	var modrms [][]byte
	for r := byte(0); r < 8; r++ {
		modrms = append(modrms, []byte{r << 3}, []byte{0xC0 | r<<3 | r})
	}
	modrms = append(modrms, []byte{0x05, 1, 2, 3, 4}, []byte{0x44, 0x24, 0x08}, []byte{0x84, 0x24, 1, 2, 3, 4})
	var cases [][]byte
	for b := 0; b < 256; b++ {
		for _, op := range [][]byte{{byte(b)}, {0x0F, byte(b)}, {0x0F, 0x38, byte(b)}, {0x0F, 0x3A, byte(b)}} {
			if len(op) == 1 && op[0] == 0x9B {
				// objdump prints fwait merged with a following x87
				// instruction, and a REX before fwait alone; the CPU
				// executes them as separate instructions, as x86asm says.
				continue
			}
			for _, p := range prefixes {
				for _, m := range modrms {
					cases = append(cases, concat(p, op, m))
				}
			}
		}
	}
	return cases
}

func vexCases() [][]byte {
	var vex [][]byte
	for pp := byte(0); pp < 4; pp++ {
		for _, l := range []byte{0, 4} {
			// Segment and address-size prefixes are allowed before VEX.
			vex = append(vex, []byte{0xC5, 0xF8 | l | pp}, []byte{0x67, 0xC5, 0xF8 | l | pp})
			for m := byte(1); m <= 3; m++ {
				for _, w := range []byte{0, 0x80} {
					vex = append(vex, []byte{0xC4, 0xE0 | m, 0x78 | w | l | pp})
				}
			}
		}
	}
	return opcodeCases(vex)
}

func evexCases() [][]byte {
	var evex [][]byte
	for pp := byte(0); pp < 4; pp++ {
		for m := byte(1); m <= 3; m++ {
			for _, w := range []byte{0, 0x80} {
				for _, p2 := range []byte{0x48, 0x18} { // 512-bit; broadcast or rounding
					evex = append(evex, []byte{0x62, 0xF0 | m, 0x7C | w | pp, p2})
				}
				evex = append(evex, []byte{0x65, 0x67, 0x62, 0xF0 | m, 0x7C | w | pp, 0x28})
			}
		}
	}
	return opcodeCases(evex)
}

// opcodeCases appends every opcode byte and a few ModRM shapes to each prefix.
func opcodeCases(prefixes [][]byte) [][]byte {
	modrms := [][]byte{{0x00}, {0x05, 1, 2, 3, 4}, {0x44, 0x24, 0x08}, {0xC1}}
	var cases [][]byte
	for _, p := range prefixes {
		for b := 0; b < 256; b++ {
			for _, m := range modrms {
				cases = append(cases, concat(p, []byte{byte(b)}, m))
			}
		}
	}
	return cases
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestOpcodeSpaceAgainstObjdump(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cases   func() [][]byte
		minBoth int // most of the VEX/EVEX space is unassigned
	}{
		{"legacy", legacyCases, 50000},
		{"vex", vexCases, 5000},
		{"evex", evexCases, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			compareCases(t, tc.cases(), tc.minBoth)
		})
	}
}

func compareCases(t *testing.T, cases [][]byte, minBoth int) {
	blob := make([]byte, len(cases)*opcodeSlot)
	for k, c := range cases {
		s := blob[k*opcodeSlot : (k+1)*opcodeSlot]
		for i := range s {
			s[i] = 0x90
		}
		copy(s, c)
	}
	file := filepath.Join(t.TempDir(), "cases.bin")
	require.NoError(t, os.WriteFile(file, blob, 0o644))
	obj := make([]objLine, len(cases))
	scanObjdumpAt(t, true, func(a uint64) bool { return a%opcodeSlot == 0 },
		func(ol objLine) { obj[ol.addr/opcodeSlot] = ol },
		"-D", "-b", "binary", "-m", "i386:x86-64", "-w", file)

	var both, errOK, okBad, lenBad, flowBad, special int
	for k := range cases {
		ol := obj[k]
		require.NotEmpty(t, ol.text, "objdump shows nothing at case %d", k)
		a := uint64(k * opcodeSlot)
		inst, err := Decode(blob[a:a+opcodeSlot], a)
		objBad := strings.Contains(ol.text, "(bad)")
		switch {
		case err != nil && objBad:
			continue
		case err != nil:
			errOK++ // x86asm does not know it (or it is vendor-dependent); not silent
			continue
		case objBad:
			okBad++ // objdump is stricter about prefixes and reserved fields
			continue
		}
		both++
		if inst.Special != SpecialNone {
			special++
		}
		if inst.Len != len(ol.bytes) {
			lenBad++
			assert.Failf(t, "length", "[% x]: len %d %q, objdump len %d %q", ol.bytes, inst.Len, inst.String(), len(ol.bytes), ol.text)
			continue
		}
		if f, want := inst.Flow(), objFlow(ol.text); f != want {
			flowBad++
			assert.Failf(t, "flow", "[% x]: %v %q, objdump %v %q", ol.bytes, f, inst.String(), want, ol.text)
		}
	}
	t.Logf("%d cases: %d decoded by both (%d Special); %d rejected by us only, %d by objdump only",
		len(cases), both, special, errOK, okBad)
	assert.Zero(t, lenBad)
	assert.Zero(t, flowBad)
	assert.Greater(t, both, minBoth)
}
