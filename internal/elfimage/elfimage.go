// Package elfimage owns the validated, read-only view of an x86-64 ELF
// executable or shared object that the analysis, the patch writer and the
// inspection of patched files work from: sections, PT_LOAD segments,
// function symbols, PLT imports, GOT slots, relative relocations, .eh_frame
// FDEs and constructor pointers, plus reads of file-backed memory by
// virtual address.
//
// The input is untrusted. Headers are validated here before debug/elf sees
// them, because debug/elf accepts some hostile sizes; every debug/elf call
// additionally runs under a recover that turns an internal panic into a
// *FormatError (defence in depth). Malformed input yields a one-line error
// naming the file and the cause, never a panic.
package elfimage

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/redmagic-patch/redmagic-patch/internal/ehframe"
)

// maxFileSize bounds what Open reads into memory. Interpreters are < 50 MB.
const maxFileSize = 1 << 30

// File is a validated x86-64 ELF image. Its fields and the slices returned
// by its methods are shared: callers must not modify them.
type File struct {
	Name      string   // the path or name given; used in errors
	Type      elf.Type // ET_EXEC or ET_DYN
	PIE       bool     // position-independent executable (see NewFile)
	Entry     uint64
	BuildID   string    // hex of NT_GNU_BUILD_ID, "" if none
	Interp    string    // PT_INTERP, "" if none
	Sections  []Section // in section-header order, excluding the null section
	Segments  []Segment // PT_LOAD only, in order (validated ascending and disjoint)
	Symbols   []Symbol  // defined STT_FUNC and STT_GNU_IFUNC symbols of .symtab and .dynsym, by Addr then Name, exact duplicates merged
	HasSymtab bool      // a non-empty .symtab was present

	// Imports maps a PLT stub (.plt, .plt.sec, .plt.got entry) to the
	// imported symbol whose GOT slot its `jmp *slot(%rip)` goes through,
	// without @version.
	Imports map[uint64]string
	// GOTSlots maps a GOT slot to the symbol of its R_X86_64_GLOB_DAT or
	// R_X86_64_JUMP_SLOT relocation (for `call *slot(%rip)`).
	GOTSlots map[uint64]string
	// Relative maps a location to the pointer the dynamic linker stores there
	// at load base 0: R_X86_64_RELATIVE and DT_RELR relocations, and
	// R_X86_64_64 against a defined local symbol.
	Relative map[uint64]uint64

	FDEs []ehframe.FDE // from .eh_frame, sorted by Start (nil if absent)
	// CodePointers are the entries of .preinit_array, .init_array and
	// .fini_array that point into code, resolved through Relative.
	CodePointers []uint64

	Static   bool // no PT_INTERP and no PT_DYNAMIC (statically linked)
	GoBinary bool // has a .go.buildinfo, .gopclntab or .note.go.buildid section or a Go build-ID note

	data   []byte
	byAddr []int       // indexes into Sections of allocated sections, by Addr
	maxEnd []uint64    // maxEnd[i]: largest end address among byAddr[:i+1]
	relro  [][2]uint64 // PT_GNU_RELRO ranges [start, end)
}

// Section is a section header.
type Section struct {
	Name   string
	Type   elf.SectionType
	Flags  elf.SectionFlag
	Addr   uint64
	Size   uint64 // sh_size
	Offset uint64
}

// Segment is a PT_LOAD program header.
type Segment struct {
	Vaddr, Memsz, Offset, Filesz uint64
	Flags                        elf.ProgFlag
}

// Symbol is a defined function symbol.
type Symbol struct {
	Name    string // without @version
	Addr    uint64
	Size    uint64
	Local   bool // STB_LOCAL
	Dynamic bool // present in .dynsym
}

