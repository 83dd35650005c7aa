package elfpatch

import (
	"cmp"
	"debug/elf"
	"slices"
	"sort"
	"strings"
)

// relocTarget is the range a dynamic relocation writes at load time.
type relocTarget struct {
	addr, end uint64
	typ       elf.R_X86_64
}

// relaTables returns the RELA entries ld.so applies (DT_RELA/DT_RELASZ and,
// when DT_PLTREL is DT_RELA, DT_JMPREL/DT_PLTRELSZ) as (file offset of the
// entry, entry bytes) pairs.
func (w *writer) relaTables(yield func(off uint64, ent []byte)) error {
	r := w.r
	tables := [][2]elf.DynTag{{elf.DT_RELA, elf.DT_RELASZ}}
	if v, ok := r.dynVal(elf.DT_PLTREL); ok && elf.DynTag(v) == elf.DT_RELA {
		tables = append(tables, [2]elf.DynTag{elf.DT_JMPREL, elf.DT_PLTRELSZ})
	}
	for _, t := range tables {
		addr, ok1 := r.dynVal(t[0])
		size, ok2 := r.dynVal(t[1])
		if !ok1 || !ok2 || size == 0 {
			continue
		}
		off, ok := w.l.fileOffset(addr, size)
		if !ok {
			return &Error{File: w.name, Kind: ErrUnsupported, Msg: "relocation table " + t[0].String() + " not file-backed", Addr: addr, HasAddr: true}
		}
		for i := uint64(0); i+relaSize <= size; i += relaSize {
			yield(off+i, w.r.data[off+i:off+i+relaSize])
		}
	}
	return nil
}

// checkEdits validates Writes and Relatives and records them as spans of
// the input file.
func (w *writer) checkEdits() error {
	p := w.p
	if len(p.Writes) == 0 && len(p.Relatives) == 0 {
		return nil
	}
	addends := map[uint64][]uint64{} // RELATIVE location -> file offsets of its addends
	var targets []relocTarget
	if err := w.relaTables(func(off uint64, ent []byte) {
		where, typ := le.Uint64(ent), elf.R_X86_64(uint32(le.Uint64(ent[8:])))
		if typ == elf.R_X86_64_RELATIVE {
			addends[where] = append(addends[where], off+16)
		}
		if typ != elf.R_X86_64_NONE {
			targets = append(targets, relocTarget{where, where + relocSize(typ), typ})
		}
	}); err != nil {
		return err
	}
	_, hasRELR := w.r.dynVal(dtRELR)
	for where := range w.f.Relative { // includes DT_RELR
		targets = append(targets, relocTarget{where, where + 8, elf.R_X86_64_RELATIVE})
	}
	slices.SortFunc(targets, func(a, b relocTarget) int { return cmp.Compare(a.addr, b.addr) })

	w.edits = append(w.edits, span{off: 0, end: ehdrSize, what: "the ELF header"})
	seen := map[uint64]bool{}
	for _, e := range p.Relatives {
		if seen[e.Location] {
			return addrErr(w.name, ErrPlan, e.Location, "two relative edits")
		}
		seen[e.Location] = true
		offs := addends[e.Location]
		if len(offs) == 0 {
			if _, ok := w.f.Relative[e.Location]; ok && hasRELR {
				return addrErr(w.name, ErrRELR, e.Location, "RELR not supported: the relative relocation is DT_RELR-encoded")
			}
			return addrErr(w.name, ErrPlan, e.Location, "no R_X86_64_RELATIVE relocation in DT_RELA")
		}
		for _, off := range offs {
			w.edits = append(w.edits, span{off: off, end: off + 8, addr: e.Location, what: "the addend of the relocation",
				bytes: le.AppendUint64(nil, e.NewValue)})
		}
	}
	for _, e := range p.Writes {
		n := uint64(len(e.Bytes))
		if n == 0 {
			return addrErr(w.name, ErrPlan, e.Addr, "empty write")
		}
		off, ok := w.l.fileOffset(e.Addr, n)
		if !ok {
			return addrErr(w.name, ErrPlan, e.Addr, "write of %d bytes not inside the file-backed part of a PT_LOAD", n)
		}
		// Targets are at most 8 bytes long: only those starting after
		// e.Addr-8 can overlap.
		i := sort.Search(len(targets), func(i int) bool { return targets[i].addr+8 > e.Addr })
		for ; i < len(targets) && targets[i].addr < e.Addr+n; i++ {
			if targets[i].end > e.Addr {
				return addrErr(w.name, ErrPlan, e.Addr, "write of %d bytes overlaps the target of a %v relocation at %#x (ld.so overwrites it; use a relative edit for pointers)",
					n, targets[i].typ, targets[i].addr)
			}
		}
		w.edits = append(w.edits, span{off: off, end: off + n, addr: e.Addr, what: "a write", bytes: e.Bytes})
	}
	slices.SortFunc(w.edits, func(a, b span) int { return cmp.Compare(a.off, b.off) })
	for i := 1; i < len(w.edits); i++ {
		a, b := w.edits[i-1], w.edits[i]
		if b.off < a.end {
			return addrErr(w.name, ErrPlan, b.addr, "%s overlaps %s (file offsets %#x and %#x)", b.what, a.what, b.off, a.off)
		}
	}
	return nil
}

