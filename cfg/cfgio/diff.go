package cfgio

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/redmagic-patch/redmagic-patch/cfg"
)

// Report is the structural difference between two graphs, A (old) and B
// (new), as Diff computes it. Its JSON form (encoding/json of this struct)
// is stable: fields are only ever added.
//
// Places inside functions are written relative to the function so that a
// relinked binary whose code moved but did not change diffs clean:
//
//	+0x1c           offset from the start of the function's main part
//	part0+0x8       offset into the function's first out-of-line part
//	name+0x10       a place in another, named function
//	name/part0+0x8  a place in an out-of-line part of another function
//	0x401000        anything else (unnamed functions, data), absolute
type Report struct {
	A Binary `json:"a"`
	B Binary `json:"b"`
	// Matched counts the functions present on both sides, changed or not.
	Matched int        `json:"matched"`
	Removed []FuncRef  `json:"removed,omitempty"` // in A only, ascending by start
	Added   []FuncRef  `json:"added,omitempty"`   // in B only, ascending by start
	Changed []FuncDiff `json:"changed,omitempty"` // ascending by start in A
}

// Binary identifies one side of a diff. Paths and build IDs are reported,
// not compared: the same code at another path is no difference.
type Binary struct {
	Path      string `json:"path,omitempty"`
	BuildID   string `json:"build_id,omitempty"`
	Functions int    `json:"functions"`
}

// FuncRef names a function on one side.
type FuncRef struct {
	Name   string `json:"name,omitempty"`
	Start  uint64 `json:"start"`
	End    uint64 `json:"end"`
	Blocks int    `json:"blocks"`
}

func (f FuncRef) String() string {
	name := f.Name
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Sprintf("%s [%#x,%#x)", name, f.Start, f.End)
}

// FuncDiff is a function present on both sides that differs.
type FuncDiff struct {
	A FuncRef `json:"a"`
	B FuncRef `json:"b"`
	// Fields holds differences of name (only for functions matched by
	// address), size, parts (their sizes), sources (as sets) and noreturn.
	Fields          []Change       `json:"fields,omitempty"`
	BlocksRemoved   []BlockRef     `json:"blocks_removed,omitempty"`
	BlocksAdded     []BlockRef     `json:"blocks_added,omitempty"`
	BlocksChanged   []BlockDiff    `json:"blocks_changed,omitempty"`
	IndirectRemoved []string       `json:"indirect_removed,omitempty"` // places of jmp instructions
	IndirectAdded   []string       `json:"indirect_added,omitempty"`
	IndirectChanged []IndirectDiff `json:"indirect_changed,omitempty"`
}

// Change is one field that differs, with both values as text.
type Change struct {
	Field string `json:"field"`
	A     string `json:"a"`
	B     string `json:"b"`
}

// BlockRef is a block present on one side only.
type BlockRef struct {
	At    string `json:"at"` // place relative to its function
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
}

// BlockDiff is a block present on both sides (at the same place relative
// to its function) that differs in size, instruction count, the offset of
// its last instruction (Fields) or its successors.
type BlockDiff struct {
	At           string    `json:"at"`
	AStart       uint64    `json:"a_start"`
	BStart       uint64    `json:"b_start"`
	Fields       []Change  `json:"fields,omitempty"`
	EdgesRemoved []EdgeRef `json:"edges_removed,omitempty"`
	EdgesAdded   []EdgeRef `json:"edges_added,omitempty"`
}

// EdgeRef is a successor edge; To is the target's place, empty for edges
// without a target (return, unresolved, indirect call).
type EdgeRef struct {
	Kind string `json:"kind"`
	To   string `json:"to,omitempty"`
}

func (e EdgeRef) String() string {
	if e.To == "" {
		return e.Kind
	}
	return e.Kind + " " + e.To
}

// IndirectDiff is an indirect jump present on both sides that differs in
// table kind, entry count, bounding instruction or resolved targets. Table
// addresses are not compared: tables live in data sections that move
// independently of the code.
type IndirectDiff struct {
	At             string   `json:"at"`
	AAddr          uint64   `json:"a_addr"`
	BAddr          uint64   `json:"b_addr"`
	Fields         []Change `json:"fields,omitempty"`
	TargetsRemoved []string `json:"targets_removed,omitempty"`
	TargetsAdded   []string `json:"targets_added,omitempty"`
}

// Equal reports whether the two graphs have the same functions with the
// same structure.
func (r *Report) Equal() bool {
	return len(r.Removed) == 0 && len(r.Added) == 0 && len(r.Changed) == 0
}

