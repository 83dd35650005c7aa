package redmagic

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/redmagic-patch/redmagic-patch/cfg/sites"
	"github.com/redmagic-patch/redmagic-patch/elfpatch"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/redmagic-patch/redmagic-patch/runtime-stub/abi"
)

// Options carry what the header records about the patch.
type Options struct {
	ToolVersion string
}

// Summary describes a patch that was planned.
type Summary struct {
	Profile  string       `json:"profile"`
	Reason   string       `json:"reason"`
	TextAddr uint64       `json:"text_addr"`
	DataAddr uint64       `json:"data_addr"`
	Header   uint64       `json:"header"`
	Sites    []SiteReport `json:"sites"`
	Skipped  []sites.Skip `json:"skipped,omitempty"`
	Runtime  string       `json:"runtime"`
}

// SiteReport is one patched site and its trampoline.
type SiteReport struct {
	sites.Site
	Index      int    `json:"index"`
	Trampoline uint64 `json:"trampoline"`
}

// PatchFile plans and writes the patch of f (whose file contents are raw)
// for the sites in res. It returns the new file's bytes.
func PatchFile(f *elfimage.File, raw []byte, res *sites.Result, opts Options) ([]byte, *Summary, error) {
	l, err := NewLayout(f, raw)
	if err != nil {
		return nil, nil, err
	}
	// Trampoline sizes do not depend on addresses (every branch is rel32),
	// so one pass with a provisional data address sizes the text.
	sampled := sampledSites(f, res.Sites)
	text, _, err := trampolines(f.Name, l.TextAddr, l.TextAddr+elfpatch.MaxNewSize, res.Sites, sampled)
	if err != nil {
		return nil, nil, err
	}
	dataAddr := l.PlaceData(uint64(len(text)))
	text, tramps, err := trampolines(f.Name, l.TextAddr, dataAddr, res.Sites, sampled)
	if err != nil {
		return nil, nil, err
	}
	data, err := header(dataAddr, f, res, tramps, sampled, opts)
	if err != nil {
		return nil, nil, newErr(f.Name, elfpatch.ErrPlan, "%v", err)
	}
	plan := &elfpatch.Plan{
		Text:    text,
		Data:    data,
		Needed:  []string{RuntimeName},
		RunPath: "$ORIGIN",
		DynTags: []elfpatch.DynEntry{{Tag: DTRedmagic, Val: dataAddr}},
		Sections: []elfpatch.NewSection{
			{Name: SectionPrefix + "text", Type: elf.SHT_PROGBITS, Flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR, Addr: l.TextAddr, Size: uint64(len(text)), Addralign: 16},
			{Name: SectionPrefix + "data", Type: elf.SHT_PROGBITS, Flags: elf.SHF_ALLOC | elf.SHF_WRITE, Addr: dataAddr, Size: uint64(len(data)), Addralign: 8},
		},
	}
	sum := &Summary{Profile: res.Profile, Reason: res.Reason, TextAddr: l.TextAddr, DataAddr: dataAddr, Header: dataAddr, Skipped: res.Skipped, Runtime: RuntimeName}
	for i, s := range res.Sites {
		t := tramps[i]
		switch s.Via {
		case sites.ViaTableEntry:
			plan.Writes = append(plan.Writes, elfpatch.ByteEdit{Addr: s.Slot, Bytes: binary.LittleEndian.AppendUint64(nil, t)})
		case sites.ViaTableRelative:
			plan.Relatives = append(plan.Relatives, elfpatch.RelativeEdit{Location: s.Slot, NewValue: t})
		case sites.ViaPICEntry:
			off := int64(t) - int64(s.Base)
			if off != int64(int32(off)) {
				return nil, nil, addrErr(f.Name, elfpatch.ErrUnsupported, s.Slot, "trampoline %#x out of reach of the table at %#x", t, s.Base)
			}
			plan.Writes = append(plan.Writes, elfpatch.ByteEdit{Addr: s.Slot, Bytes: binary.LittleEndian.AppendUint32(nil, uint32(int32(off)))})
		case sites.ViaElide:
			b, err := elided(s)
			if err != nil {
				return nil, nil, addrErr(f.Name, elfpatch.ErrPlan, s.Addr, "site %s: %v", s.Name, err)
			}
			plan.Writes = append(plan.Writes, elfpatch.ByteEdit{Addr: s.Addr, Bytes: b})
		case sites.ViaRel32:
			off := int64(t) - int64(s.Slot+4)
			if off != int64(int32(off)) {
				return nil, nil, addrErr(f.Name, elfpatch.ErrUnsupported, s.Addr, "trampoline %#x out of rel32 reach", t)
			}
			plan.Writes = append(plan.Writes, elfpatch.ByteEdit{Addr: s.Slot, Bytes: binary.LittleEndian.AppendUint32(nil, uint32(int32(off)))})
		default:
			return nil, nil, addrErr(f.Name, elfpatch.ErrPlan, s.Addr, "site %s: unknown redirection %q", s.Name, s.Via)
		}
		sum.Sites = append(sum.Sites, SiteReport{Site: s, Index: i, Trampoline: t})
	}
	out, err := elfpatch.Write(f, raw, l, plan)
	if err != nil {
		return nil, nil, err
	}
	return out, sum, nil
}