// FormatError reports a malformed or unsupported ELF file.
type FormatError struct {
	File string
	Off  int64 // file offset of the offending data, or -1 if not known
	Msg  string
	Val  any   // the offending value, or nil
	Err  error // the underlying error (from ehframe or debug/elf), or nil
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteString(": ")
	// The message may hold a name read from the file (a section's):
	// a hostile one must not break the error's one line.
	b.WriteString(graphic(e.Msg))
	if e.Val != nil {
		b.WriteString(" (")
		b.WriteString(formatVal(e.Val))
		b.WriteString(")")
	}
	if e.Off >= 0 {
		fmt.Fprintf(&b, " at offset %#x", e.Off)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *FormatError) Unwrap() error { return e.Err }

// graphic returns s with each character that is not graphic (a newline,
// another control character, a byte that is not UTF-8) escaped as Go
// quotes it.
func graphic(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case unicode.IsGraphic(r):
			b.WriteString(s[:n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[n:]
	}
	return b.String()
}

// formatVal prints integers in hex and bytes quoted, as readelf users expect.
func formatVal(v any) string {
	switch v := v.(type) {
	case fmt.Stringer:
		return v.String()
	case []byte:
		return fmt.Sprintf("%q", v)
	case uint8, uint16, uint32, uint64, uint, int8, int16, int32, int64, int:
		return fmt.Sprintf("%#x", v)
	}
	return fmt.Sprint(v)
}

// AddrError reports a read of memory the image does not back with file bytes.
type AddrError struct {
	File string
	Addr uint64
	Len  int
	Msg  string
}

func (e *AddrError) Error() string {
	return fmt.Sprintf("%s: %s: %d bytes at %#x", e.File, e.Msg, e.Len, e.Addr)
}

// Open reads the file at path with ReadFile and calls NewFile.
func Open(path string) (*File, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return NewFile(data, path)
}

// ReadFile reads the file at path whole. It refuses, before reading a
// byte, anything OpenRegular refuses and files larger than 1 GiB (their
// size is what fstat says, so a sparse file costs nothing to refuse).
func ReadFile(path string) ([]byte, error) {
	fd, st, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	if st.Size() > maxFileSize {
		return nil, &FormatError{File: path, Off: -1, Msg: "file larger than 1 GiB", Val: st.Size()}
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(fd, data); err != nil {
		return nil, &FormatError{File: path, Off: -1, Msg: "read failed", Err: Cause(err)}
	}
	return data, nil
}

// OpenRegular opens path for reading and refuses anything but a regular
// file (a FIFO, a device, a directory) with a *FormatError. The file is
// opened with O_NONBLOCK and checked with fstat before anything is read:
// opening a FIFO would otherwise wait for a writer, and reading a device
// might never end. (O_NONBLOCK does not change reads of a regular file.)
// Errors name path and the cause, never the operation.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	fd, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, Cause(err))
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, Cause(err))
	}
	if !st.Mode().IsRegular() {
		fd.Close()
		return nil, nil, &FormatError{File: path, Off: -1, Msg: "not a regular file", Val: FileKind(st.Mode())}
	}
	return fd, st, nil
}

// Cause strips the operation and the path from an *fs.PathError or an
// *os.LinkError, so that a message can name the file the user gave (not a
// temporary one) once, with the cause: "FILE: no such file or directory".
func Cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// NewFile validates data as an x86-64 ELF executable or shared object and
// builds its view. name is used in errors. The File keeps data; the caller
// must not modify it afterwards.
//
// PIE is decided by DF_1_PIE when DT_FLAGS_1 is present (current linkers set
// it); without DT_FLAGS_1, an ET_DYN is taken as PIE when it has an entry
// point and PT_INTERP and no DT_SONAME. libc.so.6 has an entry point and
// PT_INTERP (it runs as a program) but a soname and no DF_1_PIE: not PIE.
//
// Static and Go binaries are not errors here; they are flagged.
func NewFile(data []byte, name string) (*File, error) {
	if uint64(len(data)) > maxFileSize {
		return nil, &FormatError{File: name, Off: -1, Msg: "file larger than 1 GiB", Val: len(data)}
	}
	if err := validate(data, name); err != nil {
		return nil, err
	}
	b := &builder{f: &File{Name: name, data: data}}
	if err := b.build(); err != nil {
		return nil, err
	}
	return b.f, nil
}

// builder holds the debug/elf view while a File is built.
type builder struct {
	f      *File
	ef     *elf.File
	symtab []elf.Symbol // from debug/elf: index i is symbol i+1
	dynsym []elf.Symbol
}

