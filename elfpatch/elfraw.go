package elfpatch

import (
	"debug/elf"
	"encoding/binary"
)

// The raw ELF64 structures the writer copies and rewrites. elfimage
// validates the input; these readers still bound every access, so that an
// input that slipped through cannot make the writer panic.

var le = binary.LittleEndian

const (
	ehdrSize = 64
	phdrSize = 56
	shdrSize = 64
	dynSize  = 16
	relaSize = 24

	offPhoff   = 32
	offShoff   = 40
	offPhnum   = 56
	offShnum   = 60
	offShstrnd = 62

	shnLoReserve = 0xff00 // SHN_LORESERVE
	shnXIndex    = 0xffff // SHN_XINDEX
	pnXNum       = 0xffff // PN_XNUM

	dtRELR = 36 // DT_RELR (not named by debug/elf)
)

// rawFile is the input's headers as stored.
type rawFile struct {
	name     string
	data     []byte
	progs    []elf.Prog64
	sects    []elf.Section64 // all of them, including index 0
	shstrndx uint32
	dynIdx   int         // index of PT_DYNAMIC in progs, or -1
	dyn      []elf.Dyn64 // the dynamic entries before the first DT_NULL
	// dynTail is what PT_DYNAMIC holds after its first DT_NULL: spare
	// DT_NULLs from the linker, or entries ld.so never reads but tools
	// that scan the whole section do. The copy keeps them.
	dynTail []elf.Dyn64
}

func decodeProg(b []byte) elf.Prog64 {
	return elf.Prog64{
		Type: le.Uint32(b), Flags: le.Uint32(b[4:]),
		Off: le.Uint64(b[8:]), Vaddr: le.Uint64(b[16:]), Paddr: le.Uint64(b[24:]),
		Filesz: le.Uint64(b[32:]), Memsz: le.Uint64(b[40:]), Align: le.Uint64(b[48:]),
	}
}

func appendProg(b []byte, p elf.Prog64) []byte {
	b = le.AppendUint32(b, p.Type)
	b = le.AppendUint32(b, p.Flags)
	for _, v := range []uint64{p.Off, p.Vaddr, p.Paddr, p.Filesz, p.Memsz, p.Align} {
		b = le.AppendUint64(b, v)
	}
	return b
}

func decodeSection(b []byte) elf.Section64 {
	return elf.Section64{
		Name: le.Uint32(b), Type: le.Uint32(b[4:]), Flags: le.Uint64(b[8:]),
		Addr: le.Uint64(b[16:]), Off: le.Uint64(b[24:]), Size: le.Uint64(b[32:]),
		Link: le.Uint32(b[40:]), Info: le.Uint32(b[44:]),
		Addralign: le.Uint64(b[48:]), Entsize: le.Uint64(b[56:]),
	}
}

func appendSection(b []byte, s elf.Section64) []byte {
	b = le.AppendUint32(b, s.Name)
	b = le.AppendUint32(b, s.Type)
	for _, v := range []uint64{s.Flags, s.Addr, s.Off, s.Size} {
		b = le.AppendUint64(b, v)
	}
	b = le.AppendUint32(b, s.Link)
	b = le.AppendUint32(b, s.Info)
	b = le.AppendUint64(b, s.Addralign)
	return le.AppendUint64(b, s.Entsize)
}

func appendDyn(b []byte, d elf.Dyn64) []byte {
	b = le.AppendUint64(b, uint64(d.Tag))
	return le.AppendUint64(b, d.Val)
}

// inFile reports whether [off, off+n) lies within a file of size size.
func inFile(off, n, size uint64) bool { return off <= size && n <= size-off }

