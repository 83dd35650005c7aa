package main

/*
#include <stdlib.h>
#include <string.h>
#include <elf.h>
#include "rm_internal.h"
#include "host/rm_validate.c"

static int rm_validate_image(const void *img, uint64_t len, uint64_t vaddr,
			     uint32_t flags, uint64_t hdr_vaddr,
			     struct rm_objinfo *out, char *why, size_t n)
{
	struct rm_seg seg = { .vaddr = vaddr, .memsz = len, .flags = flags };
	struct rm_objdesc d = {
		.bias = (uintptr_t)img - (uintptr_t)vaddr,
		.segs = &seg, .nsegs = 1, .hdr_vaddr = hdr_vaddr,
	};
	return rm_validate(&d, out, why, n);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// The validator below is the one the constructor runs on every object with
// a DT_REDMAGIC entry; this wrapper exists so that tests and the fuzz target
// can run it on arbitrary bytes.

// HeaderError is a patched object's header the runtime refuses.
type HeaderError struct {
	Reason string
}

func (e *HeaderError) Error() string { return "redmagic: bad patch header: " + e.Reason }

// validatedImage is what rm_validate accepted, as offsets into the image.
type validatedImage struct {
	HeaderOff  uint64
	SitesOff   uint64
	NSites     uint32
	SiteSize   uint32
	StrtabOff  uint64
	StrtabSize uint32
}

// abiVersion is the contract's version (RM_ABI_VERSION), for the tests'
// images.
const abiVersion = C.RM_ABI_VERSION

// Segment flags, as in the ELF program header.
const (
	pfX = 1
	pfW = 2
	pfR = 4
)

// validateImage runs rm_validate on img mapped as one segment at link-time
// address vaddr with the given flags, the header being at hdrVaddr. The
// image is copied to C memory, which the header checks may not leave.
func validateImage(img []byte, vaddr uint64, flags uint32, hdrVaddr uint64) (validatedImage, error) {
	n := len(img)
	p := C.malloc(C.size_t(max(n, 1)))
	defer C.free(p)
	if n > 0 {
		C.memcpy(p, unsafe.Pointer(&img[0]), C.size_t(n))
	}
	var out C.struct_rm_objinfo
	var why [256]C.char
	if C.rm_validate_image(p, C.uint64_t(n), C.uint64_t(vaddr), C.uint32_t(flags),
		C.uint64_t(hdrVaddr), &out, &why[0], C.size_t(len(why))) != 0 {
		return validatedImage{}, &HeaderError{Reason: C.GoString(&why[0])}
	}
	base := uintptr(p)
	off := func(q unsafe.Pointer) uint64 { return uint64(uintptr(q) - base) }
	v := validatedImage{
		HeaderOff:  off(unsafe.Pointer(out.hdr)),
		SitesOff:   off(unsafe.Pointer(out.sites)),
		NSites:     uint32(out.nsites),
		SiteSize:   uint32(out.site_size),
		StrtabOff:  off(unsafe.Pointer(out.strtab)),
		StrtabSize: uint32(out.strtab_size),
	}
	if v.NSites == 0 {
		v.SitesOff = 0
	}
	return v, nil
}

// cLayout reports the sizes and field offsets of the contract structures
// as the C compiler lays them out, for tests of Go encoders of them.
func cLayout() map[string]uintptr {
	var h C.struct_rm_patch_header
	var s C.struct_rm_site
	return map[string]uintptr{
		"header":              unsafe.Sizeof(h),
		"header.magic":        unsafe.Offsetof(h.magic),
		"header.abi_version":  unsafe.Offsetof(h.abi_version),
		"header.header_size":  unsafe.Offsetof(h.header_size),
		"header.hit_fn":       unsafe.Offsetof(h.hit_fn),
		"header.api_fn":       unsafe.Offsetof(h.api_fn),
		"header.self":         unsafe.Offsetof(h.self),
		"header.nsites":       unsafe.Offsetof(h.nsites),
		"header.site_size":    unsafe.Offsetof(h.site_size),
		"header.sites":        unsafe.Offsetof(h.sites),
		"header.strtab":       unsafe.Offsetof(h.strtab),
		"header.strtab_size":  unsafe.Offsetof(h.strtab_size),
		"header.profile":      unsafe.Offsetof(h.profile),
		"header.tool_version": unsafe.Offsetof(h.tool_version),
		"header.build_id":     unsafe.Offsetof(h.build_id),
		"header.reserved":     unsafe.Offsetof(h.reserved),
		"site":                unsafe.Sizeof(s),
		"site.addr":           unsafe.Offsetof(s.addr),
		"site.resume":         unsafe.Offsetof(s.resume),
		"site.kind":           unsafe.Offsetof(s.kind),
		"site.api":            unsafe.Offsetof(s.api),
		"site.id_reg":         unsafe.Offsetof(s.id_reg),
		"site.aux_reg":        unsafe.Offsetof(s.aux_reg),
		"site.name":           unsafe.Offsetof(s.name),
		"site.trampoline":     unsafe.Offsetof(s.trampoline),
		"site.flags":          unsafe.Offsetof(s.flags),
		"site.slot":           unsafe.Offsetof(s.slot),
		"site.slot_orig":      unsafe.Offsetof(s.slot_orig),
		"site.slot_kind":      unsafe.Offsetof(s.slot_kind),
		"site.frame":          unsafe.Offsetof(s.frame),
		"site.countdown":      unsafe.Offsetof(s.countdown),
		"site.ic_id":          unsafe.Offsetof(s.ic_id),
		"site.ic_head":        unsafe.Offsetof(s.ic_head),
		"api_count":           C.RM_API_COUNT,
	}
}

// String makes validation results readable in test failures.
func (v validatedImage) String() string {
	return fmt.Sprintf("header@%d sites@%d(%dx%d) strtab@%d(%d)",
		v.HeaderOff, v.SitesOff, v.NSites, v.SiteSize, v.StrtabOff, v.StrtabSize)
}
