package x86dec

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// Special names an instruction form that x86asm v0.32.0 gets wrong: it
// returns a bare prefix (Op == 0, desynchronising a linear sweep), a wrong
// length, an error for a valid instruction, or a different instruction of
// the same length. Each such form is decoded here from legacyForms or
// vexForms instead, and TestSpecialFormsAreNeeded checks that x86asm still
// gets every one of them wrong.
type Special uint8

const (
	SpecialNone Special = iota
	SpecialEndbr64
	SpecialEndbr32
	SpecialRdssp
	SpecialVzeroupper
	SpecialVzeroall
	SpecialAdcx
	SpecialAdox
	SpecialRdpkru
	SpecialWrpkru
	SpecialIncssp
	SpecialSaveprevssp
	SpecialRstorssp
	SpecialSetssbsy
	SpecialClrssbsy
	SpecialWrss
	SpecialWruss
	SpecialNopHint // reserved-NOP space: 0F 18 /4-7 and mod=11, 0F 19-1E, 0F 1F /1-7 and REX.W 0F 1F (0F 1A/1B memory forms are MPX, a NOP on CPUs without it)
	SpecialPrefetch
	SpecialPrefetchwt1
	SpecialCldemote
	SpecialClwb
	SpecialClflushopt
	SpecialPtwrite
	SpecialTpause
	SpecialUmonitor
	SpecialUmwait
	SpecialRdpid
	SpecialRdseed
	SpecialSerialize
	SpecialXsusldtrk
	SpecialXresldtrk
	SpecialMovdiri
	SpecialMovdir64b
	SpecialEnqcmd
	SpecialEnqcmds
	SpecialClzero
	SpecialMonitorx
	SpecialMwaitx
	SpecialRdpru
	SpecialWbnoinvd
	SpecialGf2p8mulb
	SpecialGf2p8affineqb
	SpecialGf2p8affineinvqb
	numSpecial
)

var specialNames = [numSpecial]string{
	SpecialNone:             "none",
	SpecialEndbr64:          "endbr64",
	SpecialEndbr32:          "endbr32",
	SpecialRdssp:            "rdssp",
	SpecialVzeroupper:       "vzeroupper",
	SpecialVzeroall:         "vzeroall",
	SpecialAdcx:             "adcx",
	SpecialAdox:             "adox",
	SpecialRdpkru:           "rdpkru",
	SpecialWrpkru:           "wrpkru",
	SpecialIncssp:           "incssp",
	SpecialSaveprevssp:      "saveprevssp",
	SpecialRstorssp:         "rstorssp",
	SpecialSetssbsy:         "setssbsy",
	SpecialClrssbsy:         "clrssbsy",
	SpecialWrss:             "wrss",
	SpecialWruss:            "wruss",
	SpecialNopHint:          "nop",
	SpecialPrefetch:         "prefetch",
	SpecialPrefetchwt1:      "prefetchwt1",
	SpecialCldemote:         "cldemote",
	SpecialClwb:             "clwb",
	SpecialClflushopt:       "clflushopt",
	SpecialPtwrite:          "ptwrite",
	SpecialTpause:           "tpause",
	SpecialUmonitor:         "umonitor",
	SpecialUmwait:           "umwait",
	SpecialRdpid:            "rdpid",
	SpecialRdseed:           "rdseed",
	SpecialSerialize:        "serialize",
	SpecialXsusldtrk:        "xsusldtrk",
	SpecialXresldtrk:        "xresldtrk",
	SpecialMovdiri:          "movdiri",
	SpecialMovdir64b:        "movdir64b",
	SpecialEnqcmd:           "enqcmd",
	SpecialEnqcmds:          "enqcmds",
	SpecialClzero:           "clzero",
	SpecialMonitorx:         "monitorx",
	SpecialMwaitx:           "mwaitx",
	SpecialRdpru:            "rdpru",
	SpecialWbnoinvd:         "wbnoinvd",
	SpecialGf2p8mulb:        "gf2p8mulb",
	SpecialGf2p8affineqb:    "gf2p8affineqb",
	SpecialGf2p8affineinvqb: "gf2p8affineinvqb",
}

// String returns the GNU mnemonic of the form (without a size suffix).
func (s Special) String() string {
	if s < numSpecial {
		return specialNames[s]
	}
	return fmt.Sprintf("Special(%d)", uint8(s))
}

