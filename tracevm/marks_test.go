package tracevm

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

// pcMarks behaves as a map from pc to serial where 0 is absent, across
// growth and resets.
func TestPCMarks(t *testing.T) {
	var m pcMarks
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 5; round++ {
		ref := map[uint64]uint32{}
		for i := 0; i < 5000; i++ {
			pc := uint64(0x400000 + rng.Intn(3000)*3)
			switch rng.Intn(3) {
			case 0:
				require.Equal(t, ref[pc], m.get(pc), "pc %#x", pc)
			case 1:
				s := uint32(rng.Intn(5))
				m.set(pc, s)
				if s == 0 {
					delete(ref, pc)
				} else {
					ref[pc] = s
				}
			case 2:
				m.set(pc, ref[pc]) // undo to what it was
			}
		}
		for pc, s := range ref {
			require.Equal(t, s, m.get(pc))
		}
		m.reset()
		for pc := range ref {
			require.Zero(t, m.get(pc), "reset forgets %#x", pc)
		}
	}
}