// safe runs fn, a call into debug/elf, converting a panic into an error.
// validate should make this unnecessary; it is defence in depth.
func (b *builder) safe(what string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &FormatError{File: b.f.Name, Off: -1, Msg: "debug/elf panicked in " + what, Val: fmt.Sprint(r)}
		}
	}()
	if err := fn(); err != nil {
		return &FormatError{File: b.f.Name, Off: -1, Msg: what, Err: err}
	}
	return nil
}

func (b *builder) build() error {
	f := b.f
	if err := b.safe("parsing ELF headers", func() (err error) {
		b.ef, err = elf.NewFile(bytes.NewReader(f.data))
		return err
	}); err != nil {
		return err
	}
	ef := b.ef
	f.Type = ef.Type
	f.Entry = ef.Entry

	for i, s := range ef.Sections {
		if i == 0 {
			continue
		}
		f.Sections = append(f.Sections, Section{Name: s.Name, Type: s.Type, Flags: s.Flags, Addr: s.Addr, Size: s.FileSize, Offset: s.Offset})
	}
	b.indexSections()

	hasDynamic := false
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			f.Segments = append(f.Segments, Segment{Vaddr: p.Vaddr, Memsz: p.Memsz, Offset: p.Off, Filesz: p.Filesz, Flags: p.Flags})
		case elf.PT_INTERP:
			if f.Interp == "" {
				s := f.data[p.Off : p.Off+p.Filesz]
				if i := bytes.IndexByte(s, 0); i >= 0 {
					s = s[:i]
				}
				f.Interp = string(s)
			}
		case elf.PT_DYNAMIC:
			hasDynamic = true
		case elf.PT_GNU_RELRO:
			f.relro = append(f.relro, [2]uint64{p.Vaddr, satAdd(p.Vaddr, p.Memsz)})
		}
	}
	f.Static = f.Interp == "" && !hasDynamic

	if !b.hasCode() {
		return &FormatError{File: f.Name, Off: -1, Msg: "no executable code (no SHF_EXECINSTR section inside an executable PT_LOAD)"}
	}

	if err := b.dynamicFlags(); err != nil {
		return err
	}
	b.notes()
	for _, s := range f.Sections {
		switch s.Name {
		case ".go.buildinfo", ".gopclntab", ".note.go.buildid":
			f.GoBinary = true
		}
	}
	if err := b.symbols(); err != nil {
		return err
	}
	if err := b.relocations(); err != nil {
		return err
	}
	b.imports()
	if err := b.ehFrame(); err != nil {
		return err
	}
	b.codePointers()
	return nil
}

// indexSections sorts the allocated sections that occupy address space
// (not .tbss, whose addresses overlap the next sections) for SectionAt.
func (b *builder) indexSections() {
	f := b.f
	for i, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		if s.Flags&elf.SHF_TLS != 0 && s.Type == elf.SHT_NOBITS {
			continue
		}
		f.byAddr = append(f.byAddr, i)
	}
	sort.SliceStable(f.byAddr, func(i, j int) bool {
		return f.Sections[f.byAddr[i]].Addr < f.Sections[f.byAddr[j]].Addr
	})
	f.maxEnd = make([]uint64, len(f.byAddr))
	var m uint64
	for i, si := range f.byAddr {
		s := &f.Sections[si]
		m = max(m, satAdd(s.Addr, s.Size))
		f.maxEnd[i] = m
	}
}

// hasCode reports whether some non-empty file-backed SHF_EXECINSTR section
// starts inside an executable PT_LOAD.
func (b *builder) hasCode() bool {
	for _, s := range b.f.Sections {
		if s.Flags&(elf.SHF_ALLOC|elf.SHF_EXECINSTR) != elf.SHF_ALLOC|elf.SHF_EXECINSTR || s.Type == elf.SHT_NOBITS || s.Size == 0 {
			continue
		}
		if seg := b.f.SegmentAt(s.Addr); seg != nil && seg.Flags&elf.PF_X != 0 {
			return true
		}
	}
	return false
}

