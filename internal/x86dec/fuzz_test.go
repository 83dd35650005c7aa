package x86dec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

var fuzzSeeds = [][]byte{
	{0xF3, 0x0F, 0x1E, 0xFA, 0x55},                      // endbr64; push %rbp
	{0xF3, 0x0F, 0x1E, 0xFB},                            // endbr32
	{0xF3, 0x48, 0x0F, 0x1E, 0xC8},                      // rdsspq %rax
	{0xC5, 0xF8, 0x77, 0xC3},                            // vzeroupper; ret
	{0xC5, 0xFC, 0x77},                                  // vzeroall
	{0xC4, 0xE1, 0x78, 0x77},                            // vzeroupper, 3-byte VEX
	{0x66, 0x4C, 0x0F, 0x38, 0xF6, 0x0D, 1, 2, 3, 4},    // adcx disp(%rip),%r9
	{0xF3, 0x4C, 0x0F, 0x38, 0xF6, 0x4C, 0x98, 0x10},    // adox
	{0x0F, 0x01, 0xEE},                                  // rdpkru
	{0x0F, 0x01, 0xEF},                                  // wrpkru
	{0x3E, 0xFF, 0xE0},                                  // notrack jmp *%rax
	{0x67, 0x62, 0xE1, 0xFE, 0x48, 0x6F, 0x06},          // addr32 vmovdqu64
	{0x64, 0xC5, 0xFE, 0x6F, 0x05, 1, 2, 3, 4},          // vmovdqu %fs:disp(%rip)
	{0x62, 0xE1, 0xFE, 0x48, 0x6F, 0x0D, 0, 0x10, 0, 0}, // vmovdqu64 disp(%rip),%zmm17
	{0x66, 0x2E, 0x0F, 0x1F, 0x84, 0, 0, 0, 0, 0},       // cs nopw
	{0x66, 0x90},                                        // xchg %ax,%ax
	{0x0F, 0x1F, 0x44, 0x00, 0x00},                      // nopl
	{0xE8, 0x10, 0, 0, 0},                               // call
	{0x0F, 0x84, 0xF0, 0xFF, 0xFF, 0xFF},                // je back
	{0xE3, 0x02},                                        // jrcxz
	{0xC7, 0xF8, 0, 1, 0, 0},                            // xbegin
	{0xFF, 0x24, 0xC5, 0, 0x10, 0x6D, 0},                // jmp *table(,%rax,8)
	{0x48, 0x8B, 0x05, 0xF0, 0xFF, 0xFF, 0xFF},          // mov -16(%rip),%rax
	{0x48, 0xC7, 0x05, 1, 0, 0, 0, 2, 0, 0, 0},          // movq $2,1(%rip)
	{0x0F, 0x20, 0x90},                                  // mov %cr2,%rax (mod ignored)
	{0x66, 0xE9, 0, 0},                                  // vendor-dependent jmpw
	{0xF3},                                              // lone prefix
	{},
}

// FuzzDecode checks Decode's contract on arbitrary bytes: no panic; a
// length within the input and 15 bytes; the same result from the
// instruction's own bytes and on a second call; no success on a proper
// prefix of an instruction; targets consistent with the encoding.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code []byte) {
		const addr = 0x401000
		inst, err := Decode(code, addr)
		if err != nil {
			var de *Error
			require.True(t, errors.As(err, &de), "error is not *Error: %v", err)
			assert.Equal(t, uint64(addr), de.Addr)
			assert.True(t, bytes.Equal(code[:min(len(code), MaxLen)], de.Bytes), "Error.Bytes % x", de.Bytes)
			assert.NotEmpty(t, de.Error())
			return
		}
		require.GreaterOrEqual(t, inst.Len, 1)
		require.LessOrEqual(t, inst.Len, MaxLen)
		require.LessOrEqual(t, inst.Len, len(code))
		assert.True(t, inst.Op != 0 || inst.Special != SpecialNone, "no opcode and no Special")
		assert.Equal(t, uint64(addr)+uint64(inst.Len), inst.End())

		again, err := Decode(code, addr)
		require.NoError(t, err)
		assert.Equal(t, inst, again, "not deterministic")
		own, err := Decode(code[:inst.Len], addr)
		require.NoError(t, err, "its own %d bytes do not decode", inst.Len)
		assert.Equal(t, inst, own, "depends on bytes after the instruction")
		_, err = Decode(code[:inst.Len-1], addr)
		assert.Error(t, err, "a proper prefix decodes")

		assert.NotEmpty(t, inst.String())
		assert.NotContains(t, inst.Flow().String(), "Flow(")
		tgt, ok := inst.Target()
		switch inst.Flow() {
		case FlowJump, FlowCondJump, FlowCall:
			require.True(t, ok, "direct branch without target")
			rel, isRel := inst.Args[0].(x86asm.Rel)
			require.True(t, isRel)
			assert.Equal(t, inst.End()+uint64(int64(rel)), tgt)
		default:
			assert.False(t, ok, "target on %v", inst.Flow())
		}
		if rip, ok := inst.MemRIPTarget(); ok && inst.PCRel == 4 {
			disp := int32(binary.LittleEndian.Uint32(code[inst.PCRelOff:]))
			assert.Equal(t, uint32(inst.End()+uint64(int64(disp))), uint32(rip), "rip target vs encoded displacement")
		}
	})
}
