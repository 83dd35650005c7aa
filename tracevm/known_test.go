package tracevm

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKnownStates checks the compact states against every state kept
// whole, over runs of changes like the optimiser's (few registers change
// from one op to the next), across checkpoints and after a reset.
func TestKnownStates(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var k knownStates
	for _, n := range []int{1, knownEvery - 1, knownEvery, knownEvery + 1, 5*knownEvery + 7, 1000} {
		k.reset()
		var cur [16]val
		want := make([][16]val, 0, n)
		for i := 0; i < n; i++ {
			for c := rng.IntN(3); c > 0; c-- {
				r := rng.IntN(16)
				if rng.IntN(4) == 0 {
					cur[r] = val{}
				} else {
					cur[r] = val{known: true, v: rng.Uint64(), deps: assume(rng.Uint64())}
				}
			}
			want = append(want, cur)
			k.add(&cur)
		}
		require.Equal(t, n, k.len())
		masks := k.masks(nil)
		require.Len(t, masks, n)
		for i := range want {
			require.Equal(t, want[i], k.at(i), "state %d of %d", i, n)
			var mask uint16
			for r := 0; r < 16; r++ {
				require.Equal(t, want[i][r], k.get(i, r), "state %d register %d", i, r)
				if want[i][r].known {
					mask |= 1 << r
				}
			}
			require.Equal(t, mask, masks[i], "state %d: known registers", i)
		}
		// Backwards, as liveness reads them, and at random.
		for i := n - 1; i >= 0; i-- {
			require.Equal(t, want[i], *k.ref(i), "state %d backwards", i)
		}
		for c := 0; c < 50; c++ {
			i := rng.IntN(n)
			require.Equal(t, want[i], k.at(i), "state %d at random", i)
		}
	}
	var none *knownStates
	require.Zero(t, none.len())
}

// sameVal is ==: every field is in the words it compares.
func TestSameVal(t *testing.T) {
	base := val{known: true, lo: 2, pn: 1, v: 5, deps: 6, pdeps: 7}
	change := []func(*val){
		func(v *val) { v.known = false },
		func(v *val) { v.lo = 4 },
		func(v *val) { v.pn = 2 },
		func(v *val) { v.v = 9 },
		func(v *val) { v.deps = 9 },
		func(v *val) { v.pdeps = 9 },
	}
	b := base
	require.True(t, sameVal(&base, &b))
	for k, f := range change {
		b := base
		f(&b)
		require.NotEqual(t, base, b)
		require.False(t, sameVal(&base, &b), "field %d", k)
	}
}
