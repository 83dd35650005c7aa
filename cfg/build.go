package cfg

import (
	"encoding/hex"
	"runtime"
	"sort"
	"sync"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// graph turns the units into the public model.
func (r *recoverer) graph() *Graph {
	g := &Graph{Path: r.f.Name, BuildID: r.f.BuildID}
	if _, err := hex.DecodeString(g.BuildID); err != nil {
		g.BuildID = ""
	}
	// Functions are built in parallel: each reads only its own unit and
	// the no-return flags, which no longer change.
	g.Functions = make([]*Function, len(r.units))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				g.Functions[i] = r.function(r.units[i])
			}
		}()
	}
	for i := range r.units {
		next <- i
	}
	close(next)
	wg.Wait()
	return g
}

// function builds the blocks of u from what is reachable from its entry
// (and its parts' starts) now that no-return callees are known.
func (r *recoverer) function(u *unit) *Function {
	fn := &Function{
		Name:     u.name,
		Start:    u.start,
		End:      u.span().End,
		Parts:    append([]Range(nil), u.parts...),
		Sources:  u.sourceList(),
		NoReturn: u.noReturn,
	}
	sort.Slice(fn.Parts, func(i, j int) bool { return fn.Parts[i].Start < fn.Parts[j].Start })

	roots := []uint64{u.start}
	for _, p := range fn.Parts {
		roots = append(roots, p.Start)
	}
	reach := map[uint64]bool{}
	leaders := map[uint64]bool{}
	for _, a := range roots {
		leaders[a] = true
	}
	work := append([]uint64(nil), roots...)
	for len(work) > 0 {
		a := work[len(work)-1]
		work = work[:len(work)-1]
		for !reach[a] {
			in := u.insts[a]
			if in == nil {
				break
			}
			reach[a] = true
			branchTo := func(t uint64) {
				if t != 0 && u.contains(t) && u.insts[t] != nil {
					leaders[t] = true
					work = append(work, t)
				}
			}
			next, more := in.End(), true
			switch in.flow {
			case x86dec.FlowJump:
				branchTo(in.target)
				more = false
			case x86dec.FlowCondJump:
				branchTo(in.target)
				leaders[next] = true
			case x86dec.FlowCall:
				more = r.calleeReturns(in.target) || in.target == 0
				leaders[next] = true
			case x86dec.FlowIndirectCall:
				leaders[next] = true
			case x86dec.FlowIndirectJump:
				if ij := u.indirect[a]; ij != nil {
					for _, t := range ij.Targets {
						branchTo(t)
					}
				}
				more = false
			case x86dec.FlowReturn, x86dec.FlowHalt:
				more = false
			}
			if !more {
				break
			}
			a = next
		}
	}

	addrs := make([]uint64, 0, len(reach))
	for a := range reach {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	var cur *Block
	for i, a := range addrs {
		in := u.insts[a]
		if cur == nil || leaders[a] {
			if cur != nil {
				cur.Succs = []Edge{{EdgeFallthrough, a}}
				fn.Blocks = append(fn.Blocks, cur)
			}
			cur = &Block{Start: a}
		}
		cur.Insts++
		cur.End = in.End()
		cur.Last = a
		contiguous := i+1 < len(addrs) && addrs[i+1] == in.End()
		if in.flow != x86dec.FlowNone || !contiguous {
			cur.Succs = r.edges(u, in)
			fn.Blocks = append(fn.Blocks, cur)
			cur = nil
		}
	}
	if cur != nil {
		fn.Blocks = append(fn.Blocks, cur)
	}

	for a, ij := range u.indirect {
		if reach[a] {
			fn.Indirect = append(fn.Indirect, ij)
		}
	}
	sort.Slice(fn.Indirect, func(i, j int) bool { return fn.Indirect[i].Addr < fn.Indirect[j].Addr })
	r.classifyAbsolute(fn.Indirect)
	return fn
}

// edges gives the successors of a block that ends with in.
func (r *recoverer) edges(u *unit, in *instInfo) []Edge {
	next := in.End()
	switch in.flow {
	case x86dec.FlowNone:
		return []Edge{{EdgeFallthrough, next}}
	case x86dec.FlowJump:
		if u.contains(in.target) {
			return []Edge{{EdgeJump, in.target}}
		}
		return []Edge{{EdgeTailCall, in.target}}
	case x86dec.FlowCondJump:
		return []Edge{{EdgeCond, in.target}, {EdgeFallthrough, next}}
	case x86dec.FlowCall:
		if in.target != 0 && !r.calleeReturns(in.target) {
			return []Edge{{EdgeCall, in.target}}
		}
		return []Edge{{EdgeCall, in.target}, {EdgeFallthrough, next}}
	case x86dec.FlowIndirectCall:
		return []Edge{{EdgeCall, 0}, {EdgeFallthrough, next}}
	case x86dec.FlowIndirectJump:
		ij := u.indirect[in.Addr]
		if ij == nil || !ij.Resolved() {
			return []Edge{{EdgeUnresolved, 0}}
		}
		out := make([]Edge, 0, len(ij.Targets))
		for _, t := range ij.Targets {
			out = append(out, Edge{EdgeIndirect, t})
		}
		return out
	case x86dec.FlowReturn:
		return []Edge{{EdgeReturn, 0}}
	}
	return nil
}

// classifyAbsolute tells computed-goto tables from switch tables among the
// jumps through absolute tables. Both can be `jmp *T(,i,8)`. A switch has
// one jump per table, and in position-independent code it uses offsets;
// computed goto replicates its dispatch jump into every handler and stores
// label addresses even in PIC code, where they need relocations.
func (r *recoverer) classifyAbsolute(jumps []*IndirectJump) {
	uses := map[uint64]int{}
	for _, j := range jumps {
		if j.Kind == TableAbsolute {
			uses[j.Table]++
		}
	}
	for _, j := range jumps {
		if j.Kind != TableAbsolute {
			continue
		}
		if _, relocated := r.f.Relative[j.Table]; relocated || uses[j.Table] > 1 {
			j.Kind = TableComputedGoto
		}
	}
}
