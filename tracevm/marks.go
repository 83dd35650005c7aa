package tracevm

// pcMarks maps addresses to the serial (never 0) of the inlined call that
// last ran them, for calleeLoops, which asks at every instruction of an
// inlined callee: open addressing with linear probing (a Go map's hashing
// and growth were 4% of the recorder's time). A serial of 0 is no mark.
// Entries of earlier recordings are told apart by their epoch, so that the
// table is reused without clearing.
type pcMarks struct {
	e     []pcMark
	n     int // entries of this epoch
	epoch uint32
}

type pcMark struct {
	pc            uint64
	serial, epoch uint32
}

// reset forgets every mark.
func (t *pcMarks) reset() {
	t.n = 0
	t.epoch++
	if t.epoch == 0 { // wrapped: old entries could pass for new ones
		clear(t.e)
		t.epoch = 1
	}
}

func (t *pcMarks) slot(pc uint64) *pcMark {
	mask := uint64(len(t.e) - 1)
	i := (pc * 0x9e3779b97f4a7c15) >> 40 & mask
	for {
		s := &t.e[i]
		if s.epoch != t.epoch || s.pc == pc {
			return s
		}
		i = (i + 1) & mask
	}
}

// get returns pc's mark, 0 if none.
func (t *pcMarks) get(pc uint64) uint32 {
	if t.n == 0 {
		return 0
	}
	if s := t.slot(pc); s.epoch == t.epoch {
		return s.serial
	}
	return 0
}

// set marks pc with serial (0 unmarks it).
func (t *pcMarks) set(pc uint64, serial uint32) {
	if t.epoch == 0 {
		t.epoch = 1
	}
	if 2*(t.n+1) > len(t.e) {
		t.grow()
	}
	s := t.slot(pc)
	if s.epoch != t.epoch {
		*s = pcMark{pc: pc, epoch: t.epoch}
		t.n++
	}
	s.serial = serial
}

func (t *pcMarks) grow() {
	old := t.e
	t.e = make([]pcMark, max(256, 2*len(old)))
	ep := t.epoch
	t.n = 0
	for _, s := range old {
		if s.epoch == ep {
			*t.slot(s.pc) = s
			t.n++
		}
	}
}
