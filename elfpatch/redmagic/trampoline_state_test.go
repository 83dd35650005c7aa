package redmagic

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"

	"github.com/redmagic-patch/redmagic-patch/cfg/sites"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// The harness (testdata/trampoline) maps the trampolines and the header
// page at these fixed addresses; they are within rel32 reach of a non-PIE
// executable's text at 0x400000.
const (
	stText     = 0x70000000
	stTextSize = 0x10000
	stData     = 0x70010000
)

// stRegs are the general registers in hardware order, the order of the
// harness's gpr arrays.
var stRegs = [16]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}

const stRSP = 4

// RFLAGS bits (Intel SDM vol. 1, 3.4.3).
const (
	stCF    = 1 << 0
	stFixed = 1 << 1 // reads as 1
	stPF    = 1 << 2
	stAF    = 1 << 4
	stZF    = 1 << 6
	stSF    = 1 << 7
	stIF    = 1 << 9
	stDF    = 1 << 10
	stOF    = 1 << 11
	stArith = stCF | stPF | stAF | stZF | stSF | stOF
)

var stFlagNames = []struct {
	bit  uint64
	name string
}{{stCF, "CF"}, {stPF, "PF"}, {stAF, "AF"}, {stZF, "ZF"}, {stSF, "SF"}, {stDF, "DF"}, {stOF, "OF"}}

func stFlagString(f uint64) string {
	var s []string
	for _, n := range stFlagNames {
		if f&n.bit != 0 {
			s = append(s, n.name)
		}
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, "|")
}

// stMachine mirrors the harness's struct machine.
type stMachine struct {
	GPR     [16]uint64
	RFlags  uint64
	RedZone [16]uint64
}

// stRun is one entry into one trampoline.
type stRun struct {
	name  string
	index int // the site's index, which the trampoline passes to hit
	site  sites.Site
	tramp uint64
	slot  uint64 // the hit-function slot: the harness's hit function or 0
	shift uint64 // 0 or 8: lowers %rsp so both alignments are entered
	cont  uint64 // what hit returns: 0 or the harness's rm_cont
	// A sampled site's countdown: its address (0: the site is not
	// sampled) and its value before the run.
	countdown uint64
	cd        int64
	// A site's inline cache (RM_SITE_IC): the address of its ic_id (0:
	// none), and which entry holds the run's loop id (0: none).
	ic    uint64
	icWay int
	// forward: a Lua OP_JMP site entered with a forward jump in its aux
	// register, which goes straight on to the handler.
	forward bool
	in      stMachine
}

// icHit: the run must go straight to the cached head (rm_cont).
func (r *stRun) icHit() bool { return r.ic != 0 && r.icWay > 0 && !r.forward }

// sampled: the run enters a sampling trampoline.
func (r *stRun) sampled() bool { return r.countdown != 0 }

// calls: the run must reach hit (a sampling trampoline's countdown falls
// below 0).
func (r *stRun) calls() bool {
	return r.slot != 0 && !r.icHit() && !r.forward && (!r.sampled() || r.cd <= 0)
}

// stResult is what the harness captured for one run.
type stResult struct {
	out      stMachine
	entryRSP uint64
	calls    uint64
	site     uint64
	id       uint64
	aux      uint64
	rspMod16 uint64
	hitFlags uint64
	viaCont  uint64 // 1: the trampoline continued at the address hit returned
	cdAfter  int64  // the countdown after the run
}

const stResultFields = 16 + 1 + 16 + 9

// stMix gives the distinct, all-bits-busy register and red-zone values.
func stMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func stNewMachine(seed uint64, flags uint64) stMachine {
	m := stMachine{RFlags: stFixed | stIF | flags}
	for i := range m.GPR {
		m.GPR[i] = stMix(seed<<8 | uint64(i))
	}
	for i := range m.RedZone {
		m.RedZone[i] = stMix(seed<<8 | uint64(0x80+i))
	}
	return m
}

// stRegValue is what a site's IDReg or AuxReg should deliver to hit.
func stRegValue(m *stMachine, name string) (uint64, bool) {
	if name == "" {
		return 0, true
	}
	for i, r := range stRegs {
		if r == name {
			return m.GPR[i], true
		}
	}
	return 0, false
}