// Diff compares two graphs.
//
// Functions are matched by name when both have a non-empty name (the k-th
// function of a name in A with the k-th of that name in B), and a function
// that is unnamed on either side by start address. Within a matched pair, blocks and indirect jumps are
// matched by their place relative to the function (see Report), which for
// functions matched by address is the same as matching absolute addresses.
// Edges are compared as multisets of (kind, place of target), with targets
// in other functions named by that function's name when it has one. So a
// binary rebuilt elsewhere with the same compiler, or relinked at another
// address, diffs equal, while a changed instruction count, branch or table
// does not.
func Diff(a, b *cfg.Graph) *Report {
	r := &Report{
		A: Binary{Path: a.Path, BuildID: a.BuildID, Functions: len(a.Functions)},
		B: Binary{Path: b.Path, BuildID: b.BuildID, Functions: len(b.Functions)},
	}
	ia, ib := newAddrIndex(a), newAddrIndex(b)
	fa, fb := sortedFunctions(a.Functions), sortedFunctions(b.Functions)
	pairs, onlyA, onlyB := matchFunctions(fa, fb)
	r.Matched = len(pairs)
	for _, f := range onlyA {
		r.Removed = append(r.Removed, funcRef(f))
	}
	for _, f := range onlyB {
		r.Added = append(r.Added, funcRef(f))
	}
	for _, p := range pairs {
		if d, ok := diffFunction(ia, ib, p[0], p[1]); ok {
			r.Changed = append(r.Changed, d)
		}
	}
	return r
}

func funcRef(f *cfg.Function) FuncRef {
	return FuncRef{Name: f.Name, Start: f.Start, End: f.End, Blocks: len(f.Blocks)}
}

// matchFunctions pairs functions (both slices ascending by start) and
// returns the pairs in A's order and the unmatched functions of each side
// in address order.
func matchFunctions(fa, fb []*cfg.Function) (pairs [][2]*cfg.Function, onlyA, onlyB []*cfg.Function) {
	matchA := make([]int, len(fa)) // index into fb + 1; 0 = unmatched
	matchedB := make([]bool, len(fb))
	byName := map[string][]int{}
	for i, f := range fa {
		if f.Name != "" {
			byName[f.Name] = append(byName[f.Name], i)
		}
	}
	for j, f := range fb {
		if f.Name == "" {
			continue
		}
		if is := byName[f.Name]; len(is) > 0 {
			matchA[is[0]] = j + 1
			matchedB[j] = true
			byName[f.Name] = is[1:]
		}
	}
	byStart := map[uint64][]int{}
	for i, f := range fa {
		if matchA[i] == 0 {
			byStart[f.Start] = append(byStart[f.Start], i)
		}
	}
	for j, f := range fb {
		if matchedB[j] {
			continue
		}
		is := byStart[f.Start]
		// Two named functions at one address with different names are two
		// functions (one removed, one added), not a renamed one.
		k := slices.IndexFunc(is, func(i int) bool { return fa[i].Name == "" || f.Name == "" })
		if k >= 0 {
			matchA[is[k]] = j + 1
			matchedB[j] = true
			byStart[f.Start] = slices.Delete(is, k, k+1)
		}
	}
	for i, f := range fa {
		if matchA[i] == 0 {
			onlyA = append(onlyA, f)
		} else {
			pairs = append(pairs, [2]*cfg.Function{f, fb[matchA[i]-1]})
		}
	}
	for j, f := range fb {
		if !matchedB[j] {
			onlyB = append(onlyB, f)
		}
	}
	return pairs, onlyA, onlyB
}

// place is an address made independent of where the linker put things:
// relative to the function it belongs to. It is comparable, so it serves
// as a map key; String renders it as documented on Report.
type place struct {
	name string // the other function's name; "" for the own function or absolute
	part int    // -1 absolute; 0 main part; i+1 Parts[i]
	off  uint64 // offset into the part, or the absolute address
}

func (p place) String() string {
	if p.part < 0 {
		return "0x" + strconv.FormatUint(p.off, 16)
	}
	s := p.name
	if p.part > 0 {
		if s != "" {
			s += "/"
		}
		s += "part" + strconv.Itoa(p.part-1)
	}
	return s + "+0x" + strconv.FormatUint(p.off, 16)
}

func comparePlace(a, b place) int {
	return cmp.Or(strings.Compare(a.name, b.name), cmp.Compare(a.part, b.part), cmp.Compare(a.off, b.off))
}

// addrIndex finds the function part holding an address by binary search
// (Graph.FunctionAt is linear, too slow for every edge of a large graph).
type addrIndex struct{ spans []span }

