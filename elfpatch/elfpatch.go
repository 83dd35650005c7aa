// Package elfpatch owns how a patched x86-64 ELF file is laid out and
// written: where the new code and data segments go, the rewritten program
// header table, .dynamic, .dynstr and section headers, and in-place edits of
// existing bytes and RELATIVE relocations. What to add and change is decided
// by a planner and handed over as a Plan: the writer knows nothing of what
// the new code does (elfpatch/redmagic plans this tool's patches).
//
// # Two phases
//
// NewLayout fixes the address of the new text segment; PlaceData, given the
// text size, fixes the data segment's. The planner generates code and data
// for those addresses and then calls Write with a Plan. Write returns the
// whole new file; WriteFileAtomic puts it in place. ReadHeaders gives a
// planner the program headers and dynamic entries as the writer reads them,
// e.g. to recognise a file it patched before.
//
// # Layout
//
// Every existing byte keeps its file offset and its virtual address. The
// additions are appended to the file:
//
//	[original file][zero padding]
//	[text segment: program header table, Plan.Text at TextAddr]
//	[data segment: Plan.Data at DataAddr, zero tail to DataMemSize, (.dynamic,) .dynstr]
//	[.shstrtab][section header table]
//
// as two new PT_LOADs above every existing one, text (R+X) first, then data
// (R+W), both page aligned. The program header table cannot grow in place
// (section contents follow it), and converting PT_NOTE entries into
// PT_LOADs does not work for all inputs (a shared object typically has a
// single PT_NOTE and its other entries are all needed), so the table moves
// to the start of the new text segment and PT_PHDR follows it. There it is
// read-only in memory and starts a PT_LOAD, as tools expect of it.
//
// Where the table lives matters to the kernel: Linux before 5.18 computes
// AT_PHDR as (first PT_LOAD's p_vaddr - p_offset) + e_phoff rather than
// from the segment that contains e_phoff. The new segments are therefore
// placed "linearly": file offset = vaddr - (first p_vaddr - p_offset), which
// makes both formulas agree (and makes base+e_phoff in memory point at the
// table, as some introspection code assumes). The price is zero padding in
// the file up to the image's end in memory, about the size of .bss (280 KB
// for python3.11); when the file is longer than the image (symbol tables,
// debug info) there is no padding but a gap in the address space, which
// ld.so reserves without backing it. If the padding would exceed 64 MiB the
// segments are placed right after the end of the file instead
// (Layout.Linear false): correct for shared objects and for executables on
// Linux 5.18 and later.
//
// The new .dynstr is the old bytes with the new strings appended, so every
// existing string offset (.dynsym, .gnu.version_r, ...) stays valid;
// DT_STRTAB/DT_STRSZ and the .dynstr section header point at it, and the
// old one stays where it was, unused. The dynamic entries, with the added
// ones, are written over the old table when they fit there: the GNU linker
// leaves spare DT_NULL entries after the first one. The table then keeps
// its place in PT_GNU_RELRO, read-only once ld.so has relocated it (ld.so
// stores DT_DEBUG there and relocates d_ptr values before that), as in the
// original. Otherwise (no spare entries, as other linkers write it) the
// table is copied after Plan.Data, PT_DYNAMIC and the .dynamic section
// header point at the copy, and it stays writable: glibc honours only one
// PT_GNU_RELRO, and the input's cannot reach the new segment.
//
// Section headers are rewritten at the end of the file with the added
// sections appended after the existing ones, so every section index (in
// symbols, sh_link, sh_info) stays valid.
//
// Addresses in a Plan are link-time virtual addresses; for PIE and shared
// objects ld.so adds the load bias, as for the original contents.
//
// Limitation: strip and objcopy (BFD) do not keep a program header table
// that starts a PT_LOAD other than the first: they move the new text
// segment's contents (warning "section NAME lma ... adjusted" for the
// plan's text section) and the result does not run. Strip before patching.
package elfpatch

import (
	"debug/elf"
	"errors"
	"fmt"
	"strings"
)

// PageSize is the page size new segments are aligned to.
const PageSize = 0x1000

// MaxNewSize bounds Plan.Text and the new data segment.
const MaxNewSize = 1 << 30

