package redmagic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
	"github.com/redmagic-patch/redmagic-patch/cfg/sites"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/runtime-stub/abi"
)

// The layout of struct rm_patch_header and struct rm_site in
// runtime-stub/include/redmagic_patch.h; a test compiles the header and
// checks every offset.
const (
	abiVersion    = 5
	apiCount      = abi.NumAPI
	hdrMagic      = 0
	hdrABI        = 8
	hdrSize       = 12
	hdrHitFn      = 16
	hdrAPIFn      = 24
	hdrSelf       = hdrAPIFn + 8*apiCount // 152
	hdrNSites     = 160
	hdrSiteSize   = 164
	hdrSites      = 168
	hdrStrtab     = 176
	hdrStrtabSz   = 184
	hdrProfile    = 188
	hdrToolVer    = 192
	hdrBuildID    = 196
	hdrReserved   = 200
	headerSize    = hdrReserved + 4*8 // 232
	siteAddr      = 0
	siteResume    = 8
	siteKind      = 16
	siteAPI       = 20
	siteIDReg     = 24
	siteAuxReg    = 28
	siteName      = 32
	siteFlags     = 36
	siteTramp     = 40
	siteSlot      = 48
	siteSlotOrig  = 56
	siteSlotKind  = 64
	siteFrame     = 68
	siteCountdown = 72
	siteICID      = 80 // ic_id[icWays]
	siteICHead    = siteICID + 8*icWays
	siteSize      = siteICHead + 8*icWays // 112
	icWays        = 2
	icEmpty       = 1 << 63
	slotNone      = 0
	slotAddr64    = 1
	slotOff32     = 2
	siteKindBack  = 1
	siteKindAPI   = 2
	// siteFlagNoTrace is RM_SITE_NO_TRACE.
	siteFlagNoTrace = 1 << 1
	// siteFlagSampled is RM_SITE_SAMPLED.
	siteFlagSampled = 1 << 2
	// siteFlagIC is RM_SITE_IC.
	siteFlagIC = 1 << 3
	// flagLua54SJ is RM_SITE_LUA54_SJ.
	flagLua54SJ = 1
	// flagOpargBack is RM_SITE_OPARG_BACK.
	flagOpargBack = 1 << 4
	// flagLua54CondSJ is RM_SITE_LUA54_COND_SJ.
	flagLua54CondSJ = 1 << 5
	// flagCPython311CmpJump is RM_SITE_CPY311_CMP_JUMP.
	flagCPython311CmpJump = 1 << 6
	// condForwardPeriod is RM_COND_FORWARD_PERIOD.
	condForwardPeriod = 1 << 16
)

// siteFlagNames names each site flag (RM_SITE_*): profile is the profile's
// name for the flags a profile sets, display the name people read.
var siteFlagNames = []struct {
	bit              uint32
	profile, display string
}{
	{flagLua54SJ, sites.FlagLua54SJ, "lua-sj"},
	{siteFlagNoTrace, "", "no-trace"},
	{siteFlagSampled, "", "sampled"},
	{siteFlagIC, "", "inline-cache"},
	{flagOpargBack, sites.FlagOpargBack, "oparg-back"},
	{flagLua54CondSJ, sites.FlagLua54CondSJ, "lua-cond-sj"},
	{flagCPython311CmpJump, sites.FlagCPython311CmpJump, "cpython-cmp-jump"},
}

// knownSiteFlags is every flag the runtime accepts.
var knownSiteFlags = func() uint32 {
	var m uint32
	for _, f := range siteFlagNames {
		m |= f.bit
	}
	return m
}()

// profileFlags is the bits of a profile site's flags.
func profileFlags(names []string) uint32 {
	var flags uint32
	for _, fl := range names {
		for _, f := range siteFlagNames {
			if f.profile != "" && f.profile == fl {
				flags |= f.bit
			}
		}
	}
	return flags
}

// Magic starts the header ("RMPATCH" and a NUL).
var Magic = [8]byte{'R', 'M', 'P', 'A', 'T', 'C', 'H', 0}

