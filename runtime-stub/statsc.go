package main

/*
#include <stdlib.h>
#include <string.h>
#include "rm_internal.h"
#include "host/rm_stats.c"
*/
import "C"

import (
	"errors"
	"unsafe"
)

// The statistics are written by the runtime (host/rm_stats.c), in C, so
// that a process whose JIT never started needs no Go to report. This
// wrapper lets the tests run that writer on snapshots of their own.

// writeStatsC writes in with the runtime's writer; jit and gaveUp are the
// JIT's JSON texts ("" for none).
func writeStatsC(in statsInput, jit, gaveUp string) error {
	var pins []unsafe.Pointer
	cstr := func(s string) *C.char {
		p := C.CString(s)
		pins = append(pins, unsafe.Pointer(p))
		return p
	}
	calloc := func(n int, size uintptr) unsafe.Pointer {
		p := C.calloc(C.size_t(max(n, 1)), C.size_t(size))
		pins = append(pins, p)
		return p
	}
	defer func() {
		for _, p := range pins {
			C.free(p)
		}
	}()
	s := (*C.struct_rm_snapshot)(calloc(1, C.sizeof_struct_rm_snapshot))
	s.out = cstr(in.Out)
	s.pid = C.int64_t(in.PID)
	s.disabled = C.uint32_t(b2u(in.Disabled))
	s.forked = C.uint32_t(b2u(in.Forked))
	s.threads = C.uint64_t(in.Threads)
	s.hot_threshold = C.uint64_t(in.HotThreshold)
	s.invalid_site_calls = C.uint64_t(in.InvalidSiteCalls)
	s.dispatch_restored = C.uint64_t(in.DispatchRestored)
	s.inline_cache_fills = C.uint64_t(in.InlineCacheFills)
	s.governor_quiets = C.uint64_t(in.GovernorQuiets)
	s.jit_rate_best = C.uint64_t(in.JITRateBest)
	s.jit_rate_refusals = C.uint64_t(in.JITRateRefusals)
	if jit != "" {
		s.jit_json = cstr(jit)
	}
	if gaveUp != "" {
		s.gave_up_json = cstr(gaveUp)
	}
	objs := unsafe.Slice((*C.struct_rm_snap_obj)(calloc(len(in.Objects), C.sizeof_struct_rm_snap_obj)), max(len(in.Objects), 1))
	for i, o := range in.Objects {
		objs[i] = C.struct_rm_snap_obj{path: cstr(o.Path), profile: cstr(o.Profile),
			build_id: cstr(o.BuildID), tool_version: cstr(o.ToolVersion)}
	}
	s.objs, s.nobjs = &objs[0], C.uint32_t(len(in.Objects))
	sites := unsafe.Slice((*C.struct_rm_snap_site)(calloc(len(in.Sites), C.sizeof_struct_rm_snap_site)), max(len(in.Sites), 1))
	for i, x := range in.Sites {
		sites[i] = C.struct_rm_snap_site{addr: C.uint64_t(x.Addr), name: cstr(x.Name),
			overflow_hits: C.uint64_t(x.OverflowHits), object: C.uint32_t(x.Object),
			index: C.uint32_t(x.Index), kind: C.uint32_t(x.Kind), api: C.uint32_t(x.API)}
	}
	s.sites, s.nsites = &sites[0], C.uint32_t(len(in.Sites))
	rows := unsafe.Slice((*C.struct_rm_snap_row)(calloc(len(in.Rows), C.sizeof_struct_rm_snap_row)), max(len(in.Rows), 1))
	for i, r := range in.Rows {
		rows[i] = C.struct_rm_snap_row{id: C.uint64_t(r.ID), count: C.uint64_t(r.Count),
			site: C.uint32_t(r.Site), slow: C.uint32_t(r.Slow)}
	}
	s.rows, s.nrows = &rows[0], C.uint64_t(len(in.Rows))
	why := (*C.char)(calloc(512, 1))
	if C.rm_stats_write(s, why, 512) != 0 {
		return errors.New(C.GoString(why))
	}
	return nil
}

// statsTarget runs rm_stats_target: the file process pid writes its
// statistics to for REDMAGIC_STATS=pattern, and whether that file is shared
// by the processes that inherit the variable.
func statsTarget(pattern, cwd string, pid, owner int64) (path string, shared bool, err error) {
	cp, cc := C.CString(pattern), C.CString(cwd)
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(cc))
	var out [256]C.char
	var sh C.int
	if C.rm_stats_target(cp, cc, C.int64_t(pid), C.int64_t(owner), &out[0], C.size_t(len(out)), &sh) != 0 {
		return "", false, errors.New("path too long")
	}
	return C.GoString(&out[0]), sh != 0, nil
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
