package main

/*
#include "rm_internal.h"
*/
import "C"

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
	"github.com/redmagic-patch/redmagic-patch/cfg/sites"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/redmagic-patch/redmagic-patch/tracevm"
	"golang.org/x/arch/x86/x86asm"
)

// jitMemoryLimit: the Go heap size at which the JIT's memory is collected.
const jitMemoryLimit = 256 << 20

// collectEvery: the background compiler collects the heap once this many
// bytes have been allocated since the last collection (heapCollector).
const collectEvery = 16 << 20

// heapCollector returns the JIT's Config.Collect: a collection each
// collectEvery bytes allocated, on the compiler's goroutine. Without it
// every allocation came from pages never touched before, up to the
// memory limit, and their page faults (about 10 us each on the
// development machine) were a quarter of what compiling a trace took
// (python fannkuch: 38 MB allocated, 0.34 s of compiles); collected, the
// pages are used again. A collection starts no timer, so the program
// sees no descriptor of the runtime's (warmHeap).
func heapCollector() func() {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	var last uint64
	return func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		if a := sample[0].Value.Uint64(); a-last >= collectEvery {
			runtime.GC()
			metrics.Read(sample)
			last = sample[0].Value.Uint64()
		}
	}
}

// defaultBudgetPct is REDMAGIC_JIT_BUDGET's default: the share of the run
// time the JIT may spend recording and compiling before its traces have
// earned more (tracevm's tv_over_budget).
const defaultBudgetPct = 2

// rmJITStart starts the tracing JIT; the runtime calls it (through
// rm_jit_start) once, at the first hot loop, with the vector state saved.
// It returns 0 when the JIT runs, 1 when there is nothing to trace, and -1
// with why filled when it cannot start: the runtime then runs on counting.
//
//export rmJITStart
func rmJITStart(why *C.char, n C.size_t) (ret C.int) {
	defer func() {
		if r := recover(); r != nil {
			setWhy(why, n, fmt.Sprint(r))
			ret = -1
		}
	}()
	started, err := startJIT()
	switch {
	case err != nil:
		setWhy(why, n, err.Error())
		return -1
	case !started:
		return 1
	}
	return 0
}

// setWhy copies msg into the C buffer why of n bytes, NUL-terminated.
func setWhy(why *C.char, n C.size_t, msg string) {
	if why == nil || n == 0 {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(why)), int(n))
	k := copy(b[:len(b)-1], msg)
	b[k] = 0
}

