// Package harness lets go test record and run traces of small C functions
// with tracevm, without patching a binary. It owns the test functions
// (tt_*.c), the annotation shims they call (th_shims.S, the same stubs
// runtime-stub puts behind a patched binary's annotation calls), the C
// side that counts hits and sends hot loops into tracevm (th_api.c, as
// runtime-stub's rm_api_call does), and the setup that tells tracevm what
// the test binary's code is.
//
// Setup runs once per process, from TestMain. It finds the test binary's
// executable segments and PLT, decodes every C function (the FDEs of
// .eh_frame: go test strips the symbol table, the unwind table stays) and
// registers every direct call of a shim as an annotation site. A shim
// called from anywhere else is counted as an unknown site (Stats), which
// tests check is zero.
package harness

/*
#cgo CFLAGS: -O2 -fno-stack-protector -Wall -I${SRCDIR}/..
#include <stdlib.h>
#include "th.h"
*/
import "C"

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
	"github.com/redmagic-patch/redmagic-patch/internal/ehframe"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/tracevm"
	"golang.org/x/arch/x86/x86asm"
)

// Site is one shim call found by Setup.
type Site struct {
	Addr  uint64 // the call instruction
	GSite uint32
	API   tracevm.API
}

// state is what Setup found; it never changes afterwards.
type state struct {
	m     *tracevm.Machine
	bias  uint64
	fdes  []ehframe.FDE // C functions, run-time addresses, sorted by Start
	sites []Site        // sorted by Addr; index = GSite
	code  func(lo, hi uint64) ([]byte, error)
	calls *C.uint64_t // C copies of the site table (th_api reads them)
	apis  *C.uint8_t
}

var (
	setupOnce sync.Once
	setupErr  error
	st        state
	logs      = &traceLogs{byHead: map[uint64]string{}}
)

// Setup starts tracevm for the test binary, with loops hot after
// threshold backwards branches, and turns the JIT on. It runs once per
// process: later calls return the first call's result.
func Setup(threshold int) (*tracevm.Machine, error) {
	setupOnce.Do(func() { setupErr = setup(threshold) })
	return st.m, setupErr
}

// Machine returns the machine Setup started, or nil.
func Machine() *tracevm.Machine { return st.m }

func setup(threshold int) error {
	if threshold < 1 {
		return fmt.Errorf("harness: hot threshold %d < 1", threshold)
	}
	st.bias = uint64(C.th_main_bias())
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	defer f.Close()
	obj, err := readObject(f)
	if err != nil {
		return err
	}
	shims := map[uint64]tracevm.API{}
	for api := tracevm.API(0); api < tracevm.NumAPI; api++ {
		shims[uint64(uintptr(C.th_shim(C.int(api))))] = api
	}
	if st.sites, err = findSites(st.fdes, shims, st.code); err != nil {
		return err
	}
	obj.Sites = make(map[uint64]tracevm.Site, len(st.sites))
	for _, s := range st.sites {
		obj.Sites[s.Addr] = tracevm.Site{GSite: s.GSite, API: s.API}
	}
	for i := 0; ; i++ {
		p := uint64(uintptr(C.th_native_fn(C.int(i))))
		if p == 0 {
			break
		}
		r, ok := fdeOf(p)
		if !ok {
			return fmt.Errorf("harness: native helper %#x has no FDE", p)
		}
		obj.Native = append(obj.Native, r)
	}
	for _, fn := range Funcs {
		if n := len(fn.Sites()); n == 0 && !shimsInHelpers[fn.Name] {
			return fmt.Errorf("harness: %s (%#x) calls no shim directly: inlined, or calls through the PLT", fn.Name, fn.Addr())
		}
	}
	if err := publishSites(st.sites); err != nil {
		return err
	}
	C.th_set_threshold(C.uint64_t(threshold))
	if rc := C.th_atfork(); rc != 0 {
		return fmt.Errorf("harness: pthread_atfork: error %d", int(rc))
	}
	cfg := tracevm.Config{Objects: []tracevm.Object{obj}, Log: logs}
	// As in runtime-stub: REDMAGIC_OPT=0 compiles traces as recorded
	// (to tell an optimiser fault from a recorder fault).
	cfg.NoOptimize = os.Getenv("REDMAGIC_OPT") == "0"
	m, err := tracevm.Start(cfg)
	if err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	st.m = m
	C.th_set_jit(1)
	return nil
}

