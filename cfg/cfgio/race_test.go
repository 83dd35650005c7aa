//go:build race

package cfgio

// raceEnabled: the race detector slows code several times over, so timing
// budgets are not checked under it.
const raceEnabled = true