// header builds the data segment: the patch header, the site table and
// the string table, at link-time address base.
func header(base uint64, f *elfimage.File, res *sites.Result, tramps []uint64, sampled []bool, opts Options) ([]byte, error) {
	var strs bytes.Buffer
	str := func(s string) uint32 {
		off := uint32(strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		return off
	}
	str("") // offset 0 is the empty string
	le := binary.LittleEndian
	sitesOff := uint64(headerSize)
	strOff := sitesOff + uint64(siteSize*len(res.Sites))
	table := make([]byte, siteSize*len(res.Sites))
	frames := newImageCode(f)
	for i, s := range res.Sites {
		e := table[i*siteSize:]
		le.PutUint64(e[siteAddr:], s.Addr)
		le.PutUint64(e[siteResume:], s.Resume)
		id, err := sites.DWARFReg(s.IDReg)
		if err != nil {
			return nil, err
		}
		aux, err := sites.DWARFReg(s.AuxReg)
		if err != nil {
			return nil, err
		}
		switch s.Kind {
		case sites.KindBackEdge:
			le.PutUint32(e[siteKind:], siteKindBack)
		case sites.KindAPI:
			le.PutUint32(e[siteKind:], siteKindAPI)
			le.PutUint32(e[siteAPI:], uint32(sites.APIIndex(s.API)))
		default:
			return nil, fmt.Errorf("site %s: unknown kind %q", s.Name, s.Kind)
		}
		le.PutUint32(e[siteIDReg:], uint32(int32(id)))
		le.PutUint32(e[siteAuxReg:], uint32(int32(aux)))
		le.PutUint32(e[siteName:], str(s.Name))
		flags := profileFlags(s.Flags)
		if res.NoTrace && s.Kind == sites.KindBackEdge {
			flags |= siteFlagNoTrace
		}
		if sampled[i] {
			flags |= siteFlagSampled
			if _, ok := icReg(s); ok && s.Kind == sites.KindBackEdge {
				flags |= siteFlagIC
			}
		}
		for k := range icWays {
			le.PutUint64(e[siteICID+8*k:], icEmpty)
			le.PutUint64(e[siteICHead+8*k:], s.Resume)
		}
		if condSite(s) {
			// ic_id[0] counts forward comparisons down
			// (condJumpFilter); the inline cache is ic_id[1].
			le.PutUint64(e[siteICID:], condForwardPeriod-1)
		}
		le.PutUint32(e[siteFlags:], flags)
		le.PutUint64(e[siteTramp:], tramps[i])
		if s.Kind == sites.KindBackEdge || (s.Kind == sites.KindAPI && s.API == abi.Prefix+"backwards_branch") {
			le.PutUint32(e[siteFrame:], frames.of(s.Addr))
		}
		switch s.Via {
		case sites.ViaTableEntry, sites.ViaTableRelative:
			le.PutUint64(e[siteSlot:], s.Slot)
			le.PutUint64(e[siteSlotOrig:], s.Resume)
			le.PutUint32(e[siteSlotKind:], slotAddr64)
		case sites.ViaPICEntry:
			le.PutUint64(e[siteSlot:], s.Slot)
			le.PutUint64(e[siteSlotOrig:], uint64(int64(s.Resume)-int64(s.Base)))
			le.PutUint32(e[siteSlotKind:], slotOff32)
		}
	}
	h := make([]byte, headerSize)
	copy(h[hdrMagic:], Magic[:])
	le.PutUint32(h[hdrABI:], abiVersion)
	le.PutUint32(h[hdrSize:], headerSize)
	le.PutUint64(h[hdrSelf:], base)
	le.PutUint32(h[hdrNSites:], uint32(len(res.Sites)))
	le.PutUint32(h[hdrSiteSize:], siteSize)
	le.PutUint64(h[hdrSites:], base+sitesOff)
	le.PutUint64(h[hdrStrtab:], base+strOff)
	le.PutUint32(h[hdrProfile:], str(res.Profile))
	le.PutUint32(h[hdrToolVer:], str(opts.ToolVersion))
	le.PutUint32(h[hdrBuildID:], str(f.BuildID))
	le.PutUint32(h[hdrStrtabSz:], uint32(strs.Len()))
	out := append(h, table...)
	return append(out, strs.Bytes()...), nil
}

// imageCode reads a file's functions for frame.Analyse: their ranges
// from .eh_frame, their code at link-time addresses.
type imageCode struct {
	f     *elfimage.File
	funcs frame.Funcs
	done  map[uint64]uint32 // packed slots by function start
}

func newImageCode(f *elfimage.File) *imageCode {
	c := &imageCode{f: f, done: map[uint64]uint32{}}
	for _, fde := range f.FDEs {
		c.funcs = append(c.funcs, frame.Range{Lo: fde.Start, Hi: fde.End})
	}
	return c
}

func (c *imageCode) FuncAt(pc uint64) (frame.Range, bool) { return c.funcs.At(pc) }

func (c *imageCode) Bytes(r frame.Range) []byte {
	if !c.f.IsCode(r.Lo) || !c.f.IsCode(r.Hi-1) {
		return nil
	}
	b, err := c.f.Read(r.Lo, int(r.Hi-r.Lo))
	if err != nil {
		return nil
	}
	return b
}

// of returns the packed private slots (rm_site.frame) of the function
// holding pc, analysed once per function: CPython's seven back-edge
// handlers share one 60 KiB eval function.
func (c *imageCode) of(pc uint64) uint32 {
	fn, ok := c.funcs.At(pc)
	if !ok {
		return 0
	}
	v, seen := c.done[fn.Lo]
	if !seen {
		v = frame.Analyse(c, pc).Pack()
		c.done[fn.Lo] = v
	}
	return v
}

// Info is what a patched file's header says.
type Info struct {
	Profile     string     `json:"profile"`
	ToolVersion string     `json:"tool_version"`
	BuildID     string     `json:"original_build_id"`
	Header      uint64     `json:"header"`
	Sites       []SiteInfo `json:"sites"`
}

// SiteInfo is one entry of a patched file's site table.
type SiteInfo struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Addr   uint64 `json:"addr"`
	Resume uint64 `json:"resume"`
	IDReg  int32  `json:"id_reg"`
	AuxReg int32  `json:"aux_reg"`
	Flags  uint32 `json:"flags,omitempty"`
}

