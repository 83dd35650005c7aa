package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Report is everything one session measured.
type Report struct {
	Date     string    `json:"date"`
	Machine  Machine   `json:"machine"`
	Mode     string    `json:"mode"` // "full" or "quick"
	Warmup   int       `json:"warmup"`
	Runs     int       `json:"runs"`
	Confirm  int       `json:"confirm,omitempty"` // Options.Confirm
	Duration float64   `json:"duration_seconds"`
	Records  []*Record `json:"records"`
}

// Failures lists the records that fail the session.
func (r *Report) Failures() []*Record {
	var out []*Record
	for _, rec := range r.Records {
		if rec.Failed() {
			out = append(out, rec)
		}
	}
	return out
}

// Judged reports whether the session can give verdicts: a quick session's
// single run at small sizes proves answers, not speed.
func (r *Report) Judged() bool { return r.Mode != "quick" }

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// columns are the table's configuration columns, in display order; a
// family without a configuration leaves its cell empty.
func (r *Report) columns() []string {
	var cols []string
	seen := map[string]bool{}
	for _, rec := range r.Records {
		if rec.Kind != KindOriginal && !seen[rec.Config] {
			seen[rec.Config] = true
			cols = append(cols, rec.Config)
		}
	}
	return cols
}

// byProgram groups records by program, keeping the suite's order.
func (r *Report) byProgram() (names []string, recs map[string]map[string]*Record) {
	recs = map[string]map[string]*Record{}
	for _, rec := range r.Records {
		if recs[rec.Program] == nil {
			names = append(names, rec.Program)
			recs[rec.Program] = map[string]*Record{}
		}
		recs[rec.Program][rec.Config] = rec
	}
	return names, recs
}

func cell(rec *Record) string {
	switch {
	case rec == nil:
		return ""
	case rec.Status == StatusUnavailable:
		return "n/a"
	case rec.Failed():
		return "**FAIL (" + string(rec.Status) + ")**"
	case rec.Speedup == nil:
		return "?"
	}
	s := rec.Speedup
	if s.Rounds == 1 {
		return fmt.Sprintf("%.2fx", s.Median)
	}
	return fmt.Sprintf("%.2fx (%.2f-%.2f)", s.Median, s.Min, s.Max)
}

// loopCoverage is what a runtime-on record's statistics say about its
// loops: back-edges taken in the original code (site_hits) and inside
// traces (jit.trace_iterations), and the recordings abandoned, by reason;
// whether the JIT started, and if not, the fastest its hot loops ran
// (jit_rate_best: below REDMAGIC_JIT_RATE it is not loaded).
type loopCoverage struct {
	hits, inTraces int64
	aborts         map[string]int64
	jit            bool
	rateBest       int64
}

func coverageOf(rec *Record) (loopCoverage, bool) {
	if rec == nil {
		return loopCoverage{}, false
	}
	return statsCoverage(rec.RuntimeStats)
}

// statsCoverage reads a REDMAGIC_STATS object (coverageOf).
func statsCoverage(stats json.RawMessage) (loopCoverage, bool) {
	if len(stats) == 0 {
		return loopCoverage{}, false
	}
	var st struct {
		SiteHits    *int64 `json:"site_hits"`
		JITRateBest int64  `json:"jit_rate_best"`
		JIT         *struct {
			TraceIterations int64            `json:"trace_iterations"`
			Aborts          map[string]int64 `json:"aborts"`
		} `json:"jit"`
	}
	if json.Unmarshal(stats, &st) != nil || st.SiteHits == nil {
		return loopCoverage{}, false
	}
	c := loopCoverage{hits: *st.SiteHits, rateBest: st.JITRateBest}
	if st.JIT != nil {
		c.jit = true
		c.inTraces, c.aborts = st.JIT.TraceIterations, st.JIT.Aborts
	}
	return c, true
}

// backEdges pulls the loop back-edges out of a runtime-on record's
// statistics: those the original code ran and those taken inside traces.
func backEdges(rec *Record) (int64, bool) {
	c, ok := coverageOf(rec)
	return c.backEdges(), ok
}

// backEdges: those the original code ran and those taken inside traces.
func (c loopCoverage) backEdges() int64 { return c.hits + c.inTraces }

