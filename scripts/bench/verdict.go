package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// The bars every program of every suite must clear (issue text): the
// patched interpreter with the runtime on at least 0.97x the original's
// speed, with REDMAGIC_DISABLE=1 at least 0.99x, each the median of at
// least VerdictMinRounds interleaved runs. Fewer runs prove nothing.
const (
	BarOn            = 0.97
	BarOff           = 0.99
	VerdictMinRounds = 5
)

// barFor returns the bar a configuration of kind k must clear, if any.
func barFor(k ConfigKind) (float64, bool) {
	switch k {
	case KindPatchedOn:
		return BarOn, true
	case KindPatchedOff:
		return BarOff, true
	}
	return 0, false
}

// Outcome of one bar for one program.
type Outcome string

const (
	OutcomeMet      Outcome = "met"
	OutcomeBelow    Outcome = "below"    // slower than the bar, or the run failed
	OutcomeUnproven Outcome = "unproven" // unavailable, too few runs, or no original to compare with
)

// BarVerdict is one configuration against its bar.
type BarVerdict struct {
	Outcome Outcome
	Speedup float64 // median speedup over the original; 0 if none
	Why     string  // for below and unproven
}

// Verdict is one program against both bars.
type Verdict struct {
	Program string
	Suite   string
	On, Off BarVerdict
	// Confirmed is the number of rounds run to confirm a first verdict
	// below a bar (Options.Confirm), 0 if none.
	Confirmed int
}

// Met reports whether the program clears both bars.
func (v Verdict) Met() bool { return v.On.Outcome == OutcomeMet && v.Off.Outcome == OutcomeMet }

// Below reports whether either bar is missed (a failed run misses it).
func (v Verdict) Below() bool { return v.On.Outcome == OutcomeBelow || v.Off.Outcome == OutcomeBelow }

// Cell is the verdict column of results.md.
func (v Verdict) Cell() string {
	var cell string
	switch {
	case v.Met():
		cell = "meets"
	case v.Below():
		cell = "**below**: " + v.reasons(OutcomeBelow)
	default:
		cell = "unproven: " + v.reasons(OutcomeUnproven)
	}
	if v.Confirmed > 0 {
		cell += fmt.Sprintf(" (after %d runs to confirm)", v.Confirmed)
	}
	return cell
}

// reasons lists the bars with outcome o, e.g. "on 0.95x < 0.97x".
func (v Verdict) reasons(o Outcome) string {
	var rs []string
	for _, b := range []struct {
		name string
		bv   BarVerdict
	}{{"on", v.On}, {"off", v.Off}} {
		if b.bv.Outcome == o {
			rs = append(rs, b.name+" "+b.bv.Why)
		}
	}
	return strings.Join(rs, "; ")
}

func judgeBar(orig, rec *Record, bar float64) BarVerdict {
	switch {
	case rec == nil:
		return BarVerdict{Outcome: OutcomeUnproven, Why: "not run"}
	case rec.Status == StatusUnavailable:
		return BarVerdict{Outcome: OutcomeUnproven, Why: "n/a"}
	case rec.Failed():
		// A wrong answer is never fast enough.
		return BarVerdict{Outcome: OutcomeBelow, Why: "FAIL (" + string(rec.Status) + ")"}
	case orig == nil || orig.Status != StatusOK:
		return BarVerdict{Outcome: OutcomeUnproven, Why: "no original to compare with"}
	case rec.Speedup == nil:
		return BarVerdict{Outcome: OutcomeUnproven, Why: "no timing"}
	}
	s := rec.Speedup.Median
	switch {
	case rec.Speedup.Rounds < VerdictMinRounds:
		return BarVerdict{Outcome: OutcomeUnproven, Speedup: s,
			Why: fmt.Sprintf("%.2fx from %d runs (needs %d)", s, rec.Speedup.Rounds, VerdictMinRounds)}
	case s < bar:
		return BarVerdict{Outcome: OutcomeBelow, Speedup: s, Why: fmt.Sprintf("%.2fx < %.2fx", s, bar)}
	}
	return BarVerdict{Outcome: OutcomeMet, Speedup: s}
}