// prefixSet is a set of mandatory prefixes (see prefixes.mandatory).
type prefixSet uint8

const (
	pNP  prefixSet = 1 << iota // none of 66, F2, F3
	p66                        // 66
	pF3                        // F3
	pF2                        // F2
	pAny = pNP | p66 | pF3 | pF2
)

// modrmKind says whether a form has a ModRM byte and which mod it accepts.
type modrmKind uint8

const (
	mrNone modrmKind = iota // no ModRM: the opcode bytes are the whole form
	mrAny                   // ModRM, register or memory r/m
	mrReg                   // ModRM with mod == 11 only
	mrMem                   // ModRM with mod != 11 only
)

// operandOrder is how String lays out a form's operands (AT&T order).
type operandOrder uint8

const (
	ordNone     operandOrder = iota
	ordRM                    // r/m
	ordRMReg                 // r/m, reg
	ordRegRM                 // reg, r/m
	ordImmRMReg              // $imm8, r/m, reg
)

// regClass is the register file of a form's register operands.
type regClass uint8

const (
	rcGPR   regClass = iota // 32-bit, 64-bit with REX.W, 16-bit with 66
	rcGPR32                 // always 32-bit
	rcGPR64                 // always 64-bit (addresses)
	rcXMM
)

// legacyForm is one Special encoded in the legacy 0F opcode maps:
// prefixes, opcode, then an optional ModRM (+SIB, displacement) and an
// immediate. Forms are tried in table order; the first match wins, so
// specific forms precede the generic ones sharing their opcode.
type legacyForm struct {
	special Special
	prefix  prefixSet // accepted mandatory prefixes
	opcode  []byte    // starting with 0F
	modrm   modrmKind
	regs    uint8 // accepted values of ModRM.reg, as a bit set (0 means all)
	rexW    bool  // only with REX.W
	imm     int   // immediate bytes after the ModRM operand
	order   operandOrder
	class   regClass
	sizeSfx bool // GNU appends d/q by REX.W (rdsspd/rdsspq)
}