// Encodings the trampolines need beyond x86enc's table (Intel SDM: LAHF
// 9F, SAHF 9E, SETO r/m8 0F 90 /0, ADD AL,imm8 04 ib, JRCXZ E3 cb); the
// trampoline state tests execute them.
var (
	lahf    = []byte{0x9f}
	sahf    = []byte{0x9e}
	setoAL  = []byte{0x0f, 0x90, 0xc0}
	addAL7F = []byte{0x04, 0x7f}
	// jrcxz over the 5-byte jmp rel32 that follows it (E3 cb).
	jrcxzOver5 = []byte{0xe3, 0x05}
)

// savedRegs are the registers a back-edge trampoline saves around the
// call: every caller-saved general register, %rcx first (the disabled path
// saves only it). The runtime's fast path
// touches no vector register, and its slow path saves them itself.
var savedRegs = []x86enc.Reg{x86enc.RCX, x86enc.RAX, x86enc.RDX, x86enc.RSI, x86enc.RDI, x86enc.R8, x86enc.R9, x86enc.R10, x86enc.R11}

// sampledSites says which back-edge sites get a sampling trampoline: those
// whose handler does not read the arithmetic flags it is entered with, since
// the countdown's sub changes them (dispatch targets practically never
// do: a compiler keeps no flags live across an indirect jump), and every
// call of redmagic_backwards_branch (a call leaves no flags live), which
// an annotated interpreter makes at every iteration of every loop. The
// others call the runtime on every hit.
func sampledSites(f *elfimage.File, ss []sites.Site) []bool {
	sampled := make([]bool, len(ss))
	for i, s := range ss {
		switch s.Kind {
		case sites.KindBackEdge:
			sampled[i] = x86dec.FlagsDeadAt(f.Read, s.Resume, flagScanLimit)
		case sites.KindAPI:
			sampled[i] = s.API == apiBackwardsBranch && s.Via != sites.ViaElide
		}
	}
	return sampled
}

// apiBackwardsBranch is the API function whose call sites are sampled.
const apiBackwardsBranch = "redmagic_backwards_branch"

// apiBackwardsBranchIndex is its enum rm_api index.
var apiBackwardsBranchIndex = uint32(sites.APIIndex(apiBackwardsBranch))

// flagScanLimit bounds the liveness scan at a handler entry.
const flagScanLimit = 32

// siteFieldAddr is the link-time address of field off of site i's entry
// in the header's site table at dataAddr.
func siteFieldAddr(dataAddr uint64, i int, off uint64) uint64 {
	return dataAddr + headerSize + uint64(i)*siteSize + off
}

