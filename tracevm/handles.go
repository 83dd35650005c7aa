package tracevm

import (
	"sync"
	"sync/atomic"
)

// recHandles names live recordings to the C side (tv_tls.rec holds one):
// a fixed table of atomic pointers, looked up at every recorder event
// without a lock (cgo.Handle's sync.Map cost a hash and an interface
// assertion per event). A handle is a slot's index plus one in its low
// 16 bits and the slot's use count above them, so that a handle left
// behind by a recording abandoned long ago (a longjmp out of it) never
// names the slot's next recording.
type recHandles struct {
	mu    sync.Mutex
	free  []uint16
	next  int
	slots [maxRecordings]recSlot
}

type recSlot struct {
	rec    atomic.Pointer[recording]
	handle atomic.Uint64
	uses   uint64 // under mu
}

// maxRecordings bounds the recordings in flight at once (one a thread,
// plus those abandoned but not yet found stale); beyond it none begins.
const maxRecordings = 1 << 12

// put returns a handle for r, 0 when the table is full.
func (h *recHandles) put(r *recording) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var i int
	switch {
	case len(h.free) > 0:
		i = int(h.free[len(h.free)-1])
		h.free = h.free[:len(h.free)-1]
	case h.next < maxRecordings:
		i = h.next
		h.next++
	default:
		return 0
	}
	s := &h.slots[i]
	s.uses++
	x := s.uses<<16 | uint64(i+1)
	s.handle.Store(x)
	s.rec.Store(r)
	return x
}

// get returns the recording x names, nil if none does (any more).
func (h *recHandles) get(x uint64) *recording {
	i := int(x&0xffff) - 1
	if i < 0 || i >= maxRecordings {
		return nil
	}
	s := &h.slots[i]
	r := s.rec.Load()
	if r == nil || s.handle.Load() != x {
		return nil
	}
	return r
}

// drop forgets x; a handle already dropped is ignored.
func (h *recHandles) drop(x uint64) {
	i := int(x&0xffff) - 1
	if i < 0 || i >= maxRecordings {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &h.slots[i]
	if s.handle.Load() != x {
		return
	}
	s.handle.Store(0)
	s.rec.Store(nil)
	h.free = append(h.free, uint16(i))
}