type span struct {
	start, end uint64
	fn         *cfg.Function
	part       int // as in place.part
}

func newAddrIndex(g *cfg.Graph) *addrIndex {
	ix := &addrIndex{}
	for _, f := range g.Functions {
		ix.spans = append(ix.spans, span{f.Start, f.End, f, 0})
		for i, p := range f.Parts {
			ix.spans = append(ix.spans, span{p.Start, p.End, f, i + 1})
		}
	}
	slices.SortStableFunc(ix.spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	return ix
}

func (ix *addrIndex) lookup(addr uint64) (span, bool) {
	i, _ := slices.BinarySearchFunc(ix.spans, addr, func(s span, a uint64) int {
		if s.start <= a {
			return -1
		}
		return 1
	})
	// spans[i-1] is the last span starting at or below addr; an earlier one
	// may still hold addr when spans nest, so look back a little.
	for k := i - 1; k >= 0 && k >= i-4; k-- {
		if s := ix.spans[k]; addr >= s.start && addr < s.end {
			return s, true
		}
	}
	return span{}, false
}

// placeOf returns addr's place as seen from function f.
func (ix *addrIndex) placeOf(f *cfg.Function, addr uint64) place {
	if addr >= f.Start && addr < f.End {
		return place{part: 0, off: addr - f.Start}
	}
	for i, p := range f.Parts {
		if addr >= p.Start && addr < p.End {
			return place{part: i + 1, off: addr - p.Start}
		}
	}
	if s, ok := ix.lookup(addr); ok && s.fn.Name != "" {
		base := s.fn.Start
		if s.part > 0 {
			base = s.fn.Parts[s.part-1].Start
		}
		return place{name: s.fn.Name, part: s.part, off: addr - base}
	}
	return place{part: -1, off: addr}
}

// symbol names addr by the named function holding it ("name",
// "name+0x10", "name/part0+0x8"), or returns "" when no named function
// holds it.
func (ix *addrIndex) symbol(addr uint64) string {
	s, ok := ix.lookup(addr)
	if !ok || s.fn.Name == "" {
		return ""
	}
	base := s.fn.Start
	if s.part > 0 {
		base = s.fn.Parts[s.part-1].Start
	}
	return strings.TrimSuffix(place{name: s.fn.Name, part: s.part, off: addr - base}.String(), "+0x0")
}

type edgeKey struct {
	kind cfg.EdgeKind
	to   place
	has  bool // the edge has a target
}

func compareEdgeKey(a, b edgeKey) int {
	if c := cmp.Compare(a.kind, b.kind); c != 0 {
		return c
	}
	if c := compareBool(a.has, b.has); c != 0 {
		return c
	}
	return comparePlace(a.to, b.to)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func (k edgeKey) ref() EdgeRef {
	e := EdgeRef{Kind: k.kind.String()}
	if k.has {
		e.To = k.to.String()
	}
	return e
}

func hex(x uint64) string { return "0x" + strconv.FormatUint(x, 16) }

// diffFunction compares a matched pair; ok is false when they agree.
func diffFunction(ia, ib *addrIndex, a, b *cfg.Function) (d FuncDiff, ok bool) {
	d.A, d.B = funcRef(a), funcRef(b)
	field := func(name, va, vb string) {
		if va != vb {
			d.Fields = append(d.Fields, Change{name, va, vb})
		}
	}
	field("name", a.Name, b.Name)
	field("size", hex(a.End-a.Start), hex(b.End-b.Start))
	field("parts", partSizes(a), partSizes(b))
	field("sources", sourceSet(a), sourceSet(b))
	field("noreturn", strconv.FormatBool(a.NoReturn), strconv.FormatBool(b.NoReturn))

	diffBlocks(&d, ia, ib, a, b)
	diffIndirect(&d, ia, ib, a, b)
	ok = len(d.Fields) > 0 || len(d.BlocksAdded) > 0 || len(d.BlocksRemoved) > 0 || len(d.BlocksChanged) > 0 ||
		len(d.IndirectAdded) > 0 || len(d.IndirectRemoved) > 0 || len(d.IndirectChanged) > 0
	return d, ok
}

func partSizes(f *cfg.Function) string {
	s := make([]string, len(f.Parts))
	for i, p := range f.Parts {
		s[i] = hex(p.End - p.Start)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func sourceSet(f *cfg.Function) string {
	s := slices.Clone(f.Sources)
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ",")
}

func diffBlocks(d *FuncDiff, ia, ib *addrIndex, a, b *cfg.Function) {
	type keyed struct {
		at place
		b  *cfg.Block
	}
	key := func(ix *addrIndex, f *cfg.Function) []keyed {
		ks := make([]keyed, len(f.Blocks))
		for i, blk := range f.Blocks {
			ks[i] = keyed{ix.placeOf(f, blk.Start), blk}
		}
		slices.SortStableFunc(ks, func(x, y keyed) int { return comparePlace(x.at, y.at) })
		return ks
	}
	ka, kb := key(ia, a), key(ib, b)
	var ea, eb []edgeKey
	i, j := 0, 0
	for i < len(ka) || j < len(kb) {
		c := 0
		switch {
		case i == len(ka):
			c = 1
		case j == len(kb):
			c = -1
		default:
			c = comparePlace(ka[i].at, kb[j].at)
		}
		switch {
		case c < 0:
			d.BlocksRemoved = append(d.BlocksRemoved, BlockRef{ka[i].at.String(), ka[i].b.Start, ka[i].b.End})
			i++
		case c > 0:
			d.BlocksAdded = append(d.BlocksAdded, BlockRef{kb[j].at.String(), kb[j].b.Start, kb[j].b.End})
			j++
		default:
			x, y := ka[i].b, kb[j].b
			bd := BlockDiff{At: ka[i].at.String(), AStart: x.Start, BStart: y.Start}
			field := func(name, va, vb string) {
				if va != vb {
					bd.Fields = append(bd.Fields, Change{name, va, vb})
				}
			}
			field("size", hex(x.End-x.Start), hex(y.End-y.Start))
			field("insts", strconv.Itoa(x.Insts), strconv.Itoa(y.Insts))
			field("last", lastOffset(x), lastOffset(y))
			ea = edgeKeys(ea[:0], ia, a, x)
			eb = edgeKeys(eb[:0], ib, b, y)
			bd.EdgesRemoved, bd.EdgesAdded = diffEdges(ea, eb)
			if len(bd.Fields) > 0 || len(bd.EdgesRemoved) > 0 || len(bd.EdgesAdded) > 0 {
				d.BlocksChanged = append(d.BlocksChanged, bd)
			}
			i++
			j++
		}
	}
}

func lastOffset(b *cfg.Block) string {
	if b.Last == 0 {
		return "none"
	}
	return "+" + hex(b.Last-b.Start)
}

func edgeKeys(dst []edgeKey, ix *addrIndex, f *cfg.Function, b *cfg.Block) []edgeKey {
	for _, e := range b.Succs {
		k := edgeKey{kind: e.Kind}
		if e.Target != 0 {
			k.to, k.has = ix.placeOf(f, e.Target), true
		}
		dst = append(dst, k)
	}
	slices.SortFunc(dst, compareEdgeKey)
	return dst
}

// diffEdges walks two sorted multisets and returns what only a and only b hold.
func diffEdges(a, b []edgeKey) (removed, added []EdgeRef) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		c := 0
		switch {
		case i == len(a):
			c = 1
		case j == len(b):
			c = -1
		default:
			c = compareEdgeKey(a[i], b[j])
		}
		switch {
		case c < 0:
			removed = append(removed, a[i].ref())
			i++
		case c > 0:
			added = append(added, b[j].ref())
			j++
		default:
			i++
			j++
		}
	}
	return removed, added
}

func diffIndirect(d *FuncDiff, ia, ib *addrIndex, a, b *cfg.Function) {
	index := func(ix *addrIndex, f *cfg.Function) map[place]*cfg.IndirectJump {
		m := make(map[place]*cfg.IndirectJump, len(f.Indirect))
		for _, j := range f.Indirect {
			m[ix.placeOf(f, j.Addr)] = j
		}
		return m
	}
	ma, mb := index(ia, a), index(ib, b)
	var ats []place
	for at := range ma {
		ats = append(ats, at)
	}
	for at := range mb {
		if _, ok := ma[at]; !ok {
			ats = append(ats, at)
		}
	}
	slices.SortFunc(ats, comparePlace)
	for _, at := range ats {
		x, y := ma[at], mb[at]
		switch {
		case y == nil:
			d.IndirectRemoved = append(d.IndirectRemoved, at.String())
		case x == nil:
			d.IndirectAdded = append(d.IndirectAdded, at.String())
		default:
			id := IndirectDiff{At: at.String(), AAddr: x.Addr, BAddr: y.Addr}
			field := func(name, va, vb string) {
				if va != vb {
					id.Fields = append(id.Fields, Change{name, va, vb})
				}
			}
			field("kind", x.Kind.String(), y.Kind.String())
			field("entries", strconv.Itoa(x.Entries), strconv.Itoa(y.Entries))
			field("bound_from", boundFrom(ia, a, x), boundFrom(ib, b, y))
			id.TargetsRemoved, id.TargetsAdded = diffTargets(ia, ib, a, b, x.Targets, y.Targets)
			if len(id.Fields) > 0 || len(id.TargetsRemoved) > 0 || len(id.TargetsAdded) > 0 {
				d.IndirectChanged = append(d.IndirectChanged, id)
			}
		}
	}
}

func boundFrom(ix *addrIndex, f *cfg.Function, j *cfg.IndirectJump) string {
	if j.BoundFrom == 0 {
		return "none"
	}
	return ix.placeOf(f, j.BoundFrom).String()
}

func diffTargets(ia, ib *addrIndex, a, b *cfg.Function, ta, tb []uint64) (removed, added []string) {
	keys := func(ix *addrIndex, f *cfg.Function, ts []uint64) []edgeKey {
		ks := make([]edgeKey, len(ts))
		for i, t := range ts {
			ks[i] = edgeKey{kind: cfg.EdgeIndirect, to: ix.placeOf(f, t), has: true}
		}
		slices.SortFunc(ks, compareEdgeKey)
		return slices.Compact(ks)
	}
	r, ad := diffEdges(keys(ia, a, ta), keys(ib, b, tb))
	for _, e := range r {
		removed = append(removed, e.To)
	}
	for _, e := range ad {
		added = append(added, e.To)
	}
	return removed, added
}

// WriteText writes the report for people: one line per difference, each
// starting with the function it concerns, and a summary line.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	side := func(tag string, b Binary) {
		fmt.Fprintf(bw, "%s: %s", tag, cmp.Or(b.Path, "(no path)"))
		if b.BuildID != "" {
			fmt.Fprintf(bw, " build-id %s", b.BuildID)
		}
		fmt.Fprintf(bw, ", %d functions\n", b.Functions)
	}
	side("a", r.A)
	side("b", r.B)
	for _, f := range r.Removed {
		fmt.Fprintf(bw, "- function %s, %d blocks\n", f, f.Blocks)
	}
	for _, f := range r.Added {
		fmt.Fprintf(bw, "+ function %s, %d blocks\n", f, f.Blocks)
	}
	for _, d := range r.Changed {
		fmt.Fprintf(bw, "~ function %s -> [%#x,%#x)\n", d.A, d.B.Start, d.B.End)
		for _, c := range d.Fields {
			fmt.Fprintf(bw, "    %s: %s -> %s\n", c.Field, c.A, c.B)
		}
		for _, b := range d.BlocksRemoved {
			fmt.Fprintf(bw, "    - block %s [%#x,%#x)\n", b.At, b.Start, b.End)
		}
		for _, b := range d.BlocksAdded {
			fmt.Fprintf(bw, "    + block %s [%#x,%#x)\n", b.At, b.Start, b.End)
		}
		for _, b := range d.BlocksChanged {
			for _, c := range b.Fields {
				fmt.Fprintf(bw, "    ~ block %s %s: %s -> %s\n", b.At, c.Field, c.A, c.B)
			}
			for _, e := range b.EdgesRemoved {
				fmt.Fprintf(bw, "    ~ block %s - edge %s\n", b.At, e)
			}
			for _, e := range b.EdgesAdded {
				fmt.Fprintf(bw, "    ~ block %s + edge %s\n", b.At, e)
			}
		}
		for _, at := range d.IndirectRemoved {
			fmt.Fprintf(bw, "    - indirect jump %s\n", at)
		}
		for _, at := range d.IndirectAdded {
			fmt.Fprintf(bw, "    + indirect jump %s\n", at)
		}
		for _, j := range d.IndirectChanged {
			for _, c := range j.Fields {
				fmt.Fprintf(bw, "    ~ indirect jump %s %s: %s -> %s\n", j.At, c.Field, c.A, c.B)
			}
			if len(j.TargetsRemoved) > 0 {
				fmt.Fprintf(bw, "    ~ indirect jump %s - targets %s\n", j.At, strings.Join(j.TargetsRemoved, " "))
			}
			if len(j.TargetsAdded) > 0 {
				fmt.Fprintf(bw, "    ~ indirect jump %s + targets %s\n", j.At, strings.Join(j.TargetsAdded, " "))
			}
		}
	}
	verdict := "equal"
	if !r.Equal() {
		verdict = "different"
	}
	fmt.Fprintf(bw, "%s: %d functions matched, %d changed, %d removed, %d added\n",
		verdict, r.Matched, len(r.Changed), len(r.Removed), len(r.Added))
	return bw.Flush()
}