// mismatches compares what the harness captured with what entering the
// trampoline in state r.in must leave behind.
func (r *stRun) mismatches(res stResult) []string {
	var bad []string
	for i, want := range r.in.GPR {
		if i == stRSP {
			want = res.entryRSP
		}
		if got := res.out.GPR[i]; got != want {
			bad = append(bad, fmt.Sprintf("%%%s = %#x, want %#x", stRegs[i], got, want))
		}
	}
	kept := uint64(stArith | stDF)
	if r.sampled() {
		kept = stDF // the countdown's sub changes the arithmetic flags
		want := r.cd - 1
		if r.icHit() || r.forward {
			want = r.cd // the cache hit or the jump's direction comes first
		}
		if res.cdAfter != want {
			bad = append(bad, fmt.Sprintf("countdown %d after the run, want %d", res.cdAfter, want))
		}
	}
	if diff := (res.out.RFlags ^ r.in.RFlags) & kept; diff != 0 {
		bad = append(bad, fmt.Sprintf("flags %s differ: got %s, want %s", stFlagString(diff), stFlagString(res.out.RFlags&kept), stFlagString(r.in.RFlags&kept)))
	}
	for i, want := range r.in.RedZone {
		if got := res.out.RedZone[i]; got != want {
			bad = append(bad, fmt.Sprintf("red zone %d(%%rsp) = %#x, want %#x", -128+8*i, got, want))
		}
	}
	if want := r.icHit() || r.calls() && r.cont != 0; (res.viaCont == 1) != want {
		bad = append(bad, fmt.Sprintf("continued through rm_cont: %v, want %v", res.viaCont == 1, want))
	}
	if !r.calls() {
		if res.calls != 0 {
			bad = append(bad, fmt.Sprintf("hit called %d times with an empty slot or a countdown of %d", res.calls, r.cd))
		}
		return bad
	}
	if res.calls != 1 {
		return append(bad, fmt.Sprintf("hit called %d times, want 1", res.calls))
	}
	if res.site != uint64(r.index) {
		bad = append(bad, fmt.Sprintf("hit site = %d, want %d", res.site, r.index))
	}
	for _, arg := range []struct {
		what, reg string
		got       uint64
	}{{"id", r.site.IDReg, res.id}, {"aux", r.site.AuxReg, res.aux}} {
		want, ok := stRegValue(&r.in, arg.reg)
		if !ok {
			bad = append(bad, fmt.Sprintf("hit %s: unknown register %q", arg.what, arg.reg))
		} else if arg.got != want {
			bad = append(bad, fmt.Sprintf("hit %s (%%%s) = %#x, want %#x", arg.what, arg.reg, arg.got, want))
		}
	}
	if res.rspMod16 != 8 {
		bad = append(bad, fmt.Sprintf("%%rsp mod 16 = %d at hit entry, want 8", res.rspMod16))
	}
	if res.hitFlags&stDF != 0 {
		bad = append(bad, "DF set at hit entry")
	}
	return bad
}

// stHarness is the built harness and the addresses the trampolines need.
type stHarness struct {
	path    string
	landing uint64 // rm_landing: every site's Resume
	hit     uint64 // rm_hit_fn: what a filled slot holds
	cont    uint64 // rm_cont: where hit may send the trampoline instead
}

// stBuildHarness compiles the harness as a non-PIE executable, so that its
// routines have link-time addresses read here from the symbol table.
func stBuildHarness(t *testing.T) stHarness {
	t.Helper()
	testenv.NeedTool(t, "gcc")
	src := filepath.Join("testdata", "trampoline")
	out := filepath.Join(t.TempDir(), "harness")
	cmd := exec.Command("gcc", "-O1", "-Wall", "-no-pie", "-o", out,
		filepath.Join(src, "harness.c"), filepath.Join(src, "machine.S"))
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "gcc: %s", msg)

	f, err := elf.Open(out)
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, elf.ET_EXEC, f.Type, "the harness must not be position-independent")
	syms, err := f.Symbols()
	require.NoError(t, err)
	h := stHarness{path: out}
	for _, s := range syms {
		switch s.Name {
		case "rm_landing":
			h.landing = s.Value
		case "rm_hit_fn":
			h.hit = s.Value
		case "rm_cont":
			h.cont = s.Value
		}
	}
	require.NotZero(t, h.landing, "rm_landing")
	require.NotZero(t, h.hit, "rm_hit_fn")
	return h
}