// legacyForms: encodings from the Intel SDM (CET, PKU, MOVDIR, ENQCMD,
// WAITPKG, TSXLDTRK, GFNI, RDPID/RDSEED, CLWB/CLFLUSHOPT, PTWRITE), the AMD
// APM (CLZERO, MONITORX/MWAITX, RDPRU, PREFETCH) and the reserved-NOP space
// 0F 18-1F, which the CPU executes as NOP with a ModRM operand.
var legacyForms = []legacyForm{
	{special: SpecialEndbr64, prefix: pF3, opcode: []byte{0x0F, 0x1E, 0xFA}},
	{special: SpecialEndbr32, prefix: pF3, opcode: []byte{0x0F, 0x1E, 0xFB}},
	{special: SpecialRdssp, prefix: pF3, opcode: []byte{0x0F, 0x1E}, modrm: mrReg, regs: 1 << 1, order: ordRM, sizeSfx: true},
	{special: SpecialCldemote, prefix: pNP, opcode: []byte{0x0F, 0x1C}, modrm: mrMem, regs: 1 << 0, order: ordRM},
	{special: SpecialNopHint, prefix: pAny, opcode: []byte{0x0F, 0x18}, modrm: mrMem, regs: 0xF0, order: ordRM},
	{special: SpecialNopHint, prefix: pAny, opcode: []byte{0x0F, 0x18}, modrm: mrReg, order: ordRM},
	{special: SpecialNopHint, prefix: pAny, opcode: []byte{0x0F, 0x19}, modrm: mrAny, order: ordRM},
	{special: SpecialNopHint, prefix: pAny, opcode: []byte{0x0F, 0x1A}, modrm: mrAny, order: ordRM},
	{special: SpecialNopHint, prefix: pAny, opcode: []byte{0x0F, 0x1B}, modrm: mrAny, order: ordRM},
	{special: SpecialNopHint, prefix: pAny, opcode: []byte{0x0F, 0x1C}, modrm: mrAny, order: ordRM},
	{special: SpecialNopHint, prefix: pAny, opcode: []byte{0x0F, 0x1D}, modrm: mrAny, order: ordRM},
	{special: SpecialNopHint, prefix: pAny, opcode: []byte{0x0F, 0x1E}, modrm: mrAny, order: ordRM},
	{special: SpecialNopHint, prefix: pAny, opcode: []byte{0x0F, 0x1F}, modrm: mrAny, regs: 0xFE, order: ordRM},
	{special: SpecialNopHint, prefix: pAny, opcode: []byte{0x0F, 0x1F}, modrm: mrAny, rexW: true, order: ordRM},
	{special: SpecialPrefetch, prefix: pAny, opcode: []byte{0x0F, 0x0D}, modrm: mrMem, regs: 0xF9, order: ordRM},
	{special: SpecialPrefetchwt1, prefix: pAny, opcode: []byte{0x0F, 0x0D}, modrm: mrMem, regs: 1 << 2, order: ordRM},
	{special: SpecialRdpkru, prefix: pNP, opcode: []byte{0x0F, 0x01, 0xEE}},
	{special: SpecialWrpkru, prefix: pNP, opcode: []byte{0x0F, 0x01, 0xEF}},
	{special: SpecialSerialize, prefix: pNP, opcode: []byte{0x0F, 0x01, 0xE8}},
	{special: SpecialSetssbsy, prefix: pF3, opcode: []byte{0x0F, 0x01, 0xE8}},
	{special: SpecialXsusldtrk, prefix: pF2, opcode: []byte{0x0F, 0x01, 0xE8}},
	{special: SpecialXresldtrk, prefix: pF2, opcode: []byte{0x0F, 0x01, 0xE9}},
	{special: SpecialSaveprevssp, prefix: pF3, opcode: []byte{0x0F, 0x01, 0xEA}},
	{special: SpecialMonitorx, prefix: pNP, opcode: []byte{0x0F, 0x01, 0xFA}},
	{special: SpecialMwaitx, prefix: pNP, opcode: []byte{0x0F, 0x01, 0xFB}},
	{special: SpecialClzero, prefix: pNP, opcode: []byte{0x0F, 0x01, 0xFC}},
	{special: SpecialRdpru, prefix: pNP, opcode: []byte{0x0F, 0x01, 0xFD}},
	{special: SpecialRstorssp, prefix: pF3, opcode: []byte{0x0F, 0x01}, modrm: mrMem, regs: 1 << 5, order: ordRM},
	{special: SpecialWbnoinvd, prefix: pF3, opcode: []byte{0x0F, 0x09}},
	{special: SpecialPtwrite, prefix: pF3, opcode: []byte{0x0F, 0xAE}, modrm: mrAny, regs: 1 << 4, order: ordRM},
	{special: SpecialIncssp, prefix: pF3, opcode: []byte{0x0F, 0xAE}, modrm: mrReg, regs: 1 << 5, order: ordRM, sizeSfx: true},
	{special: SpecialClrssbsy, prefix: pF3, opcode: []byte{0x0F, 0xAE}, modrm: mrMem, regs: 1 << 6, order: ordRM},
	{special: SpecialUmonitor, prefix: pF3, opcode: []byte{0x0F, 0xAE}, modrm: mrReg, regs: 1 << 6, order: ordRM, class: rcGPR64},
	{special: SpecialTpause, prefix: p66, opcode: []byte{0x0F, 0xAE}, modrm: mrReg, regs: 1 << 6, order: ordRM, class: rcGPR32},
	{special: SpecialUmwait, prefix: pF2, opcode: []byte{0x0F, 0xAE}, modrm: mrReg, regs: 1 << 6, order: ordRM, class: rcGPR32},
	{special: SpecialClwb, prefix: p66, opcode: []byte{0x0F, 0xAE}, modrm: mrMem, regs: 1 << 6, order: ordRM},
	{special: SpecialClflushopt, prefix: p66, opcode: []byte{0x0F, 0xAE}, modrm: mrMem, regs: 1 << 7, order: ordRM},
	{special: SpecialRdpid, prefix: pF3, opcode: []byte{0x0F, 0xC7}, modrm: mrReg, regs: 1 << 7, order: ordRM, class: rcGPR64},
	{special: SpecialRdseed, prefix: pNP | p66, opcode: []byte{0x0F, 0xC7}, modrm: mrReg, regs: 1 << 7, order: ordRM},
	{special: SpecialAdcx, prefix: p66, opcode: []byte{0x0F, 0x38, 0xF6}, modrm: mrAny, order: ordRMReg},
	{special: SpecialAdox, prefix: pF3, opcode: []byte{0x0F, 0x38, 0xF6}, modrm: mrAny, order: ordRMReg},
	{special: SpecialWrss, prefix: pNP, opcode: []byte{0x0F, 0x38, 0xF6}, modrm: mrMem, order: ordRegRM, sizeSfx: true},
	{special: SpecialWruss, prefix: p66, opcode: []byte{0x0F, 0x38, 0xF5}, modrm: mrMem, order: ordRegRM, sizeSfx: true},
	{special: SpecialMovdiri, prefix: pNP, opcode: []byte{0x0F, 0x38, 0xF9}, modrm: mrMem, order: ordRegRM},
	{special: SpecialMovdir64b, prefix: p66, opcode: []byte{0x0F, 0x38, 0xF8}, modrm: mrMem, order: ordRMReg, class: rcGPR64},
	{special: SpecialEnqcmds, prefix: pF3, opcode: []byte{0x0F, 0x38, 0xF8}, modrm: mrMem, order: ordRMReg, class: rcGPR64},
	{special: SpecialEnqcmd, prefix: pF2, opcode: []byte{0x0F, 0x38, 0xF8}, modrm: mrMem, order: ordRMReg, class: rcGPR64},
	{special: SpecialGf2p8mulb, prefix: p66, opcode: []byte{0x0F, 0x38, 0xCF}, modrm: mrAny, order: ordRMReg, class: rcXMM},
	{special: SpecialGf2p8affineqb, prefix: p66, opcode: []byte{0x0F, 0x3A, 0xCE}, modrm: mrAny, imm: 1, order: ordImmRMReg, class: rcXMM},
	{special: SpecialGf2p8affineinvqb, prefix: p66, opcode: []byte{0x0F, 0x3A, 0xCF}, modrm: mrAny, imm: 1, order: ordImmRMReg, class: rcXMM},
}