// parseRaw reads the headers of data, already validated by elfimage.
func parseRaw(data []byte, name string) (*rawFile, error) {
	r := &rawFile{name: name, data: data, dynIdx: -1}
	size := uint64(len(data))
	bad := func(format string, args ...any) error { return newErr(name, ErrUnsupported, format, args...) }
	if size < ehdrSize {
		return nil, bad("truncated ELF header")
	}
	phoff := le.Uint64(data[offPhoff:])
	phnum := uint64(le.Uint16(data[offPhnum:]))
	if phnum == pnXNum || !inFile(phoff, phnum*phdrSize, size) {
		return nil, bad("program header table out of file bounds or extended (%d headers at %#x)", phnum, phoff)
	}
	for i := range phnum {
		r.progs = append(r.progs, decodeProg(data[phoff+i*phdrSize:]))
	}

	shoff := le.Uint64(data[offShoff:])
	shnum := uint64(le.Uint16(data[offShnum:]))
	r.shstrndx = uint32(le.Uint16(data[offShstrnd:]))
	if shoff == 0 {
		return nil, bad("no section header table")
	}
	if !inFile(shoff, shdrSize, size) {
		return nil, bad("section header table out of file bounds (%#x)", shoff)
	}
	sh0 := decodeSection(data[shoff:])
	if shnum == 0 {
		shnum = sh0.Size
	}
	if r.shstrndx == shnXIndex {
		r.shstrndx = sh0.Link
	}
	if shnum > (size-shoff)/shdrSize {
		return nil, bad("section header table out of file bounds (%d headers at %#x)", shnum, shoff)
	}
	if uint64(r.shstrndx) >= shnum || r.shstrndx == 0 {
		return nil, bad("no section name string table")
	}
	r.sects = make([]elf.Section64, shnum)
	for i := range shnum {
		s := decodeSection(data[shoff+i*shdrSize:])
		if s.Type != uint32(elf.SHT_NOBITS) && s.Type != uint32(elf.SHT_NULL) && !inFile(s.Off, s.Size, size) {
			return nil, bad("section %d out of file bounds", i)
		}
		r.sects[i] = s
	}
	if r.sects[r.shstrndx].Type != uint32(elf.SHT_STRTAB) {
		return nil, bad("section name string table is not SHT_STRTAB")
	}

	for i, p := range r.progs {
		if elf.ProgType(p.Type) != elf.PT_DYNAMIC {
			continue
		}
		if !inFile(p.Off, p.Filesz, size) {
			return nil, bad("PT_DYNAMIC out of file bounds")
		}
		r.dynIdx = i
		d := data[p.Off : p.Off+p.Filesz]
		ended := false
		for off := 0; off+dynSize <= len(d); off += dynSize {
			e := elf.Dyn64{Tag: int64(le.Uint64(d[off:])), Val: le.Uint64(d[off+8:])}
			switch {
			case ended:
				r.dynTail = append(r.dynTail, e)
			case elf.DynTag(e.Tag) == elf.DT_NULL:
				ended = true
			default:
				r.dyn = append(r.dyn, e)
			}
		}
		break
	}
	return r, nil
}

// dynVal returns the value of the last entry with tag t, the one ld.so
// uses.
func (r *rawFile) dynVal(t elf.DynTag) (uint64, bool) { return lastDyn(r.dyn, t) }

func lastDyn(dyn []elf.Dyn64, t elf.DynTag) (uint64, bool) {
	for i := len(dyn) - 1; i >= 0; i-- {
		if elf.DynTag(dyn[i].Tag) == t {
			return dyn[i].Val, true
		}
	}
	return 0, false
}

// Headers are a file's program headers and dynamic entries as stored, read
// with the writer's bounds checks: what a planner looks at to recognise its
// own patch, or to check a patched file as a loader would see it.
type Headers struct {
	Progs []elf.Prog64
	// Dynamic holds PT_DYNAMIC's entries before its first DT_NULL, the
	// ones ld.so reads.
	Dynamic []elf.Dyn64
}

// ReadHeaders reads the headers of data, an ELF file that elfimage
// accepted; name is used in errors. It refuses what NewLayout's reading
// refuses (tables out of bounds, no section name table).
func ReadHeaders(data []byte, name string) (*Headers, error) {
	r, err := parseRaw(data, name)
	if err != nil {
		return nil, err
	}
	return &Headers{Progs: r.progs, Dynamic: r.dyn}, nil
}

// DynValue returns the value of the last dynamic entry with tag t, the one
// ld.so uses.
func (h *Headers) DynValue(t elf.DynTag) (uint64, bool) { return lastDyn(h.Dynamic, t) }
