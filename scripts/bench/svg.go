package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// Chart geometry, in pixels.
const (
	chartWidth  = 1000
	labelWidth  = 190 // program names
	plotLeft    = labelWidth + 20
	plotRight   = chartWidth - 30
	rowHeight   = 22
	groupHeight = 26
	legendRow   = 20
)

// seriesStyle draws one configuration: the patched builds are filled
// circles, peers hollow diamonds, so "ours" and "theirs" differ at a glance.
type seriesStyle struct {
	color  string
	hollow bool
}

var knownStyles = map[string]seriesStyle{
	"patched, runtime off": {color: "#1f77b4"},
	"patched, runtime on":  {color: "#d62728"},
	"luajit":               {color: "#2ca02c", hollow: true},
	"luajit -joff":         {color: "#9467bd", hollow: true},
	"python3.12 (pyenv)":   {color: "#17becf", hollow: true},
	"python3.13 (pyenv)":   {color: "#ff7f0e", hollow: true},
}

var spareColors = []string{"#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"}

func styleFor(name string, i int) seriesStyle {
	if s, ok := knownStyles[name]; ok {
		return s
	}
	return seriesStyle{color: spareColors[i%len(spareColors)], hollow: true}
}

// axisRange picks a log-scale domain holding every ratio and 1.0, widened
// to whole ticks of the 1-2-5 series.
func axisRange(vals []float64) (lo, hi float64, ticks []float64) {
	lo, hi = 0.8, 1.25
	for _, v := range vals {
		if v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
			lo = math.Min(lo, v/1.1)
			hi = math.Max(hi, v*1.1)
		}
	}
	series := []float64{}
	for e := -3; e <= 3; e++ {
		for _, m := range []float64{1, 2, 5} {
			series = append(series, m*math.Pow(10, float64(e)))
		}
	}
	// Snap outward to the 1-2-5 series, also taking 0.8/1.25 style
	// quarter steps near 1 where most patched ratios land.
	fine := append([]float64{0.8, 0.9, 1.1, 1.25, 1.5}, series...)
	newLo, newHi := 0.0, math.Inf(1)
	for _, s := range fine {
		if s <= lo && s > newLo {
			newLo = s
		}
		if s >= hi && s < newHi {
			newHi = s
		}
	}
	lo, hi = newLo, newHi
	for _, s := range series {
		if s >= lo*0.999 && s <= hi*1.001 {
			ticks = append(ticks, s)
		}
	}
	// Few decades: add the fine ticks so the axis is not bare.
	if len(ticks) < 4 {
		ticks = nil
		for _, s := range fine {
			if s >= lo*0.999 && s <= hi*1.001 {
				ticks = append(ticks, s)
			}
		}
		sortFloats(ticks)
	}
	return lo, hi, ticks
}

func sortFloats(xs []float64) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

