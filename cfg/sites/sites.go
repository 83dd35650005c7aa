// Package sites finds where a patched interpreter must call the runtime:
// the bytecode back-edge handlers of an unmodified interpreter, reached
// through its dispatch table, or the calls of the redmagic annotation API
// in an annotated one. It decides what to patch and why; package
// elfpatch/redmagic decides how. Per-interpreter facts (opcode numbers,
// which register holds the loop id) live in profiles: JSON data, built in
// or given as a file.
package sites

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/runtime-stub/abi"
	"golang.org/x/arch/x86/x86asm"
)

// Profile describes one interpreter family.
type Profile struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Match       struct {
		Symbols       []string `json:"symbols,omitempty"`        // all must be defined
		SymbolsPrefix string   `json:"symbols_prefix,omitempty"` // some symbol or import must start with it
		Strings       []string `json:"strings,omitempty"`        // each must occur in read-only data
	} `json:"match"`
	// Annotated profiles patch the calls of the redmagic API.
	Annotated bool `json:"annotated,omitempty"`
	// Dispatch profiles patch entries of the eval function's dispatch
	// table. Function "" means the function that dispatches most often
	// through a table of Entries entries (stripped binaries).
	Dispatch struct {
		Function string `json:"function"`
		Entries  int    `json:"entries"`
	} `json:"dispatch"`
	IDReg  string `json:"id_reg,omitempty"`  // register holding the loop id at the handler
	AuxReg string `json:"aux_reg,omitempty"` // register passed to the runtime as aux
	// IDStore, when set, is the displacement at which every handler
	// stores its id register before anything else (CPython 3.11:
	// frame->prev_instr, at 56): builds allocate registers differently,
	// so a site's id register is the one its handler stores there among
	// its first instructions (IDReg names the usual one), and a handler
	// without that store is not a site.
	IDStore *int32        `json:"id_store,omitempty"`
	Sites   []ProfileSite `json:"sites,omitempty"`
	// NoTrace: the runtime counts this interpreter's loops but its JIT
	// does not trace from its back-edge sites (a profile whose traces
	// are not validated yet).
	NoTrace bool `json:"no_trace,omitempty"`
	// Native names functions a trace always calls rather than inlines
	// (allocators, the collector, frame teardown, error paths, the
	// eval breaker, anything that releases the GIL), by symbol; the
	// runtime resolves them in the object's symbol tables. Functions
	// that run loops of their own are found at run time as well.
	Native []string `json:"native,omitempty"`
	// RefcountWords: the interpreter counts references in 8-byte words,
	// and the words it adds one to or subtracts one from in place (add,
	// sub, inc, dec of one on memory) it never reads or writes at
	// another width, nor uses as pointers (CPython's ob_refcnt, its
	// Py_ssize_t counters). Such a store at an address the JIT cannot
	// place then changes no memory narrower than a word, and no word
	// the interpreter addresses memory with: the bytecode, flags,
	// counters and pointers it knows stay known.
	RefcountWords bool `json:"refcount_words,omitempty"`
	// Allocators names functions, by symbol, that return a fresh block
	// and change no other memory the program reads (pymalloc's entry
	// points): a call to one leaves what a trace knows of memory known,
	// and stores through the block's pointer cannot change it either.
	Allocators []string `json:"allocators,omitempty"`
	// Frees names functions that give a block back and change no other
	// memory the program reads: a call to one leaves what a trace knows
	// of memory known (what it knows at a heap object's address is in an
	// object the loop keeps a pointer to, alive, not the block freed).
	Frees []string `json:"frees,omitempty"`
}

// BuiltinNamed returns the built-in profile called name, or nil.
func BuiltinNamed(name string) *Profile {
	// Only its file is parsed (profiles/NAME.json): the JIT asks at its
	// start, and the profiles' lists are long.
	if !slices.Contains(builtinProfileNames(), name) {
		return nil
	}
	data, err := builtinFS.ReadFile("profiles/" + name + ".json")
	if err != nil {
		return nil
	}
	p, err := parseProfile(data, name)
	if err != nil || p.Name != name {
		return nil
	}
	return p
}