// legacyIndex lists, for each byte after 0F, the indexes of legacyForms
// with that second opcode byte. Built once; read-only afterwards.
var legacyIndex = buildLegacyIndex(legacyForms)

func buildLegacyIndex(forms []legacyForm) (idx [256][]uint8) {
	for k, f := range forms {
		idx[f.opcode[1]] = append(idx[f.opcode[1]], uint8(k))
	}
	return idx
}

// vexForm is one Special encoded with a VEX prefix and no ModRM.
type vexForm struct {
	special Special
	mmmmm   uint8 // opcode map: 1 = 0F
	pp      uint8 // implied prefix: 0 = none
	l       uint8 // VEX.L
	opcode  byte
}

// vexForms: x86asm reads a ModRM byte after every VEX opcode, so the
// ModRM-less vzeroupper/vzeroall come out 1-6 bytes too long.
var vexForms = []vexForm{
	{special: SpecialVzeroupper, mmmmm: 1, pp: 0, l: 0, opcode: 0x77},
	{special: SpecialVzeroall, mmmmm: 1, pp: 0, l: 1, opcode: 0x77},
}

// specialOps are the ModRM operands of a decoded Special form.
type specialOps struct {
	reg   x86asm.Reg // ModRM.reg operand, 0 when the form has none
	rm    x86asm.Arg // ModRM.rm operand (Reg or Mem), nil when none
	imm   uint8
	order operandOrder
	sfx   byte // size suffix for String, 0 if none
}

