package cfg

import (
	"fmt"
	"sort"
	"strings"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// codeSection is one executable section's bytes, kept in memory so the
// decoder can be fed without a lookup per instruction.
type codeSection struct {
	name       string
	start, end uint64
	data       []byte
}

// image is the part of the binary that recovery reads: code bytes by
// address, pointers in data, and which addresses are code.
type image struct {
	f    *elfimage.File
	code []codeSection // ascending by start
}

func newImage(f *elfimage.File) (*image, error) {
	im := &image{f: f}
	for _, s := range f.CodeSections() {
		s := s
		if s.Size == 0 || s.Type == 8 /* SHT_NOBITS */ {
			continue
		}
		data, err := f.SectionData(&s)
		if err != nil {
			return nil, fmt.Errorf("%s: section %s: %w", f.Name, s.Name, err)
		}
		im.code = append(im.code, codeSection{name: s.Name, start: s.Addr, end: s.Addr + uint64(len(data)), data: data})
	}
	sort.Slice(im.code, func(i, j int) bool { return im.code[i].start < im.code[j].start })
	if len(im.code) == 0 {
		return nil, fmt.Errorf("%s: no executable code sections", f.Name)
	}
	return im, nil
}

func (im *image) section(addr uint64) *codeSection {
	i := sort.Search(len(im.code), func(i int) bool { return im.code[i].end > addr })
	if i < len(im.code) && addr >= im.code[i].start {
		return &im.code[i]
	}
	return nil
}

// bytesAt returns up to 15 bytes of code at addr (fewer at a section's
// end), or nil when addr is not in an executable section.
func (im *image) bytesAt(addr uint64) []byte {
	s := im.section(addr)
	if s == nil {
		return nil
	}
	off := addr - s.start
	end := off + 15
	if end > uint64(len(s.data)) {
		end = uint64(len(s.data))
	}
	return s.data[off:end]
}

func (im *image) isCode(addr uint64) bool { return im.section(addr) != nil }

// isStubSection reports whether addr lies in a PLT, whose stubs are not
// functions of the binary but doors to imported ones.
func (im *image) isStubSection(addr uint64) bool {
	s := im.section(addr)
	return s != nil && strings.HasPrefix(s.name, ".plt")
}