// FlagNames names the site's flags (RM_SITE_*), for people.
func (s SiteInfo) FlagNames() []string {
	var names []string
	for _, f := range siteFlagNames {
		if s.Flags&f.bit != 0 {
			names = append(names, f.display)
		}
	}
	return names
}

// ErrNotPatched is returned by Inspect for a file without a patch header.
var ErrNotPatched = errors.New("not patched by redmagic-patch")

// Inspect reads the patch header of a patched file, found and checked as
// the runtime does (ValidateHeader).
func Inspect(f *elfimage.File) (*Info, error) {
	base, err := ValidateHeader(f)
	if err != nil {
		return nil, err
	}
	h, err := f.Read(base, headerSize)
	if err != nil {
		return nil, fmt.Errorf("%s: patch header: %w", f.Name, err)
	}
	le := binary.LittleEndian
	if !bytes.Equal(h[:8], Magic[:]) || le.Uint32(h[hdrABI:]) != abiVersion {
		return nil, fmt.Errorf("%s: patch header: bad magic or ABI version", f.Name)
	}
	n := le.Uint32(h[hdrNSites:])
	if le.Uint32(h[hdrSiteSize:]) != siteSize || n > 1<<20 {
		return nil, fmt.Errorf("%s: patch header: bad site table", f.Name)
	}
	strtab, err := f.Read(le.Uint64(h[hdrStrtab:]), int(le.Uint32(h[hdrStrtabSz:])))
	if err != nil {
		return nil, fmt.Errorf("%s: patch string table: %w", f.Name, err)
	}
	str := func(off uint32) string {
		if int(off) >= len(strtab) {
			return ""
		}
		s := strtab[off:]
		if i := bytes.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		return string(s)
	}
	table, err := f.Read(le.Uint64(h[hdrSites:]), int(n)*siteSize)
	if err != nil && n > 0 {
		return nil, fmt.Errorf("%s: patch site table: %w", f.Name, err)
	}
	info := &Info{Profile: str(le.Uint32(h[hdrProfile:])), ToolVersion: str(le.Uint32(h[hdrToolVer:])), BuildID: str(le.Uint32(h[hdrBuildID:])), Header: base}
	for i := 0; i < int(n); i++ {
		e := table[i*siteSize:]
		kind := "backedge"
		if le.Uint32(e[siteKind:]) == siteKindAPI {
			kind = "api"
		}
		info.Sites = append(info.Sites, SiteInfo{
			Name: str(le.Uint32(e[siteName:])), Kind: kind,
			Addr: le.Uint64(e[siteAddr:]), Resume: le.Uint64(e[siteResume:]),
			IDReg: int32(le.Uint32(e[siteIDReg:])), AuxReg: int32(le.Uint32(e[siteAuxReg:])),
			Flags: le.Uint32(e[siteFlags:]),
		})
	}
	return info, nil
}
