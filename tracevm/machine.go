package tracevm

/*
#cgo CFLAGS: -O2 -fno-stack-protector -Wall
#include "tv.h"
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
	"github.com/redmagic-patch/redmagic-patch/runtime-stub/abi"
	"github.com/redmagic-patch/redmagic-patch/tracevm/codecache"
)

// API is an annotation function, numbered as enum rm_api in
// runtime-stub/include/redmagic_patch.h.
type API int

const (
	APIStart API = iota
	APIBackwardsBranch
	APIFellthroughBranch
	APIBeginBranchableFrame
	APIEndBranchableFrame
	APIForceBeginTrace
	APIForceEndTrace
	APIForceJumpToTrace
	APIEnsureNotTraced
	APITempDisable
	APITempEnable
	APIDoNotTraceFunction
	APIDisableBranch
	APIIsTraced
	APIBeginMergeBlock
	APIEndMergeBlock
	NumAPI
)

// The constants above follow enum rm_api, as abi.APINames does.
var _ = [1]struct{}{}[NumAPI-abi.NumAPI]

// Range is a half-open range of run-time addresses.
type Range struct{ Lo, Hi uint64 }

func (r Range) contains(a uint64) bool { return a >= r.Lo && a < r.Hi }

// Site is a call of an annotation function.
type Site struct {
	GSite uint32 // the embedding's global site number
	API   API
	// Elided: the patcher replaced the call in place by a 5-byte
	// instruction with the default's effect (a nop; mov $0, %eax for
	// is_traced); the recorder sees the site only through this table.
	Elided bool
	// Frame: the private slots of the calling function's frame (as
	// BackEdge.Frame), for loop annotations.
	Frame frame.Slots
}

// Object is code the recorder may copy into traces: a patched object.
type Object struct {
	Name string
	Text []Range // executable, run-time addresses
	// Native: calls to these ranges run natively, never inlined (PLT
	// stubs, ...).
	Native []Range
	// NativeEntries: functions, by entry address, that calls and tail
	// jumps reach natively (a profile's allocators, collector, error
	// paths, ...); unlike Native, jumps inside them are still followed.
	NativeEntries map[uint64]bool
	// ReturnsTwice: PLT stubs and GOT slots of functions that return a
	// second time (setjmp and its kind). A recording that would call one
	// ends: the second return would come back into a block buffer that
	// has been reused since.
	ReturnsTwice map[uint64]bool
	// Longjmps: PLT stubs and GOT slots of functions that return to an
	// earlier frame (longjmp and its kind). A recording that would call
	// one ends there: it would never hear from the recording again,
	// which went stale, its block buffer lost to later recordings.
	Longjmps map[uint64]bool
	// NoReturn: PLT stubs and GOT slots of functions that never return
	// (abort, __stack_chk_fail, exit): a path that calls one ends there,
	// for writesNoMemory.
	NoReturn map[uint64]bool
	// Sites: annotation calls by the run-time address of their call
	// instruction.
	Sites map[uint64]Site
	// BackEdges: patched back-edge handlers by the run-time address of
	// their trampoline, where the redirected dispatch now lands.
	BackEdges map[uint64]BackEdge
	// Funcs: the functions' code ranges (.eh_frame FDEs), sorted and
	// disjoint; where a frame's private slots are looked for when the
	// file names none (loopFrames).
	Funcs frame.Funcs
	// ReadOnly: memory that never changes once the object is loaded
	// (segments without write permission, RELRO); loads from it at
	// constant addresses fold to constants.
	ReadOnly []Range
	// Image: the object's loaded segments, written or not; a pointer
	// into it is to a static object (heapPointer).
	Image []Range
	// RefcountWords: the object's code keeps reference counts in 8-byte
	// words it only adds one to or subtracts one from in place, and
	// never accesses at another width (sites.Profile.RefcountWords);
	// such a store through an unknown pointer leaves narrower memory
	// known (refcountStore).
	RefcountWords bool
	// Allocators: functions, by entry address, that return a fresh
	// block and change no other memory the program reads
	// (sites.Profile.Allocators).
	Allocators map[uint64]bool
	// Frees: functions, by entry address, that give a block back and
	// change no other memory the program reads (sites.Profile.Frees).
	Frees map[uint64]bool
	// ErrnoCalls: the PLT stubs (and GOT slots) of __errno_location,
	// which changes nothing and returns the thread's errno word; and
	// ErrnoOnly: those of C library functions that change no memory
	// but errno (the math library's, strlen's kind). No address the
	// trace knows is errno's (a thread-local word: not in a loaded
	// file, not on the loop's stack, not in a heap object), so neither
	// these calls nor stores through __errno_location's result forget
	// anything: CPython's float power (errno = 0; pow(); errno?) then
	// keeps the loop's memory known, and its loop can be peeled.
	ErrnoCalls, ErrnoOnly map[uint64]bool
}

// BackEdge is a loop back-edge handler the patcher redirected through a
// trampoline (an unmodified interpreter's JUMP_BACKWARD, OP_FORLOOP, ...).
type BackEdge struct {
	GSite   uint32
	Handler uint64 // run-time address of the original handler
	IDReg   int    // register holding the loop id (x86 number), -1 none
	AuxReg  int    // register holding aux, -1 none
	Keying  Keying // how the loop it closes is keyed
	// Frame: the private slots of the handler's function, as the patcher
	// found them (empty: unknown, looked for in Object.Funcs).
	Frame frame.Slots
}

// Keying is how a back-edge site's loops are keyed: by the id register,
// or by the header the jump goes to, since every back jump to one header
// (each branch of an if/else that ends a loop body jumps back on its own)
// is one loop.
type Keying uint8

const (
	// KeyByID: the id register is the loop's key.
	KeyByID Keying = iota
	// KeyLuaSJ: aux is a Lua 5.4 instruction word whose sJ operand is
	// the jump in 4-byte words from the pc past it (id); a back-edge
	// only when negative (OP_JMP serves both directions).
	KeyLuaSJ
	// KeyLuaCondSJ: id is the pc past a Lua 5.4 comparison, which takes
	// the OP_JMP there inline (repeat ... until): a back-edge only when
	// that jump's sJ is negative, keyed by where it lands. A trace of
	// such a loop is entered from its own comparison only (the head
	// checks the id): another comparison that jumps to the same header
	// runs other operands.
	KeyLuaCondSJ
	// KeyOparg: aux holds the jump back in 2-byte code units from past
	// the jump instruction, id the instruction (CPython 3.11's
	// JUMP_BACKWARD and POP_JUMP_BACKWARD_*: frame->prev_instr and
	// oparg).
	KeyOparg
	// KeyCPyCmpJump: id is a CPython 3.11 combined compare-and-jump
	// (COMPARE_OP_INT_JUMP ...), which takes the POP_JUMP_*
	// abi.CPy311JumpAt bytes on inline: a back-edge only when that jump
	// goes back, keyed by the header it lands at. Its traces begin with
	// the comparison and are entered from it only, as KeyLuaCondSJ's.
	KeyCPyCmpJump
)

// cond reports a comparison's keying: the site is a back-edge only when
// the jump the comparison takes inline goes back; its traces begin with
// the comparison, whose operands the id determines, and are entered from
// it only.
func (k Keying) cond() bool { return k == KeyLuaCondSJ || k == KeyCPyCmpJump }

// loopID returns the key of the loop a jump through be closes, from the
// values of its id and aux registers at the handler (Keying). ok is false
// when the jump goes forward. The runtime's hit function (rm_fast.c)
// computes the same key.
func (be *BackEdge) loopID(id, aux uint64) (key uint64, ok bool) {
	if be.AuxReg < 0 {
		return id, true
	}
	switch be.Keying {
	case KeyLuaSJ:
		sj, back := luaSJ(aux)
		if !back {
			return 0, false
		}
		// id is the pc past the jump, which the handler moves by sJ
		// words.
		return id + uint64(sj*4), true
	case KeyLuaCondSJ:
		// The handler reads the jump at id; the id register points into
		// the live function's code at every handler entry.
		sj, back := luaSJ(uint64(binary.LittleEndian.Uint32(memAt(id, 4))))
		if !back {
			return 0, false
		}
		return id + 4 + uint64(sj*4), true
	case KeyOparg:
		return opargHeader(id, aux), true
	case KeyCPyCmpJump:
		// The id register points into the live function's code at
		// every handler entry, as a Lua comparison's does.
		jump := memAt(id+abi.CPy311JumpAt, 2)
		if jump[0] < abi.CPy311JumpBackMin {
			return 0, false
		}
		return opargHeader(id+abi.CPy311JumpAt, uint64(jump[1])), true
	}
	return id, true
}

// opargHeader is where a CPython 3.11 backward jump at instruction id
// with oparg in the low half of aux lands (the head guard of a
// header-keyed trace computes the same).
func opargHeader(id, aux uint64) uint64 {
	return id + 2 - 2*uint64(uint32(aux))
}

// luaSJExcess is what a Lua 5.4 sJ field holds for a jump of 0 (the
// runtime's hit function and a header-keyed trace's head guard decode it
// the same way).
const luaSJExcess = 0xffffff

// luaSJ decodes the signed sJ operand of a Lua 5.4 instruction word (25
// bits above the 7-bit opcode, in excess-0xffffff form); back reports a
// negative jump.
func luaSJ(word uint64) (sj int64, back bool) {
	sj = int64((word>>7)&0x1ffffff) - luaSJExcess
	return sj, sj < 0
}

// keyedByHeader: be's traces are entered from every back jump to their
// header, whose id and aux registers differ: the head computes the header
// and then sets both to the recorded jump's (canonicalOps). A Lua
// comparison's loops are keyed by header too, but its traces begin with
// the comparison, whose operands the id determines: they are entered as a
// loop keyed by id is.
func (be *BackEdge) keyedByHeader() bool {
	return be.Keying != KeyByID && !be.Keying.cond() && be.IDReg >= 0 && be.AuxReg >= 0
}

// Config is what Start needs.
type Config struct {
	Objects []Object
	// MaxCode is the size of one code cache generation in bytes; when it
	// is full, every trace is unlinked and a new generation begins.
	MaxCode int
	// MaxTraceInsns bounds the instructions of one recording.
	MaxTraceInsns int
	// SideThreshold: exits taken before a side trace is recorded.
	SideThreshold uint64
	// BudgetPct bounds recording and compiling to this percentage of the
	// program's run time (since Start, or since the program started when
	// the embedding runtime says when: tv_budget_from), past a first
	// TV_BUDGET_FREE time-stamp cycles,
	// plus what the traces the runtime's governor kept have saved; 0
	// means no bound.
	BudgetPct int
	// MaxAborts: recordings of one loop that may fail before it is
	// blacklisted.
	MaxAborts int
	// LoopUnroll bounds the back-edges of other loops one recording may
	// go through instead of linking to their traces or handing over to
	// them (unrollInner; LuaJIT's loopunroll): 0 means 16, a negative
	// value none.
	LoopUnroll int
	// Log receives each compiled trace's disassembly, if not nil.
	Log io.Writer
	// NoOptimize compiles traces as recorded (REDMAGIC_OPT=0).
	NoOptimize bool
	// NoPeel emits root traces once, guarding what they load at every
	// iteration (REDMAGIC_PEEL=0; peel.go).
	NoPeel bool
	// NoIndirectSpec speculates on no load through a pointer the
	// optimiser does not know (REDMAGIC_SPECULATE=0; concrete.go).
	NoIndirectSpec bool
	// NoSplit leaves 16-byte loads over narrower stores whole
	// (REDMAGIC_SPLIT=0; widesplit.go).
	NoSplit bool
	// NoForward keeps doubles a trace stores and loads again in memory
	// only (REDMAGIC_FORWARD=0; xmmfwd.go). Off as well without SSE4.1.
	NoForward bool
	// Background compiles each finished recording on a goroutine of the
	// JIT's while the program thread goes on in the original code, which
	// enters the trace once it is installed (background.go); without it
	// the recording thread compiles before it goes on.
	Background bool
	// Collect, if set, runs on the background compiler after each
	// compile, no lock held: where the embedder may collect the heap the
	// compiles allocate from (never on a program thread).
	Collect func()
}

const (
	defaultMaxCode       = 32 << 20
	defaultMaxTraceInsns = 20000
	defaultSideThreshold = 16
	defaultMaxAborts     = 4
	defaultLoopUnroll    = 16
	generations          = 4
	recBufSize           = 256 << 10
	maxSideTraces        = 64
	// maxVariants bounds a root's variants: a recursion deeper than
	// that (each depth its own frame) keeps its other depths as recorded
	// and leaves the side traces to the loop's other paths.
	maxVariants = 8
)

// loopKey names a loop: the annotation or back-edge site and the id.
type loopKey struct {
	gsite uint32
	id    uint64
}

// trace is a compiled trace.
type trace struct {
	key   loopKey
	index uint32
	head  uint64
	size  int
	side  bool
	// headGuards: a side trace with head guards of its own (install):
	// its head exits are not its root's.
	headGuards bool
	root       *trace // for side traces
	nsides     int
	// nvariants: a root's side traces compiled as variants of it
	// (variantEntry), at most maxVariants.
	nvariants int
	iterCtr   uint64 // address of its iteration counter (0 none)
	// unrollCtr: the counter of other loops' back-edges it runs
	// unrolled (0 none); unrolled: how many its recording went through.
	unrollCtr uint64
	unrolled  int
	tick      uint64 // its loop's period counter (generate), shared with its root
	// gone: a root's word, set by the governor when it drops the trace
	// (tv_trace_verdict); links into it from other loops' traces test it.
	gone uint64
	// exitBase, nexits: its exits' ids, contiguous; stacks[i]: the
	// return addresses inlined calls had pushed at exit exitBase+i
	// (shared, never modified).
	exitBase, nexits uint32
	stacks           [][]uint64
	// periodic: the exits that leave every periodTicks iterations (not
	// guard failures: they are reported apart).
	periodic []uint32
	insns    int
	// hoisted: guards its peeled copy leaves out of every iteration but
	// the first (0: not peeled); peelMisses: the counter of the first
	// copy's closes that stayed in it (0: none).
	hoisted    int
	peelMisses uint64
	// A peeled root: its second copy's address, the first of its exits
	// (relative to exitBase), the memory it assumes and never writes
	// (what its side traces may assume), the registers it rests on, and
	// for a loop keyed by header its back-edge (bodyLink).
	body2      uint64
	peelExit   int
	invariants []guardedLoad
	peelRegs   []regValue
	// carriedDoubles: the doubles the peeled copy finds in spare vector
	// registers where it starts (xmmfwd.go); a link into it loads them.
	carriedDoubles []carriedDouble
	headerOf       *BackEdge
	// keepsPeeled: a side trace that starts and ends where its root's
	// peeled copy's assumptions hold (it enters the copy directly).
	keepsPeeled bool
	// exitKnown[i]: the registers exit exitBase+i knows (sideEntry);
	// exitStack[i]: the stack values it knows (sidestack.go).
	exitKnown [][]regValue
	exitStack [][]memValue
	// headExits: its head guards' exits (relative to exitBase, first
	// and past the last): where an entry state other than the one it
	// was specialised on leaves it (a variant side trace starts there).
	headExits [2]uint32
	// variant: memory the loop stores to at known addresses, in its
	// root trace and optimised side traces (kept in the root).
	variant []addrRange
	// private: the private slots of the loop frame it runs in, for its
	// side traces: a root's or a variant's plan.private (its own frame),
	// a side trace's parent's.
	private addrRange
	// merging: a root's merge points and continuations (merge.go).
	merging *merging
	// risky: a root's exits (relative to exitBase) whose guards check a
	// value only the concrete runs found, with the load's original
	// address (respec.go).
	risky map[uint32]uint64
}

// Machine is the process's JIT.
type Machine struct {
	cfg   Config
	tls   uint64
	stats Stats
	// parkState: "on", or why parking is off (SetParking).
	parkState atomic.Pointer[string]
	// emitters: the compiler's reusable code buffers.
	emitters sync.Pool

	mu        sync.Mutex
	cache     *codecache.Cache
	gen       int
	genEnd    int // cache bytes usable by this generation
	data      *dataArea
	switchOut uint64
	recStart  uint64
	recBufs   []*recBuf
	traces    []*trace
	byKey     map[loopKey]*trace
	loops     map[loopKey]*loopState
	// blocked: by loop without a trace, the loops whose recordings
	// reached it (loopState.blockedBy; stale entries are skipped).
	blocked map[loopKey][]*loopState
	// compiles: the recordings waiting for the compiler goroutine,
	// started once by SetBackground; background: whether finished
	// recordings go there (Config.Background).
	compiles     chan *recording
	compilerOnce sync.Once
	background   atomic.Bool
	// loopUnroll: Config.LoopUnroll, resolved (SetLoopUnroll): the
	// most back-edges of other loops a recording goes through.
	loopUnroll atomic.Int32
	// siteFrames: the private slots of the frame each loop site's loops
	// run in, by global site number (loopFrames).
	siteFrames map[uint32]frame.Slots
	doNotCall  map[uint64]bool // do_not_trace_function targets
	// noWriteFns: functions known to write no memory but their own
	// frame, or not (writesNoMemory; under mu).
	noWriteFns map[uint64]bool
	// exitRetries: side recordings of an exit that ended to be retried.
	exitRetries map[uint32]int
	backBySite  map[uint32]*BackEdge
	// nativeGen counts the functions made native: the recorder's kept
	// blocks that inline calls of them are dropped (recBuf.gen).
	nativeGen atomic.Uint64
	nativeLog []uint64 // the functions made native, in order (under mu)
	pid       int      // for memView
	off       bool
	// started: the wall time of tv_g.start_tsc, to convert the C side's
	// time stamp cycles into seconds.
	started time.Time
	// scratch: finished recordings' buffers, for the next ones.
	scratch []*recordingScratch
	// spareJobOps: op lists compiled jobs gave back (jobOps).
	spareJobOps [][]op
	// handles: the recordings the C side names.
	handles recHandles
	// decoded: the traced text's instructions, decoded once.
	decoded decodeCache
}

type loopState struct {
	aborts int
	// blockedBy: the loop without a trace that its last recording
	// reached (inner-loop); its aborts are forgiven when that loop gets
	// a trace, which its next recording then links to.
	blockedBy *loopKey
	// calleeRetries: recordings that ended to make a callee native.
	calleeRetries int
	recording     bool
	// compiling: a recording of the loop waits for the compiler
	// (Config.Background); no other starts meanwhile.
	compiling bool
	disabled  bool
	// bans: loads not to speculate on at the values the concrete runs
	// find, by original address; respecs: the loop's traces retired for
	// such a guard (respec.go).
	bans    map[uint64]bool
	respecs int
	// unbudgeted: its trace was retired; its next recording is not held
	// to the budget (the loop ran in a trace until then).
	unbudgeted bool
	// runsOn: a recording that went through its back-edges ran out of
	// unrolling in it (unrollInner): recordings link to it or hand over
	// at its first back-edge from then on.
	runsOn bool
}

var active atomic.Pointer[Machine]

// Active returns the machine Start made, or nil.
func Active() *Machine { return active.Load() }

// Start makes the process's machine. It fails if one exists or if no code
// cache can be placed near the objects' text.
func Start(cfg Config) (*Machine, error) {
	if cfg.MaxCode <= 0 {
		cfg.MaxCode = defaultMaxCode
	}
	if cfg.MaxTraceInsns <= 0 {
		cfg.MaxTraceInsns = defaultMaxTraceInsns
	}
	if cfg.SideThreshold == 0 {
		cfg.SideThreshold = defaultSideThreshold
	}
	if cfg.MaxAborts <= 0 {
		cfg.MaxAborts = defaultMaxAborts
	}
	lo, hi := ^uint64(0), uint64(0)
	for _, o := range cfg.Objects {
		for _, r := range o.Text {
			lo, hi = min(lo, r.Lo), max(hi, r.Hi)
		}
	}
	if lo >= hi {
		return nil, errors.New("tracevm: no executable code to trace")
	}
	C.tv_setup()
	if !hasSSE41() {
		cfg.NoForward = true
	}
	m := &Machine{
		started:     time.Now(),
		cfg:         cfg,
		tls:         uint64(C.tv_g.tls_off),
		byKey:       make(map[loopKey]*trace),
		loops:       make(map[loopKey]*loopState),
		blocked:     make(map[loopKey][]*loopState),
		doNotCall:   make(map[uint64]bool),
		exitRetries: make(map[uint32]int),
		backBySite:  make(map[uint32]*BackEdge),
		pid:         os.Getpid(),
	}
	m.SetLoopUnroll(cfg.LoopUnroll)
	m.emitters.New = func() any { return newEmitter(0, m.tls) }
	m.decoded = newDecodeCache()
	m.scratch = append(m.scratch, newScratch(cfg.MaxTraceInsns))
	for i := range cfg.Objects {
		for _, be := range cfg.Objects[i].BackEdges {
			be := be
			m.backBySite[be.GSite] = &be
		}
	}
	m.stats.init()
	// The program's break, where its brk heap grows from; brk(0) only reads it.
	brk, _, _ := syscall.RawSyscall(syscall.SYS_BRK, 0, 0, 0)
	c, err := codecache.New(cfg.MaxCode*generations, lo, hi, uint64(brk))
	if err != nil {
		return nil, fmt.Errorf("tracevm: code cache: %w", err)
	}
	d, err := newDataArea(c.Base(), c.Base()+uint64(c.Size()), uint64(brk), 1<<20)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("tracevm: counters: %w", err)
	}
	m.cache, m.data = c, d
	m.genEnd = cfg.MaxCode
	// cache_hi follows the used part (markUsed): tv_in_cache needs no
	// more, and a fork child copies only that much.
	C.tv_g.cache_lo = C.uint64_t(c.Base())
	if err := m.emitStubs(); err != nil {
		c.Close()
		return nil, err
	}
	m.loopFrames()
	C.tv_g.side_threshold = C.uint64_t(cfg.SideThreshold)
	C.tv_g.budget_pct = C.uint64_t(cfg.BudgetPct)
	if !active.CompareAndSwap(nil, m) {
		c.Close()
		return nil, errors.New("tracevm: a machine is already running")
	}
	m.SetBackground(cfg.Background)
	C.tv_g.enabled = 1
	return m, nil
}

// emitStubs writes the switch-out and record-start stubs of the current
// cache generation.
func (m *Machine) emitStubs() error {
	at, err := m.cache.Alloc(512, 64)
	if err != nil {
		return fmt.Errorf("tracevm: stubs: %w", err)
	}
	e := newEmitter(at, m.tls)
	emitSwitchOut(e, uint64(C.tv_switch_addr()))
	for len(e.buf)%16 != 0 {
		e.bytes(0xcc)
	}
	recStart := e.pc()
	emitEvent(e, C.TV_REC_START, at)
	code, err := e.finish()
	if err != nil {
		return err
	}
	if err := m.cache.Write(at, code); err != nil {
		return err
	}
	m.switchOut, m.recStart = at, recStart
	C.tv_g.switch_out = C.uint64_t(at)
	C.tv_g.rec_start = C.uint64_t(recStart)
	m.markUsed()
	return nil
}

// markUsed tells C how much of the cache a fork child must copy.
func (m *Machine) markUsed() {
	C.tv_g.cache_hi = C.uint64_t(m.cache.Base() + uint64(m.cache.Used()))
}

// alloc reserves code space in the current generation, flushing to the
// next one when it is full.
func (m *Machine) alloc(n int) (uint64, error) {
	if !m.fits(n) {
		if err := m.flush(); err != nil {
			return 0, err
		}
	}
	// 64: code is laid out (alignRel32) relative to cache lines.
	return m.cache.Alloc(n, 64)
}

// fits reports whether n bytes of code fit the current generation (64:
// the alignment alloc may add).
func (m *Machine) fits(n int) bool { return m.cache.Used()+n+64 <= m.genEnd }

// flush unlinks every trace and starts a new cache generation. Old code
// stays mapped: a thread may still be running it (inside a native call
// from a trace) and will leave it through its exits.
func (m *Machine) flush() error {
	C.tv_unpublish_all()
	m.stats.flushes.Add(1)
	m.byKey = make(map[loopKey]*trace)
	for _, b := range m.recBufs {
		b.free()
	}
	m.recBufs = nil
	if m.gen+1 >= generations {
		m.off = true
		C.tv_g.enabled = 0
		return errors.New("tracevm: code cache exhausted")
	}
	m.gen++
	if pad := m.gen*m.cfg.MaxCode - m.cache.Used(); pad > 0 {
		if _, err := m.cache.Alloc(pad, 1); err != nil {
			return err
		}
	}
	m.genEnd = (m.gen + 1) * m.cfg.MaxCode
	return m.emitStubs()
}

// dataArea holds counters that generated code increments with %rip-relative
// instructions: ordinary read-write memory within rel32 reach of the cache.
type dataArea struct {
	base uint64
	size int
	used int
}

func (d *dataArea) alloc8() uint64 {
	if d.used+8 > d.size {
		return 0
	}
	a := d.base + uint64(d.used)
	d.used += 8
	return a
}

// alloc16 allocates two adjacent words (0 when the area is full).
func (d *dataArea) alloc16() uint64 {
	if d.used+16 > d.size {
		return 0
	}
	a := d.base + uint64(d.used)
	d.used += 16
	return a
}

func (d *dataArea) load(a uint64) uint64 {
	return atomic.LoadUint64((*uint64)(addrPtr(a)))
}

// addrPtr turns a run-time address outside the Go heap into a pointer.
func addrPtr(a uint64) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&a)) }

// memAt returns n bytes of process memory at a.
func memAt(a uint64, n int) []byte { return unsafe.Slice((*byte)(addrPtr(a)), n) }

func (m *Machine) objectOf(a uint64) (*Object, bool) {
	for i := range m.cfg.Objects {
		o := &m.cfg.Objects[i]
		for _, r := range o.Text {
			if r.contains(a) {
				return o, true
			}
		}
	}
	return nil, false
}

// nativeEntry: target is code the recorder never copies (outside the
// traced objects, or in their native ranges such as the PLT): what it
// does is not known.
func (m *Machine) nativeEntry(target uint64) bool {
	o, ok := m.objectOf(target)
	if !ok || o.NativeEntries[target] {
		return true
	}
	for _, n := range o.Native {
		if n.contains(target) {
			return true
		}
	}
	return false
}

// textEnd returns the end of the executable range holding a, or 0.
func (m *Machine) textEnd(a uint64) uint64 {
	for i := range m.cfg.Objects {
		for _, r := range m.cfg.Objects[i].Text {
			if r.contains(a) {
				return r.Hi
			}
		}
	}
	return 0
}

// backEdgeOfSite returns the back-edge site gsite, or nil for an
// annotation call site.
// exitTrace returns the trace exit id belongs to, nil if none: traces
// take their exits in order (m.mu held).
func (m *Machine) exitTrace(id uint32) *trace {
	i, _ := slices.BinarySearchFunc(m.traces, id, func(t *trace, id uint32) int {
		if t.exitBase+t.nexits <= id {
			return -1
		}
		return 1
	})
	if i < len(m.traces) && m.traces[i].exitBase <= id {
		return m.traces[i]
	}
	return nil
}

func (m *Machine) backEdgeOfSite(gsite uint32) *BackEdge { return m.backBySite[gsite] }

// readOnly reports whether [a, a+n) lies in an object's read-only memory.
func (m *Machine) readOnly(a uint64, n int) bool {
	for i := range m.cfg.Objects {
		for _, r := range m.cfg.Objects[i].ReadOnly {
			if a >= r.Lo && a+uint64(n) <= r.Hi && a+uint64(n) > a {
				return true
			}
		}
	}
	return false
}

// refcounting reports whether the code at pc is of an object that keeps
// reference counts in words (Object.RefcountWords).
func (m *Machine) refcounting(pc uint64) bool {
	for i := range m.cfg.Objects {
		if !m.cfg.Objects[i].RefcountWords {
			continue
		}
		if slices.ContainsFunc(m.cfg.Objects[i].Text, func(r Range) bool { return r.contains(pc) }) {
			return true
		}
	}
	return false
}

// allocation classifies a call to target: alloc, it returns a fresh block
// and changes nothing else (Object.Allocators, Object.ErrnoCalls); free,
// it gives one back and changes nothing else (Object.Frees), or changes
// only errno (Object.ErrnoOnly).
func (m *Machine) allocation(target uint64) (alloc, free bool) {
	for i := range m.cfg.Objects {
		o := &m.cfg.Objects[i]
		if o.Allocators[target] {
			return true, false
		}
		if o.ErrnoCalls[target] {
			return true, false // errno: a word no one else's
		}
		if o.Frees[target] || o.ErrnoOnly[target] {
			return false, true
		}
	}
	return false, false
}

// inImage reports whether a lies in a loaded object's segments.
func (m *Machine) inImage(a uint64) bool {
	for i := range m.cfg.Objects {
		if slices.ContainsFunc(m.cfg.Objects[i].Image, func(r Range) bool { return r.contains(a) }) {
			return true
		}
	}
	return false
}

// DoNotTrace makes calls to fn run natively from now on (also for a
// callee found to loop); the recorder's kept blocks that inline calls of
// it are then dropped (nativeGen, recBuf.dropCalls).
func (m *Machine) DoNotTrace(fn uint64) {
	m.mu.Lock()
	m.doNotCall[fn] = true
	m.nativeLog = append(m.nativeLog, fn)
	m.nativeGen.Store(uint64(len(m.nativeLog)))
	m.mu.Unlock()
}

// nativeSince returns the functions made native from generation lo to hi
// of nativeGen.
func (m *Machine) nativeSince(lo, hi uint64) []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	hi = min(hi, uint64(len(m.nativeLog)))
	if lo >= hi {
		return nil
	}
	return slices.Clone(m.nativeLog[lo:hi])
}

// DisableLoop stops every future recording of loop id (at any site).
func (m *Machine) DisableLoop(id uint64) {
	m.mu.Lock()
	m.loops[loopKey{gsite: anySite, id: id}] = &loopState{disabled: true}
	m.mu.Unlock()
}

// SetLoopUnroll replaces Config.LoopUnroll (0: the default, negative:
// none) for the recordings to come.
func (m *Machine) SetLoopUnroll(n int) {
	switch {
	case n == 0:
		n = defaultLoopUnroll
	case n < 0:
		n = 0
	}
	m.loopUnroll.Store(int32(n))
}

// SetLog replaces Config.Log (nil: no log) for the recordings to come:
// a benchmark of the recorder measures it without the disassembly.
func (m *Machine) SetLog(w io.Writer) {
	m.mu.Lock()
	m.cfg.Log = w
	m.mu.Unlock()
}

// anySite keys what applies to a loop id at every site.
const anySite = ^uint32(0)

// Traces returns the compiled traces' heads, sorted, for tests.
func (m *Machine) Traces() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var hs []uint64
	for _, t := range m.traces {
		hs = append(hs, t.head)
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i] < hs[j] })
	return hs
}

// Stop turns the machine off for tests: traces are unlinked, nothing is
// recorded any more; code stays mapped.
func (m *Machine) Stop() {
	C.tv_g.enabled = 0
	C.tv_unpublish_all()
}

// tvFreezeCache blocks code cache writes while a thread forks (tv.c);
// 1 when it did.
//
//export tvFreezeCache
func tvFreezeCache() C.int {
	m := active.Load()
	if m == nil {
		return 0
	}
	m.cache.Freeze()
	return 1
}

// tvThawCache ends tvFreezeCache in the parent.
//
//export tvThawCache
func tvThawCache() {
	if m := active.Load(); m != nil {
		m.cache.Thaw()
	}
}

// budgetRefuses is the JIT budget's rule (tv_budget_refuses): whether a
// recording of share (1 root, 2 side) is refused once the JIT has spent
// spent cycles of elapsed at pct percent, its kept traces having earned
// earned cycles.
func budgetRefuses(spent, elapsed, pct, share, earned uint64) bool {
	return C.tv_budget_refuses(C.uint64_t(spent), C.uint64_t(elapsed), C.uint64_t(pct), C.uint64_t(share), C.uint64_t(earned)) != 0
}
