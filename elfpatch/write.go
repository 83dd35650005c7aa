package elfpatch

import (
	"bytes"
	"debug/elf"
	"fmt"
	"slices"
	"strings"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// Write applies p to the file f, whose contents are raw, with the layout l
// made for it by NewLayout and PlaceData, and returns the whole new file.
// raw is not modified. The layout is described in the package comment.
func Write(f *elfimage.File, raw []byte, l *Layout, p *Plan) ([]byte, error) {
	switch {
	case f == nil || l == nil || p == nil:
		return nil, newErr("elfpatch", ErrPlan, "Write needs a file, a layout and a plan")
	case l.f != f || len(raw) != len(l.raw.data) || len(raw) > 0 && &raw[0] != &l.raw.data[0]:
		return nil, newErr(f.Name, ErrPlan, "the layout was made for another input")
	case !l.placed:
		return nil, newErr(f.Name, ErrPlan, "PlaceData was not called")
	}
	w := &writer{f: f, r: l.raw, l: l, p: p, name: f.Name}
	out, err := w.write()
	if err != nil {
		return nil, err
	}
	if err := verifyReadBack(f.Name, out, p); err != nil {
		return nil, err
	}
	return out, nil
}

// verifyReadBack reads a new file back the way a planner and its tools
// do: it must parse, and the plan's dynamic entries and sections must be
// found where the plan put them (a planner recognises its own patch by
// them). A real binary always passes; an input that is internally
// inconsistent (a .dynamic section header that disagrees with PT_DYNAMIC,
// a section name table shared with an allocated section...) can yield a
// file the reader rejects or misreads, and such a file is refused here
// rather than written.
func verifyReadBack(name string, out []byte, p *Plan) error {
	bad := func(msg string, err error) error {
		return &Error{File: name, Kind: ErrUnsupported, Msg: msg + " (the input is inconsistent)", Err: err}
	}
	fo, err := elfimage.NewFile(out, name)
	if err != nil {
		return bad("the patched file would not read back", err)
	}
	r, err := parseRaw(out, name)
	if err != nil {
		return bad("the patched file would not read back", err)
	}
	for _, d := range p.DynTags {
		if v, ok := r.dynVal(d.Tag); !ok || v != d.Val {
			return bad(fmt.Sprintf("the patched file would not show its dynamic entry %v", d.Tag), nil)
		}
	}
	for _, s := range p.Sections {
		if got := fo.Section(s.Name); got == nil || got.Addr != s.Addr {
			return bad(fmt.Sprintf("the patched file would not show its section %s", s.Name), nil)
		}
	}
	return nil
}

// writer holds one Write's state.
type writer struct {
	f    *elfimage.File
	r    *rawFile
	l    *Layout
	p    *Plan
	name string

	dataMem uint64 // the caller's part of the data segment

	dyn        []elf.Dyn64 // the new dynamic entries, DT_NULL included
	strtabIdx  []int       // indexes of DT_STRTAB in dyn
	strszIdx   []int       // indexes of DT_STRSZ in dyn
	dynstr     []byte
	oldStrtab  uint64 // link-time address of the old .dynstr
	edits      []span // validated byte edits, by file offset
	dynInPlace bool   // the new dynamic entries replace the old ones where they are
	dynAddr    uint64 // the moved .dynamic, unless dynInPlace
	dynOff     uint64
	dynSize    uint64
	dataSize   uint64 // of the data segment
	newSects   []elf.Section64
	newSectNms []string
}

// span is a range of input file offsets that Write changes.
type span struct {
	off, end uint64
	addr     uint64 // virtual address, for errors
	what     string
	bytes    []byte // the new contents
}

func (w *writer) planErr(format string, args ...any) error {
	return newErr(w.name, ErrPlan, format, args...)
}

func (w *writer) write() ([]byte, error) {
	l, p := w.l, w.p
	if uint64(len(p.Text)) > MaxNewSize || uint64(len(p.Text)) > l.DataAddr-l.TextAddr {
		return nil, w.planErr("text of %d bytes does not fit the %d bytes placed before the data", len(p.Text), l.DataAddr-l.TextAddr)
	}
	w.dataMem = p.DataMemSize
	if w.dataMem == 0 {
		w.dataMem = uint64(len(p.Data))
	}
	if w.dataMem < uint64(len(p.Data)) || w.dataMem > MaxNewSize {
		return nil, w.planErr("DataMemSize %#x smaller than the data (%#x bytes) or too large", p.DataMemSize, len(p.Data))
	}
	if err := w.checkEdits(); err != nil {
		return nil, err
	}
	if err := w.checkSections(); err != nil {
		return nil, err
	}
	if err := w.dynamic(); err != nil {
		return nil, err
	}

	// The text segment: the program header table, then the caller's text.
	// The table must start a PT_LOAD for BFD (strip, objcopy) to keep it.
	nph := len(w.r.progs) + 2
	phdrs := w.appendProgs(nil, nph)
	// The data segment: the caller's part, then .dynamic unless it stays
	// in place, and .dynstr.
	var err error
	if w.dynInPlace, err = w.dynamicFits(); err != nil {
		return nil, err
	}
	dynRel := align8(w.dataMem)
	strRel := dynRel
	if !w.dynInPlace {
		strRel += uint64(len(w.dyn)) * dynSize
	}
	segSize := strRel + uint64(len(w.dynstr))
	if l.DataAddr+segSize > addrLimit+MaxNewSize {
		return nil, w.planErr("data segment of %d bytes at %#x out of the address space", segSize, l.DataAddr)
	}
	for _, i := range w.strtabIdx {
		w.dyn[i].Val = l.DataAddr + strRel
	}
	for _, i := range w.strszIdx {
		w.dyn[i].Val = uint64(len(w.dynstr))
	}
	seg := make([]byte, 0, segSize)
	seg = append(seg, p.Data...)
	seg = append(seg, make([]byte, dynRel-uint64(len(p.Data)))...)
	if w.dynInPlace {
		ph := w.r.progs[w.r.dynIdx]
		b := make([]byte, 0, ph.Filesz)
		for _, d := range w.dyn[:len(w.dyn)-len(w.r.dynTail)] {
			b = appendDyn(b, d)
		}
		w.edits = append(w.edits, span{off: ph.Off, end: ph.Off + ph.Filesz, addr: ph.Vaddr,
			what: "the dynamic section", bytes: append(b, make([]byte, ph.Filesz-uint64(len(b)))...)})
	} else {
		w.dynAddr, w.dynOff, w.dynSize = l.DataAddr+dynRel, l.DataOff+dynRel, uint64(len(w.dyn))*dynSize
		for _, d := range w.dyn {
			seg = appendDyn(seg, d)
		}
	}
	seg = append(seg, w.dynstr...)
	w.dataSize = segSize
	phdrs = w.appendProgs(phdrs[:0], nph) // now with PT_DYNAMIC's place known

	// Non-allocated tail: .shstrtab, then the section header table.
	oldShstr := w.r.sects[w.r.shstrndx]
	shstr := slices.Clone(w.r.data[oldShstr.Off : oldShstr.Off+oldShstr.Size])
	for i, n := range w.newSectNms {
		w.newSects[i].Name = uint32(len(shstr))
		shstr = append(shstr, n...)
		shstr = append(shstr, 0)
	}
	shstrOff := l.DataOff + segSize
	shOff := align8(shstrOff + uint64(len(shstr)))
	sects := w.sections(l.DataAddr+strRel, l.DataOff+strRel, shstrOff, uint64(len(shstr)))
	total := shOff + uint64(len(sects))*shdrSize

	out := make([]byte, total)
	copy(out, w.r.data)
	copy(out[l.SegOff:], phdrs)
	copy(out[l.TextOff:], p.Text)
	copy(out[l.DataOff:], seg)
	copy(out[shstrOff:], shstr)
	sh := out[shOff:shOff:total]
	for _, s := range sects {
		sh = appendSection(sh, s)
	}
	for _, e := range w.edits {
		copy(out[e.off:e.end], e.bytes)
	}

	le.PutUint64(out[offPhoff:], l.SegOff)
	le.PutUint16(out[offPhnum:], uint16(nph))
	le.PutUint64(out[offShoff:], shOff)
	if n := len(sects); n >= shnLoReserve {
		le.PutUint16(out[offShnum:], 0)
	} else {
		le.PutUint16(out[offShnum:], uint16(n))
	}
	if w.r.shstrndx >= shnLoReserve {
		le.PutUint16(out[offShstrnd:], shnXIndex)
	} else {
		le.PutUint16(out[offShstrnd:], uint16(w.r.shstrndx))
	}
	return out, nil
}

func align8(v uint64) uint64 { return (v + 7) &^ 7 }

// dynamicFits reports whether the new dynamic entries can replace the old
// ones where they are: the entries up to and with DT_NULL fit in
// PT_DYNAMIC, which holds nothing but spare DT_NULLs after its first one
// (the GNU linker leaves some) and is file-backed. The table then stays
// in the input's PT_GNU_RELRO, read-only once ld.so has relocated it, as
// in the original. Otherwise it moves to the new data segment, which stays
// writable (only one PT_GNU_RELRO is honoured by glibc, and the new
// segment is not next to the input's).
func (w *writer) dynamicFits() (bool, error) {
	ph := w.r.progs[w.r.dynIdx]
	for _, d := range w.r.dynTail {
		if d.Tag != int64(elf.DT_NULL) {
			return false, nil
		}
	}
	n := uint64(len(w.dyn)-len(w.r.dynTail)) * dynSize
	if off, ok := w.l.fileOffset(ph.Vaddr, ph.Filesz); !ok || off != ph.Off || n > ph.Filesz {
		return false, nil
	}
	for _, e := range w.edits {
		if e.off < ph.Off+ph.Filesz && ph.Off < e.end {
			return false, addrErr(w.name, ErrPlan, e.addr, "%s overlaps the dynamic section", e.what)
		}
	}
	return true, nil
}

// appendProgs appends the new program header table: the old entries with
// PT_PHDR and PT_DYNAMIC moved, and the new PT_LOADs after the last old one
// so that PT_LOADs stay in ascending address order.
func (w *writer) appendProgs(b []byte, nph int) []byte {
	l := w.l
	lastLoad := -1
	for i, ph := range w.r.progs {
		if elf.ProgType(ph.Type) == elf.PT_LOAD {
			lastLoad = i
		}
	}
	tableSize := uint64(nph) * phdrSize
	for i, ph := range w.r.progs {
		switch {
		case elf.ProgType(ph.Type) == elf.PT_PHDR:
			ph.Off, ph.Vaddr, ph.Paddr = l.SegOff, l.SegAddr, l.SegAddr
			ph.Filesz, ph.Memsz, ph.Align = tableSize, tableSize, 8
		case i == w.r.dynIdx && !w.dynInPlace:
			ph.Off, ph.Vaddr, ph.Paddr = w.dynOff, w.dynAddr, w.dynAddr
			ph.Filesz, ph.Memsz, ph.Align = w.dynSize, w.dynSize, 8
		}
		b = appendProg(b, ph)
		if i != lastLoad {
			continue
		}
		flags := elf.PF_R
		if len(w.p.Text) > 0 {
			flags |= elf.PF_X
		}
		n := l.TextAddr - l.SegAddr + uint64(len(w.p.Text))
		b = appendProg(b, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(flags),
			Off: l.SegOff, Vaddr: l.SegAddr, Paddr: l.SegAddr, Filesz: n, Memsz: n, Align: l.Align})
		b = appendProg(b, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_W),
			Off: l.DataOff, Vaddr: l.DataAddr, Paddr: l.DataAddr, Filesz: w.dataSize, Memsz: w.dataSize, Align: l.Align})
	}
	return b
}

