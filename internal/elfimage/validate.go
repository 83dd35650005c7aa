package elfimage

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// ELF64 header field offsets and sizes (System V gABI).
const (
	ehdrSize   = 64
	phdrSize   = 56
	shdrSize   = 64
	offType    = 16
	offMachine = 18
	offVersion = 20
	offPhoff   = 32
	offShoff   = 40
	offPhentsz = 54
	offPhnum   = 56
	offShentsz = 58
	offShnum   = 60
	offShstrnd = 62

	pnXNum   = 0xffff // PN_XNUM
	shnXIndx = 0xffff // SHN_XINDEX
	shnLoRes = 0xff00 // SHN_LORESERVE
)

// validate checks everything debug/elf would trust or allocate from: the
// identification, machine and type, the header tables' sizes and bounds,
// every section's and segment's file range, and the PT_LOAD layout.
func validate(data []byte, name string) error {
	bad := func(off int64, msg string, val any) error {
		return &FormatError{File: name, Off: off, Msg: msg, Val: val}
	}
	size := uint64(len(data))
	if size < 4 || string(data[:4]) != elf.ELFMAG {
		return bad(0, "not an ELF file (bad magic number)", data[:min(4, len(data))])
	}
	if size < elf.EI_NIDENT {
		return bad(0, "truncated ELF header", fmt.Sprintf("%d bytes", size))
	}
	switch c := elf.Class(data[elf.EI_CLASS]); c {
	case elf.ELFCLASS64:
	case elf.ELFCLASS32:
		return bad(elf.EI_CLASS, "32-bit ELF; only x86-64 (ELFCLASS64) is supported", nil)
	default:
		return bad(elf.EI_CLASS, "unknown ELF class", c)
	}
	switch d := elf.Data(data[elf.EI_DATA]); d {
	case elf.ELFDATA2LSB:
	case elf.ELFDATA2MSB:
		return bad(elf.EI_DATA, "big-endian ELF; only little-endian x86-64 is supported", nil)
	default:
		return bad(elf.EI_DATA, "unknown ELF data encoding", d)
	}
	if v := elf.Version(data[elf.EI_VERSION]); v != elf.EV_CURRENT {
		return bad(elf.EI_VERSION, "unknown ELF version", v)
	}
	if size < ehdrSize {
		return bad(0, "truncated ELF header", fmt.Sprintf("%d bytes", size))
	}
	le := binary.LittleEndian
	if m := elf.Machine(le.Uint16(data[offMachine:])); m != elf.EM_X86_64 {
		return bad(offMachine, fmt.Sprintf("machine %v; only x86-64 is supported", m), nil)
	}
	switch t := elf.Type(le.Uint16(data[offType:])); t {
	case elf.ET_EXEC, elf.ET_DYN:
	case elf.ET_REL:
		return bad(offType, "relocatable object (ET_REL), not an executable or shared object", nil)
	case elf.ET_CORE:
		return bad(offType, "core file (ET_CORE), not an executable or shared object", nil)
	default:
		return bad(offType, "not an executable or shared object", t)
	}
	if v := elf.Version(le.Uint32(data[offVersion:])); v != elf.EV_CURRENT {
		return bad(offVersion, "mismatched ELF version", v)
	}

	// Program header table.
	phoff := le.Uint64(data[offPhoff:])
	phnum := uint64(le.Uint16(data[offPhnum:]))
	if phnum == pnXNum {
		return bad(offPhnum, "extended program header numbering (PN_XNUM) is not supported", nil)
	}
	if phnum > 0 {
		if es := le.Uint16(data[offPhentsz:]); es != phdrSize {
			return bad(offPhentsz, "bad e_phentsize", es)
		}
		if phoff > size || phnum*phdrSize > size-phoff {
			return bad(offPhoff, "program header table out of file bounds", fmt.Sprintf("%d headers at %#x", phnum, phoff))
		}
	}

	// Section header table, with the extended numbering of the gABI.
	shoff := le.Uint64(data[offShoff:])
	shnum := uint64(le.Uint16(data[offShnum:]))
	shstrndx := uint64(le.Uint16(data[offShstrnd:]))
	if shoff == 0 {
		if shnum != 0 {
			return bad(offShnum, "e_shnum set without a section header table", shnum)
		}
		shstrndx = 0
	} else {
		if es := le.Uint16(data[offShentsz:]); es != shdrSize {
			return bad(offShentsz, "bad e_shentsize", es)
		}
		if shoff > size || shdrSize > size-shoff {
			return bad(offShoff, "section header table out of file bounds", shoff)
		}
		sh0 := data[shoff:]
		if shnum == 0 {
			if elf.SectionType(le.Uint32(sh0[4:])) != elf.SHT_NULL {
				return bad(int64(shoff), "first section header is not SHT_NULL", nil)
			}
			shnum = le.Uint64(sh0[32:]) // sh_size
			if shnum < shnLoRes {
				return bad(int64(shoff)+32, "bad extended section count", shnum)
			}
			if shstrndx == shnXIndx {
				shstrndx = uint64(le.Uint32(sh0[40:])) // sh_link
			}
		}
		if shnum > (size-shoff)/shdrSize {
			return bad(offShoff, "section header table out of file bounds", fmt.Sprintf("%d headers at %#x", shnum, shoff))
		}
		if shstrndx >= shnum {
			return bad(offShstrnd, "section name string table index out of range", shstrndx)
		}
	}

	for i := uint64(0); i < shnum; i++ {
		hoff := shoff + i*shdrSize
		sh := data[hoff : hoff+shdrSize]
		typ := elf.SectionType(le.Uint32(sh[4:]))
		flags := elf.SectionFlag(le.Uint64(sh[8:]))
		off, sz := le.Uint64(sh[24:]), le.Uint64(sh[32:])
		if i == shstrndx && i != 0 && typ != elf.SHT_STRTAB {
			return bad(int64(hoff), "section name string table is not SHT_STRTAB", typ)
		}
		if flags&elf.SHF_COMPRESSED != 0 && (typ != elf.SHT_PROGBITS || flags&elf.SHF_ALLOC != 0) {
			// debug/elf would inflate it on read, with no bound but the
			// header's claim: only non-allocated PROGBITS (debug info) may be
			// compressed, and this package never inflates those.
			return bad(int64(hoff), fmt.Sprintf("section %d: compressed %v section not supported", i, typ), nil)
		}
		if typ == elf.SHT_NOBITS || typ == elf.SHT_NULL {
			continue // no file data (section 0's sh_size may hold the section count)
		}
		if off > size || sz > size-off {
			return bad(int64(hoff), fmt.Sprintf("section %d data out of file bounds (offset %#x size %#x, file size %#x)", i, off, sz, size), nil)
		}
	}

	var loads, prevEnd uint64
	for i := uint64(0); i < phnum; i++ {
		hoff := phoff + i*phdrSize
		ph := data[hoff : hoff+phdrSize]
		typ := elf.ProgType(le.Uint32(ph))
		off, vaddr := le.Uint64(ph[8:]), le.Uint64(ph[16:])
		filesz, memsz := le.Uint64(ph[32:]), le.Uint64(ph[40:])
		if off > size || filesz > size-off {
			return bad(int64(hoff), fmt.Sprintf("program header %d (%v) data out of file bounds (offset %#x size %#x, file size %#x)", i, typ, off, filesz, size), nil)
		}
		if typ != elf.PT_LOAD {
			continue
		}
		if filesz > memsz {
			return bad(int64(hoff), fmt.Sprintf("program header %d (PT_LOAD) file size exceeds memory size", i), filesz)
		}
		if vaddr+memsz < vaddr {
			return bad(int64(hoff), fmt.Sprintf("program header %d (PT_LOAD) wraps the address space", i), vaddr)
		}
		// ld.so maps the image from the first PT_LOAD to the end of the last:
		// they must ascend and not overlap.
		if loads > 0 && vaddr < prevEnd {
			return bad(int64(hoff), fmt.Sprintf("program header %d (PT_LOAD) overlaps or precedes the previous PT_LOAD", i), vaddr)
		}
		prevEnd = vaddr + memsz
		loads++
	}
	if loads == 0 {
		return bad(-1, "no PT_LOAD segment", nil)
	}
	return nil
}
