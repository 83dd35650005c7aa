// Package cfg recovers the control-flow graph of an x86-64 ELF binary:
// functions (from .eh_frame, symbols, the entry point and call targets),
// basic blocks with typed edges, and the targets of indirect jumps through
// switch, absolute and computed-goto tables. It owns the model that site
// discovery and the patcher consume; decoding and ELF reading live in the
// subpackages x86dec and elfimage.
package cfg

import "sort"

// EdgeKind says how control leaves a basic block.
type EdgeKind uint8

const (
	// EdgeFallthrough: the next block in address order (after a conditional
	// branch not taken, a call that returns, or a block split by a jump target).
	EdgeFallthrough EdgeKind = iota + 1
	// EdgeJump: an unconditional direct jump inside the function.
	EdgeJump
	// EdgeCond: a conditional branch taken.
	EdgeCond
	// EdgeCall: a call; Target is the callee, or 0 for an indirect call.
	EdgeCall
	// EdgeReturn: a return; Target is 0.
	EdgeReturn
	// EdgeTailCall: a jump that leaves the function for another function's start.
	EdgeTailCall
	// EdgeIndirect: one resolved target of an indirect jump.
	EdgeIndirect
	// EdgeUnresolved: an indirect jump whose targets are unknown; Target is 0.
	EdgeUnresolved
)

var edgeKindNames = [...]string{
	EdgeFallthrough: "fallthrough",
	EdgeJump:        "jump",
	EdgeCond:        "cond",
	EdgeCall:        "call",
	EdgeReturn:      "return",
	EdgeTailCall:    "tailcall",
	EdgeIndirect:    "indirect",
	EdgeUnresolved:  "unresolved",
}

func (k EdgeKind) String() string {
	if int(k) < len(edgeKindNames) && edgeKindNames[k] != "" {
		return edgeKindNames[k]
	}
	return "invalid"
}

// ParseEdgeKind is the inverse of EdgeKind.String.
func ParseEdgeKind(s string) (EdgeKind, bool) {
	for k, name := range edgeKindNames {
		if name != "" && name == s {
			return EdgeKind(k), true
		}
	}
	return 0, false
}

// Edge is one successor of a block.
type Edge struct {
	Kind   EdgeKind
	Target uint64 // 0 where the kind has no static target
}

// Block is a maximal straight run of instructions [Start, End) with one
// entry at Start and control leaving only at its last instruction.
type Block struct {
	Start, End uint64
	Insts      int    // number of instructions
	Last       uint64 // address of the last instruction
	Succs      []Edge
}

// TableKind names the shape of a recognised indirect-jump table.
type TableKind uint8

const (
	TableNone         TableKind = iota
	TablePIC                    // lea T(%rip); movslq (T,i,4); add T; jmp *r
	TableAbsolute               // jmp *T(,i,8)
	TableComputedGoto           // mov T(,i,8),r; jmp *r (or via a base register)
)

var tableKindNames = [...]string{
	TableNone:         "none",
	TablePIC:          "pic-switch",
	TableAbsolute:     "absolute",
	TableComputedGoto: "computed-goto",
}

func (k TableKind) String() string {
	if int(k) < len(tableKindNames) {
		return tableKindNames[k]
	}
	return "invalid"
}

// ParseTableKind is the inverse of TableKind.String.
func ParseTableKind(s string) (TableKind, bool) {
	for k, name := range tableKindNames {
		if name == s {
			return TableKind(k), true
		}
	}
	return 0, false
}

// IndirectJump is one `jmp *` instruction of a function and what is known
// of where it goes.
type IndirectJump struct {
	Addr    uint64    // address of the jmp instruction
	Kind    TableKind // TableNone when unresolved
	Table   uint64    // address of the table, 0 when unresolved
	Entries int       // number of table entries read
	// BoundFrom is the address of the instruction that bounded the index
	// (a guarding cmp or a zero-extending byte load), or 0 when the table
	// length was inferred from its contents.
	BoundFrom uint64
	Targets   []uint64 // distinct targets, ascending
}

// Resolved reports whether the jump's targets are known.
func (j *IndirectJump) Resolved() bool { return j.Kind != TableNone && len(j.Targets) > 0 }

// Range is a half-open address interval [Start, End).
type Range struct{ Start, End uint64 }

// Function is a recovered function. Its main part is [Start, End); a
// compiler-split cold part (e.g. GCC's foo.cold) is listed in Parts.
type Function struct {
	Name       string
	Start, End uint64
	Parts      []Range  // out-of-line parts tied to this function (.cold)
	Sources    []string // how it was found: "fde", "symbol", "dynsym", "entry", "call", "gap", "pointer"
	NoReturn   bool
	Blocks     []*Block // ascending by Start, covering main part then parts
	Indirect   []*IndirectJump
}

// Graph is the recovered control flow of a whole binary.
type Graph struct {
	Path      string
	BuildID   string      // hex, empty when the binary has none
	Functions []*Function // ascending by Start
}

// FunctionAt returns the function whose main part or cold part holds addr.
func (g *Graph) FunctionAt(addr uint64) *Function {
	i := sort.Search(len(g.Functions), func(i int) bool { return g.Functions[i].Start > addr })
	if i > 0 {
		if f := g.Functions[i-1]; addr < f.End {
			return f
		}
	}
	for _, f := range g.Functions {
		for _, p := range f.Parts {
			if addr >= p.Start && addr < p.End {
				return f
			}
		}
	}
	return nil
}

// FunctionNamed returns the first function called name.
func (g *Graph) FunctionNamed(name string) *Function {
	for _, f := range g.Functions {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Stats counts what a Graph holds.
type Stats struct {
	Functions        int     `json:"functions"`
	Blocks           int     `json:"blocks"`
	Edges            int     `json:"edges"`
	Instructions     int     `json:"instructions"`
	IndirectJumps    int     `json:"indirect_jumps"`
	IndirectResolved int     `json:"indirect_resolved"`
	NoReturn         int     `json:"noreturn_functions"`
	ColdParts        int     `json:"cold_parts"`
	Seconds          float64 `json:"seconds"`
}

// Stats counts the graph's functions, blocks, edges and indirect jumps.
// Seconds is left for the caller, who knows what was timed.
func (g *Graph) Stats() Stats {
	var s Stats
	s.Functions = len(g.Functions)
	for _, f := range g.Functions {
		if f.NoReturn {
			s.NoReturn++
		}
		s.ColdParts += len(f.Parts)
		s.Blocks += len(f.Blocks)
		for _, b := range f.Blocks {
			s.Edges += len(b.Succs)
			s.Instructions += b.Insts
		}
		s.IndirectJumps += len(f.Indirect)
		for _, j := range f.Indirect {
			if j.Resolved() {
				s.IndirectResolved++
			}
		}
	}
	return s
}