// matchLegacySpecial decodes code as a legacy-map Special form, if it is
// one. code[p.n] is 0F.
func matchLegacySpecial(code []byte, p prefixes, inst *Inst) (bool, error) {
	rest := code[p.n:]
	if len(rest) < 2 {
		return false, nil
	}
	mand := p.mandatory()
	for _, k := range legacyIndex[rest[1]] {
		f := &legacyForms[k]
		if f.prefix&mand == 0 || f.rexW && !p.rexW() || !hasPrefix(rest, f.opcode) {
			if len(rest) < len(f.opcode) && hasPrefix(f.opcode, rest) && f.prefix&mand != 0 && (!f.rexW || p.rexW()) {
				return false, ErrTruncated
			}
			continue
		}
		pos := p.n + len(f.opcode)
		var ops specialOps
		if f.modrm != mrNone {
			if pos >= len(code) {
				return false, ErrTruncated
			}
			m := code[pos]
			mod, reg := m>>6, (m>>3)&7
			if f.modrm == mrReg && mod != 3 || f.modrm == mrMem && mod == 3 {
				continue
			}
			if f.regs != 0 && f.regs&(1<<reg) == 0 {
				continue
			}
			var err error
			// 66 is an operand-size override unless it is the form's
			// mandatory prefix (adcx: 66 0F 38 F6 has 32-bit operands).
			p16 := p.has66 && f.prefix != p66
			ops, pos, err = parseModRM(code, pos, p, f.class, p16)
			if err != nil {
				return false, err
			}
		}
		if f.imm > 0 {
			if pos+f.imm > len(code) {
				return false, ErrTruncated
			}
			ops.imm = code[pos]
			pos += f.imm
		}
		if pos > MaxLen {
			return false, ErrTooLong
		}
		ops.order = f.order
		if f.sizeSfx {
			ops.sfx = 'd'
			if p.rexW() {
				ops.sfx = 'q'
			}
		}
		inst.Mode = 64
		inst.Len = pos
		inst.Special = f.special
		inst.ops = ops
		if m, ok := ops.rm.(x86asm.Mem); ok && (m.Base == x86asm.RIP || m.Base == x86asm.EIP) {
			inst.PCRel = 4
			inst.PCRelOff = pos - f.imm - 4
		}
		return true, nil
	}
	return false, nil
}

func hasPrefix(b, prefix []byte) bool {
	if len(b) < len(prefix) {
		return false
	}
	for k := range prefix {
		if b[k] != prefix[k] {
			return false
		}
	}
	return true
}

// parseModRM reads the ModRM byte at code[pos] and what follows it (SIB,
// displacement) in 64-bit mode, returning the operands and the position
// after them. The length rules are the same for 32- and 64-bit addressing.
func parseModRM(code []byte, pos int, p prefixes, class regClass, p16 bool) (specialOps, int, error) {
	var ops specialOps
	m := code[pos]
	pos++
	mod, reg, rm := m>>6, (m>>3)&7, m&7
	if p.rexR() {
		reg |= 8
	}
	ops.reg = classReg(class, p, p16, reg)
	if mod == 3 {
		if p.rexB() {
			rm |= 8
		}
		ops.rm = classReg(class, p, p16, rm)
		return ops, pos, nil
	}
	base := x86asm.RAX
	if p.has67 {
		base = x86asm.EAX
	}
	var mem x86asm.Mem
	dispLen := 0
	switch mod {
	case 1:
		dispLen = 1
	case 2:
		dispLen = 4
	}
	if rm == 4 {
		if pos >= len(code) {
			return ops, pos, ErrTruncated
		}
		sib := code[pos]
		pos++
		scale, index, b := sib>>6, (sib>>3)&7, sib&7
		if p.rexX() {
			index |= 8
		}
		mem.Scale = 1 << scale
		if index != 4 {
			mem.Index = base + x86asm.Reg(index)
		}
		if b == 5 && mod == 0 {
			dispLen = 4
		} else {
			if p.rexB() {
				b |= 8
			}
			mem.Base = base + x86asm.Reg(b)
		}
	} else if rm == 5 && mod == 0 {
		dispLen = 4
		mem.Base = x86asm.RIP
		if p.has67 {
			mem.Base = x86asm.EIP
		}
	} else {
		if p.rexB() {
			rm |= 8
		}
		mem.Base = base + x86asm.Reg(rm)
	}
	if pos+dispLen > len(code) {
		return ops, pos, ErrTruncated
	}
	switch dispLen {
	case 1:
		mem.Disp = int64(int8(code[pos]))
	case 4:
		mem.Disp = int64(int32(binary.LittleEndian.Uint32(code[pos:])))
	}
	pos += dispLen
	if s := segReg(p.seg); s == x86asm.FS || s == x86asm.GS {
		mem.Segment = s // other overrides are ignored in 64-bit mode
	}
	ops.rm = mem
	return ops, pos, nil
}

// classReg names register number n (0-15) of class; p16 says a 66
// prefix selects 16-bit general registers.
func classReg(class regClass, p prefixes, p16 bool, n uint8) x86asm.Reg {
	switch class {
	case rcXMM:
		return x86asm.X0 + x86asm.Reg(n)
	case rcGPR64:
		return x86asm.RAX + x86asm.Reg(n)
	case rcGPR32:
		return x86asm.EAX + x86asm.Reg(n)
	}
	switch {
	case p.rexW():
		return x86asm.RAX + x86asm.Reg(n)
	case p16:
		return x86asm.AX + x86asm.Reg(n)
	}
	return x86asm.EAX + x86asm.Reg(n)
}

