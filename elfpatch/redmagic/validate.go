package redmagic

import (
	"bytes"
	"debug/elf"
	"fmt"

	"github.com/redmagic-patch/redmagic-patch/elfpatch"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// The runtime refuses a patched object whose header fails rm_validate
// (runtime-stub/host/rm_validate.c) and runs it without the runtime.
// ValidateHeader applies the same checks, in the same order and with the
// same messages, so that inspect accepts exactly what the runtime serves;
// a test in runtime-stub runs both on the same corrupted headers.

// Limits of rm_validate (runtime-stub/rm_internal.h).
const (
	maxHeaderSize     = 65536
	maxSiteSize       = 4096    // RM_MAX_SITE_SIZE
	maxSitesPerObject = 1 << 20 // RM_MAX_SITES_PER_OBJECT
	pfR, pfW          = uint32(elf.PF_R), uint32(elf.PF_W)
)

// memSeg is a PT_LOAD or PT_GNU_RELRO entry as the runtime sees it
// (struct rm_seg), with where its PT_LOAD contents are in the file.
type memSeg struct {
	vaddr, memsz, off, filesz uint64
	flags                     uint32
	relro                     bool
}

// memImage is an object's memory as the runtime's constructor reads it:
// the PT_LOAD contents, zero past each segment's file size.
type memImage struct {
	data []byte
	segs []memSeg
}

// seg is rm_seg_of: the readable PT_LOAD (not a RELRO range) holding
// [vaddr, vaddr+n), or nil.
func (m *memImage) seg(vaddr, n uint64) *memSeg {
	if vaddr+n < vaddr {
		return nil
	}
	for i := range m.segs {
		s := &m.segs[i]
		if s.relro || s.flags&pfR == 0 {
			continue
		}
		if vaddr >= s.vaddr && vaddr+n <= s.vaddr+s.memsz && s.vaddr+s.memsz >= s.vaddr {
			return s
		}
	}
	return nil
}

// inRelro is rm_in_relro: whether [vaddr, vaddr+n) meets a RELRO range.
func (m *memImage) inRelro(vaddr, n uint64) bool {
	for _, s := range m.segs {
		if s.relro && vaddr < s.vaddr+s.memsz && s.vaddr < vaddr+n {
			return true
		}
	}
	return false
}

// read returns the n bytes at vaddr, which s holds.
func (m *memImage) read(s *memSeg, vaddr, n uint64) []byte {
	out := make([]byte, n)
	if rel := vaddr - s.vaddr; rel < s.filesz {
		start := min(s.off+rel, uint64(len(m.data)))
		end := min(s.off+min(s.filesz, rel+n), uint64(len(m.data)))
		copy(out, m.data[start:end])
	}
	return out
}

// HeaderError is a patch header the runtime would refuse. Reason is the
// runtime's own: what it prints before ", running without the runtime".
type HeaderError struct {
	File   string
	Reason string
}

func (e *HeaderError) Error() string {
	return e.File + ": the runtime would refuse its patch header: " + e.Reason
}

// chex formats v as C's "%#lx" does: 0 without a prefix.
func chex(v uint64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%#x", v)
}

// ValidateHeader finds f's patch header through DT_REDMAGIC, as the
// runtime does, and checks it as rm_validate does. It returns the
// header's address, or a *HeaderError with the runtime's reason. A file
// without DT_REDMAGIC is not patched (ErrNotPatched).
func ValidateHeader(f *elfimage.File) (uint64, error) {
	h, err := elfpatch.ReadHeaders(f.Data(), f.Name)
	if err != nil {
		return 0, err
	}
	hv, ok := uint64(0), false
	for _, d := range h.Dynamic {
		if elf.DynTag(d.Tag) == DTRedmagic {
			hv, ok = d.Val, true
			break // the runtime takes the first
		}
	}
	if !ok {
		return 0, fmt.Errorf("%s: %w (no DT_REDMAGIC entry)", f.Name, ErrNotPatched)
	}
	m := &memImage{data: f.Data()}
	for _, p := range h.Progs {
		switch elf.ProgType(p.Type) {
		case elf.PT_LOAD, elf.PT_GNU_RELRO:
			m.segs = append(m.segs, memSeg{vaddr: p.Vaddr, memsz: p.Memsz, off: p.Off, filesz: p.Filesz,
				flags: p.Flags, relro: elf.ProgType(p.Type) == elf.PT_GNU_RELRO})
		}
	}
	if err := m.validate(hv); err != nil {
		return 0, &HeaderError{File: f.Name, Reason: err.Error()}
	}
	return hv, nil
}

// validate is rm_validate on the header at hv.
func (m *memImage) validate(hv uint64) error {
	fail := fmt.Errorf
	if hv%8 != 0 {
		return fail("header at %s is not 8-byte aligned", chex(hv))
	}
	hs := m.seg(hv, headerSize)
	if hs == nil {
		return fail("header at %s is outside the loaded segments", chex(hv))
	}
	if hs.flags&pfW == 0 || m.inRelro(hv, headerSize) {
		return fail("header at %s is not in a writable segment", chex(hv))
	}
	h := m.read(hs, hv, headerSize)
	u32 := func(off int) uint32 { return le.Uint32(h[off:]) }
	u64 := func(off int) uint64 { return le.Uint64(h[off:]) }
	if !bytes.Equal(h[hdrMagic:hdrMagic+8], Magic[:]) {
		return fail("bad header magic")
	}
	if u32(hdrABI) != abiVersion {
		return fail("abi version %d, want %d", u32(hdrABI), abiVersion)
	}
	if size := u32(hdrSize); size < headerSize || size > maxHeaderSize || m.seg(hv, uint64(size)) != hs {
		return fail("bad header size %d", size)
	}
	if u64(hdrSelf) != hv {
		return fail("header says it is at %s, DT_REDMAGIC says %s", chex(u64(hdrSelf)), chex(hv))
	}
	for off := hdrHitFn; off < hdrSelf; off += 8 {
		if u64(off) != 0 {
			return fail("slots already set by another runtime")
		}
	}
	ssize, n := u32(hdrSiteSize), u32(hdrNSites)
	if ssize < siteSize || ssize > maxSiteSize || ssize%8 != 0 {
		return fail("bad site size %d", ssize)
	}
	if n > maxSitesPerObject {
		return fail("%d sites, at most %d allowed", n, maxSitesPerObject)
	}
	sitesAt, slen := u64(hdrSites), uint64(n)*uint64(ssize)
	ss := m.seg(sitesAt, slen)
	if n > 0 && (sitesAt%8 != 0 || ss == nil) {
		return fail("site table at %s (%d bytes) is outside the loaded segments", chex(sitesAt), slen)
	}
	strAt, strSize := u64(hdrStrtab), u32(hdrStrtabSz)
	strSeg := m.seg(strAt, uint64(strSize))
	if strSize == 0 || strSeg == nil {
		return fail("string table at %s (%d bytes) is outside the loaded segments", chex(strAt), strSize)
	}
	if m.read(strSeg, strAt, uint64(strSize))[strSize-1] != 0 {
		return fail("string table is not NUL-terminated")
	}
	if u32(hdrProfile) >= strSize || u32(hdrToolVer) >= strSize || u32(hdrBuildID) >= strSize {
		return fail("header string offset out of range")
	}
	for i := range n {
		s := m.read(ss, sitesAt+uint64(i)*uint64(ssize), siteSize)
		kind, api, flags := le.Uint32(s[siteKind:]), le.Uint32(s[siteAPI:]), le.Uint32(s[siteFlags:])
		slotKind, slot := le.Uint32(s[siteSlotKind:]), le.Uint64(s[siteSlot:])
		idReg := int32(le.Uint32(s[siteIDReg:]))
		switch {
		case kind != siteKindBack && kind != siteKindAPI:
			return fail("site %d: bad kind %d", i, kind)
		case kind == siteKindAPI && api >= apiCount:
			return fail("site %d: bad api %d", i, api)
		case flags&^knownSiteFlags != 0:
			return fail("site %d: unknown flags %#x", i, flags)
		case flags&siteFlagIC != 0 && (flags&siteFlagSampled == 0 || idReg < 0 || idReg > 16):
			return fail("site %d: an inline cache without sampling or an id register", i)
		case flags&siteFlagSampled != 0 && kind != siteKindBack && !(kind == siteKindAPI && api == apiBackwardsBranchIndex):
			return fail("site %d: a sampled site that is not a back-edge", i)
		case flags&siteFlagIC != 0 && kind != siteKindBack:
			return fail("site %d: an inline cache at a call", i)
		case flags&siteFlagSampled != 0 && (ss.flags&pfW == 0 || m.inRelro(sitesAt, slen)):
			// The runtime writes a sampled site's countdown.
			return fail("site %d: sampled, but the site table is not writable", i)
		case slotKind > slotOff32:
			return fail("site %d: bad slot kind %d", i, slotKind)
		}
		width := uint64(4)
		if slotKind == slotAddr64 {
			width = 8
		}
		if slotKind != slotNone && m.seg(slot, width) == nil {
			return fail("site %d: slot at %s is outside the loaded segments", i, chex(slot))
		}
		if name := le.Uint32(s[siteName:]); name >= strSize {
			return fail("site %d: name offset %d out of range", i, name)
		}
	}
	return nil
}
