package cfg

import (
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/arch/x86/x86asm"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// Options selects what Recover reports.
type Options struct {
	// Funcs restricts the graph to the functions named here, by symbol
	// name or by an address (0x...) inside them. Empty means all. The
	// whole binary is analysed either way: no-return inference and cold
	// parts need it.
	Funcs []string
}

// Open reads the ELF file at path and recovers its control flow.
func Open(path string, opts Options) (*Graph, error) {
	f, err := elfimage.Open(path)
	if err != nil {
		return nil, err
	}
	return Recover(f, opts)
}

// recoverer holds the state of one recovery.
type recoverer struct {
	f            *elfimage.File
	im           *image
	units        []*unit // ascending by start up to nsorted; later additions follow
	nsorted      int
	parts        []partOwner      // cold parts of the sorted units (few: one per split function)
	unitAt       map[uint64]*unit // by start
	noReturnAddr map[uint64]bool  // imports and symbols known not to return
	names        map[uint64]string
	nameSource   map[uint64]string
	called       map[uint64]bool // direct call targets
}

// Recover builds the control-flow graph of f.
func Recover(f *elfimage.File, opts Options) (*Graph, error) {
	im, err := newImage(f)
	if err != nil {
		return nil, err
	}
	r := &recoverer{
		f:            f,
		im:           im,
		unitAt:       map[uint64]*unit{},
		noReturnAddr: map[uint64]bool{},
		names:        map[uint64]string{},
		nameSource:   map[uint64]string{},
		called:       map[uint64]bool{},
	}
	r.seed()
	r.discover()
	r.mergeCold()
	r.inferNoReturn()
	g := r.graph()
	if len(opts.Funcs) > 0 {
		if err := g.selectFuncs(opts.Funcs); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return g, nil
}

// addUnit registers a unit unless one starts there already, in which case
// it only adds the source.
func (r *recoverer) addUnit(start, end uint64, source string) *unit {
	if u := r.unitAt[start]; u != nil {
		u.sources[source] = true
		if u.end == 0 && end > start {
			u.end = end
		}
		return nil
	}
	u := newUnit(start, end)
	u.sources[source] = true
	u.name = r.names[start]
	r.unitAt[start] = u
	r.units = append(r.units, u)
	return u
}

func (r *recoverer) sortUnits() {
	sort.Slice(r.units, func(i, j int) bool { return r.units[i].start < r.units[j].start })
	r.nsorted = len(r.units)
	r.parts = r.parts[:0]
	for _, u := range r.units {
		for _, p := range u.parts {
			r.parts = append(r.parts, partOwner{p, u})
		}
	}
}

// partOwner ties a cold part to the unit it belongs to.
type partOwner struct {
	Range
	owner *unit
}

// unitContaining returns the unit whose span holds addr: the nearest unit
// starting at or below addr, if addr lies inside it. Units added since the
// last sortUnits are not searched.
func (r *recoverer) unitContaining(addr uint64) *unit {
	units := r.units[:r.nsorted]
	i := sort.Search(len(units), func(i int) bool { return units[i].start > addr })
	if i == 0 {
		return nil
	}
	u := units[i-1]
	if u.end != 0 {
		if addr < u.end {
			return u
		}
	} else if u.insts[addr] != nil || addr == u.start {
		return u
	}
	for _, po := range r.parts {
		if addr >= po.Start && addr < po.End {
			return po.owner
		}
	}
	return nil
}

// nextStart is where exploration of a unit without an extent must stop:
// the next known function or the end of the section.
func (r *recoverer) nextStart(addr uint64) uint64 {
	limit := uint64(0)
	if s := r.im.section(addr); s != nil {
		limit = s.end
	}
	units := r.units[:r.nsorted]
	i := sort.Search(len(units), func(i int) bool { return units[i].start > addr })
	if i < len(units) && units[i].start < limit {
		limit = units[i].start
	}
	return limit
}

func (r *recoverer) usableStart(addr uint64) bool {
	return r.im.isCode(addr) && !r.im.isStubSection(addr)
}

// seed creates units for every function the binary states: FDEs, symbols,
// the entry point and pointers in the init/fini arrays.
func (r *recoverer) seed() {
	f := r.f
	for addr, name := range f.Imports {
		if knownNoReturn(name) {
			r.noReturnAddr[addr] = true
		}
	}
	// The best name for an address: a global over a local, then the
	// shortest, then the first in byte order, so output is deterministic.
	for _, s := range f.Symbols {
		if knownNoReturn(s.Name) {
			r.noReturnAddr[s.Addr] = true
		}
		cur, ok := r.names[s.Addr]
		src := "symbol"
		if s.Dynamic {
			src = "dynsym"
		}
		if !ok || betterName(s, cur, r.nameSource[s.Addr] == "local") {
			r.names[s.Addr] = s.Name
			if s.Local {
				r.nameSource[s.Addr] = "local"
			} else {
				r.nameSource[s.Addr] = src
			}
		}
	}
	for _, fde := range f.FDEs {
		if fde.End > fde.Start && r.usableStart(fde.Start) {
			r.addUnit(fde.Start, fde.End, "fde")
		}
	}
	r.sortUnits()
	for _, s := range f.Symbols {
		if !r.usableStart(s.Addr) {
			continue
		}
		src := "symbol"
		if s.Dynamic {
			src = "dynsym"
		}
		if u := r.unitAt[s.Addr]; u != nil {
			u.sources[src] = true
			continue
		}
		if r.unitContaining(s.Addr) != nil {
			continue // an alias or label inside a function the FDEs already give
		}
		end := uint64(0)
		if s.Size > 0 {
			end = s.Addr + s.Size
		}
		r.addUnit(s.Addr, end, src)
	}
	if r.usableStart(f.Entry) {
		r.addUnit(f.Entry, 0, "entry")
	}
	for _, p := range f.CodePointers {
		if r.usableStart(p) {
			r.addUnit(p, 0, "pointer")
		}
	}
	r.sortUnits()
	for _, u := range r.units {
		if r.noReturnAddr[u.start] {
			u.noReturn = true
		}
	}
}

func betterName(s elfimage.Symbol, cur string, curLocal bool) bool {
	if curLocal != s.Local {
		return curLocal
	}
	if len(s.Name) != len(cur) {
		return len(s.Name) < len(cur)
	}
	return s.Name < cur
}

// discover explores units until no new function appears: call targets,
// jump targets outside every known function and code in the gaps between
// functions each become functions.
func (r *recoverer) discover() {
	queue := append([]*unit(nil), r.units...)
	for len(queue) > 0 {
		r.exploreUnits(queue)
		fresh := r.unitsFromReferences(queue)
		if len(fresh) == 0 {
			// Gap units come back explored; what they refer to is next.
			gaps := r.unitsFromGaps()
			if len(gaps) > 0 {
				fresh = r.unitsFromReferences(gaps)
			}
		}
		queue = fresh
	}
}

// exploreUnits explores units in parallel. Units only write their own
// state; the recoverer is read-only while they run.
func (r *recoverer) exploreUnits(us []*unit) {
	for _, u := range us {
		if u.end == 0 && u.limit == 0 {
			u.limit = r.nextStart(u.start)
		}
	}
	ch := make(chan *unit)
	var wg sync.WaitGroup
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range ch {
				r.exploreUnit(u, u.roots)
			}
		}()
	}
	for _, u := range us {
		ch <- u
	}
	close(ch)
	wg.Wait()
}

