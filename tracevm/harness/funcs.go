package harness

/*
#include "th.h"
*/
import "C"

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// NIn and NOut are the sizes of a test function's inputs and outputs.
const (
	NIn  = C.TH_NIN
	NOut = C.TH_NOUT
)

// Func is a C test function: int64_t f(const int64_t in[NIn], int64_t
// out[NOut]). in[0] is the base of its loop ids (see NewIDs).
type Func struct {
	Name string
	ptr  unsafe.Pointer
}

// The test functions (tt_loops.c and tt_simd.c say what each computes).
var (
	Sum          = Func{"tt_sum", C.tt_sum}
	Branchy      = Func{"tt_branchy", C.tt_branchy}
	Chain        = Func{"tt_chain", C.tt_chain}
	ChainLong    = Func{"tt_chain_long", C.tt_chain_long}
	ChainRet     = Func{"tt_chain_ret", C.tt_chain_ret}
	Nested       = Func{"tt_nested", C.tt_nested}
	Calls        = Func{"tt_calls", C.tt_calls}
	CalleeLp     = Func{"tt_callee_loop", C.tt_callee_loop}
	CalleeOnce   = Func{"tt_callee_once", C.tt_callee_once}
	LookupLoop   = Func{"tt_lookup_loop", C.tt_lookup_loop}
	FindLoop     = Func{"tt_find_loop", C.tt_find_loop}
	Recurse      = Func{"tt_recurse", C.tt_recurse}
	Interp       = Func{"tt_interp", C.tt_interp}
	InterpBranch = Func{"tt_interp_branch", C.tt_interp_branch}
	MemInterp    = Func{"tt_mem_interp", C.tt_mem_interp}
	Frames       = Func{"tt_frames", C.tt_frames}
	Tagged       = Func{"tt_tagged", C.tt_tagged}
	TVStack      = Func{"tt_tvstack", C.tt_tvstack}
	FStack       = Func{"tt_fstack", C.tt_fstack}
	Alias        = Func{"tt_alias", C.tt_alias}
	Frame        = Func{"tt_frame", C.tt_frame}
	FuncPtr      = Func{"tt_fptr", C.tt_fptr}
	Globals      = Func{"tt_globals", C.tt_globals}
	IsTraced     = Func{"tt_is_traced", C.tt_is_traced}
	Ensure       = Func{"tt_ensure", C.tt_ensure}
	Merge        = Func{"tt_merge", C.tt_merge}
	HelperRet    = Func{"tt_helper_ret", C.tt_helper_ret}
	Syscall      = Func{"tt_syscall", C.tt_syscall}
	Spin         = Func{"tt_spin", C.tt_spin}
	Fork         = Func{"tt_fork", C.tt_fork}
	InvFP        = Func{"tt_invariant_fp", C.tt_invariant_fp}
	NativeAPI    = Func{"tt_native_api", C.tt_native_api}
	SelfMod      = Func{"tt_smc", C.tt_smc}
	FPC          = Func{"tt_fp_c", C.tt_fp_c}
	FPSSE2       = Func{"tt_fp_sse2", C.tt_fp_sse2}
	FPAVX2       = Func{"tt_fp_avx2", C.tt_fp_avx2}
	FPAVX512     = Func{"tt_fp_avx512", C.tt_fp_avx512}
	Funcs        = []Func{Sum, Branchy, Chain, ChainLong, ChainRet, Nested, Calls, CalleeLp, CalleeOnce, LookupLoop, FindLoop, Recurse, Interp, MemInterp, Frames, Tagged, TVStack, FStack, Alias, Frame, FuncPtr, Globals, IsTraced, Ensure, Merge, HelperRet, Syscall, Spin, Fork, InvFP, NativeAPI, SelfMod, FPC, FPSSE2, FPAVX2, FPAVX512}
	nextIDs      atomic.Uint64
	idsPerRun    = uint64(1 << 12)
)

// NewIDs returns the base of a block of loop ids no run has used: a test
// function run with in[0] = NewIDs() records its loops afresh, whatever
// ran before in the process (go test -count=N).
func NewIDs() uint64 { return (1 << 24) + nextIDs.Add(1)*idsPerRun }

// IDSpan is the number of loop ids a block from NewIDs holds.
func IDSpan() uint64 { return idsPerRun }

// Addr returns the function's address.
func (f Func) Addr() uint64 { return uint64(uintptr(f.ptr)) }

// Functions that are never run, for tracevm's scan of functions that
// write no memory (Machine.WritesNoMemory): NoWrites write none, Writes
// do.
var (
	NoWrites = []Func{{"tt_nw_sum", C.tt_nw_sum}, {"tt_nw_switch", C.tt_nw_switch},
		{"tt_nw_frame", C.tt_nw_frame}, {"tt_nw_calls", C.tt_nw_calls}}
	Writes = []Func{{"tt_w_out", C.tt_w_out}, {"tt_w_calls", C.tt_w_calls}, {"tt_w_global", C.tt_w_global},
		{"tt_w_switch_split", C.tt_w_switch_split}}
)

