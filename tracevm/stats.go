package tracevm

/*
#include "tv.h"
*/
import "C"

import (
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the machine's counters. Per-exit and per-entry counts live in
// C (tv.c) and are read by Snapshot.
type Stats struct {
	tracesCompiled   atomic.Uint64
	sideTraces       atomic.Uint64
	recordings       atomic.Uint64
	flushes          atomic.Uint64
	recordNanos      atomic.Int64
	compileNanos     atomic.Int64
	recordedInsns    atomic.Uint64
	chainedBlocks    atomic.Uint64
	recorderEvents   atomic.Uint64
	sidesOptimized   atomic.Uint64
	variants         atomic.Uint64
	headGuardedSides atomic.Uint64
	mergedSides      atomic.Uint64
	continuations    atomic.Uint64
	mergeMisses      atomic.Uint64
	sameStores       atomic.Uint64
	peeled           atomic.Uint64
	wideSplits       atomic.Uint64
	vectorPairs      atomic.Uint64
	doublesFwd       atomic.Uint64
	sidesIntoPeeled  atomic.Uint64
	respecs          atomic.Uint64
	// sideEntryMismatch: side recordings whose machine state at the
	// exit contradicted what the parent trace knew there (never, unless
	// the optimiser is wrong: such a side trace is not optimised).
	sideEntryMismatch atomic.Uint64

	mu     sync.Mutex
	aborts map[string]uint64
}

func (s *Stats) init() { s.aborts = make(map[string]uint64) }

func (s *Stats) abort(reason string) {
	s.mu.Lock()
	s.aborts[reason]++
	s.mu.Unlock()
}

// Snapshot is what REDMAGIC_STATS reports about the JIT (runtime-stub/STATS.md).
type Snapshot struct {
	TracesCompiled  uint64            `json:"traces_compiled"`
	SideTraces      uint64            `json:"side_traces"`
	Recordings      uint64            `json:"recordings"`
	TraceEntries    uint64            `json:"trace_entries"`
	TraceIterations uint64            `json:"trace_iterations"`
	SideExits       uint64            `json:"side_exits"`
	Aborts          map[string]uint64 `json:"aborts"`
	CodeBytes       uint64            `json:"code_bytes"`
	Flushes         uint64            `json:"flushes"`
	RecordSeconds   float64           `json:"record_seconds"`
	// CompileSeconds: the part of RecordSeconds spent optimising and
	// compiling recordings into traces.
	CompileSeconds float64 `json:"compile_seconds"`
	// JITSeconds: what the program's threads spent in the JIT itself
	// (recorder events, starting recordings, compiling), without the
	// program's own work done meanwhile (its native calls while recording):
	// the recorder's cost. record_seconds counts that work too.
	JITSeconds float64 `json:"jit_seconds"`
	// AllocBytes: Go heap the JIT allocated in all (its collector runs
	// rarely: fresh heap costs a page fault per 4 KiB).
	AllocBytes uint64 `json:"alloc_bytes"`
	// RecordedInsns: instructions all recordings copied (abandoned ones
	// too): jit_seconds less compile_seconds over it is the recorder's
	// speed.
	RecordedInsns uint64 `json:"recorded_insns"`
	// ChainedBlocks: recorded blocks that ran from the block cache
	// chained to the one before, without a switch to the recorder.
	ChainedBlocks uint64 `json:"chained_blocks"`
	// RecorderEvents: switches from recorded code to the recorder.
	RecorderEvents uint64 `json:"recorder_events"`
	// TracesDropped: root traces the runtime measured slower than the
	// interpreter and unpublished (their loops are never recorded again).
	TracesDropped uint64 `json:"traces_dropped"`
	// SidesOptimized: side traces optimised from what their parents
	// know at their exits; SideEntryMismatches: side recordings whose
	// state contradicted it (0 unless the optimiser is wrong).
	SidesOptimized      uint64 `json:"side_traces_optimized"`
	SideEntryMismatches uint64 `json:"side_entry_mismatches"`
	// Variants: side traces from a root's head guards optimised as roots
	// of their own, for the entry state they were recorded in
	// (variantEntry); counted in SidesOptimized too.
	Variants uint64 `json:"variant_traces"`
	// HeadGuardedSides: side traces whose parent's exit knew nothing
	// that take registers at the values they were recorded with,
	// checked by head guards of their own; counted in SidesOptimized
	// too.
	HeadGuardedSides uint64 `json:"head_guarded_side_traces"`
	// MergedSides: side traces ended where their path rejoins their
	// root's (merge.go); Continuations: the traces entered there.
	MergedSides   uint64 `json:"merged_side_traces"`
	Continuations uint64 `json:"continuations"`
	// MergeMisses: recordings from merge exits that did not begin in
	// their point's state, compiled as ordinary side traces.
	MergeMisses uint64 `json:"merge_misses"`
	// SameStores: stores left out of traces as writing what memory
	// certainly held already (samestore.go).
	SameStores uint64 `json:"same_stores_dropped"`
	// LoopsPeeled: root traces emitted twice, the second copy without
	// the guards on what the loop never writes (peel.go).
	LoopsPeeled uint64 `json:"loops_peeled"`
	// SidesIntoPeeled: side traces that close their loop in its peeled
	// copy, not at its head.
	SidesIntoPeeled uint64 `json:"side_traces_into_peeled"`
	// BackEdgesUnrolled: back-edges of other loops that the compiled
	// traces' recordings went through (unrollInner).
	BackEdgesUnrolled uint64 `json:"back_edges_unrolled"`
	// WideLoadsSplit: 16-byte loads of compiled traces emitted as two
	// 8-byte ones, their halves having been stored apart (widesplit.go).
	WideLoadsSplit uint64 `json:"wide_loads_split"`
	// VectorCopiesPaired: 16-byte copies (an SSE load and its store) of
	// compiled traces made through two general registers (vecpair.go).
	VectorCopiesPaired uint64 `json:"vector_copies_paired"`
	// DoublesForwarded: loads of a double the trace stored or loaded a
	// little before that compiled traces take from a spare vector
	// register, memory checked off the dependency chain (xmmfwd.go).
	DoublesForwarded uint64 `json:"doubles_forwarded"`
	// Respecialized: root traces retired because a guard on a value
	// only the recording's concrete run found failed often, their loops
	// recorded again without that speculation (respec.go).
	Respecialized uint64 `json:"respecialized"`
	// Parking (park.c): whether it is on (or why not), how often the
	// JIT's threads were parked and released, attempts that found a
	// thread outside Go code, and the time spent parked.
	Parking       string       `json:"parking"`
	Parks         uint64       `json:"parks"`
	Unparks       uint64       `json:"unparks"`
	ParkRefusals  uint64       `json:"park_refusals"`
	ParkedSeconds float64      `json:"parked_seconds"`
	Traces        []TraceStats `json:"traces"`
}

// TraceStats describes one compiled trace.
type TraceStats struct {
	Head  uint64 `json:"head"`
	Site  uint32 `json:"site"`
	ID    uint64 `json:"id"`
	Side  bool   `json:"side,omitempty"`
	Insns int    `json:"insns"`
	// Hoisted: guards a peeled root trace checks at its first iteration
	// only (absent: not peeled); PeelMisses: closes of its first copy
	// that found other values than its second copy assumes, and looped
	// in the first copy.
	Hoisted    int    `json:"hoisted_guards,omitempty"`
	PeelMisses uint64 `json:"peel_misses,omitempty"`
	Bytes      int    `json:"bytes"`
	Iterations uint64 `json:"iterations"`
	// Unrolled: back-edges of other loops taken inside the trace, which
	// runs them unrolled (in TraceIterations, not in Iterations);
	// UnrolledBackEdges: how many its recording went through.
	Unrolled          uint64 `json:"unrolled,omitempty"`
	UnrolledBackEdges int    `json:"unrolled_back_edges,omitempty"`
	Exits             uint64 `json:"exits"`
	// PeriodicExits: times the loop left this trace through the original
	// dispatch for its periodic look by the runtime (not in Exits).
	PeriodicExits uint64 `json:"periodic_exits,omitempty"`
	// The runtime's measure of a root trace's loop (sampled cycles per
	// iteration, exits included) and its verdict: kept, or dropped for
	// not beating the interpreter. Absent when it was not measured.
	InterpCycles float64 `json:"interp_cycles,omitempty"`
	TraceCycles  float64 `json:"trace_cycles,omitempty"`
	Verdict      string  `json:"verdict,omitempty"`
	// TopExits: the exits taken most, most first (at most 5): where the
	// original code resumed and how often.
	TopExits []ExitStats `json:"top_exits,omitempty"`
}

// ExitStats is one trace exit.
type ExitStats struct {
	Addr  uint64 `json:"addr"` // original address the exit resumes at
	Count uint64 `json:"count"`
	State string `json:"state"` // open, linked (a side trace), dead, risky (respec.go)
}

var exitStates = [...]string{"open", "linked", "dead", "risky"}

// Snapshot reads every counter.
func (m *Machine) Snapshot() Snapshot {
	s := Snapshot{
		TracesCompiled:      m.stats.tracesCompiled.Load(),
		SideTraces:          m.stats.sideTraces.Load(),
		Recordings:          m.stats.recordings.Load(),
		TraceEntries:        uint64(C.tv_g.trace_entries),
		Flushes:             m.stats.flushes.Load(),
		RecordSeconds:       float64(m.stats.recordNanos.Load()) / 1e9,
		CompileSeconds:      float64(m.stats.compileNanos.Load()) / 1e9,
		RecordedInsns:       m.stats.recordedInsns.Load(),
		ChainedBlocks:       m.stats.chainedBlocks.Load(),
		RecorderEvents:      m.stats.recorderEvents.Load(),
		SidesOptimized:      m.stats.sidesOptimized.Load(),
		Variants:            m.stats.variants.Load(),
		HeadGuardedSides:    m.stats.headGuardedSides.Load(),
		MergedSides:         m.stats.mergedSides.Load(),
		Continuations:       m.stats.continuations.Load(),
		MergeMisses:         m.stats.mergeMisses.Load(),
		SameStores:          m.stats.sameStores.Load(),
		SideEntryMismatches: m.stats.sideEntryMismatch.Load(),
		LoopsPeeled:         m.stats.peeled.Load(),
		WideLoadsSplit:      m.stats.wideSplits.Load(),
		VectorCopiesPaired:  m.stats.vectorPairs.Load(),
		DoublesForwarded:    m.stats.doublesFwd.Load(),
		Respecialized:       m.stats.respecs.Load(),
		SidesIntoPeeled:     m.stats.sidesIntoPeeled.Load(),
		Parking:             m.parking(),
		Parks:               uint64(C.tv_park_g.parks),
		Unparks:             uint64(C.tv_park_g.unparks),
		ParkRefusals:        uint64(C.tv_park_g.refusals),
		ParkedSeconds:       parkedSeconds(),
		Aborts:              map[string]uint64{},
		Traces:              []TraceStats{},
	}
	if el := time.Since(m.started); el > 0 {
		if cyc := uint64(C.tv_rdtsc_now() - C.tv_g.start_tsc); cyc > 0 {
			s.JITSeconds = float64(C.tv_g.jit_cycles) / float64(cyc) * el.Seconds()
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.AllocBytes = ms.TotalAlloc
	m.stats.mu.Lock()
	for k, v := range m.stats.aborts {
		s.Aborts[k] = v
	}
	m.stats.mu.Unlock()
	if n := uint64(C.tv_g.budget_refusals); n > 0 {
		s.Aborts["budget"] = n
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s.CodeBytes = uint64(m.cache.Used())
	exits := exitTable()
	for _, t := range m.traces {
		ts := TraceStats{Head: t.head, Site: t.key.gsite, ID: t.key.id, Side: t.side, Insns: t.insns, Bytes: t.size, Hoisted: t.hoisted}
		if !t.side {
			var i16, t16 C.uint32_t
			switch C.tv_verdict_of(C.uint32_t(t.key.gsite), C.uint64_t(t.key.id), &i16, &t16) {
			case 1:
				ts.Verdict = "kept"
			case 2:
				ts.Verdict = "dropped"
				s.TracesDropped++
			}
			if ts.Verdict != "" {
				ts.InterpCycles, ts.TraceCycles = float64(i16)/16, float64(t16)/16
			}
		}
		if t.iterCtr != 0 {
			ts.Iterations = m.data.load(t.iterCtr)
		}
		if t.unrollCtr != 0 {
			ts.Unrolled, ts.UnrolledBackEdges = m.data.load(t.unrollCtr), t.unrolled
		}
		if t.peelMisses != 0 {
			ts.PeelMisses = m.data.load(t.peelMisses)
		}
		for _, x := range t.periodic {
			ts.PeriodicExits += uint64(exits[x].count)
		}
		for x := t.exitBase; x < t.exitBase+t.nexits; x++ {
			if slices.Contains(t.periodic, x) {
				continue
			}
			c := uint64(exits[x].count)
			ts.Exits += c
			if c == 0 {
				continue
			}
			st := "open"
			if k := int(exits[x].state); k < len(exitStates) {
				st = exitStates[k]
			}
			ts.TopExits = append(ts.TopExits, ExitStats{Addr: uint64(exits[x].orig), Count: c, State: st})
		}
		sort.Slice(ts.TopExits, func(i, j int) bool { return ts.TopExits[i].Count > ts.TopExits[j].Count })
		if len(ts.TopExits) > 5 {
			ts.TopExits = ts.TopExits[:5]
		}
		s.TraceIterations += ts.Iterations + ts.Unrolled
		s.BackEdgesUnrolled += uint64(t.unrolled)
		s.SideExits += ts.Exits
		s.Traces = append(s.Traces, ts)
	}
	sort.Slice(s.Traces, func(i, j int) bool { return s.Traces[i].Head < s.Traces[j].Head })
	return s
}

// parkedSeconds is the time the JIT's threads have spent parked, the
// current parking included.
func parkedSeconds() float64 {
	ns := uint64(C.tv_park_g.parked_ns)
	if C.tv_park_g.parked != 0 {
		ns += uint64(C.tv_park_now_ns() - C.tv_park_g.parked_at)
	}
	return float64(ns) / 1e9
}

// SetParking records whether parking is on, or why not, for the
// statistics.
func SetParking(state string) {
	if m := active.Load(); m != nil {
		m.parkState.Store(&state)
	}
}

func (m *Machine) parking() string {
	if C.tv_park_g.lost != 0 {
		return "off: the program installed a handler for its signal"
	}
	if p := m.parkState.Load(); p != nil {
		return *p
	}
	return "off"
}