func (r *recoverer) isStart(a uint64) bool { return r.unitAt[a] != nil }

func (r *recoverer) isNoReturn(a uint64) bool { return r.noReturnAddr[a] }

// exploreUnit decodes from work and resolves indirect jumps until both
// run dry: table targets lead to code that may hold more indirect jumps.
func (r *recoverer) exploreUnit(u *unit, work []uint64) {
	for {
		u.explore(r.im, work, r.isStart, r.isNoReturn)
		if len(u.pending) == 0 {
			return
		}
		w := newWalker(u)
		work = nil
		for _, a := range u.pending {
			ij := w.resolve(r.im, u.insts[a])
			u.indirect[a] = ij
			for _, t := range ij.Targets {
				if u.contains(t) {
					work = append(work, t)
				}
			}
		}
		u.pending = nil
		if len(work) == 0 {
			return
		}
	}
}

// unitsFromReferences turns what the explored units point at outside every
// known function into new functions: call targets, jump targets and code
// addresses taken with lea.
func (r *recoverer) unitsFromReferences(explored []*unit) []*unit {
	var fresh []*unit
	consider := func(t uint64, source string) {
		if !r.usableStart(t) || r.unitAt[t] != nil || r.unitContaining(t) != nil {
			return
		}
		if u := r.addUnit(t, 0, source); u != nil {
			fresh = append(fresh, u)
		}
	}
	var refs []struct {
		addr   uint64
		source string
	}
	for _, u := range explored {
		for _, a := range u.sortedAddrs() {
			in := u.insts[a]
			switch {
			case in.flow == x86dec.FlowCall && in.target != 0:
				r.called[in.target] = true
				refs = append(refs, struct {
					addr   uint64
					source string
				}{in.target, "call"})
			case (in.flow == x86dec.FlowJump || in.flow == x86dec.FlowCondJump) && in.target != 0 && !u.contains(in.target):
				refs = append(refs, struct {
					addr   uint64
					source string
				}{in.target, "tailcall"})
			case in.Op == x86asm.LEA:
				if t, ok := in.MemRIPTarget(); ok && !u.contains(t) {
					refs = append(refs, struct {
						addr   uint64
						source string
					}{t, "pointer"})
				}
			}
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].addr < refs[j].addr })
	for _, ref := range refs {
		consider(ref.addr, ref.source)
	}
	r.sortUnits()
	return fresh
}

