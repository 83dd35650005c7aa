package tracevm

import "math/bits"

// Stores of what memory holds already. An interpreter stores back what it
// has just checked or loaded: Lua's setobj copies a value's type tag along
// with it into a slot that holds that tag, a handler writes a field the
// previous bytecode wrote with the same value, a register spilled twice to
// the same slot. Where the optimiser knows, certainly, what the stored-to
// location holds before the store (the trace stored it there itself with
// nothing since that could have written it, or a guard checked it) and
// the store writes that same value, the store changes nothing and goes:
// nothing it reads is then needed, and an exit after it finds memory as
// the original code would have left it.

// noteSameStore records op i, a plain store of v (size bytes) at known
// address ad, when memory there certainly holds v before it.
func (o *optimizer) noteSameStore(i int, ad, v val, size int, s *evalState) {
	if size < 1 || size > 8 {
		return
	}
	key := ad.v<<4 | uint64(size)
	st, stored := s.stores[key]
	cur, ok := s.storedValue(st, stored)
	if !ok {
		cur = s.spec[key]
	}
	if !cur.known || cur.v != truncate(v.v, size) {
		return
	}
	if o.guardedBefore(cur.deps|v.deps|ad.deps, i) {
		o.sameStores[i] = true
	}
}

// guardedBefore reports whether every speculation deps rests on is
// checked before op i runs: a value guard at its load, or a post guard
// before op i. (The head guards come before every op.) Of those sharing a
// bit, only the ones loaded before op i can be what deps rests on.
func (o *optimizer) guardedBefore(deps assume, i int) bool {
	for specs := uint64(deps >> 16); specs != 0; specs &= specs - 1 {
		b := bits.TrailingZeros64(specs)
		if b >= len(o.specOp) {
			return false
		}
		for k := b; k < len(o.specOp) && o.specOp[k] < i; k += specBits {
			if at := o.specPost[k]; at > i {
				return false
			}
		}
	}
	return true
}

// storedValue returns the value of st, what the trace stored at an
// address (ok: there was such a store), when nothing since could have
// written it (no store through an unknown pointer, no call; or the slot
// is the loop frame's private one). It rests also on what kept the stores
// since at known addresses: without those assumptions one of them would
// be through an unknown pointer, and the value lost.
func (s *evalState) storedValue(st storedVal, ok bool) (val, bool) {
	if !ok || (st.epoch != s.epoch && !st.private) {
		return val{}, false
	}
	v := st.val
	for _, r := range (*s.ranges)[min(st.at, len(*s.ranges)):] {
		v.deps |= r.deps
	}
	return v, true
}
