// Package redmagic plans redmagic-patch's patch of an interpreter and reads
// it back. From the sites cfg/sites found it generates the trampolines (a
// back-edge's countdown, inline cache and call of the runtime's hit
// function; an annotation call's jump through the runtime's API slot), the
// patch header and site table the runtime finds through DT_REDMAGIC
// (runtime-stub/include/redmagic_patch.h), and the edits that redirect
// each site to its trampoline, and hands them to elfpatch as a Plan that
// also loads the runtime library. Inspect and ValidateHeader read a
// patched file's header as the runtime's constructor does.
//
// A file carrying DT_REDMAGIC or a .redmagic.* section has been patched
// already and is refused (ErrAlreadyPatched).
package redmagic

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/redmagic-patch/redmagic-patch/elfpatch"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// DTRedmagic is the dynamic tag whose value is the link-time address of the
// patch header (DT_REDMAGIC in redmagic_patch.h). It is in the OS-specific
// range, which ld.so ignores.
const DTRedmagic elf.DynTag = 0x6d726d31

// SectionPrefix starts the names of the sections the patch adds, so that
// objdump -d shows the trampolines.
const SectionPrefix = ".redmagic."

// RuntimeName is the runtime library a patched file loads (DT_NEEDED),
// found beside it through DT_RUNPATH $ORIGIN.
const RuntimeName = "libredmagic.so"

// JITName is the JIT library the runtime loads from its own directory when
// a loop first gets hot (runtime-stub/rm_internal.h, RM_JIT_LIBRARY).
const JITName = "libredmagic-jit.so"

// RuntimeFiles are the libraries installed beside a patched file.
var RuntimeFiles = []string{RuntimeName, JITName}

// ErrAlreadyPatched is the Kind of the *elfpatch.Error that refuses a
// file with a DT_REDMAGIC entry or a .redmagic.* section.
var ErrAlreadyPatched = errors.New("already patched by redmagic-patch")

var le = binary.LittleEndian

// NewLayout is elfpatch.NewLayout for a file this tool has not patched
// yet: what refuses a file before any analysis of it.
func NewLayout(f *elfimage.File, raw []byte) (*elfpatch.Layout, error) {
	if err := checkUnpatched(f, raw); err != nil {
		return nil, err
	}
	return elfpatch.NewLayout(f, raw)
}

// checkUnpatched refuses a file that carries a patch of this tool. Headers
// it cannot read are left for elfpatch.NewLayout to refuse.
func checkUnpatched(f *elfimage.File, raw []byte) error {
	if h, err := elfpatch.ReadHeaders(raw, f.Name); err == nil {
		if _, ok := h.DynValue(DTRedmagic); ok {
			return newErr(f.Name, ErrAlreadyPatched, "already patched by redmagic-patch (has a DT_REDMAGIC entry)")
		}
	}
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, SectionPrefix) {
			return newErr(f.Name, ErrAlreadyPatched, "already patched by redmagic-patch (has section %s)", s.Name)
		}
	}
	return nil
}

// newErr and addrErr make the writer's one-line errors (*elfpatch.Error)
// for what this planner refuses.
func newErr(file string, kind error, format string, args ...any) *elfpatch.Error {
	return &elfpatch.Error{File: file, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

func addrErr(file string, kind error, addr uint64, format string, args ...any) *elfpatch.Error {
	return &elfpatch.Error{File: file, Kind: kind, Msg: fmt.Sprintf(format, args...), Addr: addr, HasAddr: true}
}
