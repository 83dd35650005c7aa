package tracevm

import (
	"encoding/hex"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A register stored to a known slot and loaded back from it is a reload
// while neither it nor the slot is written between: not after the
// register changes, another value is stored there, or a store through an
// unknown pointer (unless the slot is one of the frame's private ones).
func TestReloads(t *testing.T) {
	const (
		spill     = "4c894c2418" // mov %r9,0x18(%rsp)
		reload    = "4c8b4c2418" // mov 0x18(%rsp),%r9
		loadOther = "488b442418" // mov 0x18(%rsp),%rax
		bump      = "4983c101"   // add $0x1,%r9
		overwrite = "4889442418" // mov %rax,0x18(%rsp)
		otherSlot = "4889442420" // mov %rax,0x20(%rsp)
		lowHalf   = "448b4c2418" // mov 0x18(%rsp),%r9d
	)
	const sp = 0x7fff0000
	for _, tc := range []struct {
		name    string
		code    []string
		clobber bool // a store through an unknown pointer after the first
		private bool // the slot is private to the loop's frame
		want    []bool
	}{
		{"spill and reload", []string{spill, reload}, false, false, []bool{false, true}},
		{"reloaded twice", []string{spill, reload, reload}, false, false, []bool{false, true, true}},
		{"loaded, then loaded again", []string{reload, reload}, false, false, []bool{false, true}},
		{"into another register", []string{spill, loadOther}, false, false, []bool{false, false}},
		{"register changed", []string{spill, bump, reload}, false, false, []bool{false, false, false}},
		{"slot overwritten", []string{spill, overwrite, reload}, false, false, []bool{false, false, false}},
		{"another slot written", []string{spill, otherSlot, reload}, false, false, []bool{false, false, true}},
		{"32-bit load", []string{spill, lowHalf}, false, false, []bool{false, false}},
		{"store through an unknown pointer", []string{spill, reload}, true, false, []bool{false, false}},
		{"unknown store, private slot", []string{spill, reload}, true, true, []bool{false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &optimizer{}
			var rs []storeRange
			s := &evalState{ranges: &rs}
			s.regs[x86enc.RSP] = val{known: true, v: sp}
			if tc.private {
				s.private = addrRange{sp, sp + 0x100}
			}
			var got []bool
			for i, h := range tc.code {
				b, err := hex.DecodeString(h)
				require.NoError(t, err)
				inst, err := x86dec.Decode(b, 0x1000)
				require.NoError(t, err)
				o.insts = append(o.insts, &inst)
				r, slot, load := o.slotMove(i, s)
				got = append(got, load && slot != 0 && s.mirror[r] == slot)
				if storesMemory(&inst) {
					o.stored(&inst, s)
				}
				s.mirrorAfter(&inst, r, slot)
				if tc.clobber && i == 0 {
					s.clobber()
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
