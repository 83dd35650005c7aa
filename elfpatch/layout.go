package elfpatch

import (
	"debug/elf"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

const (
	// maxLinearPad bounds the zero padding linear placement may cost (see
	// the package comment); above it the segments follow the file's end.
	maxLinearPad = 64 << 20
	// addrLimit bounds the new segments' link-time addresses, well inside
	// the 47-bit user address space.
	addrLimit = 1 << 46
)

// Layout says where the new segments go. TextAddr is fixed by NewLayout;
// DataAddr by PlaceData once the text size is known.
type Layout struct {
	SegAddr  uint64 // link-time address of the new R+X segment, page aligned; the program header table is there
	SegOff   uint64 // its file offset
	TextAddr uint64 // link-time address of Plan.Text, after the program header table, 64-byte aligned
	TextOff  uint64 // its file offset
	DataAddr uint64 // link-time address of the new R+W segment and of Plan.Data, page aligned (after PlaceData)
	DataOff  uint64 // its file offset
	Align    uint64 // p_align of the new PT_LOADs
	// Linear is true when file offset = address - (first PT_LOAD's p_vaddr -
	// p_offset) for the new segments, which keeps AT_PHDR right on kernels
	// before 5.18. See the package comment.
	Linear bool

	f      *elfimage.File
	raw    *rawFile
	placed bool
}

// NewLayout checks that f, whose file contents are raw, can be patched and
// places the new text segment above every existing PT_LOAD. It refuses Go
// binaries, static executables (including static PIE), and layouts it
// cannot extend. Whether the file carries a planner's own patch already is
// the planner's to check.
func NewLayout(f *elfimage.File, raw []byte) (*Layout, error) {
	if f == nil {
		return nil, newErr("elfpatch", ErrPlan, "no input file")
	}
	name := f.Name
	if f.GoBinary {
		return nil, newErr(name, ErrGoBinary, "cannot patch a Go binary: its runtime does not expect foreign code and threads")
	}
	r, err := parseRaw(raw, name)
	if err != nil {
		return nil, err
	}
	if r.dynIdx < 0 || f.Static || f.Type == elf.ET_EXEC && f.Interp == "" || f.PIE && f.Interp == "" {
		return nil, newErr(name, ErrStatic, "cannot patch a statically linked executable: no dynamic loader to load an added library")
	}
	if _, ok := r.dynVal(elf.DT_STRTAB); !ok {
		return nil, newErr(name, ErrUnsupported, "no DT_STRTAB in the dynamic section")
	}
	if _, ok := r.dynVal(elf.DT_STRSZ); !ok {
		return nil, newErr(name, ErrUnsupported, "no DT_STRSZ in the dynamic section")
	}
	if len(r.progs)+2 >= pnXNum {
		return nil, newErr(name, ErrUnsupported, "too many program headers (%d)", len(r.progs))
	}

	if len(f.Segments) == 0 {
		return nil, newErr(name, ErrUnsupported, "no PT_LOAD segment")
	}
	l := &Layout{f: f, raw: r, Align: PageSize}
	var maxEnd, maxAlign uint64
	for _, s := range f.Segments {
		if s.Vaddr%PageSize != s.Offset%PageSize {
			return nil, addrErr(name, ErrUnsupported, s.Vaddr, "PT_LOAD whose address and file offset differ modulo the page size")
		}
		maxEnd = max(maxEnd, s.Vaddr+s.Memsz) // elfimage checked for wrap
	}
	for _, p := range r.progs {
		if elf.ProgType(p.Type) == elf.PT_LOAD {
			maxAlign = max(maxAlign, p.Align)
		}
	}
	top, ok1 := pageUp(maxEnd)
	eof, ok2 := pageUp(uint64(len(raw)))
	if !ok1 || !ok2 || top > addrLimit {
		return nil, addrErr(name, ErrUnsupported, maxEnd, "no address space above the last PT_LOAD")
	}
	first := f.Segments[0]
	if first.Vaddr >= first.Offset {
		delta := first.Vaddr - first.Offset
		text := max(top, eof+delta)
		if text <= addrLimit && text-delta-uint64(len(raw)) <= maxLinearPad {
			l.SegAddr, l.SegOff, l.Linear = text, text-delta, true
			if maxAlign > PageSize && maxAlign&(maxAlign-1) == 0 && delta%maxAlign == 0 {
				l.Align = maxAlign // offset ≡ address modulo it, as for the input's segments
			}
		}
	}
	if !l.Linear {
		l.SegAddr, l.SegOff = top, eof
	}
	hdrs := l.phdrSize()
	l.TextAddr, l.TextOff = l.SegAddr+hdrs, l.SegOff+hdrs
	l.PlaceData(0)
	l.placed = false
	return l, nil
}

// PlaceData fixes the data segment's address for a text of textSize bytes:
// the first page boundary after the text. It returns DataAddr and may be
// called again with another size.
func (l *Layout) PlaceData(textSize uint64) uint64 {
	n, _ := pageUp(l.TextAddr - l.SegAddr + min(textSize, MaxNewSize+1))
	l.DataAddr, l.DataOff = l.SegAddr+n, l.SegOff+n
	l.placed = true
	return l.DataAddr
}

// phdrSize is the room for the new program header table at SegAddr: the
// input's entries and the two new PT_LOADs, rounded up to 64 bytes.
func (l *Layout) phdrSize() uint64 {
	return (uint64(len(l.raw.progs)+2)*phdrSize + 63) &^ 63
}

// pageUp rounds v up to the page size; ok is false on overflow.
func pageUp(v uint64) (uint64, bool) {
	r := (v + PageSize - 1) &^ (PageSize - 1)
	return r, r >= v
}

// fileOffset returns the input file offset of the n bytes at addr, which
// must lie in the file-backed part of one PT_LOAD.
func (l *Layout) fileOffset(addr, n uint64) (uint64, bool) {
	seg := l.f.SegmentAt(addr)
	if seg == nil {
		return 0, false
	}
	off := addr - seg.Vaddr
	if off > seg.Filesz || n > seg.Filesz-off {
		return 0, false
	}
	return seg.Offset + off, true
}
