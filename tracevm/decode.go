package tracevm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/redmagic-patch/redmagic-patch/tracevm/insn"
)

// decoded is an instruction of the traced text as the recorder uses it,
// decoded and classified once per address: the text of a patched object
// never changes while it is loaded, and a recording passes the same
// instructions again and again (every iteration, every side trace), so
// decoding dominated the recorder's time.
type decoded struct {
	inst x86dec.Inst
	code []byte // the instruction's bytes (shared: never modified)
	info insn.Info
	// ripDisp: for a Plain instruction with a %rip-relative disp32, its
	// offset in code (its copy needs a new displacement); 0 when the
	// bytes are copied unchanged; -1 when only x86enc.Relocate can move
	// it.
	ripDisp int
	target  uint64 // what the %rip-relative operand addresses
}

// decodeCache maps addresses of traced text to their *decoded: a
// direct-mapped table of atomic pointers (newDecodeCache). A lookup is a
// load and a compare (a sync.Map's interface hashing cost more than the
// recorder's own work per instruction); a collision only decodes again.
// Entries are immutable once published. They come from slabs (one
// allocation for decodeSlab of them: one by one, their allocations and
// the page faults of the fresh heap they took were most of a decode's
// cost), and their bytes are the text's own, which never changes while
// the object is loaded.
type decodeCache struct {
	slots []atomic.Pointer[decoded]
	// memo: decodings by bytes, for addresses not decoded yet.
	memo *x86dec.Memo
	mu   sync.Mutex
	slab []decoded
}

const decodeSlab = 256

// decodeSlotsLog2 sizes the cache: 64K entries (512 KiB of pointers) hold
// the hot paths of an interpreter's dispatch loop many times over.
const decodeSlotsLog2 = 16

func newDecodeCache() decodeCache {
	return decodeCache{slots: make([]atomic.Pointer[decoded], 1<<decodeSlotsLog2), memo: x86dec.NewMemo()}
}

// fresh returns an unused entry.
func (c *decodeCache) fresh() *decoded {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.slab) == 0 {
		c.slab = make([]decoded, decodeSlab)
	}
	d := &c.slab[0]
	c.slab = c.slab[1:]
	return d
}

// slot indexes by the address's low bits: a block's instructions share
// cache lines and pages of the table (a hash scattered them: a cache and
// TLB miss per instruction, most of the lookup's cost); code 64 KiB apart
// collides, which only decodes again.
func (c *decodeCache) slot(a uint64) *atomic.Pointer[decoded] {
	return &c.slots[a&(1<<decodeSlotsLog2-1)]
}

// decode returns the instruction at a, which must lie in traced text.
func (m *Machine) decode(a uint64) (*decoded, error) {
	s := m.decoded.slot(a)
	if d := s.Load(); d != nil && d.inst.Addr == a {
		return d, nil
	}
	end := m.textEnd(a)
	if end == 0 {
		return nil, fmt.Errorf("tracevm: %#x is not in traced text", a)
	}
	d := m.decoded.fresh()
	if err := d.init(m.decoded.memo, memAt(a, int(min(uint64(x86dec.MaxLen), end-a))), a); err != nil {
		*d = decoded{}
		return nil, err
	}
	s.Store(d)
	return d, nil
}

// init decodes (through memo) and classifies the instruction at the start
// of code, which lies at a, into d; d.code is code's own bytes.
func (d *decoded) init(memo *x86dec.Memo, code []byte, a uint64) error {
	inst, err := memo.Decode(code, a)
	if err != nil {
		return err
	}
	d.inst, d.code = inst, code[:inst.Len:inst.Len]
	d.info = insn.Classify(&d.inst)
	if d.info.Kind == insn.Plain && d.info.RIPRelative {
		d.ripDisp = -1
		if t, ok := d.inst.MemRIPTarget(); ok && d.inst.Special == x86dec.SpecialNone &&
			d.inst.PCRel == 4 && d.inst.PCRelOff > 0 && d.inst.PCRelOff+4 <= d.inst.Len {
			d.ripDisp, d.target = d.inst.PCRelOff, t
		}
	}
	return nil
}

// emitPlain appends d, a Plain instruction, to e at e's current address.
func (d *decoded) emitPlain(e *emitter) error {
	switch {
	case d.ripDisp == 0:
		e.bytes(d.code...)
		return nil
	case d.ripDisp > 0:
		disp := int64(d.target) - int64(e.pc()+uint64(len(d.code)))
		if disp == int64(int32(disp)) {
			at := len(e.buf) + d.ripDisp
			e.bytes(d.code...)
			binary.LittleEndian.PutUint32(e.buf[at:], uint32(int32(disp)))
			return nil
		}
	}
	b, err := x86enc.Relocate(d.code, d.inst.Addr, e.pc())
	if err != nil {
		return err
	}
	e.bytes(b...)
	return nil
}

// emitInsn appends o, an opInsn, to e: from the recorder's decoding when o
// still is the traced text's own instruction, else relocated.
func (m *Machine) emitInsn(e *emitter, o *op) error {
	if d := o.dec; d != nil && bytes.Equal(d.code, o.code) {
		return d.emitPlain(e)
	}
	b, err := x86enc.Relocate(o.code, o.addr, e.pc())
	if err != nil {
		return err
	}
	e.bytes(b...)
	return nil
}