// dynamicFlags decides PIE (see NewFile) from the dynamic entries ld.so
// reads: PT_DYNAMIC up to its first DT_NULL. The .dynamic section header
// can disagree with the segment in a damaged file, and a patched file's
// copy of the table keeps whatever followed that DT_NULL; reading the
// segment gives both the same answer.
func (b *builder) dynamicFlags() error {
	f := b.f
	if f.Type != elf.ET_DYN {
		return nil
	}
	var flags1 uint64
	hasFlags1, hasSoname := false, false
	for _, p := range b.ef.Progs {
		if p.Type != elf.PT_DYNAMIC {
			continue
		}
		if p.Off > uint64(len(f.data)) || p.Filesz > uint64(len(f.data))-p.Off {
			return &FormatError{File: f.Name, Off: int64(p.Off), Msg: "PT_DYNAMIC out of file bounds", Val: p.Filesz}
		}
		d := f.data[p.Off : p.Off+p.Filesz]
		for off := 0; off+16 <= len(d); off += 16 {
			tag, val := elf.DynTag(binary.LittleEndian.Uint64(d[off:])), binary.LittleEndian.Uint64(d[off+8:])
			if tag == elf.DT_NULL {
				break
			}
			switch tag {
			case elf.DT_FLAGS_1:
				flags1, hasFlags1 = val, true // ld.so keeps the last
			case elf.DT_SONAME:
				hasSoname = true
			}
		}
		break
	}
	if hasFlags1 {
		f.PIE = elf.DynFlag1(flags1)&elf.DF_1_PIE != 0
	} else {
		f.PIE = f.Entry != 0 && f.Interp != "" && !hasSoname
	}
	return nil
}

const (
	ntGNUBuildID = 3 // NT_GNU_BUILD_ID
	ntGoBuildID  = 4 // the Go linker's build-ID note ("Go" owner)
)

// notes reads the build ID and Go notes from SHT_NOTE sections and PT_NOTE
// segments. A malformed note ends its section's walk: notes are
// informational and the kernel ignores them.
func (b *builder) notes() {
	f := b.f
	visit := func(data []byte, align uint64) {
		walkNotes(data, align, func(name string, typ uint32, desc []byte) {
			switch {
			case name == "GNU" && typ == ntGNUBuildID && f.BuildID == "":
				f.BuildID = hex.EncodeToString(desc)
			case name == "Go" && typ == ntGoBuildID:
				f.GoBinary = true
			}
		})
	}
	for _, s := range b.ef.Sections[min(1, len(b.ef.Sections)):] {
		if s.Type == elf.SHT_NOTE && s.Flags&elf.SHF_COMPRESSED == 0 {
			visit(f.data[s.Offset:s.Offset+s.FileSize], s.Addralign)
		}
	}
	for _, p := range b.ef.Progs {
		if p.Type == elf.PT_NOTE {
			visit(f.data[p.Off:p.Off+p.Filesz], p.Align)
		}
	}
}

// walkNotes calls fn for each well-formed note in data; names are returned
// without their NUL. Entries are aligned to 8 bytes when align is 8, else 4.
func walkNotes(data []byte, align uint64, fn func(name string, typ uint32, desc []byte)) {
	if align != 8 {
		align = 4
	}
	pad := func(n uint64) uint64 { return (n + align - 1) &^ (align - 1) }
	for off := uint64(0); uint64(len(data))-off >= 12; {
		namesz := uint64(binary.LittleEndian.Uint32(data[off:]))
		descsz := uint64(binary.LittleEndian.Uint32(data[off+4:]))
		typ := binary.LittleEndian.Uint32(data[off+8:])
		nameOff := off + 12
		descOff := nameOff + pad(namesz)
		end := descOff + pad(descsz)
		if descOff+descsz > uint64(len(data)) {
			return
		}
		name := data[nameOff : nameOff+namesz]
		name = bytes.TrimRight(name, "\x00")
		fn(string(name), typ, data[descOff:descOff+descsz])
		if end > uint64(len(data)) {
			return
		}
		off = end
	}
}