// relocSize is the number of bytes a relocation of type t writes.
func relocSize(t elf.R_X86_64) uint64 {
	switch t {
	case elf.R_X86_64_32, elf.R_X86_64_32S, elf.R_X86_64_PC32, elf.R_X86_64_DTPOFF32, elf.R_X86_64_TPOFF32:
		return 4
	case elf.R_X86_64_16, elf.R_X86_64_PC16:
		return 2
	case elf.R_X86_64_8, elf.R_X86_64_PC8:
		return 1
	}
	return 8
}

// checkSections validates the plan's sections and prepares their headers
// (names are filled in with .shstrtab).
func (w *writer) checkSections() error {
	l, p := w.l, w.p
	names := map[string]bool{}
	for _, s := range w.f.Sections {
		names[s.Name] = true
	}
	textEnd := l.TextAddr + uint64(len(p.Text))
	dataEnd := l.DataAddr + w.dataMem
	for _, s := range p.Sections {
		bad := func(format string, args ...any) error {
			return addrErr(w.name, ErrPlan, s.Addr, "section %q: "+format, append([]any{s.Name}, args...)...)
		}
		if s.Name == "" || strings.IndexByte(s.Name, 0) >= 0 {
			return bad("bad name")
		}
		if names[s.Name] {
			return bad("name already in use")
		}
		names[s.Name] = true
		if s.Type != elf.SHT_PROGBITS && s.Type != elf.SHT_NOBITS {
			return bad("type %v (want SHT_PROGBITS or SHT_NOBITS)", s.Type)
		}
		if s.Flags&elf.SHF_ALLOC == 0 {
			return bad("not SHF_ALLOC")
		}
		align := max(s.Addralign, 1)
		if align&(align-1) != 0 || s.Addr%align != 0 {
			return bad("address not aligned to %#x", s.Addralign)
		}
		var off uint64
		switch {
		case len(p.Text) > 0 && s.Addr >= l.TextAddr && s.Addr <= textEnd && s.Size <= textEnd-s.Addr:
			if s.Flags&elf.SHF_WRITE != 0 {
				return bad("writable section over text")
			}
			off = l.TextOff + (s.Addr - l.TextAddr)
		case s.Addr >= l.DataAddr && s.Addr <= dataEnd && s.Size <= dataEnd-s.Addr:
			if s.Flags&elf.SHF_EXECINSTR != 0 {
				return bad("executable section over data")
			}
			off = l.DataOff + (s.Addr - l.DataAddr)
		default:
			return bad("[%#x, +%#x) not inside the new text or the plan's data", s.Addr, s.Size)
		}
		w.newSectNms = append(w.newSectNms, s.Name)
		w.newSects = append(w.newSects, elf.Section64{Type: uint32(s.Type), Flags: uint64(s.Flags),
			Addr: s.Addr, Off: off, Size: s.Size, Addralign: align})
	}
	return nil
}
