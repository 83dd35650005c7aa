// Package ehframe reads the function address ranges out of an x86-64 ELF
// .eh_frame section: it owns the parsing of CIE and FDE headers (lengths,
// augmentations, pointer encodings) and nothing else. Call-frame
// instructions are skipped by length, never interpreted.
//
// The input is untrusted: every length, offset and LEB128 is bounds-checked,
// and malformed data yields a *FormatError carrying the section offset.
package ehframe

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
)

// FDE is one frame description entry: the PC range it covers.
type FDE struct {
	Start, End uint64 // the PC range [Start, End) the FDE covers (absolute addresses)
	LSDA       uint64 // language-specific data area address; 0 if none
	Offset     uint64 // offset of the FDE within the section (for error messages / stable ordering)
}

// FormatError reports malformed .eh_frame data at a section offset.
type FormatError struct {
	Off uint64 // offset within the section of the offending field
	Msg string
	Val any // the offending value, or nil
}

func (e *FormatError) Error() string {
	s := fmt.Sprintf(".eh_frame offset %#x: %s", e.Off, e.Msg)
	if e.Val != nil {
		s += " (" + formatVal(e.Val) + ")"
	}
	return s
}

// formatVal prints integers in hex, as offsets and encodings are read in hex.
func formatVal(v any) string {
	switch v := v.(type) {
	case fmt.Stringer:
		return v.String()
	case uint8, uint16, uint32, uint64, uint, int8, int16, int32, int64, int:
		return fmt.Sprintf("%#x", v)
	case string:
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprint(v)
}

// Pointer encodings (DW_EH_PE_*, LSB 3.0 section 10.5.1): the low nibble is the
// value format, bits 4-6 say what the value is relative to, bit 7 is indirection.
const (
	peAbsptr  = 0x00
	peUleb128 = 0x01
	peUdata2  = 0x02
	peUdata4  = 0x03
	peUdata8  = 0x04
	peSleb128 = 0x09
	peSdata2  = 0x0a
	peSdata4  = 0x0b
	peSdata8  = 0x0c

	pePcrel    = 0x10
	peTextrel  = 0x20
	peDatarel  = 0x30
	peFuncrel  = 0x40
	peAligned  = 0x50
	peIndirect = 0x80
	peOmit     = 0xff
)

var applicationNames = map[byte]string{
	peTextrel: "DW_EH_PE_textrel",
	peDatarel: "DW_EH_PE_datarel",
	peFuncrel: "DW_EH_PE_funcrel",
	peAligned: "DW_EH_PE_aligned",
}

// cie holds what FDEs need from their CIE.
type cie struct {
	hasAug  bool // augmentation string starts with 'z': FDEs carry augmentation data
	fdeEnc  byte // 'R', DW_EH_PE_absptr by default
	lsdaEnc byte // 'L', DW_EH_PE_omit by default
}

// Parse parses the contents of a .eh_frame section located at virtual address
// addr. It returns the FDEs sorted by Start (then Offset). Malformed data
// returns a *FormatError with the section offset.
//
// Parsing stops at a zero-length entry (the terminator), as the unwinder does.
// FDEs whose encoded start address is zero are omitted: linkers leave them
// for discarded code, and the unwinder skips them too. Zero-length FDEs
// (Start == End) are kept.
func Parse(data []byte, addr uint64) ([]FDE, error) {
	p := parser{data: data, addr: addr, cies: make(map[uint64]*cie)}
	var fdes []FDE
	for off := uint64(0); off < uint64(len(data)); {
		r := p.reader(off, uint64(len(data)))
		length, err := r.u32()
		if err != nil {
			return nil, err
		}
		if length == 0 {
			break // terminator
		}
		bodyLen := uint64(length)
		if length == 0xffffffff {
			if bodyLen, err = r.u64(); err != nil {
				return nil, err
			}
		} else if length > 0xfffffff0 {
			return nil, &FormatError{off, "reserved initial length", length}
		}
		body := r.off
		if bodyLen > uint64(len(data))-body {
			return nil, &FormatError{off, "entry length past end of section", bodyLen}
		}
		end := body + bodyLen
		r.end = end

		// The CIE id / CIE pointer is 4 bytes in .eh_frame even for the
		// 64-bit format (LSB 3.0; LLVM agrees).
		idOff := r.off
		id, err := r.u32()
		if err != nil {
			return nil, err
		}
		if id == 0 {
			c, err := parseCIE(r)
			if err != nil {
				return nil, err
			}
			p.cies[off] = c
		} else {
			// The CIE pointer counts back from its own field.
			if uint64(id) > idOff {
				return nil, &FormatError{idOff, "CIE pointer before start of section", id}
			}
			cieOff := idOff - uint64(id)
			c, ok := p.cies[cieOff]
			if !ok {
				return nil, &FormatError{idOff, "CIE pointer does not reference a CIE", cieOff}
			}
			fde, keep, err := parseFDE(r, c, off)
			if err != nil {
				return nil, err
			}
			if keep {
				fdes = append(fdes, fde)
			}
		}
		off = end
	}
	slices.SortFunc(fdes, func(a, b FDE) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.Offset, b.Offset))
	})
	return fdes, nil
}