// run executes runs against code (assembled at stText) in one harness
// process and returns one result per run.
func (h stHarness) run(t *testing.T, code []byte, runs []stRun) []stResult {
	t.Helper()
	require.LessOrEqual(t, len(code), stTextSize)
	codeFile := filepath.Join(t.TempDir(), "trampolines.bin")
	require.NoError(t, os.WriteFile(codeFile, code, 0o644))
	var in strings.Builder
	for _, r := range runs {
		var icID uint64
		if r.icHit() {
			icID, _ = stRegValue(&r.in, r.site.IDReg)
		}
		fmt.Fprintf(&in, "%x %x %x %x %x %x %x %x %x %x", r.tramp, r.slot, r.shift, r.in.RFlags, r.cont, r.countdown, uint64(r.cd), r.ic, r.icWay, icID)
		for _, v := range r.in.GPR {
			fmt.Fprintf(&in, " %x", v)
		}
		for _, v := range r.in.RedZone {
			fmt.Fprintf(&in, " %x", v)
		}
		in.WriteByte('\n')
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.path, codeFile,
		fmt.Sprintf("%#x", stText), fmt.Sprintf("%#x", stTextSize), fmt.Sprintf("%#x", stData))
	cmd.Stdin = strings.NewReader(in.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if stdout.Len() == 0 {
		lines = nil
	}
	if err != nil {
		// The harness prints line by line: the first run without a line
		// is the one that crashed or hung.
		name := "after the last run"
		if len(lines) < len(runs) {
			name = runs[len(lines)].name
		}
		require.NoError(t, err, "harness failed in run %d (%s): %s", len(lines), name, stderr.String())
	}
	require.Len(t, lines, len(runs), "stderr: %s", stderr.String())
	results := make([]stResult, len(runs))
	for i, line := range lines {
		fs := strings.Fields(line)
		require.Len(t, fs, stResultFields, "line %d: %q", i, line)
		v := make([]uint64, len(fs))
		for j, s := range fs {
			v[j], err = strconv.ParseUint(s, 16, 64)
			require.NoError(t, err, "line %d", i)
		}
		r := &results[i]
		copy(r.out.GPR[:], v[0:16])
		r.out.RFlags = v[16]
		copy(r.out.RedZone[:], v[17:33])
		r.entryRSP, r.calls, r.site, r.id, r.aux, r.rspMod16, r.hitFlags, r.viaCont = v[33], v[34], v[35], v[36], v[37], v[38], v[39], v[40]
		r.cdAfter = int64(v[41])
	}
	return results
}

// stSites covers every way the id and aux reach hit: from a register the
// trampoline saves (read back from its slot, including the crossed
// rsi/rdx pair that are also the argument registers), from a register it
// does not touch, from %rbp (saved specially), and none.
var stSites = []struct{ id, aux string }{
	{"rax", "rdx"},
	{"rdi", "rsi"},
	{"rsi", "rdx"},
	{"rdx", "rsi"},
	{"r11", "rcx"},
	{"r8", "r10"},
	{"r9", "rdi"},
	{"r15", "r13"},
	{"r13", "r12"},
	{"r12", "r15"},
	{"rbx", "rbp"},
	{"rbp", "rbx"},
	{"r14", ""},
	{"", "rax"},
	{"", ""},
}

var stFlags = []struct {
	name  string
	flags uint64
}{
	{"all", stArith},
	{"none", 0},
	{"CF-AF-SF", stCF | stAF | stSF},
	{"PF-ZF-OF", stPF | stZF | stOF},
	{"OF", stOF},
	{"all-but-OF", stArith &^ stOF},
}

func stSiteList(resume uint64) []sites.Site {
	ss := make([]sites.Site, len(stSites))
	for i, p := range stSites {
		ss[i] = sites.Site{Name: fmt.Sprintf("id-%s-aux-%s", stOrNone(p.id), stOrNone(p.aux)), Kind: sites.KindBackEdge, Resume: resume, IDReg: p.id, AuxReg: p.aux}
	}
	return ss
}

func stOrNone(r string) string {
	if r == "" {
		return "none"
	}
	return r
}

// stRuns enters every trampoline with every flag pattern, slot state and
// stack alignment, each run with its own register and red-zone values;
// sampled[i] trampolines with countdowns that call (0, and a negative one
// left by racing threads) and one that does not.
func stRuns(h stHarness, ss []sites.Site, addrs []uint64, sampled []bool) []stRun {
	var runs []stRun
	for i, s := range ss {
		cds := []int64{0}
		var cdAddr, icAddr uint64
		icWays := []int{0}
		if sampled != nil && sampled[i] {
			cds = []int64{0, -3, 5}
			cdAddr = siteFieldAddr(stData, i, siteCountdown)
			if _, ok := icReg(s); ok {
				icAddr = siteFieldAddr(stData, i, siteICID)
				icWays = []int{0, 1, 2}
			}
		}
		for _, fl := range stFlags {
			for _, slot := range []uint64{h.hit, 0} {
				for _, shift := range []uint64{0, 8} {
					for _, cont := range []uint64{0, h.cont} {
						for _, cd := range cds {
							for _, way := range icWays {
								slotName := "hit"
								if slot == 0 {
									slotName = "empty"
								} else if cont != 0 {
									slotName = "hit-cont"
								}
								if cdAddr != 0 {
									slotName += fmt.Sprintf("/countdown%d", cd)
								}
								if icAddr != 0 {
									slotName += fmt.Sprintf("/ic%d", way)
								}
								runs = append(runs, stRun{
									name:  fmt.Sprintf("%s/%s/%s/shift%d", s.Name, fl.name, slotName, shift),
									index: i, site: s, tramp: addrs[i], slot: slot, shift: shift, cont: cont,
									countdown: cdAddr, cd: cd, ic: icAddr, icWay: way,
									in: stNewMachine(uint64(len(runs)+1), fl.flags),
								})
							}
						}
					}
				}
			}
		}
	}
	return runs
}

// stSampledSiteList is stSiteList twice, the second copy sampled.
func stSampledSiteList(resume uint64) ([]sites.Site, []bool) {
	ss := stSiteList(resume)
	n := len(ss)
	sampled := make([]bool, 2*n)
	for i := 0; i < n; i++ {
		s := ss[i]
		s.Name = "sampled/" + s.Name
		ss = append(ss, s)
		sampled[n+i] = true
	}
	return ss, sampled
}

// TestBackEdgeTrampolineState executes generated back-edge trampolines and
// checks that they preserve every register, the arithmetic flags and the
// red zone, and call hit(site, id, aux) on an aligned stack exactly when
// the slot is filled, against a hit function that clobbers all it may.
func TestBackEdgeTrampolineState(t *testing.T) {
	h := stBuildHarness(t)
	ss, sampled := stSampledSiteList(h.landing)
	code, addrs, err := trampolines("harness", stText, stData, ss, sampled)
	require.NoError(t, err)
	runs := stRuns(h, ss, addrs, sampled)
	for _, r := range runs {
		for i, a := range r.in.GPR {
			for _, b := range r.in.GPR[i+1:] {
				require.NotEqual(t, a, b, "register values must be distinct")
			}
		}
	}
	results := h.run(t, code, runs)
	for i := range runs {
		r := &runs[i]
		t.Run(r.name, func(t *testing.T) {
			assert.Empty(t, r.mismatches(results[i]))
		})
	}
}

// TestLuaJumpTrampolineState runs sampled Lua OP_JMP trampolines
// (FlagLua54SJ) with jump words in their aux register: a forward jump goes
// straight on to the handler, its countdown and inline cache untouched; a
// jump back is a back-edge hit like any other. The words' upper 32 bits
// are garbage, as in a register the handler loaded a 32-bit word into.
func TestLuaJumpTrampolineState(t *testing.T) {
	h := stBuildHarness(t)
	var ss []sites.Site
	for _, s := range stSiteList(h.landing) {
		if s.AuxReg == "" {
			continue // an OP_JMP site has its instruction word
		}
		s.Name = "lua-jmp/" + s.Name
		s.Flags = []string{sites.FlagLua54SJ}
		ss = append(ss, s)
	}
	sampled := make([]bool, len(ss))
	for i := range sampled {
		sampled[i] = true
	}
	code, addrs, err := trampolines("harness", stText, stData, ss, sampled)
	require.NoError(t, err)
	words := []struct {
		name    string
		word    uint32
		forward bool
	}{
		{"sJ=0", 0xffffff<<7 | 0x38, true},
		{"sJ=0-op=0", luaSJBackBelow, true},
		{"sJ=+1", 0x1000000<<7 | 0x38, true},
		{"sJ=max", 0xffffffff, true},
		{"sJ=-1", 0xfffffe<<7 | 0x38, false},
		{"sJ=min", 0x38, false},
		{"below-by-one", luaSJBackBelow - 1, false},
	}
	var runs []stRun
	for _, r := range stRuns(h, ss, addrs, sampled) {
		for k, w := range words {
			r := r
			r.name += "/" + w.name
			r.forward = w.forward
			for i, n := range stRegs {
				if n == r.site.AuxReg {
					r.in.GPR[i] = r.in.GPR[i]&^0xffffffff | uint64(w.word) + uint64(k)<<40
				}
			}
			runs = append(runs, r)
		}
	}
	results := h.run(t, code, runs)
	for i := range runs {
		r := &runs[i]
		t.Run(r.name, func(t *testing.T) {
			assert.Empty(t, r.mismatches(results[i]))
		})
	}
}

// stMutant breaks a trampoline the way a plausible bug in patch.go would:
// the instructions matching each pattern are overwritten with nops.
type stMutant struct {
	name  string
	match []func(x86dec.Inst) bool
	// static: TestBackEdgeTrampolineStackWrites's walk must reject it too.
	static bool
}

func stIsOp(op x86asm.Op, args ...x86asm.Arg) func(x86dec.Inst) bool {
	return func(i x86dec.Inst) bool {
		if i.Op != op {
			return false
		}
		for j, a := range args {
			if i.Args[j] != a {
				return false
			}
		}
		return true
	}
}

func stIsLeaRSP(disp int64) func(x86dec.Inst) bool {
	return func(i x86dec.Inst) bool {
		m, ok := i.Args[1].(x86asm.Mem)
		return i.Op == x86asm.LEA && i.Args[0] == x86asm.RSP && ok && m.Base == x86asm.RSP && m.Disp == disp
	}
}

var stMutants = []stMutant{
	{"no-sahf", []func(x86dec.Inst) bool{stIsOp(x86asm.SAHF)}, false},
	{"no-OF-restore", []func(x86dec.Inst) bool{stIsOp(x86asm.ADD, x86asm.AL)}, false},
	{"no-red-zone-step", []func(x86dec.Inst) bool{stIsLeaRSP(-128), stIsLeaRSP(128)}, true},
	{"no-alignment", []func(x86dec.Inst) bool{stIsOp(x86asm.AND, x86asm.RSP)}, false},
	{"r11-not-saved", []func(x86dec.Inst) bool{stIsOp(x86asm.PUSH, x86asm.R11), stIsOp(x86asm.POP, x86asm.R11)}, false},
}

// mutate overwrites, in code[start:end) assembled at stText, every
// instruction that one of m's patterns matches, and says how many.
func (m stMutant) mutate(t *testing.T, code []byte, start, end uint64) int {
	t.Helper()
	n := 0
	for pc := start; pc < end; {
		inst, err := x86dec.Decode(code[pc-stText:end-stText], pc)
		require.NoError(t, err)
		for _, f := range m.match {
			if f(inst) {
				copy(code[pc-stText:], bytes.Repeat([]byte{0x90}, inst.Len))
				n++
				break
			}
		}
		pc = inst.End()
	}
	return n
}

// TestBackEdgeTrampolineMutants shows that the checks above can fail: each
// mutant trampoline omits one part of the state saving and must be caught
// by at least one run.
func TestBackEdgeTrampolineMutants(t *testing.T) {
	h := stBuildHarness(t)
	site := sites.Site{Kind: sites.KindBackEdge, Resume: h.landing, IDReg: "rsi", AuxReg: "r11"}
	// Copy k+1 is mutant k; copy 0 is left intact as the control.
	ss := make([]sites.Site, len(stMutants)+1)
	for i := range ss {
		ss[i] = site
		ss[i].Name = "intact"
		if i > 0 {
			ss[i].Name = stMutants[i-1].name
		}
	}
	code, addrs, err := trampolines("harness", stText, stData, ss, nil)
	require.NoError(t, err)
	for k, m := range stMutants {
		end := uint64(stText + len(code))
		if k+2 < len(addrs) {
			end = addrs[k+2]
		}
		// Every pattern matches at least once (the red-zone step is undone
		// on both the disabled and the enabled path).
		require.GreaterOrEqual(t, m.mutate(t, code, addrs[k+1], end), len(m.match), "%s: instructions to remove", m.name)
		err := stCheckStackWrites(code, addrs[k+1], end, site.Resume, 0)
		if m.static {
			assert.Error(t, err, "%s: stack walk", m.name)
		} else {
			assert.NoError(t, err, "%s: stack walk", m.name)
		}
	}
	// The mutants break the state saving, which both exits share; a
	// broken layout would make the continuation's ret $n crash the
	// harness instead of reporting, so they run the Resume exit only.
	var runs []stRun
	for _, r := range stRuns(h, ss, addrs, nil) {
		if r.cont == 0 {
			runs = append(runs, r)
		}
	}
	results := h.run(t, code, runs)
	caught := make(map[string][]string)
	for i := range runs {
		r := &runs[i]
		bad := r.mismatches(results[i])
		if r.site.Name == "intact" {
			assert.Empty(t, bad, r.name)
		} else if len(bad) > 0 && caught[r.site.Name] == nil {
			caught[r.site.Name] = append([]string{r.name}, bad...)
		}
	}
	for _, m := range stMutants {
		if assert.NotEmpty(t, caught[m.name], "mutant %s passed every run", m.name) {
			t.Logf("%s caught by %s: %s", m.name, caught[m.name][0], caught[m.name][1])
		}
	}
}

// stStack is the abstract stack pointer: %rsp lies in [off-slack, off]
// relative to its value at the trampoline's entry.
type stStack struct {
	off, slack int64
	known      bool
}

// TestBackEdgeTrampolineStackWrites decodes every generated trampoline and
// follows %rsp through it: every memory write (push, the call's return
// address) must land below the 128-byte red zone, nothing else may write
// memory, and %rsp must be back at its entry value at the jump to Resume.
func TestBackEdgeTrampolineStackWrites(t *testing.T) {
	ss, sampled := stSampledSiteList(0x401000)
	code, addrs, err := trampolines("harness", stText, stData, ss, sampled)
	require.NoError(t, err)
	for i, s := range ss {
		t.Run(s.Name, func(t *testing.T) {
			end := uint64(stText + len(code))
			if i+1 < len(addrs) {
				end = addrs[i+1]
			}
			var countdown uint64
			var icHeads []uint64
			if sampled[i] {
				countdown = siteFieldAddr(stData, i, siteCountdown)
				if _, ok := icReg(s); ok {
					for k := range icWays {
						icHeads = append(icHeads, siteFieldAddr(stData, i, siteICHead+8*uint64(k)))
					}
				}
			}
			require.NoError(t, stCheckStackWrites(code, addrs[i], end, s.Resume, countdown, icHeads...))
		})
	}
}

// stCheckStackWrites walks one trampoline; countdown, if not 0, is the
// one address outside the stack it may write (subq $1); icHeads are the
// inline-cache slots it may jump through, with %rsp at its entry value.
func stCheckStackWrites(code []byte, start, end, resume, countdown uint64, icHeads ...uint64) error {
	rsp := stStack{known: true}
	var rbp stStack
	pending := map[uint64]stStack{} // state at forward branch targets
	exits := 0                      // jumps to Resume with %rsp restored
	write := func(inst x86dec.Inst) error {
		if !rsp.known || rsp.off+8 > -128 {
			return fmt.Errorf("%#x %v: writes at %%rsp%+d, inside the red zone", inst.Addr, &inst, rsp.off)
		}
		return nil
	}
	for pc := start; pc < end; {
		inst, err := x86dec.Decode(code[pc-stText:end-stText], pc)
		if err != nil {
			return err
		}
		if want, ok := pending[pc]; ok && want != rsp {
			return fmt.Errorf("%#x: %%rsp state %+v on one path, %+v on the other", pc, rsp, want)
		}
		a0 := inst.Args[0]
		switch {
		case inst.Op == x86asm.PUSH:
			rsp.off -= 8
			if err := write(inst); err != nil {
				return err
			}
		case inst.Op == x86asm.POP:
			rsp.off += 8
			if a0 == x86asm.RBP || a0 == x86asm.RSP {
				rbp = stStack{}
			}
			if a0 == x86asm.RSP {
				rsp = stStack{}
			}
		case inst.Op == x86asm.CALL:
			rsp.off -= 8
			if err := write(inst); err != nil {
				return err
			}
			rsp.off += 8
		case inst.Op == x86asm.JMP:
			tgt, ok := inst.Target()
			slot, viaMem := inst.MemRIPTarget()
			switch {
			case viaMem && slices.Contains(icHeads, slot):
				// A cached trace head is entered with the site's state.
				if rsp != (stStack{known: true}) {
					return fmt.Errorf("%#x: enters a cached trace with %%rsp state %+v", pc, rsp)
				}
			case ok && tgt > pc && tgt < end:
				// A forward jump inside the trampoline (to its enabled path).
				pending[tgt] = rsp
			case !ok || tgt != resume:
				return fmt.Errorf("%#x %v: jumps elsewhere than Resume %#x", pc, &inst, resume)
			case rsp != (stStack{known: true}):
				return fmt.Errorf("%#x: leaves with %%rsp state %+v, not its entry value", pc, rsp)
			default:
				exits++
			}
			// What follows is reached only by a branch, if at all.
			next := inst.End()
			st, ok := pending[next]
			if !ok {
				if exits == 0 {
					return fmt.Errorf("%#x: code after a jump that no branch reaches", next)
				}
				return nil
			}
			rsp, rbp = st, stStack{}
			pc = next
			continue
		case inst.Flow() == x86dec.FlowCondJump:
			tgt, _ := inst.Target()
			if tgt <= pc {
				return fmt.Errorf("%#x %v: backward branch", pc, &inst)
			}
			pending[tgt] = rsp
		case a0 == x86asm.RSP:
			m, isMem := inst.Args[1].(x86asm.Mem)
			switch {
			case inst.Op == x86asm.LEA && isMem && m.Base == x86asm.RSP && m.Index == 0:
				rsp.off += m.Disp
			case inst.Op == x86asm.AND && inst.Args[1] == x86asm.Imm(-16):
				rsp.slack += 15
			case inst.Op == x86asm.MOV && inst.Args[1] == x86asm.RBP:
				rsp = rbp
			default:
				return fmt.Errorf("%#x %v: unexpected change of %%rsp", pc, &inst)
			}
		case a0 == x86asm.RBP:
			rbp = stStack{}
			if inst.Op == x86asm.MOV && inst.Args[1] == x86asm.RSP {
				rbp = rsp
			}
		case inst.Op == x86asm.RET:
			// ret $n into the continuation hit returned: it must pop
			// the slot and land with %rsp at its entry value.
			n, _ := a0.(x86asm.Imm)
			if rsp != (stStack{known: true, off: rsp.off}) || rsp.off+8+int64(n) != 0 {
				return fmt.Errorf("%#x %v: leaves with %%rsp state %+v", pc, &inst, rsp)
			}
			exits++
			next := inst.End()
			st, ok := pending[next]
			if !ok {
				return nil
			}
			rsp, rbp = st, stStack{}
			pc = next
			continue
		case inst.Op == x86asm.SUB && countdown != 0:
			if tgt, ok := inst.MemRIPTarget(); !ok || tgt != countdown || inst.Args[1] != x86asm.Imm(1) {
				return fmt.Errorf("%#x %v: writes memory other than the countdown %#x", pc, &inst, countdown)
			}
		case inst.Op != x86asm.CMP && inst.Op != x86asm.NOP && inst.Op != x86asm.TEST:
			if m, ok := a0.(x86asm.Mem); ok {
				// Only the trampoline's own slots, past the red zone.
				if inst.Op != x86asm.MOV || m.Base != x86asm.RSP || m.Index != 0 || !rsp.known || rsp.slack != 0 ||
					rsp.off+m.Disp+8 > -128 {
					return fmt.Errorf("%#x %v: writes memory", pc, &inst)
				}
			}
		}
		pc = inst.End()
	}
	return fmt.Errorf("%#x: no jump to Resume", end)
}