// startJIT builds the JIT's view of every patched object and starts it.
// It reports whether the JIT runs; false with no error means that no
// object has anything to trace.
func startJIT() (bool, error) {
	// The collector starts Go's network poller (its scavenger sleeps on a
	// timer): an epoll and an eventfd descriptor the interpreter would
	// see, even take as its stdin when fd 0 was closed. The JIT's heap is
	// small; it is collected only near a limit.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(jitMemoryLimit)
	cfg := tracevm.Config{}
	if v := os.Getenv("REDMAGIC_MAX_CODE"); v != "" {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil || n < 1<<15 {
			fmt.Fprintf(os.Stderr, "redmagic: REDMAGIC_MAX_CODE=%s is not a size in bytes >= 32768, using the default\n", v)
		} else {
			cfg.MaxCode = int(n)
		}
	}
	if v := os.Getenv("REDMAGIC_SIDE_THRESHOLD"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			fmt.Fprintf(os.Stderr, "redmagic: REDMAGIC_SIDE_THRESHOLD=%s is not a positive integer, using the default\n", v)
		} else {
			cfg.SideThreshold = n
		}
	}
	if v := os.Getenv("REDMAGIC_MAX_TRACE"); v != "" {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil || n < 16 {
			fmt.Fprintf(os.Stderr, "redmagic: REDMAGIC_MAX_TRACE=%s is not a count of instructions >= 16, using the default\n", v)
		} else {
			cfg.MaxTraceInsns = int(n)
		}
	}
	if v := os.Getenv("REDMAGIC_LOOPUNROLL"); v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "redmagic: REDMAGIC_LOOPUNROLL=%s is not a count of back-edges, using the default\n", v)
		case n == 0:
			cfg.LoopUnroll = -1
		default:
			cfg.LoopUnroll = int(n)
		}
	}
	cfg.BudgetPct = defaultBudgetPct
	if v := os.Getenv("REDMAGIC_JIT_BUDGET"); v != "" {
		n, err := strconv.ParseUint(v, 10, 7)
		if err != nil || n > 100 {
			fmt.Fprintf(os.Stderr, "redmagic: REDMAGIC_JIT_BUDGET=%s is not a percentage (0-100), using %d\n", v, defaultBudgetPct)
		} else {
			cfg.BudgetPct = int(n)
		}
	}
	cfg.NoOptimize = os.Getenv("REDMAGIC_OPT") == "0"
	cfg.NoPeel = os.Getenv("REDMAGIC_PEEL") == "0"
	cfg.NoIndirectSpec = os.Getenv("REDMAGIC_SPECULATE") == "0"
	cfg.NoSplit = os.Getenv("REDMAGIC_SPLIT") == "0"
	cfg.NoForward = os.Getenv("REDMAGIC_FORWARD") == "0"
	// REDMAGIC_JIT_BACKGROUND=0 (tests, instruction counts) wants each
	// trace in place once its recording ends: no compiler thread either.
	cfg.Background = os.Getenv("REDMAGIC_JIT_BACKGROUND") != "0"
	cfg.Collect = heapCollector()
	if w := jitLog(os.Getenv("REDMAGIC_LOG")); w != nil {
		cfg.Log = w
	}
	for k := uint32(0); ; k++ {
		var d C.struct_rm_jit_obj
		if C.rm_host_object_desc(C.uint32_t(k), &d) != 0 {
			break
		}
		o, err := jitObject(&d)
		if err != nil {
			return false, err
		}
		if len(o.Sites) > 0 || len(o.BackEdges) > 0 {
			cfg.Objects = append(cfg.Objects, o)
		}
	}
	if len(cfg.Objects) == 0 {
		return false, nil // nothing to trace from (profiles marked no_trace)
	}
	if _, err := tracevm.Start(cfg); err != nil {
		return false, err
	}
	tracevm.SetParking(startParking())
	if C.rm_host_on_loader() != 0 {
		warmHeap(warmHeapBytes)
	}
	return true, nil
}

// warmHeapBytes is how much of its heap the JIT touches while it loads.
const warmHeapBytes = 4 << 20

// warmHeap touches n bytes of fresh Go heap and frees them at once, on the
// runtime's loader thread (rm_load.c; never on the program's): the collector is off (above), so every
// allocation of the recorder came from pages never touched, and their
// page faults, 10 us each on the development machine, were half of the
// first recordings' time on the program's thread (python fannkuch: 9-10 ms
// of recording without, 5-6 ms with 4 MiB warmed). One collection here
// returns the pages to the heap still mapped; it starts no timer (so no
// descriptor appears: the scavenger has nothing to do so far below the
// memory limit).
func warmHeap(n int) {
	chunks := make([][]byte, 0, n/warmChunk)
	for k := 0; k < n/warmChunk; k++ {
		b := make([]byte, warmChunk)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		chunks = append(chunks, b)
	}
	runtime.KeepAlive(chunks)
	chunks = nil
	runtime.GC()
}

// warmChunk: the heap is warmed in pieces, each placed where the page
// allocator places the next allocation (the lowest free pages), not in
// one run past them that the recorder's first allocations would never
// reach.
const warmChunk = 32 << 10

// jitLog opens REDMAGIC_LOG: "1" or "stderr" is standard error, anything
// else a file, appended to and never held open (logFile).
func jitLog(v string) io.Writer {
	switch v {
	case "":
		return nil
	case "1", "stderr":
		return os.Stderr
	}
	f, err := openLog(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "redmagic: REDMAGIC_LOG: %v\n", err)
		return nil
	}
	return f
}

// keying is how the loops of a back-edge site with these flags are keyed.
func keying(flags uint32) tracevm.Keying {
	switch {
	case flags&C.RM_SITE_LUA54_SJ != 0:
		return tracevm.KeyLuaSJ
	case flags&C.RM_SITE_LUA54_COND_SJ != 0:
		return tracevm.KeyLuaCondSJ
	case flags&C.RM_SITE_CPY311_CMP_JUMP != 0:
		return tracevm.KeyCPyCmpJump
	case flags&C.RM_SITE_OPARG_BACK != 0:
		return tracevm.KeyOparg
	}
	return tracevm.KeyByID
}