// trampolines generates one trampoline per site at text, 16-byte aligned,
// with the header's slots at header offsets from dataAddr. sampled[i]:
// site i's trampoline counts down before it calls the runtime.
func trampolines(file string, text, dataAddr uint64, ss []sites.Site, sampled []bool) ([]byte, []uint64, error) {
	a := x86enc.New(text)
	addrs := make([]uint64, len(ss))
	hitSlot := dataAddr + hdrHitFn
	for i, s := range ss {
		if s.Via == sites.ViaElide {
			continue // no trampoline: address 0
		}
		if pad := int((16 - a.PC()%16) % 16); pad > 0 {
			a.Nop(pad)
		}
		addrs[i] = a.PC()
		switch s.Kind {
		case sites.KindBackEdge:
			if sampled != nil && sampled[i] {
				slow := a.NewLabel()
				if err := forwardJumpFilter(a, s); err != nil {
					return nil, nil, addrErr(file, elfpatch.ErrPlan, s.Addr, "site %s: %v", s.Name, err)
				}
				if err := condJumpFilter(a, s, dataAddr, i, slow); err != nil {
					return nil, nil, addrErr(file, elfpatch.ErrPlan, s.Addr, "site %s: %v", s.Name, err)
				}
				sampledPrefix(a, s, dataAddr, i, slow)
			}
			if err := backEdgeTrampoline(a, uint32(i), s, hitSlot); err != nil {
				return nil, nil, addrErr(file, elfpatch.ErrPlan, s.Addr, "site %s: %v", s.Name, err)
			}
		case sites.KindAPI:
			api := sites.APIIndex(s.API)
			if api < 0 {
				return nil, nil, addrErr(file, elfpatch.ErrPlan, s.Addr, "site %s: unknown API function %q", s.Name, s.API)
			}
			// Entered by the interpreter's own call: the C arguments are in
			// place; %r11 and the flags are free at a call.
			slot := dataAddr + hdrAPIFn + 8*uint64(api)
			if sampled != nil && sampled[i] {
				// As a sampled back-edge: the runtime sees one call in
				// countdown + 1; the others go to the original function.
				slow := a.NewLabel()
				a.SubRIPImm8(siteFieldAddr(dataAddr, i, siteCountdown), 1)
				a.JccLabel(x86enc.L, slow)
				a.Jmp(s.Resume)
				a.Bind(slow)
			}
			a.MovImm32(x86enc.R11, uint32(i))
			a.CmpRIPImm8(slot, 0)
			a.Jcc(x86enc.E, s.Resume)
			a.JmpRIP(slot)
		}
	}
	code, err := a.Bytes()
	if err != nil {
		return nil, nil, newErr(file, elfpatch.ErrPlan, "trampolines: %v", err)
	}
	return code, addrs, nil
}

// icReg returns the register a sampled back-edge's inline cache compares
// (its loop id), if the site has one: RM_SITE_IC. A comparison (condSite)
// has one too, compared only once its filter has found a jump back (its
// handler runs for every comparison of the program, nearly all of them
// forward), and of one entry: ic_id[0] is its forward countdown
// (icFirstWay).
func icReg(s sites.Site) (x86enc.Reg, bool) {
	r, err := idReg(s)
	if err != nil || r == x86enc.RSP {
		return 0, false
	}
	return r, true
}

// idReg is the register holding s's loop id at the handler.
func idReg(s sites.Site) (x86enc.Reg, error) { return siteReg(s.IDReg) }

// siteReg is the register a site's profile names (IDReg, AuxReg).
func siteReg(name string) (x86enc.Reg, error) {
	d, err := sites.DWARFReg(name)
	if err != nil {
		return 0, err
	}
	return x86enc.FromDWARF(d)
}

// luaSJBackBelow: a Lua 5.4 instruction word below it has a negative sJ
// operand (bits 7-31, excess 0xffffff): a jump back, whatever its opcode.
const luaSJBackBelow = 0xffffff << 7

// forwardJumpFilter emits, for a Lua OP_JMP site (FlagLua54SJ), the test
// that sends a jump forward (its instruction word, in the aux register,
// has a non-negative sJ) straight on to the handler: most of a program's
// OP_JMPs go forward (if/else, break, the exits of while loops), and each
// paid the inline cache's compares and the countdown, and one in a period
// a call of the runtime that only found it was not a back-edge (Lua
// corpus, valgrind: 2.5% of a coroutine program's instructions). The
// flags are dead at a sampled site.
func forwardJumpFilter(a *x86enc.Asm, s sites.Site) error {
	if !slices.Contains(s.Flags, sites.FlagLua54SJ) {
		return nil
	}
	r, err := siteReg(s.AuxReg)
	if err != nil {
		return err
	}
	a.CmpReg32Imm32(r, luaSJBackBelow)
	a.Jcc(x86enc.AE, s.Resume)
	return nil
}

// condSite reports a comparison site, which takes the jump after it
// inline: a back-edge only when that jump goes back (FlagLua54CondSJ,
// FlagCPython311CmpJump).
func condSite(s sites.Site) bool {
	return slices.Contains(s.Flags, sites.FlagLua54CondSJ) || slices.Contains(s.Flags, sites.FlagCPython311CmpJump)
}

