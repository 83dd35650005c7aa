package tracevm

import (
	"encoding/binary"
	"slices"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"golang.org/x/arch/x86/x86asm"
)

// Wide loads over narrow stores. An interpreter whose values are 16-byte
// structs (a tag and a payload) copies them whole with one SSE load and
// store, and updates a payload in place with an 8-byte store: the next
// copy of that value loads 16 bytes that two stores wrote. The processor
// cannot forward two stores to one load; the load waits until both reach
// the cache, and a loop whose values pass through such copies runs at
// that latency (a VM's count loop: 32 cycles an iteration, 17 with the
// loads split, measured on the development machine). In a trace the
// stores are a few instructions before the load, in plain view:
// splitWideLoads marks each 16-byte load whose halves were written by
// different recent stores, and generate emits it as an 8-byte load of
// each half (movq, movhps), which forwarding serves. The result is the
// same register value, bit for bit, and the same memory read; only where
// the stores are is a guess (addresses the optimiser knows, or a
// register's unchanged value plus a displacement), so the marking can
// only cost a little where it guesses wrong.

// fwdAddr is where a memory operand points: an absolute address (regs
// -1), or a displacement from registers at given versions.
type fwdAddr struct {
	base, index       int8 // general register, -1 none
	baseVer, indexVer uint32
	scale             uint8
}

// fwdStore is one store a copy makes: [lo, hi) from its fwdAddr.
type fwdStore struct {
	at     fwdAddr
	lo, hi int64
}

// storeWindow follows a copy's recent stores and its registers' versions
// (a register's version changes at each write, so that a displacement
// from it names one location only while it is unchanged).
type storeWindow struct {
	ver    [16]uint32
	next   uint32
	stores []fwdStore // newest last, at most recentStores
}

// recentStores: how many stores back a load is compared with (stores
// older than about a store buffer's length have reached the cache).
const recentStores = 32

func (w *storeWindow) bump(regs uint16) {
	for r := 0; r < 16; r++ {
		if regs&(1<<r) != 0 {
			w.next++
			w.ver[r] = w.next
		}
	}
}

// address returns inst's memory operand as a fwdAddr and offset, given
// the registers known before it; ok is false for a segment or a register
// narrower than 64 bits.
func (w *storeWindow) address(inst *x86dec.Inst, known *[16]val) (fwdAddr, int64, bool) {
	at := fwdAddr{base: -1, index: -1}
	m, isMem := memArg(inst).(x86asm.Mem)
	if !isMem || inst.Special != x86dec.SpecialNone || m.Segment != 0 || inst.AddrSize != 64 {
		return at, 0, false
	}
	if m.Base == x86asm.RIP {
		a, ok := inst.MemRIPTarget()
		return at, int64(a), ok
	}
	off := m.Disp
	for k, r := range []x86asm.Reg{m.Base, m.Index} {
		if r == 0 {
			continue
		}
		n, size, ok := gpr(r)
		if !ok || size != 8 {
			return at, 0, false
		}
		scale := int64(1)
		if k == 1 {
			scale = int64(m.Scale)
		}
		if known[n].known {
			off += int64(known[n].v) * scale
			continue
		}
		if k == 0 {
			at.base, at.baseVer = int8(n), w.ver[n]
		} else {
			at.index, at.indexVer, at.scale = int8(n), w.ver[n], m.Scale
		}
	}
	return at, off, true
}

// store notes a store of [off, off+size) at at.
func (w *storeWindow) store(at fwdAddr, off int64, size int) {
	if len(w.stores) == recentStores {
		w.stores = append(w.stores[:0], w.stores[1:]...)
	}
	w.stores = append(w.stores, fwdStore{at: at, lo: off, hi: off + int64(size)})
}

// spansStores reports whether the 16 bytes at (at, off) were written, of
// the recent stores, last by more than one, or by one that covered only
// part of them.
func (w *storeWindow) spansStores(at fwdAddr, off int64) bool {
	lo, hi := off, off+16
	for k := len(w.stores) - 1; k >= 0; k-- {
		s := &w.stores[k]
		if s.at != at || s.hi <= lo || s.lo >= hi {
			continue
		}
		return s.lo > lo || s.hi < hi
	}
	return false
}