// judgeKind judges the record of kind k against its bar.
func judgeKind(orig *Record, byKind map[ConfigKind]*Record, k ConfigKind) BarVerdict {
	bar, _ := barFor(k)
	return judgeBar(orig, byKind[k], bar)
}

// Verdicts judges every program of the report, in the report's order.
// Programs without patched configurations (none in today's suites) are
// unproven.
func (r *Report) Verdicts() []Verdict {
	var vs []Verdict
	names, recs := r.byProgram()
	for _, name := range names {
		byKind := map[ConfigKind]*Record{}
		for _, rec := range recs[name] {
			if rec.Kind != KindPeer {
				byKind[rec.Kind] = rec
			}
		}
		orig := byKind[KindOriginal]
		v := Verdict{Program: name, Suite: SuiteOf(name),
			On:  judgeKind(orig, byKind, KindPatchedOn),
			Off: judgeKind(orig, byKind, KindPatchedOff)}
		if orig != nil {
			v.Confirmed = orig.ConfirmRounds
		}
		vs = append(vs, v)
	}
	return vs
}

// SuiteSummary totals one suite's verdicts.
type SuiteSummary struct {
	Suite    string
	Programs int
	OnMet    int // runtime-on bar cleared
	OffMet   int // runtime-off bar cleared
	BothMet  int
	Unproven int // programs with neither bar missed but not both proven
	// GeoMeanOn is the geometric mean of the runtime-on speedups over the
	// original, of the GeoMeanN programs that have one (whatever their
	// number of runs); NaN if none.
	GeoMeanOn float64
	GeoMeanN  int
	Below     []Verdict
}

// Summarize totals verdicts per suite, every suite of Suites in order
// (empty ones too, so the summary always has the same lines).
func Summarize(vs []Verdict) []SuiteSummary {
	var out []SuiteSummary
	for _, suite := range Suites {
		s := SuiteSummary{Suite: suite}
		logSum := 0.0
		for _, v := range vs {
			if v.Suite != suite {
				continue
			}
			s.Programs++
			if v.On.Outcome == OutcomeMet {
				s.OnMet++
			}
			if v.Off.Outcome == OutcomeMet {
				s.OffMet++
			}
			switch {
			case v.Met():
				s.BothMet++
			case v.Below():
				s.Below = append(s.Below, v)
			default:
				s.Unproven++
			}
			if v.On.Speedup > 0 {
				logSum += math.Log(v.On.Speedup)
				s.GeoMeanN++
			}
		}
		s.GeoMeanOn = math.NaN()
		if s.GeoMeanN > 0 {
			s.GeoMeanOn = math.Exp(logSum / float64(s.GeoMeanN))
		}
		out = append(out, s)
	}
	return out
}

// WriteVerdicts writes the per-suite summary, one paragraph per suite; it
// ends the run's standard output and results.md.
func WriteVerdicts(w io.Writer, sums []SuiteSummary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "verdicts: patched, runtime on >= %.2fx and runtime off (REDMAGIC_DISABLE=1) >= %.2fx of the original, median of >= %d interleaved runs\n",
		BarOn, BarOff, VerdictMinRounds)
	for _, s := range sums {
		if s.Programs == 0 {
			fmt.Fprintf(&b, "  %-10s no programs run\n", s.Suite+":")
			continue
		}
		geo := "n/a"
		if s.GeoMeanN > 0 {
			geo = fmt.Sprintf("%.3fx over %d", s.GeoMeanOn, s.GeoMeanN)
		}
		fmt.Fprintf(&b, "  %-10s %d programs: %d meet both bars, runtime on %d, runtime off %d; %d unproven (n/a, or < %d runs); geomean runtime on / original %s\n",
			s.Suite+":", s.Programs, s.BothMet, s.OnMet, s.OffMet, s.Unproven, VerdictMinRounds, geo)
		if len(s.Below) == 0 {
			continue
		}
		fmt.Fprintf(&b, "    below the bar (%d):\n", len(s.Below))
		for _, v := range s.Below {
			fmt.Fprintf(&b, "      %s: %s\n", v.Program, v.reasons(OutcomeBelow))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