// sections returns the new section header table: the old one with .dynamic,
// .dynstr and .shstrtab moved, then the plan's sections.
func (w *writer) sections(strAddr, strOff, shstrOff, shstrSz uint64) []elf.Section64 {
	sects := slices.Clone(w.r.sects)
	for i := range sects {
		s := &sects[i]
		switch {
		case elf.SectionType(s.Type) == elf.SHT_DYNAMIC && !w.dynInPlace:
			s.Addr, s.Off, s.Size = w.dynAddr, w.dynOff, w.dynSize
		case elf.SectionType(s.Type) == elf.SHT_STRTAB && elf.SectionFlag(s.Flags)&elf.SHF_ALLOC != 0 && s.Addr == w.oldStrtab:
			s.Addr, s.Off, s.Size = strAddr, strOff, uint64(len(w.dynstr))
		case uint32(i) == w.r.shstrndx:
			s.Off, s.Size = shstrOff, shstrSz
		}
	}
	sects = append(sects, w.newSects...)
	// Extended numbering (gABI): counts that do not fit e_shnum and
	// e_shstrndx live in section 0.
	if len(sects) >= shnLoReserve {
		sects[0].Size = uint64(len(sects))
	} else {
		sects[0].Size = 0
	}
	if w.r.shstrndx >= shnLoReserve {
		sects[0].Link = w.r.shstrndx
	}
	return sects
}