// splitWideLoads sets p.rewrite for the 16-byte loads of ops worth
// splitting (above) and returns how many. A copy that loops to itself is
// scanned twice, the second time with the stores of the first pass's
// end, which its first loads follow.
func splitWideLoads(ops []op, p *plan) int {
	if p == nil || p.known == nil {
		return 0
	}
	if !slices.ContainsFunc(p.insts, func(inst *x86dec.Inst) bool { return inst != nil && wideLoad(inst) }) {
		return 0 // most traces: no window to follow
	}
	passes := 1
	if len(ops) > 0 && ops[len(ops)-1].kind == opClose {
		passes = 2
	}
	n := 0
	var w storeWindow
	for pass := 0; pass < passes; pass++ {
		for i := range ops {
			o := &ops[i]
			switch o.kind {
			case opCall:
				w.stores = w.stores[:0]
				w.bump(allRegs)
				continue
			case opPush, opPop:
				w.bump(1 << 4) // %rsp
				continue
			case opIsTraced:
				w.bump(1) // %rax
				continue
			case opInsn:
			default:
				continue
			}
			inst := p.inst(i)
			if rw, ok := p.rewrite[i]; ok {
				if rw.code == nil {
					continue // left out: no effect at all
				}
				inst = rw.inst
			}
			if memArg(inst) == nil {
				w.bump(writeMask(inst))
				continue
			}
			st := p.known.at(i)
			known := &st
			pr, paired := p.pairs[i]
			_, plain := plainOp(ops, p, i)
			if last := pass == passes-1; last && plain && wideLoad(inst) && (!paired || pr.keep) {
				if at, off, ok := w.address(inst, known); ok && w.spansStores(at, off) {
					if code, ok := splitLoad(o.code); ok {
						if d, err := x86dec.Decode(code, 0); err == nil {
							p.rewrite[i] = rewritten{code: code, inst: &d}
							n++
						}
					}
				}
			}
			if !p.drop[i] && storesMemory(inst) && inst.MemBytes > 0 && inst.MemBytes <= 64 {
				// Stores the window cannot place (a segment, a string
				// store) are left out: the marking is a guess anyway.
				if at, off, ok := w.address(inst, known); ok {
					if pr, paired := p.pairs[i]; paired && pr.store {
						w.store(at, off, 8) // two general stores (vecpair.go)
						w.store(at, off+8, 8)
					} else {
						w.store(at, off, inst.MemBytes)
					}
				}
			}
			w.bump(writeMask(inst))
		}
	}
	return n
}

// wideLoad: inst is a legacy-encoded 16-byte SSE load of an xmm register
// from memory.
func wideLoad(inst *x86dec.Inst) bool {
	switch inst.Op {
	case x86asm.MOVDQU, x86asm.MOVDQA, x86asm.MOVUPS, x86asm.MOVAPS, x86asm.MOVUPD, x86asm.MOVAPD, x86asm.LDDQU:
	default:
		return false
	}
	r, isReg := inst.Args[0].(x86asm.Reg)
	_, isMem := inst.Args[1].(x86asm.Mem)
	return isReg && r >= x86asm.X0 && r <= x86asm.X15 && isMem && inst.MemBytes == 16
}

// splitLoad re-encodes code, a legacy 16-byte load of an xmm register
// from memory that is not %rip-relative (wideLoad), as movq of its low 8
// bytes (which zeroes the high ones) and movhps of its high 8, the same
// register and address; neither changes the flags or bits 128 and up.
func splitLoad(code []byte) ([]byte, bool) {
	m, ok := parseMemInsn(code)
	if !ok || m.rip || m.seg != 0 || len(m.imm) != 0 {
		return nil, false
	}
	for _, b := range m.prefixes {
		if b != 0x66 && b != 0xf3 && b != 0xf2 {
			return nil, false
		}
	}
	rex := m.rex &^ 0x08 // W means nothing to either
	hiMem, hiMod, ok := dispPlus(m.modrm, m.mem, 8)
	if !ok {
		return nil, false
	}
	out := []byte{0xf3}
	if rex != 0 {
		out = append(out, rex)
	}
	out = append(out, 0x0f, 0x7e, m.modrm)
	out = append(out, m.mem...)
	if rex != 0 {
		out = append(out, rex)
	}
	out = append(out, 0x0f, 0x16, hiMod)
	out = append(out, hiMem...)
	return out, true
}

// dispPlus returns the SIB and displacement bytes of a ModRM memory
// operand (modrm, mem; not %rip-relative) with d added to the
// displacement, and the ModRM byte that goes with them.
func dispPlus(modrm byte, mem []byte, d int64) ([]byte, byte, bool) {
	mod, rm := modrm>>6, modrm&7
	sib := 0
	if rm == 4 {
		sib = 1
	}
	if len(mem) < sib {
		return nil, 0, false
	}
	var disp int64
	switch {
	case mod == 0 && sib == 1 && mem[0]&7 == 5:
		// No base: a disp32 whatever the mod.
		if len(mem) != 5 {
			return nil, 0, false
		}
		v := int64(int32(binary.LittleEndian.Uint32(mem[1:]))) + d
		if v != int64(int32(v)) {
			return nil, 0, false
		}
		out := append([]byte{mem[0]}, binary.LittleEndian.AppendUint32(nil, uint32(int32(v)))...)
		return out, modrm, true
	case mod == 0:
		if len(mem) != sib {
			return nil, 0, false
		}
	case mod == 1:
		if len(mem) != sib+1 {
			return nil, 0, false
		}
		disp = int64(int8(mem[sib]))
	case mod == 2:
		if len(mem) != sib+4 {
			return nil, 0, false
		}
		disp = int64(int32(binary.LittleEndian.Uint32(mem[sib:])))
	default:
		return nil, 0, false
	}
	v := disp + d
	out := append([]byte{}, mem[:sib]...)
	switch {
	case v == int64(int8(v)):
		return append(out, byte(int8(v))), 1<<6 | modrm&0x3f, true
	case v == int64(int32(v)):
		return binary.LittleEndian.AppendUint32(out, uint32(int32(v))), 2<<6 | modrm&0x3f, true
	}
	return nil, 0, false
}