// condJumpFilter emits, for a comparison site (condSite), the test that
// sends a comparison whose jump goes forward on to the handler: for Lua,
// the OP_JMP word at the id register (the pc past the comparison); for
// CPython, the opcode of the POP_JUMP_* abi.CPy311JumpAt bytes past the
// instruction (the id register). It counts such a comparison down in the
// site's ic_id[0] (its inline cache is ic_id[1]): one in RM_COND_FORWARD_PERIOD
// goes to slow, the call of the runtime, which puts the site's dispatch
// entry back if no back jump came by meanwhile (rm_fast.c). A jump back
// goes on to the sampled prefix. The flags are dead at a sampled site.
func condJumpFilter(a *x86enc.Asm, s sites.Site, dataAddr uint64, i int, slow x86enc.Label) error {
	if !condSite(s) {
		return nil
	}
	r, err := idReg(s)
	if err != nil {
		return err
	}
	back := a.NewLabel()
	if slices.Contains(s.Flags, sites.FlagCPython311CmpJump) {
		a.CmpMem8Imm8(x86enc.Mem{Base: r, Disp: abi.CPy311JumpAt}, abi.CPy311JumpBackMin)
		a.JccLabel(x86enc.AE, back)
	} else {
		a.CmpMemImm32(x86enc.Mem{Base: r}, luaSJBackBelow)
		a.JccLabel(x86enc.B, back)
	}
	a.SubRIPImm8(siteFieldAddr(dataAddr, i, siteICID), 1)
	a.Jcc(x86enc.GE, s.Resume)
	a.JmpLabel(slow)
	a.Bind(back)
	return nil
}

// sampledPrefix emits what a sampled back-edge trampoline (site i) does
// before it saves anything: the site's countdown loses one and the hit goes
// straight on to the handler unless it fell below 0; the runtime then
// counts the hit for all those the countdown skipped and sets it again
// (rm_fast.c). Three instructions instead of the full save and call: a hit
// the runtime does not need costs next to nothing. Threads may race on the
// countdown; a lost update only moves the next sample.
//
// With an inline cache (RM_SITE_IC), the loop id is first compared with
// the site's icWays cached ids; a match jumps to the cached trace head
// with the site's own machine state, so that a trace is entered for two
// instructions instead of a call into the runtime. The flags are dead at a
// sampled site. The runtime writes a head before its id and empties an
// entry by its id, so a racing reader finds either the head of its id or
// a head whose first guard sends any other id to the handler.
func sampledPrefix(a *x86enc.Asm, s sites.Site, dataAddr uint64, i int, slow x86enc.Label) {
	r, ic := icReg(s)
	var hits [icWays]x86enc.Label
	first := icFirstWay(s)
	if ic {
		for k := first; k < icWays; k++ {
			hits[k] = a.NewLabel()
			a.CmpRegRIP(r, siteFieldAddr(dataAddr, i, siteICID+8*uint64(k)))
			a.JccLabel(x86enc.E, hits[k])
		}
	}
	a.SubRIPImm8(siteFieldAddr(dataAddr, i, siteCountdown), 1)
	a.JccLabel(x86enc.L, slow)
	a.Jmp(s.Resume)
	if ic {
		for k := first; k < icWays; k++ {
			a.Bind(hits[k])
			a.JmpRIP(siteFieldAddr(dataAddr, i, siteICHead+8*uint64(k)))
		}
	}
	a.Bind(slow)
}

// icFirstWay is the first inline-cache entry a site uses: 1 for a
// comparison, whose ic_id[0] counts its forward jumps down
// (condJumpFilter), else 0 (RM_IC_FIRST_WAY in rm_fast.c).
func icFirstWay(s sites.Site) int {
	if condSite(s) {
		return 1
	}
	return 0
}

// elided returns what replaces the 5-byte call of an API site elided in
// place (sites.ViaElide): an instruction with the default's effect. The
// call's clobbers and the flags are dead after a call, so
// redmagic_is_traced becomes mov $0, %eax (B8 id) and the others a 5-byte
// nop (0F 1F 44 00 00).
func elided(s sites.Site) ([]byte, error) {
	if !sites.RecordingOnly(s.API) {
		return nil, fmt.Errorf("%s cannot be elided", s.API)
	}
	if s.API == "redmagic_is_traced" {
		return []byte{0xb8, 0, 0, 0, 0}, nil
	}
	return []byte{0x0f, 0x1f, 0x44, 0x00, 0x00}, nil
}