// Result is what a test function returned.
type Result struct {
	Ret int64
	Out [NOut]int64
}

func inputs(in []int64) *[NIn]int64 {
	if len(in) > NIn {
		panic(fmt.Sprintf("harness: %d inputs, at most %d", len(in), NIn))
	}
	a := new([NIn]int64)
	copy(a[:], in)
	return a
}

// Run calls f(in) on this thread with the JIT as it is.
func (f Func) Run(in ...int64) Result {
	a := inputs(in)
	r := new(Result)
	r.Ret = int64(C.th_call(f.ptr, (*C.int64_t)(&a[0]), (*C.int64_t)(&r.Out[0])))
	return *r
}

// RunNative calls f(in) with the JIT off (restoring it afterwards): the
// reference result.
func (f Func) RunNative(in ...int64) Result {
	on := JIT()
	SetJIT(false)
	defer SetJIT(on)
	return f.Run(in...)
}

// Overlap says how long the two threads of Race ran f at the same time.
type Overlap struct {
	Both   time.Duration // both threads inside f
	Either time.Duration // at least one
}

// Race runs f on two new threads at once (in0 on the first, in1 on the
// second), rounds times; result 2k+t is thread t's in round k.
func (f Func) Race(rounds int, in0, in1 []int64) ([]Result, Overlap, error) {
	a0, a1 := inputs(in0), inputs(in1)
	rets := make([]int64, 2*rounds)
	outs := make([]int64, 2*rounds*NOut)
	times := new([2]int64)
	if rounds == 0 {
		return nil, Overlap{}, nil
	}
	if rc := C.th_race(f.ptr, (*C.int64_t)(&a0[0]), (*C.int64_t)(&a1[0]), C.int64_t(rounds),
		(*C.int64_t)(&rets[0]), (*C.int64_t)(&outs[0]), (*C.int64_t)(&times[0])); rc != 0 {
		return nil, Overlap{}, fmt.Errorf("harness: race of %s: error %d", f.Name, int(rc))
	}
	res := make([]Result, 2*rounds)
	for i := range res {
		res[i].Ret = rets[i]
		copy(res[i].Out[:], outs[i*NOut:])
	}
	return res, Overlap{time.Duration(times[0]), time.Duration(times[1])}, nil
}

// Signals says what the SIGALRM handler of RunWithSignals saw.
type Signals struct {
	Delivered int64 // handler runs
	InCache   int64 // ... that interrupted code in the code cache
}

// RunWithSignals calls f(in) on this thread while a timer of the thread
// sends it SIGALRM every interval.
func (f Func) RunWithSignals(interval time.Duration, in ...int64) (Result, Signals, error) {
	a := inputs(in)
	r := new(Result)
	var ret C.int64_t
	stats := new([2]int64)
	if rc := C.th_with_signals(f.ptr, (*C.int64_t)(&a[0]), (*C.int64_t)(&r.Out[0]), &ret,
		C.int64_t(interval.Nanoseconds()), (*C.int64_t)(&stats[0])); rc != 0 {
		return Result{}, Signals{}, fmt.Errorf("harness: signals for %s: error %d", f.Name, int(rc))
	}
	r.Ret = int64(ret)
	return *r, Signals{Delivered: stats[0], InCache: stats[1]}, nil
}

// Sites returns the shim calls in f (its main part: not in split-off cold
// parts).
func (f Func) Sites() []Site {
	r, ok := fdeOf(f.Addr())
	if !ok {
		return nil
	}
	var out []Site
	for _, s := range st.sites {
		if s.Addr >= r.Lo && s.Addr < r.Hi {
			out = append(out, s)
		}
	}
	return out
}

// Insts decodes f (its main part).
func (f Func) Insts() ([]x86dec.Inst, error) {
	r, ok := fdeOf(f.Addr())
	if !ok {
		return nil, fmt.Errorf("harness: %s (%#x) has no FDE", f.Name, f.Addr())
	}
	b, err := st.code(r.Lo, r.Hi)
	if err != nil {
		return nil, err
	}
	var insts []x86dec.Inst
	err = decodeAll(b, r.Lo, func(inst *x86dec.Inst, _ []byte) error {
		insts = append(insts, *inst)
		return nil
	})
	return insts, err
}

// GlobalsExtra returns the volatile globals Globals leaves behind: the
// ticks (2 per iteration) and the last iteration's index.
func GlobalsExtra() (ticks, last int64) {
	var t, l C.int64_t
	C.th_globals_extra(&t, &l)
	return int64(t), int64(l)
}