type parser struct {
	data []byte
	addr uint64
	cies map[uint64]*cie // by section offset
}

func (p *parser) reader(off, end uint64) *reader {
	return &reader{data: p.data, off: off, end: end, addr: p.addr}
}

func parseCIE(r *reader) (*cie, error) {
	c := &cie{fdeEnc: peAbsptr, lsdaEnc: peOmit}
	verOff := r.off
	version, err := r.u8()
	if err != nil {
		return nil, err
	}
	if version != 1 && version != 3 && version != 4 {
		return nil, &FormatError{verOff, "unsupported CIE version", version}
	}
	augOff := r.off
	aug, err := r.cstring()
	if err != nil {
		return nil, err
	}
	if version == 4 {
		asOff := r.off
		addrSize, err := r.u8()
		if err != nil {
			return nil, err
		}
		segSize, err := r.u8()
		if err != nil {
			return nil, err
		}
		if addrSize != 8 || segSize != 0 {
			return nil, &FormatError{asOff, "unsupported CIE address/segment size", [2]byte{addrSize, segSize}}
		}
	}
	if _, err := r.uleb(); err != nil { // code alignment factor
		return nil, err
	}
	if _, err := r.sleb(); err != nil { // data alignment factor
		return nil, err
	}
	if version == 1 { // return address register
		_, err = r.u8()
	} else {
		_, err = r.uleb()
	}
	if err != nil {
		return nil, err
	}
	if aug == "" {
		return c, nil
	}
	if aug[0] != 'z' {
		// "eh" (pre-GCC 3.0) stored a pointer here; nothing current emits it.
		return nil, &FormatError{augOff, "unsupported augmentation string", aug}
	}
	c.hasAug = true
	augLen, err := r.uleb()
	if err != nil {
		return nil, err
	}
	if augLen > r.end-r.off {
		return nil, &FormatError{augOff, "augmentation data past end of CIE", augLen}
	}
	augEnd := r.off + augLen
	ar := *r
	ar.end = augEnd
	for i := 1; i < len(aug); i++ {
		switch aug[i] {
		case 'R':
			encOff := ar.off
			if c.fdeEnc, err = ar.u8(); err != nil {
				return nil, err
			}
			if c.fdeEnc == peOmit || c.fdeEnc&peIndirect != 0 {
				return nil, &FormatError{encOff, "unsupported FDE pointer encoding", c.fdeEnc}
			}
			if err := checkEncoding(encOff, c.fdeEnc); err != nil {
				return nil, err
			}
		case 'P':
			encOff := ar.off
			enc, err := ar.u8()
			if err != nil {
				return nil, err
			}
			if enc == peOmit {
				continue
			}
			if err := checkEncoding(encOff, enc); err != nil {
				return nil, err
			}
			// The personality routine's address (or, with DW_EH_PE_indirect,
			// the address of a slot holding it) is not needed: skip it.
			if _, err := ar.pointer(enc); err != nil {
				return nil, err
			}
		case 'L':
			encOff := ar.off
			if c.lsdaEnc, err = ar.u8(); err != nil {
				return nil, err
			}
			if c.lsdaEnc != peOmit {
				if c.lsdaEnc&peIndirect != 0 {
					return nil, &FormatError{encOff, "unsupported LSDA pointer encoding", c.lsdaEnc}
				}
				if err := checkEncoding(encOff, c.lsdaEnc); err != nil {
					return nil, err
				}
			}
		case 'S', 'B':
			// Signal frame; AArch64 BTI. No data.
		default:
			return nil, &FormatError{augOff + uint64(i), "unknown augmentation character in " + fmt.Sprintf("%q", aug), string(aug[i])}
		}
	}
	// Initial instructions follow the augmentation data; not interpreted.
	return c, nil
}

// parseFDE reads an FDE body after its CIE pointer. keep is false for FDEs
// whose encoded start is zero.
func parseFDE(r *reader, c *cie, off uint64) (fde FDE, keep bool, err error) {
	startOff := r.off
	start, err := r.pointer(c.fdeEnc)
	if err != nil {
		return FDE{}, false, err
	}
	// The range is a plain size: the format of the FDE encoding, no application.
	rng, err := r.value(c.fdeEnc & 0x0f)
	if err != nil {
		return FDE{}, false, err
	}
	fde = FDE{Start: start, End: start + rng, Offset: off}
	if start != 0 && fde.End < fde.Start {
		return FDE{}, false, &FormatError{startOff, "PC range wraps around", [2]uint64{start, rng}}
	}
	if c.hasAug {
		augOff := r.off
		augLen, err := r.uleb()
		if err != nil {
			return FDE{}, false, err
		}
		if augLen > r.end-r.off {
			return FDE{}, false, &FormatError{augOff, "augmentation data past end of FDE", augLen}
		}
		if c.lsdaEnc != peOmit {
			ar := *r
			ar.end = r.off + augLen
			if fde.LSDA, err = ar.pointer(c.lsdaEnc); err != nil {
				return FDE{}, false, err
			}
		}
	}
	// Call-frame instructions follow; not interpreted.
	return fde, start != 0, nil
}