// backEdgeTrampoline saves the machine state the C fast path could change
// (the caller-saved registers and the arithmetic flags),
// calls hit(site, id, aux) if the runtime filled the slot, restores, and
// continues at the original handler. It first steps over the red zone
// and aligns the stack, since a handler entry is mid-function.
func backEdgeTrampoline(a *x86enc.Asm, index uint32, s sites.Site, hitSlot uint64) error {
	idReg, err := sites.DWARFReg(s.IDReg)
	if err != nil {
		return err
	}
	auxReg, err := sites.DWARFReg(s.AuxReg)
	if err != nil {
		return err
	}
	// Disabled path first, touching no flag: %rcx (saved) takes the slot,
	// jrcxz skips the 5-byte jump to the enabled path when it is 0.
	a.Lea(x86enc.RSP, x86enc.Mem{Base: x86enc.RSP, Disp: -128})
	a.Push(x86enc.RCX)
	a.LoadRIP(x86enc.RCX, hitSlot)
	enabled := a.NewLabel()
	a.Raw(jrcxzOver5)
	a.JmpLabel(enabled)
	a.Pop(x86enc.RCX)
	a.Lea(x86enc.RSP, x86enc.Mem{Base: x86enc.RSP, Disp: 128})
	a.Jmp(s.Resume)

	a.Bind(enabled)
	// A slot for where to continue (hit's result), above everything the
	// epilogue pops, so that it is never below %rsp when used.
	a.Lea(x86enc.RSP, x86enc.Mem{Base: x86enc.RSP, Disp: -8})
	for _, r := range savedRegs[1:] { // %rcx is saved already
		a.Push(r)
	}
	// The arithmetic flags go into %ax (lahf; seto %al), which was saved
	// first: popfq costs far more than this pair and its inverse, and
	// nothing here touches DF, IF or the other system flags.
	a.Raw(lahf)
	a.Raw(setoAL)
	a.Push(x86enc.RAX)
	a.Push(x86enc.RBP)
	a.Mov(x86enc.RBP, x86enc.RSP)
	a.AndImm8(x86enc.RSP, -16)
	// A saved register is read back from its slot, so the order in which
	// the arguments are set up does not matter: [rbp] holds rbp, then the
	// saved registers in reverse push order.
	load := func(dst x86enc.Reg, dwarf int) error {
		if dwarf < 0 {
			a.MovImm32(dst, 0)
			return nil
		}
		src, err := x86enc.FromDWARF(dwarf)
		if err != nil {
			return err
		}
		if src == x86enc.RSP {
			return fmt.Errorf("the stack pointer cannot carry a loop id")
		}
		if src == x86enc.RBP {
			a.Load(dst, x86enc.Mem{Base: x86enc.RBP, Disp: 0})
			return nil
		}
		for i, r := range savedRegs {
			if r == src {
				// Above [rbp] lie the saved flags, then the saved
				// registers, last pushed first; %rcx, pushed before
				// the continuation slot, one more slot up.
				d := int32(8 * (len(savedRegs) - i + 1))
				if r == x86enc.RCX {
					d += 8
				}
				a.Load(dst, x86enc.Mem{Base: x86enc.RBP, Disp: d})
				return nil
			}
		}
		a.Mov(dst, src)
		return nil
	}
	if err := load(x86enc.RSI, idReg); err != nil {
		return err
	}
	if err := load(x86enc.RDX, auxReg); err != nil {
		return err
	}
	a.MovImm32(x86enc.RDI, index)
	a.CallReg(x86enc.RCX) // still the hit function: no argument lives in %rcx
	a.Mov(x86enc.RSP, x86enc.RBP)
	a.Pop(x86enc.RBP)
	// hit returned where to continue: 0 for the handler. Its slot lies
	// above the flags and the 8 other saved registers.
	contSlot := int32(8 * len(savedRegs))
	a.Store(x86enc.Mem{Base: x86enc.RSP, Disp: contSlot}, x86enc.RAX)
	a.Test(x86enc.RAX, x86enc.RAX)
	a.Pop(x86enc.RAX) // pop leaves the flags alone
	enter := a.NewLabel()
	a.JccLabel(x86enc.NE, enter)
	a.Raw(addAL7F) // sets OF exactly when seto stored 1
	a.Raw(sahf)
	for i := len(savedRegs) - 1; i >= 1; i-- {
		a.Pop(savedRegs[i])
	}
	a.Lea(x86enc.RSP, x86enc.Mem{Base: x86enc.RSP, Disp: 8})
	a.Pop(x86enc.RCX)
	a.Lea(x86enc.RSP, x86enc.Mem{Base: x86enc.RSP, Disp: 128})
	a.Jmp(s.Resume)

	// Enter a trace (or the recorder) with the state the handler would
	// see: restore everything, then ret $136 pops the continuation from
	// its slot and lands with %rsp back where the site had it.
	a.Bind(enter)
	a.Raw(addAL7F)
	a.Raw(sahf)
	for i := len(savedRegs) - 1; i >= 1; i-- {
		a.Pop(savedRegs[i])
	}
	a.Load(x86enc.RCX, x86enc.Mem{Base: x86enc.RSP, Disp: 8})
	a.Raw(retImm16(128 + 8))
	return nil
}

// retImm16 encodes ret $n (C2 iw): return, then release n more bytes.
func retImm16(n uint16) []byte { return []byte{0xc2, byte(n), byte(n >> 8)} }
