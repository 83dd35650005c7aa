package cfg

import (
	"sort"

	"golang.org/x/arch/x86/x86asm"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// instInfo is what recovery keeps of one decoded instruction: its place,
// its classification and the operands the table analysis reads. A whole
// x86asm.Inst is several hundred bytes and a large binary has ~10^6
// instructions, so the rest is dropped after decoding.
type instInfo struct {
	Addr     uint64
	target   uint64 // direct jump, branch or call target; 0 otherwise
	Args     x86asm.Args
	Op       x86asm.Op
	MemBytes int32
	Len      uint8
	flow     x86dec.Flow
}

// End is the address of the next instruction.
func (in *instInfo) End() uint64 { return in.Addr + uint64(in.Len) }

// MemRIPTarget is the address a %rip-relative memory operand refers to.
func (in *instInfo) MemRIPTarget() (uint64, bool) {
	for _, a := range in.Args {
		if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.RIP {
			return in.End() + uint64(m.Disp), true
		}
	}
	return 0, false
}

// unit is a function under construction: its extent, the instructions
// reached so far and what it refers to outside itself.
type unit struct {
	start, end uint64 // end == 0 while the extent is unknown (no FDE or symbol size)
	limit      uint64 // for units without an extent: exploration stops here
	parts      []Range
	name       string
	sources    map[string]bool

	insts    map[uint64]*instInfo
	roots    []uint64 // addresses exploration starts from
	pending  []uint64 // indirect jumps not yet analysed
	indirect map[uint64]*IndirectJump

	slab []instInfo // instructions are allocated in chunks: there are ~10^6 of them

	mainEnd uint64 // end of the last instruction found in the main part

	decodeErrors int
	// fallsOut holds calls whose return address lies outside the unit: the
	// compiler put nothing after them, so their callees do not return.
	fallsOut []uint64
	noReturn bool
}

func newUnit(start, end uint64) *unit {
	return &unit{
		start:    start,
		end:      end,
		sources:  map[string]bool{},
		insts:    map[uint64]*instInfo{},
		roots:    []uint64{start},
		indirect: map[uint64]*IndirectJump{},
	}
}

// contains reports whether addr belongs to the unit's code.
func (u *unit) contains(addr uint64) bool {
	if u.end != 0 {
		if addr >= u.start && addr < u.end {
			return true
		}
	} else if addr >= u.start && addr < u.limit {
		return true
	}
	for _, p := range u.parts {
		if addr >= p.Start && addr < p.End {
			return true
		}
	}
	return false
}

// span is the address range the unit's main part covers: its extent, or
// for units without one, the instructions found.
func (u *unit) span() Range {
	if u.end != 0 {
		return Range{u.start, u.end}
	}
	return Range{u.start, max(u.start+1, u.mainEnd)}
}

// explore decodes everything reachable from work inside the unit. Calls
// are assumed to return unless noReturn says otherwise; the no-return
// analysis later prunes what lies behind calls that do not.
func (u *unit) explore(im *image, work []uint64, isStart func(uint64) bool, noReturn func(uint64) bool) {
	for len(work) > 0 {
		a := work[len(work)-1]
		work = work[:len(work)-1]
		for {
			if _, seen := u.insts[a]; seen || !u.contains(a) {
				break
			}
			code := im.bytesAt(a)
			if code == nil {
				break
			}
			inst, err := x86dec.Decode(code, a)
			if err != nil {
				u.decodeErrors++
				break
			}
			in := u.newInst()
			*in = instInfo{Addr: a, Args: inst.Args, Op: inst.Op, MemBytes: int32(inst.MemBytes), Len: uint8(inst.Len), flow: inst.Flow()}
			u.insts[a] = in
			if a < u.limit || a < u.end {
				u.mainEnd = max(u.mainEnd, in.End())
			}
			next := inst.End()
			stop := false
			switch in.flow {
			case x86dec.FlowJump, x86dec.FlowCondJump:
				if t, ok := inst.Target(); ok {
					in.target = t
					if u.contains(t) {
						work = append(work, t)
					}
				}
				stop = in.flow == x86dec.FlowJump
			case x86dec.FlowCall:
				if t, ok := inst.Target(); ok {
					in.target = t
					if noReturn(t) {
						stop = true
					}
				}
			case x86dec.FlowIndirectJump:
				u.pending = append(u.pending, a)
				stop = true
			case x86dec.FlowReturn, x86dec.FlowHalt:
				stop = true
			}
			if stop {
				break
			}
			if !u.contains(next) || (next != u.start && isStart(next)) {
				if in.flow == x86dec.FlowCall && in.target != 0 {
					u.fallsOut = append(u.fallsOut, in.target)
				}
				break
			}
			a = next
		}
	}
}

// newInst hands out the next instruction slot of the unit's current
// chunk. A full chunk is never grown in place, so pointers stay valid.
func (u *unit) newInst() *instInfo {
	if len(u.slab) == cap(u.slab) {
		n := 2 * cap(u.slab)
		if n < 16 {
			n = 16
		} else if n > 1024 {
			n = 1024
		}
		u.slab = make([]instInfo, 0, n)
	}
	u.slab = u.slab[:len(u.slab)+1]
	return &u.slab[len(u.slab)-1]
}

// sortedAddrs returns the addresses of the unit's instructions, ascending.
func (u *unit) sortedAddrs() []uint64 {
	addrs := make([]uint64, 0, len(u.insts))
	for a := range u.insts {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	return addrs
}

func (u *unit) sourceList() []string {
	out := make([]string, 0, len(u.sources))
	for s := range u.sources {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