// Plan is what Write adds to and changes in a file. The layout of the new
// segments comes from the Layout the plan was generated for.
type Plan struct {
	// Text is the code placed at Layout.TextAddr in the new text segment.
	// It may be empty; the segment, which holds the program header table,
	// is then read-only.
	Text []byte
	// Data is the start of the new R+W segment, at Layout.DataAddr.
	Data []byte
	// DataMemSize is the size of the planner's part of the data segment:
	// Data followed by zeros. 0 means len(Data).
	DataMemSize uint64
	// Needed are DT_NEEDED entries added after the existing ones. A name
	// the file already needs is not added twice.
	Needed []string
	// RunPath is a search path for the file's own dependencies, e.g.
	// "$ORIGIN". It is prepended, with ':', to an existing DT_RUNPATH; to an
	// existing DT_RPATH when the file has no DT_RUNPATH (adding a DT_RUNPATH
	// would make ld.so ignore that DT_RPATH, which also applies to the whole
	// dependency tree); otherwise it becomes a new DT_RUNPATH. Nothing is
	// added if the path already starts with it.
	RunPath string
	// DynTags are further dynamic entries, added before DT_NULL, e.g. a tag
	// of the OS-specific range (which ld.so ignores) whose value is the
	// address of the planner's data. Tags the writer manages (DT_NULL,
	// DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_RPATH, DT_RUNPATH) and tags the
	// file already has are refused.
	DynTags []DynEntry
	// Writes overwrite existing file-backed bytes.
	Writes []ByteEdit
	// Relatives change the addend of existing R_X86_64_RELATIVE relocations.
	Relatives []RelativeEdit
	// Sections are section headers added over parts of Text or of the
	// planner's part of the data segment, so that tools (objdump -d) show
	// them. Names the file already has are refused.
	Sections []NewSection
}

// DynEntry is a dynamic section entry.
type DynEntry struct {
	Tag elf.DynTag
	Val uint64
}

// ByteEdit overwrites len(Bytes) file-backed bytes at virtual address Addr
// with Bytes. The range must lie within the file-backed part of one PT_LOAD
// of the input, must not overlap another edit, the ELF header, or the
// target of a dynamic relocation (ld.so would overwrite it; use a
// RelativeEdit for pointers).
type ByteEdit struct {
	Addr  uint64
	Bytes []byte
}

// RelativeEdit sets the addend of the R_X86_64_RELATIVE relocation at
// Location, so that the pointer there becomes NewValue + load bias.
type RelativeEdit struct {
	Location uint64
	NewValue uint64
}

// NewSection is a section header over [Addr, Addr+Size) of the new text or
// data segment. Sections over text must not be writable; sections over data
// must not be executable.
type NewSection struct {
	Name      string
	Type      elf.SectionType // SHT_PROGBITS or SHT_NOBITS
	Flags     elf.SectionFlag // must include SHF_ALLOC
	Addr      uint64
	Size      uint64
	Addralign uint64 // 0 means 1
}

// Error kinds, for errors.Is.
var (
	// ErrUnsupported: the input is valid but cannot be patched (layout,
	// missing tables, limits).
	ErrUnsupported = errors.New("unsupported input")
	// ErrStatic: a statically linked executable (no ld.so to load a
	// DT_NEEDED library).
	ErrStatic = errors.New("statically linked")
	// ErrGoBinary: a Go program; its runtime does not expect foreign code
	// on its threads.
	ErrGoBinary = errors.New("Go binary")
	// ErrPrivileged: setuid, setgid or with file capabilities; ld.so
	// ignores $ORIGIN in such programs.
	ErrPrivileged = errors.New("privileged executable")
	// ErrRELR: a RelativeEdit targets a DT_RELR-encoded relocation.
	ErrRELR = errors.New("RELR not supported")
	// ErrPlan: the plan is inconsistent with the file or the layout.
	ErrPlan = errors.New("bad patch plan")
)

// Error is a refusal to lay out or write a file. It names the file and the
// cause on one line.
type Error struct {
	File    string
	Kind    error  // one of the Err* values, or a planner's own
	Msg     string // the cause
	Addr    uint64 // the address concerned, when HasAddr
	HasAddr bool
	Err     error // underlying error (from elfimage), or nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.HasAddr {
		fmt.Fprintf(&b, " at %#x", e.Addr)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the kind and the underlying error.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

func newErr(file string, kind error, format string, args ...any) *Error {
	return &Error{File: file, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

func addrErr(file string, kind error, addr uint64, format string, args ...any) *Error {
	return &Error{File: file, Kind: kind, Msg: fmt.Sprintf(format, args...), Addr: addr, HasAddr: true}
}
