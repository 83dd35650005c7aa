package main

/*
#include "rm_internal.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/redmagic-patch/redmagic-patch/runtime-stub/abi"
	"github.com/redmagic-patch/redmagic-patch/tracevm"
)

// maxHotLoops bounds the hot_loops list (RM_STATS_MAX_HOT in rm_stats.c).
const maxHotLoops = 50

// Site kinds, as in enum rm_site_kind.
const (
	siteBackedge = 1
	siteAPICall  = 2
)

// apiNames are the redmagic API functions without their "redmagic_"
// prefix, in the order of enum rm_api (a test checks it against the header).
var apiNames = abi.APINames

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
	DispatchRestored uint64            `json:"dispatch_restored"`
	InlineCacheFills uint64            `json:"inline_cache_fills"`
	GovernorQuiets   uint64            `json:"governor_quiets"`
	JITRateBest      uint64            `json:"jit_rate_best"`
	JITRateRefusals  uint64            `json:"jit_rate_refusals"`
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

// statsInput is a statistics snapshot (struct rm_snapshot) as Go values:
// what the tests hand the C writer.
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
	DispatchRestored uint64
	InlineCacheFills uint64
	GovernorQuiets   uint64
	JITRateBest      uint64
	JITRateRefusals  uint64
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
	Slow  uint32 // this thread's counter took the slow path
}

// rmJITReport gives the statistics writer (rm_stats.c, in the runtime) the
// JIT's part of the report as JSON texts in C memory the caller frees: the
// "jit" object, and "gave_up" (reason -> recordings given up). Called once,
// at exit, never in a fork child.
//
//export rmJITReport
func rmJITReport(jit, gaveUp **C.char) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "redmagic: stats: %v\n", r)
		}
	}()
	m := tracevm.Active()
	if m == nil {
		return
	}
	snap := m.Snapshot()
	j, err := json.Marshal(snap)
	if err != nil {
		fmt.Fprintf(os.Stderr, "redmagic: stats: %v\n", err)
		return
	}
	g, err := json.Marshal(snap.Aborts)
	if err != nil || snap.Aborts == nil {
		g = []byte("{}")
	}
	*jit = C.CString(string(j))
	*gaveUp = C.CString(string(g))
}
