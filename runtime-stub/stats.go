package main

/*
#include "rm_internal.h"
*/
import "C"

import (
	"cmp"
	"encoding/json"
	"fmt"
	"github.com/redmagic-patch/redmagic-patch/tracevm"
	"io"
	"os"
	"slices"
	"unsafe"
)

// statsVersion is the "version" field of the statistics; bump it when a
// field changes meaning (adding fields keeps it).
const statsVersion = 1

// maxHotLoops bounds the hot_loops list.
const maxHotLoops = 50

// Site kinds, as in enum rm_site_kind.
const (
	siteBackedge = 1
	siteAPICall  = 2
)

// apiBackwardsBranch is RM_API_BACKWARDS_BRANCH.
const apiBackwardsBranch = 1

// apiNames are the redmagic API functions without their "redmagic_"
// prefix, in the order of enum rm_api (a test checks it against the header).
var apiNames = [...]string{
	"start",
	"backwards_branch",
	"fellthrough_branch",
	"begin_branchable_frame",
	"end_branchable_frame",
	"force_begin_trace",
	"force_end_trace",
	"force_jump_to_trace",
	"ensure_not_traced",
	"temp_disable",
	"temp_enable",
	"do_not_trace_function",
	"disable_branch",
	"is_traced",
	"begin_merge_block",
	"end_merge_block",
}

// Stats is the JSON object written at exit (STATS.md).
type Stats struct {
	Version          int               `json:"version"`
	PID              int               `json:"pid"`
	Objects          []ObjectStats     `json:"objects"`
	SiteHits         uint64            `json:"site_hits"`
	Sites            []SiteStats       `json:"sites"`
	HotLoops         []HotLoop         `json:"hot_loops"`
	Threads          uint64            `json:"threads"`
	ForkedChild      bool              `json:"forked_child"`
	Disabled         bool              `json:"disabled"`
	GaveUp           map[string]uint64 `json:"gave_up"`
	HotThreshold     uint64            `json:"hot_threshold"`
	SlowPathCalls    uint64            `json:"slow_path_calls"`
	TableFullHits    uint64            `json:"table_full_hits"`
	InvalidSiteCalls uint64            `json:"invalid_site_calls"`
	// JIT is the tracing JIT's report; null when it never started.
	JIT *tracevm.Snapshot `json:"jit"`
}

// ObjectStats describes one patched object the runtime serves.
type ObjectStats struct {
	Path        string `json:"path"`
	Profile     string `json:"profile"`
	BuildID     string `json:"build_id"`
	ToolVersion string `json:"tool_version"`
}

// SiteStats counts the hits of one site.
type SiteStats struct {
	Object      uint32 `json:"object"`
	Index       uint32 `json:"index"`
	Name        string `json:"name"`
	Addr        uint64 `json:"addr"`
	Kind        string `json:"kind"`
	Hits        uint64 `json:"hits"`
	DistinctIDs uint64 `json:"distinct_ids"`
}

// HotLoop is one (site, id) loop counter.
type HotLoop struct {
	Object        uint32 `json:"object"`
	Site          uint32 `json:"site"`
	ID            uint64 `json:"id"`
	Hits          uint64 `json:"hits"`
	SlowPathCalls uint64 `json:"slow_path_calls"`
}

// statsInput is what C hands over at exit, as Go values.
type statsInput struct {
	Out              string
	PID              int
	Disabled         bool
	Forked           bool
	Objects          []objectIn
	Sites            []siteIn // indexed by global site
	Rows             []rowIn  // one per thread and key; keys may repeat
	Threads          uint64
	HotThreshold     uint64
	InvalidSiteCalls uint64
}

type objectIn struct {
	Path, Profile, BuildID, ToolVersion string
}

type siteIn struct {
	Addr         uint64
	Name         string
	OverflowHits uint64
	Object       uint32
	Index        uint32
	Kind         uint32
	API          uint32
}

type rowIn struct {
	Site  uint32
	ID    uint64
	Count uint64
}

// siteKind names a site's kind as STATS.md lists them.
func siteKind(kind, api uint32) string {
	switch {
	case kind == siteBackedge:
		return "backedge"
	case kind == siteAPICall && int(api) < len(apiNames):
		return "api:" + apiNames[api]
	}
	return fmt.Sprintf("unknown(%d)", kind)
}

// isLoopSite reports whether a site's ids name user-level loops.
func isLoopSite(s siteIn) bool {
	return s.Kind == siteBackedge ||
		(s.Kind == siteAPICall && s.API == apiBackwardsBranch)
}

