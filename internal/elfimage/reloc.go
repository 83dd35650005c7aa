package elfimage

import (
	"debug/elf"
	"encoding/binary"
	"errors"

	"golang.org/x/arch/x86/x86asm"

	"github.com/redmagic-patch/redmagic-patch/internal/ehframe"
)

const (
	shtRELR  elf.SectionType = 19 // SHT_RELR: not named by debug/elf
	relaSize                 = 24
)

// relocations reads the dynamic relocations: every allocated SHT_RELA and
// SHT_RELR section. Non-allocated RELA sections (from --emit-relocs) are
// link-time relocations and are ignored.
func (b *builder) relocations() error {
	f := b.f
	f.GOTSlots = make(map[uint64]string)
	f.Relative = make(map[uint64]uint64)
	for i := range f.Sections {
		s := &f.Sections[i]
		if s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		var err error
		switch s.Type {
		case elf.SHT_RELA:
			// f.Sections omits the null section that debug/elf keeps.
			err = b.rela(s, b.ef.Sections[i+1].Link)
		case shtRELR:
			err = b.relr(s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// symbolsFor returns the symbols of the table a relocation section links
// to (index i is symbol i+1, as debug/elf returns them), or nil.
func (b *builder) symbolsFor(link uint32) []elf.Symbol {
	if link == 0 || int(link) >= len(b.ef.Sections) {
		return nil
	}
	// debug/elf reads the first table of each type; use it only if it is
	// the one linked.
	t := b.ef.Sections[link].Type
	if b.ef.SectionByType(t) != b.ef.Sections[link] {
		return nil
	}
	switch t {
	case elf.SHT_DYNSYM:
		return b.dynsym
	case elf.SHT_SYMTAB:
		return b.symtab
	}
	return nil
}

func (b *builder) rela(s *Section, link uint32) error {
	f := b.f
	data, err := f.SectionData(s)
	if err != nil {
		return err
	}
	if len(data)%relaSize != 0 {
		return &FormatError{File: f.Name, Off: int64(s.Offset), Msg: "relocation section " + s.Name + " size not a multiple of 24", Val: s.Size}
	}
	syms := b.symbolsFor(link)
	for off := 0; off < len(data); off += relaSize {
		where := binary.LittleEndian.Uint64(data[off:])
		info := binary.LittleEndian.Uint64(data[off+8:])
		addend := binary.LittleEndian.Uint64(data[off+16:])
		symIdx := info >> 32
		var sym *elf.Symbol
		if symIdx > 0 && symIdx <= uint64(len(syms)) {
			sym = &syms[symIdx-1]
		}
		switch elf.R_X86_64(uint32(info)) {
		case elf.R_X86_64_RELATIVE:
			f.Relative[where] = addend
		case elf.R_X86_64_64:
			if sym != nil && elf.ST_BIND(sym.Info) == elf.STB_LOCAL && sym.Section != elf.SHN_UNDEF &&
				sym.Section < elf.SHN_LORESERVE && elf.ST_TYPE(sym.Info) != elf.STT_TLS {
				f.Relative[where] = sym.Value + addend
			}
		case elf.R_X86_64_GLOB_DAT, elf.R_X86_64_JMP_SLOT:
			if sym != nil && sym.Name != "" {
				f.GOTSlots[where] = cutVersion(sym.Name)
			}
		}
	}
	return nil
}

// relr decodes a DT_RELR table: an even entry is an address to relocate;
// an odd entry is a bitmap of the 63 words after the last address. The
// implicit addend is the pointer already stored in the file.
func (b *builder) relr(s *Section) error {
	f := b.f
	data, err := f.SectionData(s)
	if err != nil {
		return err
	}
	if len(data)%8 != 0 {
		return &FormatError{File: f.Name, Off: int64(s.Offset), Msg: "relocation section " + s.Name + " size not a multiple of 8", Val: s.Size}
	}
	add := func(i int, where uint64) error {
		v, err := f.Read(where, 8)
		if err != nil {
			return &FormatError{File: f.Name, Off: int64(s.Offset) + int64(i), Msg: "RELR relocation of memory without file data", Val: where, Err: err}
		}
		f.Relative[where] = binary.LittleEndian.Uint64(v)
		return nil
	}
	var next uint64 // the word after the last address entry
	for i := 0; i < len(data); i += 8 {
		e := binary.LittleEndian.Uint64(data[i:])
		if e&1 == 0 {
			if err := add(i, e); err != nil {
				return err
			}
			next = e + 8
			continue
		}
		if i == 0 {
			return &FormatError{File: f.Name, Off: int64(s.Offset), Msg: "RELR table starts with a bitmap", Val: e}
		}
		for j, bits := uint64(0), e>>1; bits != 0; j, bits = j+1, bits>>1 {
			if bits&1 != 0 {
				if err := add(i, next+j*8); err != nil {
					return err
				}
			}
		}
		next += 63 * 8
	}
	return nil
}

// imports maps PLT stubs to imported symbols by decoding each stub's
// `jmp *slot(%rip)` (optionally after endbr64 and with a bnd prefix) and
// naming the GOT slot from its relocation. The lazy-binding entries of an
// IBT .plt (endbr64; push; jmp .plt) and PLT0 map to no symbol slot and are
// skipped, as are IRELATIVE slots, which have no symbol.
func (b *builder) imports() {
	f := b.f
	f.Imports = make(map[uint64]string)
	for i := range b.ef.Sections {
		if i == 0 {
			continue
		}
		es := b.ef.Sections[i].Entsize
		s := &f.Sections[i-1]
		step := uint64(16)
		switch s.Name {
		case ".plt", ".plt.sec":
		case ".plt.got":
			step = 8
		default:
			continue
		}
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_EXECINSTR == 0 {
			continue
		}
		if es == 8 || es == 16 {
			step = es
		}
		data, err := f.SectionData(s)
		if err != nil {
			continue
		}
		for off := uint64(0); off < uint64(len(data)); off += step {
			stub := s.Addr + off
			if slot, ok := gotSlot(data[off:min(off+step, uint64(len(data)))], stub); ok {
				if name, ok := f.GOTSlots[slot]; ok {
					f.Imports[stub] = name
				}
			}
		}
	}
}

var endbr64 = []byte{0xf3, 0x0f, 0x1e, 0xfa}

// gotSlot decodes a PLT entry at address pc and returns the slot its
// `jmp *slot(%rip)` reads.
func gotSlot(code []byte, pc uint64) (uint64, bool) {
	n := 0
	if len(code) >= 4 && string(code[:4]) == string(endbr64) {
		n = 4 // x86asm misdecodes endbr64 (golang/go#35865)
	}
	inst, err := x86asm.Decode(code[n:], 64)
	if err != nil || inst.Op != x86asm.JMP {
		return 0, false
	}
	m, ok := inst.Args[0].(x86asm.Mem)
	if !ok || m.Base != x86asm.RIP || m.Index != 0 || m.Segment != 0 {
		return 0, false
	}
	// x86asm zero-extends 32-bit displacements: sign-extend them here.
	return pc + uint64(n+inst.Len) + uint64(int64(int32(m.Disp))), true
}

// ehFrame parses .eh_frame, wrapping its errors with the file name.
func (b *builder) ehFrame() error {
	f := b.f
	s := f.Section(".eh_frame")
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil
	}
	data, err := f.SectionData(s)
	if err != nil {
		return err
	}
	fdes, err := ehframe.Parse(data, s.Addr)
	if err != nil {
		off := int64(-1)
		var fe *ehframe.FormatError
		if errors.As(err, &fe) {
			off = int64(s.Offset + fe.Off)
		}
		return &FormatError{File: f.Name, Off: off, Msg: "malformed .eh_frame", Err: err}
	}
	f.FDEs = fdes
	return nil
}

// codePointers collects the constructor and destructor pointers. Entries
// that do not point into code (0, -1 sentinels, symbolic relocations against
// other objects) are skipped.
func (b *builder) codePointers() {
	f := b.f
	for _, t := range []elf.SectionType{elf.SHT_PREINIT_ARRAY, elf.SHT_INIT_ARRAY, elf.SHT_FINI_ARRAY} {
		for i := range f.Sections {
			s := &f.Sections[i]
			if s.Type != t || s.Flags&elf.SHF_ALLOC == 0 {
				continue
			}
			for a := uint64(0); a+8 <= s.Size; a += 8 {
				if p, ok := f.ReadPointer(s.Addr + a); ok && f.IsCode(p) {
					f.CodePointers = append(f.CodePointers, p)
				}
			}
		}
	}
}
