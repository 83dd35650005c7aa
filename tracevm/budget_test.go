package tracevm

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestBudgetRule pins the JIT budget's rule: free below its first
// allowance, then pct% of the elapsed time (halved, and the same for side
// recordings, until a kept trace has earned anything), plus half the
// earnings up to twice the base.
func TestBudgetRule(t *testing.T) {
	const free = 20 << 20
	const elapsed = 1 << 32 // 2% of it: about 85.9M cycles
	base := uint64(elapsed) * 2 / 100
	tests := []struct {
		name                 string
		spent, share, earned uint64
		refused              bool
	}{
		{"within the free allowance", free - 1, 1, 0, false},
		{"no bound", 10 * base, 1, 0, false},
		{"nothing earned: half the base", base/2 - 1, 1, 0, false},
		{"nothing earned: past half the base", base/2 + 1, 1, 0, true},
		{"nothing earned: sides get no more", base/2 + 1, 2, 0, true},
		{"earned: the full base", base - 1, 1, 1, false},
		{"earned: past the base", base + 1, 1, 1, true},
		{"earned: sides twice the base", 2*base - 1, 2, 1, false},
		{"earned: half the earnings on top", base + 1000, 1, 2002, false},
		{"earned: not more than half", base + 1000, 1, 1998, true},
		{"earned: at most three times the base", 3*base + 1, 1, 100 * base, true},
		{"earned: up to three times the base", 3*base - 1, 1, 100 * base, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pct := uint64(2)
			if tt.name == "no bound" {
				pct = 0
			}
			assert.Equal(t, tt.refused, budgetRefuses(tt.spent, elapsed, pct, tt.share, tt.earned))
		})
	}
}