// buildStats sums the per-thread rows by key and by site and adds the slow
// path calls Go saw (calls, keyed by global site and id).
func buildStats(in statsInput, calls map[hotKey]uint64) Stats {
	st := Stats{
		Version:          statsVersion,
		PID:              in.PID,
		Objects:          make([]ObjectStats, 0, len(in.Objects)),
		Sites:            make([]SiteStats, 0, len(in.Sites)),
		HotLoops:         []HotLoop{},
		Threads:          in.Threads,
		ForkedChild:      in.Forked,
		Disabled:         in.Disabled,
		GaveUp:           map[string]uint64{},
		HotThreshold:     in.HotThreshold,
		InvalidSiteCalls: in.InvalidSiteCalls,
	}
	for _, o := range in.Objects {
		st.Objects = append(st.Objects, ObjectStats(o))
	}
	merged := make(map[hotKey]uint64, len(in.Rows))
	for _, r := range in.Rows {
		if int(r.Site) >= len(in.Sites) {
			continue
		}
		merged[hotKey{Site: r.Site, ID: r.ID}] += r.Count
	}
	hits := make([]uint64, len(in.Sites))
	distinct := make([]uint64, len(in.Sites))
	for k, n := range merged {
		hits[k.Site] += n
		distinct[k.Site]++
		if s := in.Sites[k.Site]; isLoopSite(s) {
			st.HotLoops = append(st.HotLoops, HotLoop{
				Object: s.Object, Site: s.Index, ID: k.ID, Hits: n,
				SlowPathCalls: calls[k],
			})
		}
	}
	for g, s := range in.Sites {
		h := hits[g] + s.OverflowHits
		st.SiteHits += h
		st.TableFullHits += s.OverflowHits
		st.Sites = append(st.Sites, SiteStats{
			Object: s.Object, Index: s.Index, Name: s.Name, Addr: s.Addr,
			Kind: siteKind(s.Kind, s.API), Hits: h,
			DistinctIDs: distinct[g],
		})
	}
	for _, n := range calls {
		st.SlowPathCalls += n
	}
	slices.SortFunc(st.HotLoops, func(a, b HotLoop) int {
		return cmp.Or(cmp.Compare(b.Hits, a.Hits),
			cmp.Compare(a.Object, b.Object), cmp.Compare(a.Site, b.Site),
			cmp.Compare(a.ID, b.ID))
	})
	if len(st.HotLoops) > maxHotLoops {
		st.HotLoops = st.HotLoops[:maxHotLoops]
	}
	return st
}

// StatsError is a failure to write the statistics.
type StatsError struct {
	Path string
	Err  error
}

func (e *StatsError) Error() string {
	return fmt.Sprintf("redmagic: stats: %s: %v", e.Path, e.Err)
}

func (e *StatsError) Unwrap() error { return e.Err }

// writeStats writes st as one JSON line to out: a file path, or standard
// error for "1".
func writeStats(out string, st Stats, stderr io.Writer) error {
	data, err := json.Marshal(st)
	if err != nil {
		return &StatsError{Path: out, Err: err}
	}
	data = append(data, '\n')
	if out == "1" {
		_, err = stderr.Write(data)
	} else {
		err = os.WriteFile(out, data, 0o644)
	}
	if err != nil {
		return &StatsError{Path: out, Err: err}
	}
	return nil
}

// statsFromC copies the C snapshot into Go values.
func statsFromC(s *C.struct_rm_snapshot) statsInput {
	in := statsInput{
		Out:              C.GoString(s.out),
		PID:              os.Getpid(),
		Disabled:         s.disabled != 0,
		Forked:           s.forked != 0,
		Threads:          uint64(s.threads),
		HotThreshold:     uint64(s.hot_threshold),
		InvalidSiteCalls: uint64(s.invalid_site_calls),
	}
	if s.nobjs > 0 {
		for _, o := range unsafe.Slice(s.objs, s.nobjs) {
			p := C.GoString(o.path)
			if p == "" {
				// The main program: ld.so gives it no name.
				if exe, err := os.Executable(); err == nil {
					p = exe
				}
			}
			in.Objects = append(in.Objects, objectIn{
				Path: p, Profile: C.GoString(o.profile),
				BuildID:     C.GoString(o.build_id),
				ToolVersion: C.GoString(o.tool_version),
			})
		}
	}
	if s.nsites > 0 {
		for _, x := range unsafe.Slice(s.sites, s.nsites) {
			in.Sites = append(in.Sites, siteIn{
				Addr: uint64(x.addr), Name: C.GoString(x.name),
				OverflowHits: uint64(x.overflow_hits),
				Object:       uint32(x.object), Index: uint32(x.index),
				Kind: uint32(x.kind), API: uint32(x.api),
			})
		}
	}
	if s.nrows > 0 {
		rows := unsafe.Slice(s.rows, s.nrows)
		in.Rows = make([]rowIn, len(rows))
		for i, r := range rows {
			in.Rows[i] = rowIn{Site: uint32(r.site), ID: uint64(r.id),
				Count: uint64(r.count)}
		}
	}
	return in
}

// rmWriteStats is called once at exit (never in a forked child) when
// REDMAGIC_STATS is set. Any failure is one line on standard error.
//
//export rmWriteStats
func rmWriteStats(s *C.struct_rm_snapshot) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "redmagic: stats: %v\n", r)
		}
	}()
	in := statsFromC(s)
	st := buildStats(in, hot.snapshot())
	if m := tracevm.Active(); m != nil {
		snap := m.Snapshot()
		st.JIT = &snap
		st.GaveUp = snap.Aborts
	}
	if err := writeStats(in.Out, st, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