func fmtTick(v float64) string {
	s := fmt.Sprintf("%g", v)
	return s + "x"
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// WriteSVG draws the speedup of every configuration over the original per
// program: one row per program, grouped by interpreter, a dot at the median
// ratio and a bar over the per-round spread, on a log axis with a reference
// line at 1.0 (the original).
func (r *Report) WriteSVG(w io.Writer) error {
	names, recs := r.byProgram()
	cols := r.columns()
	var vals []float64
	for _, rec := range r.Records {
		if rec.Speedup != nil {
			vals = append(vals, rec.Speedup.Min, rec.Speedup.Max, rec.Speedup.Median)
		}
	}
	lo, hi, ticks := axisRange(vals)
	xOf := func(v float64) float64 {
		return plotLeft + (math.Log(v)-math.Log(lo))/(math.Log(hi)-math.Log(lo))*(plotRight-plotLeft)
	}

	// Legend: one entry per configuration, wrapped over rows.
	legendTop := 52.0
	type entry struct {
		name  string
		style seriesStyle
	}
	var legend []entry
	for i, c := range cols {
		legend = append(legend, entry{c, styleFor(c, i)})
	}
	perRow := 4
	legendRows := (len(legend) + perRow - 1) / perRow
	top := legendTop + float64(legendRows)*legendRow + 30

	// Rows and group headers.
	type row struct {
		y      float64
		header string
		name   string
	}
	var rows []row
	y := top
	lastFamily := ""
	for _, name := range names {
		var fam string
		for _, rec := range recs[name] {
			fam = rec.Interpreter
			break
		}
		if fam != lastFamily {
			title := fam
			if f, ok := Families()[fam]; ok {
				title = f.Title
			}
			rows = append(rows, row{y: y, header: title})
			y += groupHeight
			lastFamily = fam
		}
		rows = append(rows, row{y: y, name: name})
		y += rowHeight
	}
	plotTop, plotBottom := top, y
	height := plotBottom + 60

	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="17" font-weight="bold">%s</text>`+"\n", 12,
		esc("Speedup over the original interpreter (original = 1.0, higher is faster)"))
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#444">%s</text>`+"\n", 12,
		esc(fmt.Sprintf("%s; %s mode, median of %d interleaved runs, bar = min-max per-round ratio; %s, %d cores",
			r.Date, r.Mode, r.Runs, r.Machine.CPU, r.Machine.Cores)))
	for i, e := range legend {
		lx := 20 + float64(i%perRow)*240
		ly := legendTop + float64(i/perRow)*legendRow + 10
		b.WriteString(marker(lx, ly-4, e.style))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+12, ly, esc(e.name))
	}

	// Zebra rows first so the grid and dots sit on top.
	for i, rw := range rows {
		if rw.header != "" {
			fmt.Fprintf(&b, `<text x="8" y="%.1f" font-weight="bold" font-size="13">%s</text>`+"\n", rw.y+18, esc(rw.header))
			continue
		}
		if i%2 == 0 {
			fmt.Fprintf(&b, `<rect x="0" y="%.1f" width="%d" height="%d" fill="#f3f3f3"/>`+"\n", rw.y, chartWidth, rowHeight)
		}
	}
	for _, t := range ticks {
		x := xOf(t)
		stroke, dash, width := "#ccc", "", 1.0
		if t == 1 {
			stroke, dash, width = "#000", ` stroke-dasharray="5,3"`, 1.5
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"%s/>`+"\n",
			x, plotTop, x, plotBottom, stroke, width, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, plotBottom+16, esc(fmtTick(t)))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="start" font-size="11">original = 1.0</text>`+"\n", xOf(1)+4, plotTop-6)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (plotLeft+plotRight)/2.0, plotBottom+38,
		esc("speedup = original time / configuration time (log scale): right of the dashed line is faster"))

	for _, rw := range rows {
		if rw.header != "" {
			continue
		}
		cy := rw.y + rowHeight/2.0
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", labelWidth, cy+4, esc(rw.name))
		row := recs[rw.name]
		var fails []string
		if o := row["original"]; o != nil && o.Failed() {
			fails = append(fails, "original")
		}
		n := float64(len(cols))
		for i, c := range cols {
			rec := row[c]
			if rec == nil {
				continue
			}
			if rec.Failed() {
				fails = append(fails, c)
				continue
			}
			if rec.Speedup == nil {
				continue
			}
			st := styleFor(c, i)
			dy := (float64(i) - (n-1)/2) * 3 // separate series that land together
			s := rec.Speedup
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" opacity="0.6"/>`+"\n",
				xOf(s.Min), cy+dy, xOf(s.Max), cy+dy, st.color)
			b.WriteString(marker(xOf(s.Median), cy+dy, st))
		}
		if len(fails) > 0 {
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#c00" font-weight="bold">%s</text>`+"\n", plotLeft+4, cy+4,
				esc("FAIL (wrong output or error): "+strings.Join(fails, ", ")))
		}
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="none" stroke="#888"/>`+"\n",
		plotLeft, plotTop, plotRight-plotLeft, plotBottom-plotTop)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func marker(x, y float64, st seriesStyle) string {
	if st.hollow {
		return fmt.Sprintf(`<path d="M %.1f %.1f l 5 5 l -5 5 l -5 -5 z" fill="white" stroke="%s" stroke-width="2"/>`+"\n", x, y-5, st.color)
	}
	return fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s" stroke="white" stroke-width="1"/>`+"\n", x, y, st.color)
}