// symbols collects the defined function symbols.
func (b *builder) symbols() error {
	f := b.f
	if err := b.safe("reading .symtab", func() (err error) {
		b.symtab, err = b.ef.Symbols()
		if errors.Is(err, elf.ErrNoSymbols) {
			err = nil
		}
		return err
	}); err != nil {
		return err
	}
	if err := b.safe("reading .dynsym", func() (err error) {
		b.dynsym, err = b.ef.DynamicSymbols()
		if errors.Is(err, elf.ErrNoSymbols) {
			err = nil
		}
		return err
	}); err != nil {
		return err
	}
	f.HasSymtab = len(b.symtab) > 0

	add := func(syms []elf.Symbol, dynamic bool) {
		for _, s := range syms {
			t := elf.ST_TYPE(s.Info)
			if t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC || s.Section == elf.SHN_UNDEF {
				continue
			}
			f.Symbols = append(f.Symbols, Symbol{
				Name:    cutVersion(s.Name),
				Addr:    s.Value,
				Size:    s.Size,
				Local:   elf.ST_BIND(s.Info) == elf.STB_LOCAL,
				Dynamic: dynamic,
			})
		}
	}
	add(b.symtab, false)
	add(b.dynsym, true)
	slices.SortStableFunc(f.Symbols, func(a, b Symbol) int {
		return cmp.Or(cmp.Compare(a.Addr, b.Addr), strings.Compare(a.Name, b.Name))
	})
	// Merge exact duplicates (a global symbol is in both tables).
	out := f.Symbols[:0]
	for _, s := range f.Symbols {
		if n := len(out); n > 0 && out[n-1].Name == s.Name && out[n-1].Addr == s.Addr {
			d := &out[n-1]
			d.Dynamic = d.Dynamic || s.Dynamic
			d.Local = d.Local && s.Local
			d.Size = max(d.Size, s.Size)
			continue
		}
		out = append(out, s)
	}
	f.Symbols = slices.Clip(out)
	return nil
}

// cutVersion drops a "@VERSION" or "@@VERSION" suffix.
func cutVersion(name string) string {
	if i := strings.IndexByte(name, '@'); i > 0 {
		return name[:i]
	}
	return name
}

// satAdd is a+b, saturating at the top of the address space.
func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

// SegmentAt returns the PT_LOAD whose [Vaddr, Vaddr+Memsz) contains addr, or nil.
func (f *File) SegmentAt(addr uint64) *Segment {
	i := sort.Search(len(f.Segments), func(i int) bool {
		s := &f.Segments[i]
		return s.Vaddr+s.Memsz > addr // validate ensured no wrap
	})
	if i < len(f.Segments) && f.Segments[i].Vaddr <= addr {
		return &f.Segments[i]
	}
	return nil
}

// SectionAt returns the allocated section containing addr, or nil. Where
// sections overlap, the one starting last wins. .tbss is never returned: its
// addresses belong to the sections that follow it.
func (f *File) SectionAt(addr uint64) *Section {
	// Last section starting at or below addr.
	i := sort.Search(len(f.byAddr), func(i int) bool { return f.Sections[f.byAddr[i]].Addr > addr }) - 1
	for ; i >= 0 && f.maxEnd[i] > addr; i-- {
		s := &f.Sections[f.byAddr[i]]
		if addr-s.Addr < s.Size {
			return s
		}
	}
	return nil
}

// Section returns the first section with the given name, or nil.
func (f *File) Section(name string) *Section {
	for i := range f.Sections {
		if f.Sections[i].Name == name {
			return &f.Sections[i]
		}
	}
	return nil
}

// CodeSections returns the file-backed SHF_ALLOC|SHF_EXECINSTR sections, by address.
func (f *File) CodeSections() []Section {
	var out []Section
	for _, si := range f.byAddr {
		s := f.Sections[si]
		if s.Flags&elf.SHF_EXECINSTR != 0 && s.Type != elf.SHT_NOBITS {
			out = append(out, s)
		}
	}
	return out
}

// SectionData returns the bytes of s in the file. The slice aliases the
// image: do not modify it. SHT_NOBITS and compressed sections are errors.
func (f *File) SectionData(s *Section) ([]byte, error) {
	switch {
	case s == nil:
		return nil, &FormatError{File: f.Name, Off: -1, Msg: "nil section"}
	case s.Type == elf.SHT_NOBITS:
		return nil, &FormatError{File: f.Name, Off: int64(s.Offset), Msg: "section " + s.Name + " has no file data (SHT_NOBITS)"}
	case s.Flags&elf.SHF_COMPRESSED != 0:
		return nil, &FormatError{File: f.Name, Off: int64(s.Offset), Msg: "section " + s.Name + " is compressed"}
	case s.Offset > uint64(len(f.data)) || s.Size > uint64(len(f.data))-s.Offset:
		return nil, &FormatError{File: f.Name, Off: -1, Msg: "section " + s.Name + " out of file bounds", Val: s.Offset}
	}
	return f.data[s.Offset : s.Offset+s.Size : s.Offset+s.Size], nil
}

