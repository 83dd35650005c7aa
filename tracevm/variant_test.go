package tracevm

import (
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A side trace knows its parent's frame's private slots: under a variant
// (a loop entered in another C frame) they are the variant's, not the
// root's.
func TestSideEntryPrivateFromParent(t *testing.T) {
	root := &trace{private: addrRange{0x7000, 0x7040}}
	variant := &trace{side: true, root: root, private: addrRange{0x6000, 0x6040},
		exitBase: 10, exitKnown: [][]regValue{{{x86enc.RSP, 0x5ff0}}}}
	plain := &trace{side: true, root: root, private: root.private,
		exitBase: 20, exitKnown: [][]regValue{{{x86enc.RSP, 0x6ff0}}}}
	m := &Machine{}
	for _, tt := range []struct {
		parent *trace
		sp     uint64
		want   addrRange
	}{{variant, 0x5ff0, variant.private}, {plain, 0x6ff0, root.private}} {
		r := &recording{side: tt.parent, exitID: tt.parent.exitBase}
		r.headRegs[x86enc.RSP] = tt.sp
		e := m.sideEntryOf(r)
		require.NotNil(t, e)
		assert.Equal(t, tt.want, e.private)
	}
}