// unitsFromGaps starts a function at the first instruction after padding in
// each stretch of code no function covers. Each new function is explored
// at once, so one pass over a section covers a run of uncovered functions.
func (r *recoverer) unitsFromGaps() []*unit {
	var fresh []*unit
	for si := range r.im.code {
		s := &r.im.code[si]
		if strings.HasPrefix(s.name, ".plt") {
			continue
		}
		covered := make([]Range, 0, len(r.units))
		for _, u := range r.units {
			if sp := u.span(); sp.End > s.start && sp.Start < s.end {
				covered = append(covered, sp)
			}
		}
		cursor := s.start
		for i := 0; cursor < s.end; {
			for i < len(covered) && covered[i].End <= cursor {
				i++
			}
			gapEnd := s.end
			if i < len(covered) {
				gapEnd = covered[i].Start
			}
			if gapEnd <= cursor {
				cursor = covered[i].End
				continue
			}
			a, ok := r.firstCode(cursor, gapEnd)
			if !ok {
				cursor = gapEnd
				continue
			}
			u := r.addUnit(a, 0, "gap")
			if u == nil {
				cursor = gapEnd
				continue
			}
			u.limit = gapEnd
			r.exploreUnit(u, u.roots)
			fresh = append(fresh, u)
			cursor = max(u.span().End, a+1)
		}
	}
	r.sortUnits()
	return fresh
}

// firstCode skips alignment padding (nop forms, int3, zero bytes) in
// [from, to) and returns the first real instruction's address.
func (r *recoverer) firstCode(from, to uint64) (uint64, bool) {
	a := from
	for a < to {
		code := r.im.bytesAt(a)
		if len(code) == 0 {
			return 0, false
		}
		if code[0] == 0x00 || code[0] == 0xcc {
			a++
			continue
		}
		inst, err := x86dec.Decode(code, a)
		if err != nil {
			return 0, false
		}
		if !isPadding(&inst) {
			return a, true
		}
		a = inst.End()
	}
	return 0, false
}

func isPadding(in *x86dec.Inst) bool {
	switch in.Op {
	case x86asm.NOP:
		return true
	case x86asm.XCHG:
		a, ok1 := in.Args[0].(x86asm.Reg)
		b, ok2 := in.Args[1].(x86asm.Reg)
		return ok1 && ok2 && a == b
	case x86asm.LEA:
		// lea 0x0(%rsi,%riz,1),%rsi and friends: old padding forms.
		m, ok := in.Args[1].(x86asm.Mem)
		d, ok2 := in.Args[0].(x86asm.Reg)
		return ok && ok2 && m.Base == d && m.Disp == 0 && (m.Index == 0 || m.Scale == 1)
	}
	return false
}