// inTracesCell is the share of back-edges taken inside traces, or, when
// the JIT never started, that and the fastest its hot loops ran.
func (c loopCoverage) inTracesCell() string {
	n := c.backEdges()
	if n == 0 {
		return ""
	}
	share := fmt.Sprintf("%.1f%%", 100*float64(c.inTraces)/float64(n))
	if !c.jit && c.rateBest > 0 {
		share += fmt.Sprintf(" (no JIT: loops %.1fM/s)", float64(c.rateBest)/1e6)
	}
	return share
}

// abortsCell lists the abandoned recordings by reason, most first.
func (c loopCoverage) abortsCell() string {
	reasons := make([]string, 0, len(c.aborts))
	for r := range c.aborts {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		a, b := c.aborts[reasons[i]], c.aborts[reasons[j]]
		return a > b || (a == b && reasons[i] < reasons[j])
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %d", r, c.aborts[r])
	}
	return strings.Join(parts, ", ")
}

// WriteMarkdown writes the machine, the speedup table and, if measured,
// the instruction counts.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# Benchmark results (%s)\n\n", r.Date)
	fmt.Fprintf(&b, "- Machine: %s, %d cores, %.1f GB, Linux %s, Debian %s, %s\n", m.CPU, m.Cores, m.MemoryGB, m.Kernel, m.Debian, m.Go)
	fmt.Fprintf(&b, "- Mode: %s; %d warm-up and %d counted runs per configuration, interleaved; took %s\n",
		r.Mode, r.Warmup, r.Runs, (time.Duration(r.Duration) * time.Second).String())
	if r.Confirm > 0 {
		fmt.Fprintf(&b, "- Confirmation: a program below a bar after those runs ran %d more interleaved rounds of the original and the patched configurations; its cells and verdict are over all of them\n", r.Confirm)
	}
	b.WriteString("- Cells: speedup = original time / configuration time (median of runs; above 1 is faster), " +
		"with the min-max of per-round ratios. `n/a`: not installed.\n")
	// One quick run proves answers, never speed: no verdicts then.
	judged := r.Judged()
	verdicts := map[string]Verdict{}
	if judged {
		fmt.Fprintf(&b, "- Verdict: runtime on >= %.2fx and runtime off >= %.2fx of the original, "+
			"each from >= %d interleaved runs; a failed run is below the bar.\n", BarOn, BarOff, VerdictMinRounds)
		for _, v := range r.Verdicts() {
			verdicts[v.Program] = v
		}
	}
	b.WriteString("\n")
	cols := r.columns()
	b.WriteString("| program | size | original (s) |")
	for _, c := range cols {
		b.WriteString(" " + c + " |")
	}
	b.WriteString(" back-edges counted (runtime on) | in traces | recordings abandoned |")
	extra := 3
	if judged {
		b.WriteString(" verdict |")
		extra++
	}
	b.WriteString("\n|---|---|---|" + strings.Repeat("---|", len(cols)+extra) + "\n")
	names, recs := r.byProgram()
	for _, name := range names {
		row := recs[name]
		orig := row["original"]
		origCell := ""
		if orig != nil {
			switch {
			case orig.Status == StatusOK && len(orig.Seconds) > 0:
				origCell = fmt.Sprintf("%.3f", orig.Median)
			case orig.Failed():
				origCell = "**FAIL (" + string(orig.Status) + ")**"
			default:
				origCell = "n/a"
			}
		}
		size := ""
		if orig != nil {
			size = orig.Size
		}
		fmt.Fprintf(&b, "| %s | %s | %s |", name, size, origCell)
		for _, c := range cols {
			b.WriteString(" " + cell(row[c]) + " |")
		}
		hits, share, aborts := "", "", ""
		if c, ok := coverageOf(row["patched, runtime on"]); ok {
			hits = fmt.Sprintf("%d", c.hits+c.inTraces)
			share, aborts = c.inTracesCell(), c.abortsCell()
		}
		b.WriteString(" " + hits + " | " + share + " | " + aborts + " |")
		if judged {
			b.WriteString(" " + verdicts[name].Cell() + " |")
		}
		b.WriteString("\n")
	}
	if judged {
		b.WriteString("\n## Verdicts\n\n```\n")
		if err := WriteVerdicts(&b, Summarize(r.Verdicts())); err != nil {
			return err
		}
		b.WriteString("```\n")
	}
	if fails := r.Failures(); len(fails) > 0 {
		b.WriteString("\n## Failures\n\n")
		for _, f := range fails {
			fmt.Fprintf(&b, "- %s [%s]: %s\n", f.Program, f.Config, f.Error)
		}
	}
	var unavailable []string
	seen := map[string]bool{}
	for _, rec := range r.Records {
		if rec.Status == StatusUnavailable && !seen[rec.Config+rec.Error] {
			seen[rec.Config+rec.Error] = true
			unavailable = append(unavailable, fmt.Sprintf("- %s: %s", rec.Config, rec.Error))
		}
	}
	if len(unavailable) > 0 {
		b.WriteString("\n## Not run\n\n" + strings.Join(unavailable, "\n") + "\n")
	}
	if r.hasInstructions() {
		b.WriteString("\n## Instructions (valgrind cachegrind, small sizes)\n\n")
		b.WriteString("Cells: instructions executed, original/this (above 1 is less work), and the misses of\n" +
			"a simulated 32 KiB instruction cache (I1): traces copy the interpreter's code once per\n" +
			"bytecode they run through, and a loop whose traces outgrow the cache can run fewer\n" +
			"instructions and take longer. The runtime on runs with every trace kept, compiled on the\n" +
			"program's thread (`" + strings.Join(deterministicJIT, " ") + "`), so that its counts do not\n" +
			"depend on valgrind's slow clock; \"JIT\" is what of them the JIT's own code ran or missed (recording,\n" +
			"compiling), and the last column the instructions the program ran besides, per loop\n" +
			"back-edge, against the original's (start-up included in both).\n\n")
		b.WriteString("| program | size | original |")
		for _, c := range cols {
			b.WriteString(" " + c + " |")
		}
		b.WriteString(" per back-edge, original -> runtime on |")
		b.WriteString("\n|---|---|---|" + strings.Repeat("---|", len(cols)+1) + "\n")
		for _, name := range names {
			row := recs[name]
			orig := row["original"]
			fmt.Fprintf(&b, "| %s | %s | %s |", name, orig.InstructionsSize, instrCell(orig, nil))
			var on *Record
			for _, c := range cols {
				if rec := row[c]; rec != nil && rec.Kind == KindPatchedOn {
					on = rec
				}
				b.WriteString(" " + instrCell(row[c], orig) + " |")
			}
			b.WriteString(" " + perIterationCell(orig, on) + " |\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) hasInstructions() bool {
	for _, rec := range r.Records {
		if rec.InstructionsSize != "" {
			return true
		}
	}
	return false
}

func instrCell(rec, orig *Record) string {
	switch {
	case rec == nil:
		return ""
	case rec.Instructions == 0 && rec.Status == StatusUnavailable:
		return "n/a"
	case rec.Instructions == 0:
		return "error"
	}
	s := fmt.Sprintf("%d", rec.Instructions)
	if orig != nil && orig.Instructions != 0 {
		s += fmt.Sprintf(" (%.2fx)", float64(orig.Instructions)/float64(rec.Instructions))
	}
	if rec.JITInstructions != 0 {
		s += fmt.Sprintf("; JIT %d", rec.JITInstructions)
	}
	s += fmt.Sprintf("; I1 %d", rec.I1Misses)
	if rec.JITI1Misses != 0 {
		s += fmt.Sprintf(" (JIT %d)", rec.JITI1Misses)
	}
	return s
}

// perIterationCell: the original's instructions and the runtime on's
// besides the JIT's own, per loop back-edge of the runtime on's run.
func perIterationCell(orig, on *Record) string {
	if orig == nil || on == nil || orig.Instructions == 0 || on.Instructions == 0 || on.Iterations == 0 {
		return ""
	}
	n := float64(on.Iterations)
	return fmt.Sprintf("%.0f -> %.0f", float64(orig.Instructions)/n, float64(on.Instructions-on.JITInstructions)/n)
}