// jitObject reads what the recorder needs from the object's file: its
// executable segments, its PLT (calls there run natively) and its
// annotation call sites (those elided in place have no trampoline).
func jitObject(d *C.struct_rm_jit_obj) (tracevm.Object, error) {
	path := C.GoString(d.path)
	name := path
	if path == "" {
		path, name = "/proc/self/exe", "main program"
	}
	f, unmap, err := openELFRaw(path)
	if err != nil {
		return tracevm.Object{}, fmt.Errorf("%s: %w", name, err)
	}
	defer unmap()
	bias := uint64(d.bias)
	o := tracevm.Object{Name: name, Sites: map[uint64]tracevm.Site{}}
	for _, p := range f.Progs {
		r := tracevm.Range{Lo: bias + p.Vaddr, Hi: bias + p.Vaddr + p.Memsz}
		if p.Type == elf.PT_LOAD {
			o.Image = append(o.Image, r)
		}
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			o.Text = append(o.Text, r)
		}
		// File-backed, never written after relocation. (.bss and
		// other zero-filled memory is excluded: Filesz covers it.)
		if (p.Type == elf.PT_LOAD && p.Flags&elf.PF_W == 0) || p.Type == elf.PT_GNU_RELRO {
			o.ReadOnly = append(o.ReadOnly, tracevm.Range{Lo: r.Lo, Hi: bias + p.Vaddr + p.Filesz})
		}
	}
	for _, s := range f.Sections {
		switch s.Name {
		case ".plt", ".plt.got", ".plt.sec":
			o.Native = append(o.Native, tracevm.Range{Lo: bias + s.Addr, Hi: bias + s.Addr + s.Size})
		case ".probes":
			// USDT semaphores: written only by a tracer attaching
			// from outside (uprobes), never by the program. Traces
			// take them as constant (a probe attached later does not
			// fire inside a trace compiled before), and lose the
			// check CPython 3.11 makes at every dispatch.
			o.ReadOnly = append(o.ReadOnly, tracevm.Range{Lo: bias + s.Addr, Hi: bias + s.Addr + s.Size})
		}
	}
	imports := importSlots(f, bias, returnsTwiceNames, longjmpNames, errnoLocationName, errnoOnlyNames, noReturnNames)
	o.ReturnsTwice, o.Longjmps, o.ErrnoCalls, o.ErrnoOnly, o.NoReturn = imports[0], imports[1], imports[2], imports[3], imports[4]
	// CPython under any profile (the annotated CPython 2.7) keeps its
	// reference counts in such words: Py_IncRef says it is CPython.
	lists := [][]string{{"Py_IncRef"}}
	p := sites.BuiltinNamed(C.GoString(d.profile))
	if p != nil {
		lists = append(lists, p.Native, p.Allocators, p.Frees)
	}
	entries := symbolEntries(f, bias, lists...)
	o.RefcountWords = len(entries[0]) > 0
	if p != nil {
		o.NativeEntries, o.Allocators, o.Frees = entries[1], entries[2], entries[3]
		o.RefcountWords = o.RefcountWords || p.RefcountWords
	}
	sites := unsafe.Slice((*byte)(unsafe.Pointer(d.sites)), int(d.nsites)*int(d.site_size))
	o.BackEdges = map[uint64]tracevm.BackEdge{}
	for i := 0; i < int(d.nsites); i++ {
		s := (*C.struct_rm_site)(unsafe.Pointer(&sites[i*int(d.site_size)]))
		if s.kind == C.RM_SITE_BACKEDGE && s.flags&C.RM_SITE_NO_TRACE == 0 {
			o.BackEdges[bias+uint64(s.trampoline)] = tracevm.BackEdge{
				GSite:   uint32(d.base) + uint32(i),
				Handler: bias + uint64(s.resume),
				IDReg:   gprOfDWARF(int(s.id_reg)),
				AuxReg:  gprOfDWARF(int(s.aux_reg)),
				Keying:  keying(uint32(s.flags)),
				Frame:   frame.Unpack(uint32(s.frame)),
			}
			continue
		}
		if s.kind != C.RM_SITE_API_CALL {
			continue
		}
		o.Sites[bias+uint64(s.addr)] = tracevm.Site{GSite: uint32(d.base) + uint32(i), API: tracevm.API(s.api), Elided: s.trampoline == 0,
			Frame: frame.Unpack(uint32(s.frame))}
	}
	return o, nil
}

