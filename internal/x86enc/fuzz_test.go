package x86enc

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// FuzzRelocate checks Relocate's contract on arbitrary bytes and
// displacements: no panic; a *RelocError and no bytes on failure; on
// success a result that decodes to the same opcode and target with the
// other bytes kept (checkRelocated), and that moves back unchanged when
// Relocate only adjusted a displacement.
func FuzzRelocate(f *testing.F) {
	for _, c := range relocForms {
		f.Add(c.code, int64(gib))
		f.Add(c.code, int64(-gib))
	}
	f.Add([]byte{0x67, 0xE3, 0x00}, int64(1)<<40)
	f.Add([]byte{0xE9, 0xFB, 0xFF, 0xFF, 0x7F}, int64(-5))
	f.Add([]byte{0x66, 0xC7, 0xF8, 0x00, 0x00}, int64(0))
	f.Add([]byte{0x67, 0x8B, 0x05, 0x00, 0x00, 0x00, 0x00}, int64(16))
	f.Add([]byte{}, int64(0))
	f.Fuzz(func(t *testing.T, code []byte, delta int64) {
		const from = 0x401000
		newAddr := from + uint64(delta)
		relocateOne(t, code, from, newAddr)
		// Most random inputs hold more than one instruction: also move the
		// first one alone.
		if inst, err := x86dec.Decode(code, from); err == nil && inst.Len < len(code) {
			relocateOne(t, code[:inst.Len], from, newAddr)
		}
	})
}

func relocateOne(t *testing.T, code []byte, from, newAddr uint64) {
	out, err := Relocate(code, from, newAddr)
	if err != nil {
		var re *RelocError
		require.ErrorAs(t, err, &re)
		require.Nil(t, out)
		require.Equal(t, from, re.Addr)
		// A self-check failure means the decoder misplaced a displacement
		// (or Relocate rewrote the wrong bytes): a finding either way.
		require.NotErrorIs(t, err, ErrSelfCheck)
		return
	}
	switch checkRelocated(t, code, from, out, newAddr) {
	case kindRIP, kindRel32:
		back, err := Relocate(out, newAddr, from)
		require.NoError(t, err)
		require.Equal(t, code, back)
	}
}
