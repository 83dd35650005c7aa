package main

/*
#include "rm_internal.h"
*/
import "C"

import (
	"sync"
)

// hotKey names a loop: a global site and the loop id its trampoline passed.
type hotKey struct {
	Site uint32
	ID   uint64
}

// hotLoops records the loops whose counters crossed the hot threshold. It
// is where the trace recorder will keep its per-loop state.
type hotLoops struct {
	mu sync.Mutex
	m  map[hotKey]uint64 // slow-path calls: one per thread that crossed
}

func newHotLoops() *hotLoops {
	return &hotLoops{m: make(map[hotKey]uint64)}
}

// record notes one slow-path call for k and reports whether it was the
// first for that loop.
func (h *hotLoops) record(k hotKey) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[k]++
	return h.m[k] == 1
}

// snapshot copies the calls per loop.
func (h *hotLoops) snapshot() map[hotKey]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[hotKey]uint64, len(h.m))
	for k, v := range h.m {
		out[k] = v
	}
	return out
}

// hot is process-wide because the runtime is: one shared object serving
// every thread of the process it is loaded into.
var hot = newHotLoops()

// rmHot is the slow path of the C hit counter: the counter of (site, id) on
// the calling thread has just reached the threshold (hits). C calls it once
// per thread and loop, on the thread's own stack, with the vector state
// saved, and never in a forked child.
//
//export rmHot
func rmHot(site C.uint32_t, id C.uint64_t, hits C.uint64_t) {
	_ = hits
	hot.record(hotKey{Site: uint32(site), ID: uint64(id)})
	jitOnce.Do(startJIT)
}