// returnsTwiceNames: imported functions that return a second time.
var returnsTwiceNames = map[string]bool{
	"setjmp": true, "_setjmp": true, "sigsetjmp": true, "__sigsetjmp": true,
	"savectx": true, "vfork": true, "getcontext": true,
}

// longjmpNames: imported functions that return to an earlier frame, not
// to their caller (Lua's errors and coroutine yields: __longjmp_chk).
var longjmpNames = map[string]bool{
	"longjmp": true, "_longjmp": true, "siglongjmp": true, "__longjmp_chk": true,
	"__libc_longjmp": true, "__libc_siglongjmp": true, "setcontext": true, "swapcontext": true,
}

// noReturnNames: imported functions that never return to their caller
// (the stack protector's and assertions' failures, the ways out).
var noReturnNames = map[string]bool{
	"__stack_chk_fail": true, "abort": true, "__assert_fail": true, "__fortify_fail": true,
	"__chk_fail": true, "exit": true, "_exit": true, "_Exit": true, "quick_exit": true,
	"__libc_fatal": true,
}

// errnoLocationName: the function that returns the thread's errno word.
var errnoLocationName = map[string]bool{"__errno_location": true}

// errnoOnlyNames: C library functions that write no memory but errno (and
// their own stack): the math library's (not frexp, modf, lgamma, sincos:
// they write through a pointer or a global) and string reads.
var errnoOnlyNames = map[string]bool{
	"sqrt": true, "pow": true, "exp": true, "exp2": true, "expm1": true, "log": true, "log2": true,
	"log10": true, "log1p": true, "sin": true, "cos": true, "tan": true, "asin": true, "acos": true,
	"atan": true, "atan2": true, "sinh": true, "cosh": true, "tanh": true, "asinh": true,
	"acosh": true, "atanh": true, "fmod": true, "floor": true, "ceil": true, "round": true,
	"trunc": true, "hypot": true, "cbrt": true, "ldexp": true, "copysign": true, "fabs": true,
	"erf": true, "erfc": true, "tgamma": true, "nextafter": true, "remainder": true,
	"strlen": true, "strnlen": true, "strcmp": true, "strncmp": true, "memcmp": true,
	"memchr": true, "strchr": true, "strrchr": true,
}

// importSlots finds, at run time and for each set of names, the GOT slots
// the dynamic linker fills with those imported functions (from .rela.plt
// and .rela.dyn) and the PLT stubs that jump through them; nil for a set
// none of whose functions is imported. The file is read once for all sets.
func importSlots(f *mappedELF, bias uint64, sets ...map[string]bool) []map[uint64]bool {
	out := make([]map[uint64]bool, len(sets))
	// Symbol indexes of the names, with the sets naming them (no names
	// kept: the program's dynamic symbols, thousands, are read at the
	// JIT's start).
	wanted := map[int][]int{}
	scanSymbols(f, elf.SHT_DYNSYM, func(i int, name []byte, _ elf.Symbol) {
		for k, names := range sets {
			if names[string(name)] {
				wanted[i] = append(wanted[i], k)
			}
		}
	})
	if len(wanted) == 0 {
		return out
	}
	slots := map[uint64][]int{} // run-time GOT slot -> sets
	for _, name := range []string{".rela.plt", ".rela.dyn"} {
		s := f.Section(name)
		if s == nil {
			continue
		}
		data, err := f.sectionBytes(s)
		if err != nil {
			continue
		}
		for off := 0; off+24 <= len(data); off += 24 {
			slot := binary.LittleEndian.Uint64(data[off:])
			info := binary.LittleEndian.Uint64(data[off+8:])
			typ, sym := elf.R_X86_64(info&0xffffffff), int(info>>32)
			if ks := wanted[sym]; len(ks) > 0 && (typ == elf.R_X86_64_JMP_SLOT || typ == elf.R_X86_64_GLOB_DAT) {
				slots[bias+slot] = ks
			}
		}
	}
	if len(slots) == 0 {
		return out
	}
	add := func(ks []int, addrs ...uint64) {
		for _, k := range ks {
			if out[k] == nil {
				out[k] = map[uint64]bool{}
			}
			for _, a := range addrs {
				out[k][a] = true
			}
		}
	}
	for slot, ks := range slots {
		add(ks, slot)
	}
	for _, name := range []string{".plt", ".plt.sec", ".plt.got"} {
		s := f.Section(name)
		if s == nil {
			continue
		}
		code, err := f.sectionBytes(s)
		if err != nil {
			continue
		}
		for off := 0; off < len(code); {
			inst, err := x86dec.Decode(code[off:], s.Addr+uint64(off))
			if err != nil {
				off++
				continue
			}
			if slot, ok := inst.MemRIPTarget(); ok && inst.Op == x86asm.JMP && len(slots[bias+slot]) > 0 {
				// Callers call the stub's start: its 16-byte entry
				// (with an endbr64 before the jump in .plt.sec), or the
				// jump itself in the 8-byte entries of .plt.got.
				add(slots[bias+slot], bias+inst.Addr, bias+(inst.Addr&^15))
			}
			off += inst.Len
		}
	}
	return out
}