// mergeCold ties compiler-split cold parts to their parents. A part named
// P.cold belongs to P. In a stripped binary, an FDE region that nothing
// calls, whose only way in is from one function P and that either is
// entered in its middle or jumps back into P, is P's cold part: a function
// reached only by a tail call would be entered at its start and return by
// itself.
func (r *recoverer) mergeCold() {
	byName := map[string][]*unit{}
	for _, u := range r.units {
		if u.name != "" {
			byName[u.name] = append(byName[u.name], u)
		}
	}
	inbound := map[*unit]map[*unit]bool{}
	midEntry := map[*unit]bool{}
	calledInto := map[*unit]bool{}
	jumpsInto := map[*unit]map[*unit]bool{}
	note := func(from *unit, t uint64, call bool) {
		x := r.unitContaining(t)
		if x == nil || x == from {
			return
		}
		if call {
			calledInto[x] = true
			return
		}
		if inbound[x] == nil {
			inbound[x] = map[*unit]bool{}
		}
		inbound[x][from] = true
		if jumpsInto[from] == nil {
			jumpsInto[from] = map[*unit]bool{}
		}
		jumpsInto[from][x] = true
		if t != x.start {
			midEntry[x] = true
		}
	}
	for _, u := range r.units {
		for _, in := range u.insts {
			switch in.flow {
			case x86dec.FlowCall:
				if in.target != 0 {
					note(u, in.target, true)
				}
			case x86dec.FlowJump, x86dec.FlowCondJump:
				if in.target != 0 && !u.contains(in.target) {
					note(u, in.target, false)
				}
			}
		}
		for _, ij := range u.indirect {
			for _, t := range ij.Targets {
				if !u.contains(t) {
					note(u, t, false)
				}
			}
		}
	}
	merged := map[*unit]bool{}
	for _, x := range r.units {
		if x.end == 0 || merged[x] {
			continue
		}
		var parent *unit
		if i := strings.Index(x.name, ".cold"); i > 0 {
			candidates := byName[x.name[:i]]
			for _, p := range candidates {
				if inbound[x][p] {
					parent = p
				}
			}
			if parent == nil && len(candidates) == 1 {
				parent = candidates[0]
			}
		} else if x.name == "" && len(x.sources) == 1 && x.sources["fde"] && !calledInto[x] && len(inbound[x]) == 1 {
			for p := range inbound[x] {
				if midEntry[x] || jumpsInto[x][p] {
					parent = p
				}
			}
		}
		if parent == nil || merged[parent] || parent == x {
			continue
		}
		merged[x] = true
		parent.parts = append(parent.parts, Range{x.start, x.end})
		parent.parts = append(parent.parts, x.parts...)
		for a, in := range x.insts {
			parent.insts[a] = in
		}
		for a, ij := range x.indirect {
			parent.indirect[a] = ij
		}
		parent.decodeErrors += x.decodeErrors
	}
	if len(merged) == 0 {
		return
	}
	kept := r.units[:0]
	for _, u := range r.units {
		if merged[u] {
			delete(r.unitAt, u.start)
			continue
		}
		kept = append(kept, u)
	}
	r.units = kept
	r.sortUnits()
	// Entries into the parts that only the parent's branches reach.
	for _, u := range r.units {
		if len(u.parts) == 0 {
			continue
		}
		var work []uint64
		reached := func(t uint64) {
			if t != 0 && u.contains(t) && u.insts[t] == nil {
				work = append(work, t)
			}
		}
		for _, in := range u.insts {
			if in.flow == x86dec.FlowJump || in.flow == x86dec.FlowCondJump {
				reached(in.target)
			}
		}
		for a, ij := range u.indirect {
			for _, t := range ij.Targets {
				reached(t)
			}
			// A table read without a bound stopped at the first entry
			// outside the unit; with the parts joined it may go further.
			if ij.BoundFrom == 0 {
				u.pending = append(u.pending, a)
			}
		}
		sort.Slice(u.pending, func(i, j int) bool { return u.pending[i] < u.pending[j] })
		sort.Slice(work, func(i, j int) bool { return work[i] < work[j] })
		r.exploreUnit(u, work)
	}
}

// selectFuncs keeps only the functions that specs name.
func (g *Graph) selectFuncs(specs []string) error {
	keep := map[*Function]bool{}
	for _, spec := range specs {
		found := false
		if strings.HasPrefix(spec, "0x") || strings.HasPrefix(spec, "0X") {
			addr, err := strconv.ParseUint(spec[2:], 16, 64)
			if err != nil {
				return fmt.Errorf("bad function address %q", spec)
			}
			if f := g.FunctionAt(addr); f != nil {
				keep[f], found = true, true
			}
		} else {
			for _, f := range g.Functions {
				if f.Name == spec {
					keep[f], found = true, true
				}
			}
		}
		if !found {
			return fmt.Errorf("no function %s", spec)
		}
	}
	out := g.Functions[:0]
	for _, f := range g.Functions {
		if keep[f] {
			out = append(out, f)
		}
	}
	g.Functions = out
	return nil
}