func segReg(b byte) x86asm.Reg {
	switch b {
	case 0x26:
		return x86asm.ES
	case 0x2E:
		return x86asm.CS
	case 0x36:
		return x86asm.SS
	case 0x3E:
		return x86asm.DS
	case 0x64:
		return x86asm.FS
	case 0x65:
		return x86asm.GS
	}
	return 0
}

// matchVEXSpecial decodes code (which starts with C4 or C5, no prefixes)
// as a vexForms entry, if it is one.
func matchVEXSpecial(code []byte, inst *Inst) (bool, error) {
	var mmmmm, pp, l, vvvv uint8
	var n int // VEX prefix length
	switch code[0] {
	case 0xC5:
		if len(code) < 3 {
			return false, nil
		}
		b1 := code[1]
		mmmmm, vvvv, l, pp = 1, (b1>>3)&15, (b1>>2)&1, b1&3
		n = 2
	case 0xC4:
		if len(code) < 4 {
			return false, nil
		}
		b1, b2 := code[1], code[2]
		mmmmm, vvvv, l, pp = b1&31, (b2>>3)&15, (b2>>2)&1, b2&3
		n = 3
	default:
		return false, nil
	}
	op := code[n]
	claimed := false
	for _, f := range vexForms {
		if f.mmmmm != mmmmm || f.opcode != op {
			continue
		}
		// The opcode is ours: another pp, or a vvvv other than 1111 (no
		// register), is #UD, not something x86asm should guess at.
		claimed = true
		if f.pp != pp || f.l != l || vvvv != 15 {
			continue
		}
		inst.Mode = 64
		inst.Len = n + 1
		inst.Special = f.special
		return true, nil
	}
	if claimed {
		return false, x86asm.ErrUnrecognized
	}
	return false, nil
}

// specialString formats a Special form in GNU syntax.
func (i *Inst) specialString() string {
	var b strings.Builder
	b.WriteString(i.Special.String())
	o := &i.ops
	if o.sfx != 0 {
		b.WriteByte(o.sfx)
	}
	var args []string
	switch o.order {
	case ordRM:
		args = []string{gnuArg(o.rm)}
	case ordRMReg:
		args = []string{gnuArg(o.rm), gnuArg(o.reg)}
	case ordRegRM:
		args = []string{gnuArg(o.reg), gnuArg(o.rm)}
	case ordImmRMReg:
		args = []string{fmt.Sprintf("$%#x", o.imm), gnuArg(o.rm), gnuArg(o.reg)}
	}
	if len(args) > 0 {
		b.WriteByte(' ')
		b.WriteString(strings.Join(args, ","))
	}
	return b.String()
}

// gnuArg formats a register or memory operand as GNU objdump does.
func gnuArg(a x86asm.Arg) string {
	switch a := a.(type) {
	case x86asm.Reg:
		return "%" + gnuReg(a)
	case x86asm.Mem:
		var b strings.Builder
		if a.Segment != 0 {
			b.WriteString("%" + gnuReg(a.Segment) + ":")
		}
		switch {
		case a.Disp < 0:
			fmt.Fprintf(&b, "-%#x", -a.Disp)
		case a.Disp > 0 || a.Base == x86asm.RIP || a.Base == x86asm.EIP || a.Base == 0 && a.Index == 0:
			fmt.Fprintf(&b, "%#x", a.Disp)
		}
		if a.Base != 0 || a.Index != 0 {
			b.WriteByte('(')
			if a.Base != 0 {
				b.WriteString("%" + gnuReg(a.Base))
			}
			if a.Index != 0 {
				fmt.Fprintf(&b, ",%%%s,%d", gnuReg(a.Index), a.Scale)
			}
			b.WriteByte(')')
		}
		return b.String()
	}
	return "?"
}

// gnuReg is the GNU name of r: x86asm calls the 32-bit r8-r15 "R8L".
func gnuReg(r x86asm.Reg) string {
	switch {
	case r >= x86asm.R8L && r <= x86asm.R15L:
		return fmt.Sprintf("r%dd", 8+int(r-x86asm.R8L))
	case r >= x86asm.X0 && r <= x86asm.X15:
		return fmt.Sprintf("xmm%d", int(r-x86asm.X0))
	}
	return strings.ToLower(r.String())
}