// checkEncoding rejects pointer encodings that cannot be resolved from the
// section alone or that do not exist.
func checkEncoding(off uint64, enc byte) error {
	switch enc & 0x0f {
	case peAbsptr, peUleb128, peUdata2, peUdata4, peUdata8, peSleb128, peSdata2, peSdata4, peSdata8:
	default:
		return &FormatError{off, "unknown pointer encoding format", enc}
	}
	switch app := enc & 0x70; app {
	case peAbsptr, pePcrel:
	default:
		name, ok := applicationNames[app]
		if !ok {
			return &FormatError{off, "unknown pointer encoding application", enc}
		}
		return &FormatError{off, "unsupported pointer encoding " + name, enc}
	}
	return nil
}

// reader is a bounds-checked cursor over data[off:end].
type reader struct {
	data     []byte
	off, end uint64
	addr     uint64 // section virtual address, for pcrel
}

func (r *reader) need(n uint64, what string) error {
	if n > r.end-r.off {
		return &FormatError{r.off, "truncated " + what, nil}
	}
	return nil
}

func (r *reader) u8() (byte, error) {
	if err := r.need(1, "byte"); err != nil {
		return 0, err
	}
	v := r.data[r.off]
	r.off++
	return v, nil
}

func (r *reader) u16() (uint16, error) {
	if err := r.need(2, "2-byte value"); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint16(r.data[r.off:])
	r.off += 2
	return v, nil
}

func (r *reader) u32() (uint32, error) {
	if err := r.need(4, "4-byte value"); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint32(r.data[r.off:])
	r.off += 4
	return v, nil
}

func (r *reader) u64() (uint64, error) {
	if err := r.need(8, "8-byte value"); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(r.data[r.off:])
	r.off += 8
	return v, nil
}

func (r *reader) cstring() (string, error) {
	start := r.off
	for i := start; i < r.end; i++ {
		if r.data[i] == 0 {
			r.off = i + 1
			return string(r.data[start:i]), nil
		}
	}
	return "", &FormatError{start, "unterminated augmentation string", nil}
}

// LEB128 values longer than 10 bytes, or whose 10th byte carries bits past
// bit 63, are rejected: no 64-bit value needs them.
func (r *reader) uleb() (uint64, error) {
	start := r.off
	var v uint64
	for i := 0; i < 10; i++ {
		b, err := r.u8()
		if err != nil {
			return 0, &FormatError{start, "truncated LEB128", nil}
		}
		if i == 9 && b > 1 {
			break
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, &FormatError{start, "LEB128 overflows 64 bits", nil}
}

func (r *reader) sleb() (int64, error) {
	start := r.off
	var v int64
	for i := 0; i < 10; i++ {
		b, err := r.u8()
		if err != nil {
			return 0, &FormatError{start, "truncated LEB128", nil}
		}
		if i == 9 && b != 0 && b != 0x7f {
			break
		}
		v |= int64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if shift := 7 * (i + 1); shift < 64 && b&0x40 != 0 {
				v |= -1 << shift
			}
			return v, nil
		}
	}
	return 0, &FormatError{start, "LEB128 overflows 64 bits", nil}
}

// value reads a value in the given format (low nibble of an encoding) and
// returns it sign-extended where the format is signed.
func (r *reader) value(format byte) (uint64, error) {
	switch format {
	case peAbsptr, peUdata8, peSdata8:
		return r.u64()
	case peUleb128:
		return r.uleb()
	case peUdata2:
		v, err := r.u16()
		return uint64(v), err
	case peUdata4:
		v, err := r.u32()
		return uint64(v), err
	case peSleb128:
		v, err := r.sleb()
		return uint64(v), err
	case peSdata2:
		v, err := r.u16()
		return uint64(int64(int16(v))), err
	case peSdata4:
		v, err := r.u32()
		return uint64(int64(int32(v))), err
	}
	return 0, &FormatError{r.off, "unknown pointer encoding format", format}
}

// pointer reads an encoded pointer. Encodings were checked when the CIE was
// parsed. pcrel is relative to the field's own address. A zero value stays
// zero, as in libgcc's read_encoded_value: it means "no pointer".
func (r *reader) pointer(enc byte) (uint64, error) {
	fieldAddr := r.addr + r.off
	v, err := r.value(enc & 0x0f)
	if err != nil {
		return 0, err
	}
	if v != 0 && enc&0x70 == pePcrel {
		v += fieldAddr
	}
	return v, nil
}
