package x86dec

import "sync"

// A Memo decodes as Decode does and remembers each instruction it decoded
// by its bytes. A decoding depends on the instruction's bytes alone
// (branch targets and %rip-relative operands stay relative until Addr is
// set), and compiled code repeats itself: two thirds or more of the
// instructions of Debian's lua5.4 and python3.11 have the bytes of an
// earlier one. A hit costs a few table lookups and a copy, a decoding by
// x86asm some thousands of instructions: a JIT that decodes the
// interpreter's code as it records it spent a quarter of its recording
// time there. A Memo is safe for concurrent use; the zero value is not
// usable (NewMemo).
type Memo struct {
	mu sync.Mutex
	// Instruction lengths held, so that a lookup probes only lengths
	// that can match: one byte long, by first byte; two, by the first
	// two; three or more, a mask (bit n-1) by the first three.
	len1 [256 / 64]uint64
	len2 [65536 / 64]uint64
	len3 map[uint32]uint16
	// index maps an instruction's bytes to its decoding in slabs: map
	// entries stay small (a rehash as the map grows moves 20 bytes an
	// entry, not an Inst's 200) and the decodings fill pages in order.
	index map[memoKey]uint32
	slabs [][]Inst
	n     int
	max   int
}

// memoSlab is the decodings a slab holds.
const memoSlab = 256

// memoKey is an instruction's bytes and their count.
type memoKey struct {
	n uint8
	b [MaxLen]byte
}

// memoMax bounds a Memo's entries (about 5 MiB at most): beyond it,
// new instructions are decoded and not remembered.
const memoMax = 1 << 14

// memoHint sizes a new Memo's maps for the instructions of a JIT's first
// recordings, so that they are not rehashed as those arrive.
const memoHint = 2048

// NewMemo returns an empty Memo.
func NewMemo() *Memo {
	return &Memo{len3: make(map[uint32]uint16, memoHint), index: make(map[memoKey]uint32, memoHint), max: memoMax}
}

// Decode is Decode, remembered.
func (m *Memo) Decode(code []byte, addr uint64) (Inst, error) {
	if len(code) > MaxLen {
		code = code[:MaxLen]
	}
	if inst, ok := m.lookup(code); ok {
		inst.Addr = addr
		return inst, nil
	}
	inst, err := Decode(code, addr)
	if err != nil {
		return Inst{}, err
	}
	m.store(code[:inst.Len], &inst)
	return inst, nil
}

func bit(set []uint64, i int) bool { return set[i/64]&(1<<(i%64)) != 0 }
func setBit(set []uint64, i int)   { set[i/64] |= 1 << (i % 64) }

func prefix3(code []byte) uint32 {
	return uint32(code[0]) | uint32(code[1])<<8 | uint32(code[2])<<16
}

// lookup returns the remembered decoding of the instruction code starts
// with. An instruction is never a proper prefix of another (a decoder
// reads its bytes in order and stops), so at most one length matches.
func (m *Memo) lookup(code []byte) (Inst, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var mask uint16
	if len(code) >= 1 && bit(m.len1[:], int(code[0])) {
		mask |= 1
	}
	if len(code) >= 2 && bit(m.len2[:], int(code[0])|int(code[1])<<8) {
		mask |= 2
	}
	if len(code) >= 3 {
		mask |= m.len3[prefix3(code)]
	}
	for n := 1; mask != 0 && n <= len(code); n, mask = n+1, mask>>1 {
		if mask&1 == 0 {
			continue
		}
		k := memoKey{n: uint8(n)}
		copy(k.b[:], code[:n])
		if i, ok := m.index[k]; ok {
			return m.slabs[i/memoSlab][i%memoSlab], true
		}
	}
	return Inst{}, false
}

// store remembers inst, the decoding of code (its bytes, all of them).
func (m *Memo) store(code []byte, inst *Inst) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n >= m.max {
		return
	}
	k := memoKey{n: uint8(len(code))}
	copy(k.b[:], code)
	if m.n%memoSlab == 0 {
		m.slabs = append(m.slabs, make([]Inst, memoSlab))
	}
	v := &m.slabs[m.n/memoSlab][m.n%memoSlab]
	*v = *inst
	v.Addr = 0
	m.index[k] = uint32(m.n)
	m.n++
	switch n := len(code); n {
	case 1:
		setBit(m.len1[:], int(code[0]))
	case 2:
		setBit(m.len2[:], int(code[0])|int(code[1])<<8)
	default:
		m.len3[prefix3(code)] |= 1 << (n - 1)
	}
}