// dynamic builds the new dynamic entries and .dynstr.
func (w *writer) dynamic() error {
	r, p := w.r, w.p
	w.oldStrtab, _ = r.dynVal(elf.DT_STRTAB)
	strsz, _ := r.dynVal(elf.DT_STRSZ)
	old, err := w.f.Read(w.oldStrtab, int(min(strsz, MaxNewSize)))
	if err != nil || strsz > MaxNewSize {
		return &Error{File: w.name, Kind: ErrUnsupported, Msg: "DT_STRTAB/DT_STRSZ not file-backed", Addr: w.oldStrtab, HasAddr: true, Err: err}
	}
	w.dynstr = slices.Clone(old)
	str := func(off uint64) string {
		if off >= uint64(len(old)) {
			return ""
		}
		s := old[off:]
		if i := bytes.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		return string(s)
	}
	add := func(s string) uint64 {
		off := uint64(len(w.dynstr))
		w.dynstr = append(w.dynstr, s...)
		w.dynstr = append(w.dynstr, 0)
		return off
	}

	have := map[elf.DynTag]bool{}
	needed := map[string]bool{}
	lastNeeded := -1
	for i, d := range r.dyn {
		t := elf.DynTag(d.Tag)
		have[t] = true
		if t == elf.DT_NEEDED {
			needed[str(d.Val)] = true
			lastNeeded = i
		}
	}
	var newNeeded []elf.Dyn64
	for _, n := range p.Needed {
		if n == "" || strings.IndexByte(n, 0) >= 0 {
			return w.planErr("bad DT_NEEDED name %q", n)
		}
		if !needed[n] {
			needed[n] = true
			newNeeded = append(newNeeded, elf.Dyn64{Tag: int64(elf.DT_NEEDED), Val: add(n)})
		}
	}
	if strings.IndexByte(p.RunPath, 0) >= 0 {
		return w.planErr("bad run path %q", p.RunPath)
	}
	seen := map[elf.DynTag]bool{}
	for _, d := range p.DynTags {
		switch d.Tag {
		case elf.DT_NULL, elf.DT_NEEDED, elf.DT_STRTAB, elf.DT_STRSZ, elf.DT_RPATH, elf.DT_RUNPATH:
			return w.planErr("dynamic tag %v is managed by the writer", d.Tag)
		}
		if have[d.Tag] || seen[d.Tag] {
			return w.planErr("dynamic tag %v already present", d.Tag)
		}
		seen[d.Tag] = true
	}

	if lastNeeded < 0 {
		w.dyn = append(w.dyn, newNeeded...)
	}
	for i, d := range r.dyn {
		w.dyn = append(w.dyn, d)
		if i == lastNeeded {
			w.dyn = append(w.dyn, newNeeded...)
		}
	}
	// ld.so keeps the last entry of a tag; every DT_STRTAB and DT_STRSZ is
	// updated, and the last search path is the one extended.
	pathIdx := -1
	for i, d := range w.dyn {
		switch elf.DynTag(d.Tag) {
		case elf.DT_STRTAB:
			w.strtabIdx = append(w.strtabIdx, i)
		case elf.DT_STRSZ:
			w.strszIdx = append(w.strszIdx, i)
		case elf.DT_RUNPATH:
			pathIdx = i
		case elf.DT_RPATH:
			if pathIdx < 0 || elf.DynTag(w.dyn[pathIdx].Tag) == elf.DT_RPATH {
				pathIdx = i
			}
		}
	}
	if p.RunPath != "" {
		if pathIdx < 0 {
			w.dyn = append(w.dyn, elf.Dyn64{Tag: int64(elf.DT_RUNPATH), Val: add(p.RunPath)})
		} else if old := str(w.dyn[pathIdx].Val); old == "" {
			w.dyn[pathIdx].Val = add(p.RunPath)
		} else if old != p.RunPath && !strings.HasPrefix(old, p.RunPath+":") {
			w.dyn[pathIdx].Val = add(p.RunPath + ":" + old)
		}
	}
	for _, d := range p.DynTags {
		w.dyn = append(w.dyn, elf.Dyn64{Tag: int64(d.Tag), Val: d.Val})
	}
	w.dyn = append(w.dyn, elf.Dyn64{Tag: int64(elf.DT_NULL)})
	w.dyn = append(w.dyn, r.dynTail...)
	return nil
}
