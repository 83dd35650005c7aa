package main

import (
	"math"
	"sort"
)

// Median of xs (the mean of the middle two for an even count); NaN if empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// MinMax of xs; NaNs if empty.
func MinMax(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	lo, hi = xs[0], xs[0]
	for _, x := range xs[1:] {
		lo = math.Min(lo, x)
		hi = math.Max(hi, x)
	}
	return lo, hi
}

// Ratio is a speedup over the original (original time / this time; above
// 1 is faster) with its spread over the interleaved rounds.
type Ratio struct {
	Median float64 `json:"median"` // median(original) / median(this)
	Min    float64 `json:"min"`    // smallest per-round ratio
	Max    float64 `json:"max"`    // largest per-round ratio
	Rounds int     `json:"rounds"` // rounds in which both runs succeeded
}

// Speedup compares per-round timings of the original and a configuration.
// Rounds are paired by index; a NaN marks a round that did not produce a
// time and is left out of the pairing. ok is false without a usable pair.
func Speedup(orig, cfg []float64) (r Ratio, ok bool) {
	var per, o, c []float64
	for i := 0; i < len(orig) && i < len(cfg); i++ {
		if math.IsNaN(orig[i]) || math.IsNaN(cfg[i]) || cfg[i] <= 0 {
			continue
		}
		per = append(per, orig[i]/cfg[i])
		o = append(o, orig[i])
		c = append(c, cfg[i])
	}
	if len(per) == 0 {
		return Ratio{}, false
	}
	r.Median = Median(o) / Median(c)
	r.Min, r.Max = MinMax(per)
	r.Rounds = len(per)
	return r, true
}