// Data returns the file's bytes. The slice is shared: do not modify it.
func (f *File) Data() []byte { return f.data }

// Read returns the n file-backed bytes at virtual address addr, which must
// lie within one PT_LOAD's file size. The slice aliases the image: do not
// modify it.
func (f *File) Read(addr uint64, n int) ([]byte, error) {
	if n < 0 {
		return nil, &AddrError{File: f.Name, Addr: addr, Len: n, Msg: "negative length"}
	}
	seg := f.SegmentAt(addr)
	if seg == nil {
		return nil, &AddrError{File: f.Name, Addr: addr, Len: n, Msg: "address not in a PT_LOAD segment"}
	}
	off := addr - seg.Vaddr
	if off > seg.Filesz || uint64(n) > seg.Filesz-off {
		return nil, &AddrError{File: f.Name, Addr: addr, Len: n, Msg: "range not file-backed"}
	}
	start := seg.Offset + off
	return f.data[start : start+uint64(n) : start+uint64(n)], nil
}

// readZeroExtended reads n <= 8 bytes at addr as a little-endian integer:
// bytes past the segment's file size (.bss) read as zero. All n bytes must
// lie in one PT_LOAD.
func (f *File) readZeroExtended(addr uint64, n uint64) (uint64, bool) {
	seg := f.SegmentAt(addr)
	if seg == nil {
		return 0, false
	}
	off := addr - seg.Vaddr
	if n > seg.Memsz-off {
		return 0, false
	}
	var buf [8]byte
	if off < seg.Filesz {
		copy(buf[:n], f.data[seg.Offset+off:seg.Offset+min(seg.Filesz, off+n)])
	}
	return binary.LittleEndian.Uint64(buf[:]), true
}

// ReadPointer returns the 8-byte pointer at addr: the relocated value when a
// relative relocation targets addr, else the little-endian file bytes (zero
// in .bss). ok is false when addr..addr+8 is not inside one PT_LOAD.
func (f *File) ReadPointer(addr uint64) (uint64, bool) {
	if v, ok := f.Relative[addr]; ok {
		return v, true
	}
	return f.readZeroExtended(addr, 8)
}

// ReadUint32 returns the little-endian 4 bytes at addr (zero in .bss).
func (f *File) ReadUint32(addr uint64) (uint32, bool) {
	v, ok := f.readZeroExtended(addr, 4)
	return uint32(v), ok
}

// IsCode reports whether addr is in an executable PT_LOAD and in a
// file-backed SHF_EXECINSTR section.
func (f *File) IsCode(addr uint64) bool {
	seg := f.SegmentAt(addr)
	if seg == nil || seg.Flags&elf.PF_X == 0 {
		return false
	}
	s := f.SectionAt(addr)
	return s != nil && s.Flags&elf.SHF_EXECINSTR != 0 && s.Type != elf.SHT_NOBITS
}

// IsReadOnlyData reports whether addr is read-only at run time: in a
// PT_LOAD without PF_W, or made read-only after relocation (PT_GNU_RELRO,
// .data.rel.ro). Values there are the file bytes or, where a relocation
// applies, what ReadPointer returns.
func (f *File) IsReadOnlyData(addr uint64) bool {
	seg := f.SegmentAt(addr)
	if seg == nil {
		return false
	}
	if seg.Flags&elf.PF_W == 0 {
		return true
	}
	for _, r := range f.relro {
		if addr >= r[0] && addr < r[1] {
			return true
		}
	}
	s := f.SectionAt(addr)
	return s != nil && s.Name == ".data.rel.ro"
}

// FileKind names what a file that is not a regular one is, for errors:
// "a directory", "a named pipe", ...
func FileKind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	case t == 0:
		return "a regular file"
	}
	return "a special file"
}
