package tracevm

import "unsafe"

// knownStates records, for each op of a trace, the registers the
// optimiser knows before it (state i; the last state is after the last
// op). About seven registers are known at an op and one op in two changes
// one, so a state is kept whole every knownEvery states and, in between,
// as the registers that changed: about 30 bytes an op instead of 384 (new
// memory costs a page fault per 4 KiB, and the optimiser writes a state
// per op on every pass).
type knownStates struct {
	n      int
	last   [16]val
	checks [][16]val // state k*knownEvery, whole
	// deltaAt[i]: state i's changes start at deltas[deltaAt[i]] and end
	// where state i+1's start (or at len(deltas)).
	deltaAt []int32
	deltas  []regDelta
	// block: the states of one checkpoint's block, whole, for readers
	// that walk the ops in order (liveness backwards, generate forwards):
	// block number blockOf+1 (0: none).
	blockOf1 int
	block    *[knownEvery][16]val
}

type regDelta struct {
	r uint8
	v val
}

const knownEvery = 32

// reset empties k, keeping its memory.
func (k *knownStates) reset() {
	k.n = 0
	k.checks, k.deltaAt, k.deltas = k.checks[:0], k.deltaAt[:0], k.deltas[:0]
	k.blockOf1 = 0
}

// add appends the next state.
func (k *knownStates) add(s *[16]val) {
	k.blockOf1 = 0
	k.deltaAt = append(k.deltaAt, int32(len(k.deltas)))
	if k.n%knownEvery == 0 {
		k.checks = append(k.checks, *s)
		k.last = *s
	} else {
		for r := range s {
			if !sameVal(&s[r], &k.last[r]) {
				k.deltas = append(k.deltas, regDelta{uint8(r), s[r]})
				k.last[r] = s[r]
			}
		}
	}
	k.n++
}

// len is the number of states.
func (k *knownStates) len() int {
	if k == nil {
		return 0
	}
	return k.n
}

func (k *knownStates) changes(j int) []regDelta {
	end := len(k.deltas)
	if j+1 < k.n {
		end = int(k.deltaAt[j+1])
	}
	return k.deltas[k.deltaAt[j]:end]
}

// masks appends to dst, for each state, the registers known in it.
func (k *knownStates) masks(dst []uint16) []uint16 {
	var cur uint16
	for i := 0; i < k.n; i++ {
		if i%knownEvery == 0 {
			cur = 0
			for r, v := range &k.checks[i/knownEvery] {
				if v.known {
					cur |= 1 << r
				}
			}
		} else {
			for _, d := range k.changes(i) {
				if d.v.known {
					cur |= 1 << d.r
				} else {
					cur &^= 1 << d.r
				}
			}
		}
		dst = append(dst, cur)
	}
	return dst
}

// get returns register r in state i.
func (k *knownStates) get(i, r int) val {
	return k.ref(i)[r]
}

// at returns state i whole.
func (k *knownStates) at(i int) [16]val {
	return *k.ref(i)
}

// ref returns state i, valid until the next add or a state in another
// block.
func (k *knownStates) ref(i int) *[16]val {
	c := i / knownEvery
	if k.blockOf1 != c+1 {
		if k.block == nil {
			k.block = new([knownEvery][16]val)
		}
		s := k.checks[c]
		for j := c * knownEvery; j < min((c+1)*knownEvery, k.n); j++ {
			if j > c*knownEvery {
				for _, d := range k.changes(j) {
					s[d.r] = d.v
				}
			}
			k.block[j-c*knownEvery] = s
		}
		k.blockOf1 = c + 1
	}
	return &k.block[i-c*knownEvery]
}

// sameVal is *a == *b, as four word compares: val fills its 32 bytes
// without padding (the assertions below; its blank field is always 0),
// so that its memory is its value. Go's == compares it field by field
// (or, without the blank field, calls a generic memory compare): a tenth
// of the JIT's instructions on a Lua nbody run.
func sameVal(a, b *val) bool {
	x, y := (*[4]uint64)(unsafe.Pointer(a)), (*[4]uint64)(unsafe.Pointer(b))
	return x[1] == y[1] && x[0] == y[0] && x[2] == y[2] && x[3] == y[3]
}

// val is 32 bytes, and its first word's fields fill it.
var (
	_ [unsafe.Sizeof(val{}) - 32]byte
	_ [32 - unsafe.Sizeof(val{})]byte
	_ [unsafe.Offsetof(val{}.pn) + unsafe.Sizeof(val{}.pn) - 8]byte
	_ [8 - unsafe.Offsetof(val{}.pn) - unsafe.Sizeof(val{}.pn)]byte
)