// readObject reads the test binary's executable segments, PLT sections
// and FDEs (all at run-time addresses).
func readObject(f *elf.File) (tracevm.Object, error) {
	o := tracevm.Object{Name: "test binary"}
	bias := st.bias
	switch f.Type {
	case elf.ET_EXEC:
		if bias != 0 {
			return o, fmt.Errorf("harness: non-PIE executable with load bias %#x", bias)
		}
	case elf.ET_DYN:
	default:
		return o, fmt.Errorf("harness: /proc/self/exe is an ELF %v", f.Type)
	}
	var exec []*elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			o.Image = append(o.Image, tracevm.Range{Lo: bias + p.Vaddr, Hi: bias + p.Vaddr + p.Memsz})
		}
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			o.Text = append(o.Text, tracevm.Range{Lo: bias + p.Vaddr, Hi: bias + p.Vaddr + p.Memsz})
			exec = append(exec, p)
		}
		// As the runtime reads them (runtime-stub's jitObject).
		if (p.Type == elf.PT_LOAD && p.Flags&elf.PF_W == 0) || p.Type == elf.PT_GNU_RELRO {
			o.ReadOnly = append(o.ReadOnly, tracevm.Range{Lo: bias + p.Vaddr, Hi: bias + p.Vaddr + p.Filesz})
		}
	}
	if len(exec) == 0 {
		return o, errors.New("harness: no executable segment")
	}
	for _, s := range f.Sections {
		switch s.Name {
		case ".plt", ".plt.sec", ".plt.got":
			o.Native = append(o.Native, tracevm.Range{Lo: bias + s.Addr, Hi: bias + s.Addr + s.Size})
		}
	}
	eh := f.Section(".eh_frame")
	if eh == nil {
		return o, errors.New("harness: no .eh_frame: cannot find the C functions")
	}
	data, err := eh.Data()
	if err != nil {
		return o, fmt.Errorf("harness: .eh_frame: %w", err)
	}
	fdes, err := ehframe.Parse(data, eh.Addr)
	if err != nil {
		return o, fmt.Errorf("harness: .eh_frame: %w", err)
	}
	for _, d := range fdes {
		if d.End > d.Start {
			d.Start += bias
			d.End += bias
			st.fdes = append(st.fdes, d)
		}
	}
	sort.Slice(st.fdes, func(i, j int) bool { return st.fdes[i].Start < st.fdes[j].Start })
	for _, d := range st.fdes {
		if n := len(o.Funcs); n == 0 || d.Start >= o.Funcs[n-1].Hi {
			o.Funcs = append(o.Funcs, frame.Range{Lo: d.Start, Hi: d.End})
		}
	}
	// Code is read from the file: the text has no relocations, so the
	// file's bytes are the ones that run.
	type segment struct {
		lo   uint64
		data []byte
	}
	var segs []segment
	for _, p := range exec {
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return o, fmt.Errorf("harness: read segment at %#x: %w", p.Vaddr, err)
		}
		segs = append(segs, segment{bias + p.Vaddr, b})
	}
	st.code = func(lo, hi uint64) ([]byte, error) {
		for _, s := range segs {
			if lo >= s.lo && hi <= s.lo+uint64(len(s.data)) && lo <= hi {
				return s.data[lo-s.lo : hi-s.lo], nil
			}
		}
		return nil, fmt.Errorf("harness: %#x-%#x is not in an executable segment", lo, hi)
	}
	return o, nil
}

