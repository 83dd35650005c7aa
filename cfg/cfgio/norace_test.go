//go:build !race

package cfgio

const raceEnabled = false