// symbolEntries returns, for each list of function names, the run-time
// entries of those found in f's symbol tables (.dynsym, and .symtab when
// not stripped), nil for an empty list; names not found are skipped: a
// profile serves several builds. The tables are read once for all lists.
func symbolEntries(f *mappedELF, bias uint64, lists ...[]string) []map[uint64]bool {
	out := make([]map[uint64]bool, len(lists))
	want := map[string][]int{}
	for k, names := range lists {
		if len(names) > 0 {
			out[k] = map[uint64]bool{}
		}
		for _, n := range names {
			want[n] = append(want[n], k)
		}
	}
	if len(want) == 0 {
		return out
	}
	for _, typ := range []elf.SectionType{elf.SHT_DYNSYM, elf.SHT_SYMTAB} {
		scanSymbols(f, typ, func(_ int, name []byte, s elf.Symbol) {
			if ks := want[string(name)]; len(ks) > 0 && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF {
				for _, k := range ks {
					out[k][bias+s.Value] = true
				}
			}
		})
	}
	return out
}

// scanSymbols calls fn with each symbol of f's table of type typ
// (SHT_DYNSYM or SHT_SYMTAB), by index (0 is the null symbol), with its
// name's bytes (valid during the call) and Info, Section and Value set:
// debug/elf's Symbols would allocate a name for each of thousands. A
// table that is missing or malformed is skipped (or cut short).
func scanSymbols(f *mappedELF, typ elf.SectionType, fn func(i int, name []byte, s elf.Symbol)) {
	for _, sec := range f.Sections {
		if sec.Type != typ || sec.Entsize != 24 || int(sec.Link) >= len(f.Sections) {
			continue
		}
		syms, err := f.sectionBytes(sec)
		if err != nil {
			return
		}
		strs, err := f.sectionBytes(f.Sections[sec.Link])
		if err != nil {
			return
		}
		for i := 0; (i+1)*24 <= len(syms); i++ {
			e := syms[i*24 : (i+1)*24]
			off := binary.LittleEndian.Uint32(e)
			if int(off) >= len(strs) {
				continue
			}
			name := strs[off:]
			if n := bytes.IndexByte(name, 0); n >= 0 {
				name = name[:n]
			}
			fn(i, name, elf.Symbol{Info: e[4], Section: elf.SectionIndex(binary.LittleEndian.Uint16(e[6:])), Value: binary.LittleEndian.Uint64(e[8:])})
		}
		return
	}
}

// gprOfDWARF turns a DWARF register number into the x86 encoding number,
// -1 for none or anything but a general register.
func gprOfDWARF(n int) int {
	r, err := x86enc.FromDWARF(n)
	if err != nil {
		return -1
	}
	return int(r)
}

// rmJITCall passes an annotation call that acts on the JIT to its Go side
// (with the vector state saved, never in a fork child).
//
//export rmJITCall
func rmJITCall(what C.int, arg C.uint64_t) {
	m := tracevm.Active()
	if m == nil {
		return
	}
	switch what {
	case C.RM_JIT_DO_NOT_TRACE:
		m.DoNotTrace(uint64(arg))
	case C.RM_JIT_DISABLE_BRANCH:
		m.DisableLoop(uint64(arg))
	}
}