// findSites decodes every FDE's function and returns the direct calls of
// a shim, numbered in address order. A shim reached any other way (a tail
// jump, a call with a prefix) would give th_api a return address that is
// not a site: that is an error.
func findSites(fdes []ehframe.FDE, shims map[uint64]tracevm.API, code func(lo, hi uint64) ([]byte, error)) ([]Site, error) {
	var sites []Site
	for _, d := range fdes {
		b, err := code(d.Start, d.End)
		if err != nil {
			return nil, err
		}
		err = decodeAll(b, d.Start, func(inst *x86dec.Inst, raw []byte) error {
			t, ok := inst.Target()
			if !ok {
				return nil
			}
			api, isShim := shims[t]
			if !isShim {
				return nil
			}
			if inst.Op != x86asm.CALL || inst.Len != 5 || raw[0] != 0xe8 {
				return fmt.Errorf("harness: %#x: %v reaches shim %#x other than by call rel32 (bytes % x)", inst.Addr, inst.String(), t, raw)
			}
			sites = append(sites, Site{Addr: inst.Addr, API: api})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("harness: function %#x-%#x: %w", d.Start, d.End, err)
		}
	}
	sort.Slice(sites, func(i, j int) bool { return sites[i].Addr < sites[j].Addr })
	for i := range sites {
		sites[i].GSite = uint32(i)
	}
	return sites, nil
}

// decodeAll decodes b (code at addr) instruction by instruction.
func decodeAll(b []byte, addr uint64, each func(*x86dec.Inst, []byte) error) error {
	for off := 0; off < len(b); {
		inst, err := x86dec.Decode(b[off:], addr+uint64(off))
		if err != nil {
			return err
		}
		if err := each(&inst, b[off:off+inst.Len]); err != nil {
			return err
		}
		off += inst.Len
	}
	return nil
}

// publishSites hands the site table to th_api, in C memory (C keeps it).
func publishSites(sites []Site) error {
	n := len(sites)
	if n == 0 {
		return errors.New("harness: no shim call sites")
	}
	calls := (*C.uint64_t)(C.malloc(C.size_t(8 * n)))
	apis := (*C.uint8_t)(C.malloc(C.size_t(n)))
	if calls == nil || apis == nil {
		return errors.New("harness: out of memory")
	}
	cs := unsafe.Slice(calls, n)
	as := unsafe.Slice(apis, n)
	for i, s := range sites {
		cs[i] = C.uint64_t(s.Addr)
		as[i] = C.uint8_t(s.API)
	}
	if C.th_set_sites(calls, apis, C.uint32_t(n)) != 0 {
		return errors.New("harness: site table not sorted")
	}
	st.calls, st.apis = calls, apis
	return nil
}

// fdeOf returns the range of the C function holding a.
func fdeOf(a uint64) (tracevm.Range, bool) {
	i := sort.Search(len(st.fdes), func(i int) bool { return st.fdes[i].End > a })
	if i < len(st.fdes) && st.fdes[i].Start <= a {
		return tracevm.Range{Lo: st.fdes[i].Start, Hi: st.fdes[i].End}, true
	}
	return tracevm.Range{}, false
}

// SetJIT turns the JIT on or off for the test functions: with it off,
// every annotation call returns at once (nothing is counted, no trace is
// entered), so the functions run exactly as compiled.
func SetJIT(on bool) {
	v := 0
	if on {
		v = 1
	}
	C.th_set_jit(C.int(v))
}

// DropTraces drops the root traces of loop id as the runtime's governor
// does when they do not pay: unpublished, never recorded again.
func DropTraces(id uint64) { C.th_drop_traces(C.uint64_t(id)) }

// JIT reports whether the JIT is on.
func JIT() bool { return C.th_jit_on() != 0 }

// Stats are th_api's counters.
type Stats struct {
	Calls        [tracevm.NumAPI]uint64 // shim calls by API (natively run annotation calls)
	UnknownSite  uint64                 // return address of no registered site
	APIMismatch  uint64                 // a site called a shim of another API
	FromCache    uint64                 // calls made from traces (return address in the code cache)
	LookupsHit   uint64                 // backwards branches sent into a trace
	RecordTries  uint64                 // tv_try_record calls
	RecordStarts uint64                 // ... that started a recording
	CountFull    uint64                 // hits with no counter (table full)
}

// ReadStats returns th_api's counters.
func ReadStats() Stats {
	var c C.struct_th_stats
	C.th_get_stats(&c)
	var s Stats
	for i := range s.Calls {
		s.Calls[i] = uint64(c.calls[i])
	}
	s.UnknownSite = uint64(c.unknown_site)
	s.APIMismatch = uint64(c.api_mismatch)
	s.FromCache = uint64(c.from_cache)
	s.LookupsHit = uint64(c.lookups_hit)
	s.RecordTries = uint64(c.record_tries)
	s.RecordStarts = uint64(c.record_starts)
	s.CountFull = uint64(c.count_full)
	return s
}

// Sub returns s - o, counter by counter.
func (s Stats) Sub(o Stats) Stats {
	d := s
	for i := range d.Calls {
		d.Calls[i] -= o.Calls[i]
	}
	d.UnknownSite -= o.UnknownSite
	d.APIMismatch -= o.APIMismatch
	d.FromCache -= o.FromCache
	d.LookupsHit -= o.LookupsHit
	d.RecordTries -= o.RecordTries
	d.RecordStarts -= o.RecordStarts
	d.CountFull -= o.CountFull
	return d
}

// Loop sums what a snapshot says about the traces of one loop (or of
// several: every trace whose loop id lies in [lo, hi)).
type Loop struct {
	RootTraces int
	SideTraces int
	Iterations uint64 // back-edges taken inside these traces
	Unrolled   uint64 // other loops' back-edges taken inside them (tracevm.TraceStats.Unrolled)
	// UnrolledBackEdges: those their recordings went through.
	UnrolledBackEdges int
	Exits             uint64 // exits taken from them
	Periodic          uint64 // periodic exits (tracevm.TraceStats.PeriodicExits)
	PeelMisses        uint64 // tracevm.TraceStats.PeelMisses
	Heads             []uint64
}

// LoopFigures returns the figures of the traces of loop ids [lo, hi).
// Side traces carry their root's id.
func LoopFigures(s tracevm.Snapshot, lo, hi uint64) Loop {
	var l Loop
	for _, t := range s.Traces {
		if t.ID < lo || t.ID >= hi {
			continue
		}
		if t.Side {
			l.SideTraces++
		} else {
			l.RootTraces++
		}
		l.Iterations += t.Iterations
		l.Unrolled += t.Unrolled
		l.UnrolledBackEdges += t.UnrolledBackEdges
		l.Exits += t.Exits
		l.Periodic += t.PeriodicExits
		l.PeelMisses += t.PeelMisses
		l.Heads = append(l.Heads, t.Head)
	}
	return l
}

// traceLogs keeps tracevm's disassembly of each trace, by head.
type traceLogs struct {
	mu     sync.Mutex
	byHead map[uint64]string
	w      io.Writer
}

var logHead = regexp.MustCompile(`bytes at (0x[0-9a-f]+)[,\n]`)

func (l *traceLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m := logHead.FindSubmatch(p); m != nil {
		if h, err := strconv.ParseUint(string(m[1][2:]), 16, 64); err == nil {
			l.byHead[h] = string(p)
		}
	}
	if l.w != nil {
		l.w.Write(p)
	}
	return len(p), nil
}

// TraceLog returns tracevm's disassembly of the trace at head ("" if
// none): each instruction with the op and original address it comes from.
func TraceLog(head uint64) string {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	return logs.byHead[head]
}

// KeepLogs turns the keeping of every trace's disassembly (TraceLog) on
// or off; it is on from Setup.
func KeepLogs(on bool) {
	if on {
		st.m.SetLog(logs)
	} else {
		st.m.SetLog(nil)
	}
}

// LogTo also copies every trace's disassembly to w (nil: stop).
func LogTo(w io.Writer) {
	logs.mu.Lock()
	logs.w = w
	logs.mu.Unlock()
}

func init() {
	// REDMAGIC_LOG=1: every trace's disassembly on standard error too.
	if v := os.Getenv("REDMAGIC_LOG"); v == "1" || v == "stderr" {
		LogTo(os.Stderr)
	}
}

// CPU features a test function may need.
type Feature int

const (
	SSE2    Feature = C.TH_CPU_SSE2
	AVX2FMA Feature = C.TH_CPU_AVX2_FMA
	AVX512F Feature = C.TH_CPU_AVX512F
)

// CPUHas reports whether the processor has f.
func CPUHas(f Feature) bool { return C.th_cpu_has(C.int(f)) != 0 }

// shimsInHelpers names the test functions whose annotation calls are in
// out-of-line helpers of theirs (TT_HELPER), on purpose.
var shimsInHelpers = map[string]bool{"tt_helper_ret": true}