// ProfileSite names one back-edge opcode.
type ProfileSite struct {
	Name   string   `json:"name"`
	Opcode int      `json:"opcode"`
	Flags  []string `json:"flags,omitempty"` // "lua54-sj", "lua54-cond-sj", "oparg-back"
}

//go:embed profiles/*.json
var builtinFS embed.FS

// builtinProfileNames lists the embedded profiles/*.json by name,
// annotated first (an interpreter that carries the API is patched
// through it), the others in name order.
func builtinProfileNames() []string {
	ents, err := builtinFS.ReadDir("profiles")
	if err != nil {
		return nil // cannot happen: the directory is embedded
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && n != "annotated" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return append([]string{"annotated"}, names...)
}

// Builtin returns the built-in profiles, annotated first: an interpreter
// that carries the API is patched through it.
func Builtin() ([]*Profile, error) {
	names := builtinProfileNames()
	out := make([]*Profile, 0, len(names))
	for _, n := range names {
		data, err := builtinFS.ReadFile("profiles/" + n + ".json")
		if err != nil {
			return nil, err
		}
		p, err := parseProfile(data, n)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// BuiltinNames lists the names --profile accepts besides a file.
func BuiltinNames() []string { return append([]string{"auto"}, builtinProfileNames()...) }

// LoadProfile reads a profile file.
func LoadProfile(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	return parseProfile(data, path)
}

func parseProfile(data []byte, source string) (*Profile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("profile %s: %w", source, err)
	}
	if p.Name == "" {
		return nil, fmt.Errorf("profile %s: no name", source)
	}
	if !p.Annotated {
		if len(p.Sites) == 0 {
			return nil, fmt.Errorf("profile %s: no sites", source)
		}
		for _, s := range p.Sites {
			if s.Opcode < 0 || (p.Dispatch.Entries > 0 && s.Opcode >= p.Dispatch.Entries) {
				return nil, fmt.Errorf("profile %s: site %s: opcode %d out of range", source, s.Name, s.Opcode)
			}
			for _, fl := range s.Flags {
				if !slices.Contains(ProfileFlags, fl) {
					return nil, fmt.Errorf("profile %s: site %s: unknown flag %q", source, s.Name, fl)
				}
			}
		}
		for _, r := range []string{p.IDReg, p.AuxReg} {
			if r != "" {
				if _, err := DWARFReg(r); err != nil {
					return nil, fmt.Errorf("profile %s: %w", source, err)
				}
			}
		}
	}
	return &p, nil
}

// FlagLua54SJ marks a Lua 5.4 OP_JMP site: a back-edge only when the
// instruction's sJ operand is negative.
const FlagLua54SJ = "lua54-sj"

// FlagLua54CondSJ marks a Lua 5.4 comparison or test site (OP_EQ ...
// OP_TESTSET), which takes the OP_JMP that follows it inline: a back-edge
// only when that jump, the word at its id (the pc past the comparison),
// goes back. The loops Lua closes this way (repeat ... until) are keyed by
// the pc the jump lands at.
const FlagLua54CondSJ = "lua54-cond-sj"

// FlagOpargBack marks a site that jumps back by its oparg (the aux
// register) in 2-byte code units from past the instruction at its id
// (CPython 3.11): its loops are keyed by the header it lands at.
const FlagOpargBack = "oparg-back"

// FlagCPython311CmpJump marks a CPython 3.11 combined compare-and-jump
// (COMPARE_OP_INT_JUMP, _FLOAT_JUMP, _STR_JUMP), which takes the
// POP_JUMP_* after it inline, past COMPARE_OP's inline cache: a back-edge
// only when that jump goes back (the end of a while loop whose condition
// compares ints, floats or strings), keyed by the header it lands at.
const FlagCPython311CmpJump = "cpython311-cmp-jump"

// ProfileFlags are the flags a profile's site may carry (each has its bit
// in the patch header: elfpatch/redmagic checks that it does).
var ProfileFlags = []string{FlagLua54SJ, FlagLua54CondSJ, FlagOpargBack, FlagCPython311CmpJump}

var dwarfRegs = map[string]int{
	"rax": 0, "rdx": 1, "rcx": 2, "rbx": 3, "rsi": 4, "rdi": 5, "rbp": 6, "rsp": 7,
	"r8": 8, "r9": 9, "r10": 10, "r11": 11, "r12": 12, "r13": 13, "r14": 14, "r15": 15,
}

// DWARFReg returns the DWARF number of a 64-bit register name, or -1 for "".
func DWARFReg(name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	n, ok := dwarfRegs[strings.TrimPrefix(name, "%")]
	if !ok {
		return 0, fmt.Errorf("unknown register %q", name)
	}
	return n, nil
}

// Kind says what a site is.
type Kind string

const (
	KindBackEdge Kind = "backedge"
	KindAPI      Kind = "api"
)

// Via says how control is redirected to the site's trampoline.
type Via string

const (
	ViaTableEntry    Via = "table-entry"     // an absolute 8-byte table entry in the file
	ViaTableRelative Via = "table-relative"  // the addend of the entry's R_X86_64_RELATIVE relocation
	ViaPICEntry      Via = "pic-table-entry" // a 4-byte offset from the table base
	ViaRel32         Via = "rel32"           // the rel32 field of a call, jmp or jcc
	// ViaElide: a call of an API function that acts only while a trace is
	// recorded (RecordingOnly) is replaced in place by an instruction of
	// the same length with the default's effect (nothing; %eax = 0 for
	// redmagic_is_traced), so it costs nothing at run time. It has no
	// trampoline; the recorder finds it in the site table by address.
	ViaElide Via = "elide"
)

// RecordingOnly reports whether a call of the API function name means
// something only to the recorder: outside a recording the runtime would
// do nothing with it (merge blocks, temp_disable/temp_enable, branchable
// frames, fellthrough_branch, ensure_not_traced, force_end_trace), or
// return what the default returns (redmagic_is_traced: 0, inside traces
// too, so that a trace does the periodic work the original code does
// when it returns 0). Such calls are elided (ViaElide).
func RecordingOnly(name string) bool {
	switch name {
	case "redmagic_start", "redmagic_backwards_branch", "redmagic_force_begin_trace",
		"redmagic_force_jump_to_trace", "redmagic_do_not_trace_function", "redmagic_disable_branch":
		return false
	}
	return APIIndex(name) >= 0
}

// Site is one place the patched binary enters the runtime.
type Site struct {
	Name   string   `json:"name"`
	Kind   Kind     `json:"kind"`
	Addr   uint64   `json:"addr"`   // handler entry, or the call/jump instruction
	Resume uint64   `json:"resume"` // where the original code continues
	Via    Via      `json:"via"`
	Slot   uint64   `json:"slot"`           // address of the bytes or relocation rewritten
	Base   uint64   `json:"base,omitempty"` // table base for pic-table-entry
	Opcode int      `json:"opcode,omitempty"`
	API    string   `json:"api,omitempty"` // the redmagic function called
	IDReg  string   `json:"id_reg,omitempty"`
	AuxReg string   `json:"aux_reg,omitempty"`
	Flags  []string `json:"flags,omitempty"`
	// Found says how the site was located, for people.
	Found string `json:"found"`
	// Bypass counts direct branches into the handler that do not go
	// through the table and so are not counted.
	Bypass int `json:"bypass,omitempty"`
}

// Skip is a candidate that could not be patched, and why.
type Skip struct {
	Addr uint64 `json:"addr"`
	Name string `json:"name"`
	Why  string `json:"why"`
}

// Result is what Discover found.
type Result struct {
	Profile string `json:"profile"`
	Reason  string `json:"reason"` // why this profile applies
	NoTrace bool   `json:"no_trace,omitempty"`
	Sites   []Site `json:"sites"`
	Skipped []Skip `json:"skipped,omitempty"`
}

// ErrNoProfile is returned when no profile recognises the binary.
var ErrNoProfile = errors.New("unrecognised interpreter")

// Select resolves a --profile argument: a built-in name, "auto", or a file.
func Select(f *elfimage.File, arg string) (*Profile, string, error) {
	builtin, err := Builtin()
	if err != nil {
		return nil, "", err
	}
	if arg == "" || arg == "auto" {
		for _, p := range builtin {
			if why, ok := matches(f, p); ok {
				return p, why, nil
			}
		}
		return nil, "", fmt.Errorf("%w: no built-in profile matches (profiles: %s; or --profile FILE)",
			ErrNoProfile, strings.Join(BuiltinNames()[1:], ", "))
	}
	for _, p := range builtin {
		if p.Name == arg {
			return p, "chosen with --profile", nil
		}
	}
	if _, err := os.Stat(arg); err != nil {
		return nil, "", fmt.Errorf("profile %q is neither a built-in (%s) nor a readable file", arg, strings.Join(BuiltinNames(), ", "))
	}
	p, err := LoadProfile(arg)
	if err != nil {
		return nil, "", err
	}
	return p, "profile file " + arg, nil
}

// matches reports whether the binary fits p, with the evidence.
func matches(f *elfimage.File, p *Profile) (string, bool) {
	have := map[string]bool{}
	for _, s := range f.Symbols {
		have[s.Name] = true
	}
	for _, name := range f.Imports {
		have[name] = true
	}
	var evidence []string
	if pre := p.Match.SymbolsPrefix; pre != "" {
		found := ""
		for name := range have {
			if strings.HasPrefix(name, pre) && (found == "" || name < found) {
				found = name
			}
		}
		if found == "" {
			return "", false
		}
		evidence = append(evidence, "has "+found)
	}
	for _, s := range p.Match.Symbols {
		if !have[s] {
			return "", false
		}
		evidence = append(evidence, "defines "+s)
	}
	if len(p.Match.Strings) > 0 {
		ro := readOnlyData(f)
		for _, s := range p.Match.Strings {
			if !bytes.Contains(ro, []byte(s)) {
				return "", false
			}
			evidence = append(evidence, fmt.Sprintf("contains %q", s))
		}
	}
	if len(evidence) == 0 {
		return "", false
	}
	return strings.Join(evidence, ", "), true
}

func readOnlyData(f *elfimage.File) []byte {
	s := f.Section(".rodata")
	if s == nil {
		return nil
	}
	data, err := f.SectionData(s)
	if err != nil {
		return nil
	}
	return data
}

// Discover finds the sites p describes in the binary f with graph g.
func Discover(f *elfimage.File, g *cfg.Graph, p *Profile, reason string) (*Result, error) {
	r := &Result{Profile: p.Name, Reason: reason, NoTrace: p.NoTrace}
	var err error
	if p.Annotated {
		err = discoverAPI(f, g, r)
	} else {
		err = discoverDispatch(f, g, p, r)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: profile %s: %w", f.Name, p.Name, err)
	}
	if len(r.Sites) == 0 {
		return nil, fmt.Errorf("%s: profile %s: no sites found", f.Name, p.Name)
	}
	sort.Slice(r.Sites, func(i, j int) bool { return r.Sites[i].Addr < r.Sites[j].Addr })
	return r, nil
}

func discoverDispatch(f *elfimage.File, g *cfg.Graph, p *Profile, r *Result) error {
	var fn *cfg.Function
	if name := p.Dispatch.Function; name != "" {
		fn = g.FunctionNamed(name)
		if fn == nil {
			return fmt.Errorf("no function %s", name)
		}
	} else {
		// Stripped: the function that dispatches most often through a
		// table of the profile's size, the largest one on a tie.
		best := 0
		for _, c := range g.Functions {
			n := 0
			for _, j := range c.Indirect {
				if j.Resolved() && (p.Dispatch.Entries == 0 || j.Entries == p.Dispatch.Entries) {
					n++
				}
			}
			if n > best || n == best && n > 0 && c.End-c.Start > fn.End-fn.Start {
				fn, best = c, n
			}
		}
		if fn == nil {
			return fmt.Errorf("no function dispatches through a table of %d entries", p.Dispatch.Entries)
		}
	}
	// The dispatch table: the one most of the function's indirect jumps use.
	uses := map[uint64]int{}
	kinds := map[uint64]cfg.TableKind{}
	for _, j := range fn.Indirect {
		if j.Resolved() && (p.Dispatch.Entries == 0 || j.Entries == p.Dispatch.Entries) {
			uses[j.Table]++
			kinds[j.Table] = j.Kind
		}
	}
	var table uint64
	for t, n := range uses {
		if table == 0 || n > uses[table] || n == uses[table] && t < table {
			table = t
		}
	}
	if table == 0 {
		return fmt.Errorf("no dispatch table with %d entries in the function at %#x", p.Dispatch.Entries, fn.Start)
	}
	fnName := fn.Name
	if fnName == "" {
		fnName = fmt.Sprintf("the unnamed function at %#x", fn.Start)
	}
	found := fmt.Sprintf("entry of %s table %#x used by %d dispatch jumps of %s", kinds[table], table, uses[table], fnName)

	// Direct branches into each handler bypass the table.
	into := map[uint64]int{}
	for _, b := range fn.Blocks {
		for _, e := range b.Succs {
			switch e.Kind {
			case cfg.EdgeJump, cfg.EdgeCond:
				into[e.Target]++
			case cfg.EdgeFallthrough:
				if e.Target != b.End {
					into[e.Target]++
				}
			}
		}
	}
	for _, ps := range p.Sites {
		s := Site{
			Name: ps.Name, Kind: KindBackEdge, Opcode: ps.Opcode,
			IDReg: p.IDReg, AuxReg: p.AuxReg, Flags: ps.Flags, Found: found,
		}
		switch kinds[table] {
		case cfg.TablePIC:
			s.Via, s.Slot, s.Base = ViaPICEntry, table+4*uint64(ps.Opcode), table
			v, ok := f.ReadUint32(s.Slot)
			if !ok {
				r.Skipped = append(r.Skipped, Skip{s.Slot, ps.Name, "table entry not in the file"})
				continue
			}
			s.Resume = table + uint64(int64(int32(v)))
		default:
			s.Slot = table + 8*uint64(ps.Opcode)
			if _, rel := f.Relative[s.Slot]; rel {
				s.Via = ViaTableRelative
			} else if _, err := f.Read(s.Slot, 8); err == nil {
				s.Via = ViaTableEntry
			} else {
				r.Skipped = append(r.Skipped, Skip{s.Slot, ps.Name, "table entry neither relocated nor in the file"})
				continue
			}
			v, ok := f.ReadPointer(s.Slot)
			if !ok {
				r.Skipped = append(r.Skipped, Skip{s.Slot, ps.Name, "table entry unreadable"})
				continue
			}
			s.Resume = v
		}
		if g.FunctionAt(s.Resume) != fn {
			r.Skipped = append(r.Skipped, Skip{s.Slot, ps.Name, fmt.Sprintf("handler %#x is outside the eval function", s.Resume)})
			continue
		}
		if p.IDStore != nil {
			reg, ok := storedReg(f, s.Resume, *p.IDStore)
			if !ok {
				r.Skipped = append(r.Skipped, Skip{s.Resume, ps.Name, fmt.Sprintf("handler %#x stores no register at %d(...) among its first %d instructions: its id register is unknown", s.Resume, *p.IDStore, idStoreScan)})
				continue
			}
			s.IDReg = reg
		}
		s.Addr = s.Resume
		s.Bypass = into[s.Resume]
		r.Sites = append(r.Sites, s)
	}
	return nil
}

// APINames are the redmagic API functions in the order of enum rm_api
// (runtime-stub/include/redmagic_patch.h), with their C names.
var APINames = func() []string {
	names := make([]string, abi.NumAPI)
	for i, n := range abi.APINames {
		names[i] = abi.Prefix + n
	}
	return names
}()

// APIIndex returns the enum rm_api index of a redmagic function name.
func APIIndex(name string) int {
	for i, n := range APINames {
		if n == name {
			return i
		}
	}
	return -1
}

func discoverAPI(f *elfimage.File, g *cfg.Graph, r *Result) error {
	api := map[uint64]string{}
	how := map[uint64]string{}
	for _, s := range f.Symbols {
		if APIIndex(s.Name) >= 0 {
			api[s.Addr] = s.Name
			how[s.Addr] = "its definition"
		}
	}
	for addr, name := range f.Imports {
		if APIIndex(name) >= 0 {
			api[addr] = name
			how[addr] = "its PLT entry"
		}
	}
	if len(api) == 0 {
		return errors.New("no redmagic_* functions defined or imported")
	}
	for _, fn := range g.Functions {
		if _, self := api[fn.Start]; self {
			continue // the default implementations themselves
		}
		for _, b := range fn.Blocks {
			for _, e := range b.Succs {
				name, ok := api[e.Target]
				if !ok || (e.Kind != cfg.EdgeCall && e.Kind != cfg.EdgeTailCall && e.Kind != cfg.EdgeCond) {
					continue
				}
				s, why := apiSite(f, b.Last, e.Target, name, how[e.Target])
				if why != "" {
					r.Skipped = append(r.Skipped, Skip{b.Last, name, why})
					continue
				}
				r.Sites = append(r.Sites, s)
			}
		}
	}
	return nil
}

// idStoreScan bounds the instructions storedReg reads.
const idStoreScan = 8

// storedReg returns the 64-bit register that the code at addr stores at
// disp from some base register among its first idStoreScan instructions,
// before any branch: the register a CPython handler keeps its instruction
// in (frame->prev_instr = next_instr comes first in every handler).
func storedReg(f *elfimage.File, addr uint64, disp int32) (string, bool) {
	for range idStoreScan {
		code, err := f.Read(addr, 15)
		if err != nil {
			return "", false
		}
		in, err := x86dec.Decode(code, addr)
		if err != nil || in.Flow() != x86dec.FlowNone {
			return "", false
		}
		if in.Op == x86asm.MOV && in.DataSize == 64 {
			m, isMem := in.Args[0].(x86asm.Mem)
			r, isReg := in.Args[1].(x86asm.Reg)
			if isMem && isReg && m.Segment == 0 && m.Index == 0 && m.Base != 0 && m.Base != x86asm.RIP && m.Disp == int64(disp) && r >= x86asm.RAX && r <= x86asm.R15 {
				return strings.ToLower(r.String()), true
			}
		}
		addr += uint64(in.Len)
	}
	return "", false
}

// apiSite checks that the branch at addr has a rel32 field that can be
// aimed elsewhere.
func apiSite(f *elfimage.File, addr, target uint64, name, how string) (Site, string) {
	code, err := f.Read(addr, 15)
	if err != nil {
		if code, err = f.Read(addr, 5); err != nil {
			return Site{}, "instruction bytes not in the file"
		}
	}
	in, err := x86dec.Decode(code, addr)
	if err != nil {
		return Site{}, err.Error()
	}
	t, ok := in.Target()
	if !ok || t != target {
		return Site{}, "not a direct branch to the function"
	}
	if in.PCRel != 4 {
		return Site{}, fmt.Sprintf("a %d-byte displacement cannot reach a trampoline", in.PCRel)
	}
	kind := map[x86dec.Flow]string{x86dec.FlowCall: "call", x86dec.FlowJump: "tail jump", x86dec.FlowCondJump: "conditional tail jump"}[in.Flow()]
	s := Site{
		Name: name, Kind: KindAPI, API: name, Addr: addr, Resume: target,
		Via: ViaRel32, Slot: addr + uint64(in.PCRelOff),
		Found: fmt.Sprintf("%s of %s, found through %s", kind, name, how),
	}
	// A tail jump also returns: only a plain call becomes an instruction
	// that does what the default would.
	if in.Flow() == x86dec.FlowCall && in.Len == 5 && RecordingOnly(name) {
		s.Via, s.Slot = ViaElide, addr
	}
	return s, ""
}
