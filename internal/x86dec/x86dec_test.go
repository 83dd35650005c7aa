package x86dec

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

// instRow is one instruction assembled by GNU as; lengths, targets and
// %rip-relative addresses are taken from objdump, the rest is the
// expected classification.
type instRow struct {
	asm     string // one AT&T instruction or a .byte directive
	special Special
	flow    Flow
	rip     bool                   // has a %rip/%eip-relative memory operand
	noText  bool                   // objdump names the form differently (MPX)
	check   func(*testing.T, Inst) // extra checks, optional
}

var instRows = []instRow{
	// Special forms (x86asm v0.32.0 gets each of them wrong).
	{asm: "endbr64", special: SpecialEndbr64},
	{asm: "endbr32", special: SpecialEndbr32},
	{asm: ".byte 0x66,0xf3,0x0f,0x1e,0xfa", special: SpecialEndbr64},
	{asm: ".byte 0xf3,0x48,0x0f,0x1e,0xfa", special: SpecialEndbr64},
	{asm: "rdsspq %rax", special: SpecialRdssp},
	{asm: "rdsspq %r9", special: SpecialRdssp},
	{asm: "rdsspd %r10d", special: SpecialRdssp},
	{asm: "vzeroupper", special: SpecialVzeroupper},
	{asm: "vzeroall", special: SpecialVzeroall},
	{asm: "{vex3} vzeroupper", special: SpecialVzeroupper},
	{asm: "{vex3} vzeroall", special: SpecialVzeroall},
	{asm: ".byte 0x2e,0xc5,0xf8,0x77", special: SpecialVzeroupper},
	{asm: "adcx %eax,%ebx", special: SpecialAdcx},
	{asm: "adcx %rax,%rbx", special: SpecialAdcx},
	{asm: "adcx (%rax,%rbx,4),%r9", special: SpecialAdcx},
	{asm: "adcx 0x1234(%rip),%r9", special: SpecialAdcx, rip: true},
	{asm: "adcx %fs:-0x80(%r12),%r13", special: SpecialAdcx},
	{asm: "adox %eax,%ebx", special: SpecialAdox},
	{asm: "adox 0x10(%rax,%rbx,4),%r9", special: SpecialAdox},
	{asm: "adox 0x12345(,%r14,8),%r8", special: SpecialAdox},
	{asm: "rdpkru", special: SpecialRdpkru},
	{asm: "wrpkru", special: SpecialWrpkru},
	{asm: "incsspq %rax", special: SpecialIncssp},
	{asm: "incsspd %r11d", special: SpecialIncssp},
	{asm: "saveprevssp", special: SpecialSaveprevssp},
	{asm: "rstorssp (%rax)", special: SpecialRstorssp},
	{asm: "rstorssp -0x10(%rip)", special: SpecialRstorssp, rip: true},
	{asm: "setssbsy", special: SpecialSetssbsy},
	{asm: "clrssbsy (%rax)", special: SpecialClrssbsy},
	{asm: "wrssq %rax,(%rbx)", special: SpecialWrss},
	{asm: "wrssd %eax,0x40(%rbx)", special: SpecialWrss},
	{asm: "wrussq %rax,(%rbx)", special: SpecialWruss},
	{asm: ".byte 0x0f,0x19,0xc0", special: SpecialNopHint},
	{asm: ".byte 0x0f,0x1a,0xc0", special: SpecialNopHint},
	{asm: ".byte 0x0f,0x1b,0xcb", special: SpecialNopHint},
	{asm: ".byte 0x0f,0x1a,0x04,0x24", special: SpecialNopHint, noText: true},
	{asm: ".byte 0x66,0x0f,0x1b,0x44,0x24,0x08", special: SpecialNopHint, noText: true},
	{asm: ".byte 0x66,0x0f,0x19,0xc0", special: SpecialNopHint},
	{asm: ".byte 0x0f,0x1c,0xc1", special: SpecialNopHint},
	{asm: ".byte 0x0f,0x1d,0x84,0x00,0,0,0,0", special: SpecialNopHint},
	{asm: ".byte 0x0f,0x1e,0x80,0,0,0,0", special: SpecialNopHint},
	{asm: ".byte 0xf3,0x0f,0x1e,0xfc", special: SpecialNopHint},
	{asm: ".byte 0xf3,0x0f,0x1e,0x00", special: SpecialNopHint},
	{asm: ".byte 0x0f,0x19,0x05,0x10,0,0,0", special: SpecialNopHint, rip: true},
	{asm: ".byte 0x0f,0x18,0x38", special: SpecialNopHint},
	{asm: ".byte 0x0f,0x18,0xc0", special: SpecialNopHint},
	{asm: ".byte 0x0f,0x1f,0xc8", special: SpecialNopHint},
	{asm: ".byte 0x0f,0x1f,0x38", special: SpecialNopHint},
	{asm: "prefetch (%rax)", special: SpecialPrefetch},
	{asm: ".byte 0x0f,0x0d,0x18", special: SpecialPrefetch},
	{asm: "prefetchwt1 0x40(%rdi)", special: SpecialPrefetchwt1},
	{asm: "cldemote (%rax)", special: SpecialCldemote},
	{asm: "clwb (%rax)", special: SpecialClwb},
	{asm: "clflushopt 0x10(%rax)", special: SpecialClflushopt},
	{asm: "ptwrite %rax", special: SpecialPtwrite},
	{asm: "ptwritel (%rax)", special: SpecialPtwrite},
	{asm: "tpause %eax", special: SpecialTpause},
	{asm: "umonitor %rax", special: SpecialUmonitor},
	{asm: "umwait %ecx", special: SpecialUmwait},
	{asm: "rdpid %rax", special: SpecialRdpid},
	{asm: "rdseed %rax", special: SpecialRdseed},
	{asm: "rdseed %ax", special: SpecialRdseed},
	{asm: "serialize", special: SpecialSerialize},
	{asm: "xsusldtrk", special: SpecialXsusldtrk},
	{asm: "xresldtrk", special: SpecialXresldtrk},
	{asm: "movdiri %rax,(%rbx)", special: SpecialMovdiri},
	{asm: "movdir64b (%rax),%rbx", special: SpecialMovdir64b},
	{asm: "enqcmd (%rax),%rbx", special: SpecialEnqcmd},
	{asm: "enqcmds (%rax),%rbx", special: SpecialEnqcmds},
	{asm: "clzero", special: SpecialClzero},
	{asm: "monitorx", special: SpecialMonitorx},
	{asm: "mwaitx", special: SpecialMwaitx},
	{asm: "rdpru", special: SpecialRdpru},
	{asm: "wbnoinvd", special: SpecialWbnoinvd},
	{asm: "gf2p8mulb %xmm1,%xmm0", special: SpecialGf2p8mulb},
	{asm: "gf2p8affineqb $1,(%rdi),%xmm0", special: SpecialGf2p8affineqb},
	{asm: "gf2p8affineinvqb $2,%xmm9,%xmm10", special: SpecialGf2p8affineinvqb},

	// NOP forms used for padding.
	{asm: "nop"},
	{asm: "xchg %ax,%ax"},
	{asm: "pause"},
	{asm: "nopw %ax"},
	{asm: "nopl (%rax)"},
	{asm: "nopl 0x0(%rax)"},
	{asm: "nopl 0x0(%rax,%rax,1)"},
	{asm: "nopw 0x0(%rax,%rax,1)"},
	{asm: ".byte 0x0f,0x1f,0x80,0,0,0,0"},
	{asm: "nopw %cs:0x0(%rax,%rax,1)"},
	{asm: ".byte 0x66,0x66,0x2e,0x0f,0x1f,0x84,0,0,0,0,0"},
	{asm: ".byte 0x66,0x66,0x66,0x66,0x66,0x66,0x2e,0x0f,0x1f,0x84,0,0,0,0,0"},
	{asm: ".byte 0xf3,0x0f,0x1f,0x00"},

	// Control flow.
	{asm: "jmp .+0x40", flow: FlowJump},
	{asm: "jmp .+0x1000", flow: FlowJump},
	{asm: "jmp .-0x1000", flow: FlowJump},
	{asm: "bnd jmp .+0x40", flow: FlowJump},
	{asm: "je .+0x20", flow: FlowCondJump},
	{asm: "jne .+0x2000", flow: FlowCondJump},
	{asm: "jg .-0x30", flow: FlowCondJump},
	{asm: ".byte 0x2e,0x75,0x10", flow: FlowCondJump},
	{asm: ".byte 0x3e,0x0f,0x84,0,1,0,0", flow: FlowCondJump},
	{asm: "loop .+0x10", flow: FlowCondJump},
	{asm: "loope .+0x10", flow: FlowCondJump},
	{asm: "loopne .-0x10", flow: FlowCondJump},
	{asm: "jrcxz .+0x10", flow: FlowCondJump},
	{asm: "jecxz .+0x10", flow: FlowCondJump},
	{asm: "xbegin .+0x100", flow: FlowCondJump},
	{asm: "call .+0x100", flow: FlowCall},
	{asm: "call .-0x100", flow: FlowCall},
	{asm: "bnd call .+0x100", flow: FlowCall},
	{asm: ".byte 0x66,0x66,0x48,0xe8,0,1,0,0", flow: FlowCall}, // TLS GD call: REX.W overrides 66
	{asm: "call *%rax", flow: FlowIndirectCall},
	{asm: "call *(%rax,%rbx,8)", flow: FlowIndirectCall},
	{asm: "call *0x10(%rip)", flow: FlowIndirectCall, rip: true},
	{asm: "notrack call *%rax", flow: FlowIndirectCall},
	{asm: "lcall *(%rax)", flow: FlowIndirectCall},
	{asm: "jmp *%rax", flow: FlowIndirectJump},
	{asm: "jmp *%r11", flow: FlowIndirectJump},
	{asm: "jmp *0x10(%rip)", flow: FlowIndirectJump, rip: true},
	{asm: "jmp *0x6d1000(,%rax,8)", flow: FlowIndirectJump},
	{asm: "notrack jmp *%rax", flow: FlowIndirectJump},
	{asm: "notrack jmp *(%r12,%rax,8)", flow: FlowIndirectJump},
	{asm: "bnd jmp *%rax", flow: FlowIndirectJump},
	{asm: ".byte 0xf2,0x3e,0xff,0xe0", flow: FlowIndirectJump},
	{asm: "ljmp *(%rax)", flow: FlowIndirectJump},
	{asm: "ret", flow: FlowReturn},
	{asm: "ret $8", flow: FlowReturn},
	{asm: "repz ret", flow: FlowReturn},
	{asm: "bnd ret", flow: FlowReturn},
	{asm: "lretq", flow: FlowReturn},
	{asm: "iretq", flow: FlowReturn},
	{asm: "sysretq", flow: FlowReturn},
	{asm: "sysexitq", flow: FlowReturn},
	{asm: "hlt", flow: FlowHalt},
	{asm: "ud2", flow: FlowHalt},
	{asm: "ud1 %eax,%eax", flow: FlowHalt},
	{asm: "ud1 0x10(%rax),%eax", flow: FlowHalt},
	{asm: "ud0 (%rax),%eax", flow: FlowHalt},
	{asm: "int3"},
	{asm: "int $0x80"},
	{asm: "syscall"},
	{asm: "xabort $1"},
	{asm: "xend"},

	// %rip-relative operands, including VEX/EVEX ones (x86asm leaves
	// their Base empty) and an immediate after the displacement.
	{asm: "mov 0x1234(%rip),%rax", rip: true},
	{asm: "lea -0x10(%rip),%rdi", rip: true, check: func(t *testing.T, i Inst) {
		assert.Equal(t, "lea -0x10(%rip),%rdi", i.String(), "disp32 is sign-extended")
	}},
	{asm: "movq $1,0x10(%rip)", rip: true},
	{asm: "cmpb $0x0,0x474545(%rip)", rip: true},
	{asm: "mov 0x10(%eip),%eax", rip: true},
	{asm: "vmovdqu 0x1000(%rip),%ymm0", rip: true},
	{asm: "vpcmpeqb -0x40(%rip),%ymm0,%ymm1", rip: true},
	{asm: "vmovdqu64 0x1000(%rip),%zmm17", rip: true},
	{asm: "vpcmpeqb 0x40(%rip),%zmm16,%k0", rip: true},
	{asm: "vpternlogd $0xde,0x40(%rip),%zmm17,%zmm18", rip: true},
	{asm: "vpbroadcastd 0x40(%rip),%ymm0", rip: true},
	{asm: "addr32 vmovdqu 0x10(%eip),%ymm0", rip: true},

	// VEX and EVEX as in libc's string functions.
	{asm: "vpcmpeqb (%rdi),%ymm0,%ymm1"},
	{asm: "vpminub 0x20(%rdi,%rax,1),%ymm2,%ymm3"},
	{asm: "vpmovmskb %ymm1,%eax"},
	{asm: "vmovdqu %ymm0,-0x20(%rdi,%rdx,1)"},
	{asm: "vmovdqu64 0x40(%rsi),%zmm16"},
	{asm: "vmovdqu8 (%rsi),%zmm16{%k1}{z}"},
	{asm: "vpcmpb $0,(%rdi),%zmm16,%k0"},
	{asm: "vpcmpnequb %zmm16,%zmm17,%k1"},
	{asm: "vptestnmb %zmm16,%zmm16,%k1"},
	{asm: "vpternlogd $0xde,%zmm16,%zmm17,%zmm18"},
	{asm: "vpternlogd $0xde,(%rdi){1to16},%zmm17,%zmm18"},
	{asm: "vpminub -0x41(%rdi),%zmm16,%zmm17"},
	{asm: "vpbroadcastb %esi,%zmm16"},
	{asm: "kmovd %k0,%eax"},
	{asm: "kmovq %rax,%k1"},
	{asm: "kortestd %k0,%k1"},
	{asm: "kunpckdq %k0,%k1,%k2"},
	{asm: "vpgatherdd (%rdi,%zmm2,4),%zmm3{%k1}"},
	{asm: "vaddpd {rn-sae},%zmm1,%zmm2,%zmm3"},
	{asm: "tzcnt %rax,%rbx"},
	{asm: "sarx %rax,%rbx,%rcx"},
	{asm: "bzhi %eax,%ebx,%ecx"},
	{asm: "rorx $3,%rax,%rbx"},
	{asm: "addr32 vmovdqu (%eax),%ymm0"},
	{asm: "addr32 vmovdqu64 0x40(%r8d,%r9d,2),%zmm16"},
	{asm: ".byte 0x64,0xc5,0xfe,0x6f,0x06", check: func(t *testing.T, i Inst) {
		m, ok := i.Args[1].(x86asm.Mem)
		require.True(t, ok)
		assert.Equal(t, x86asm.FS, m.Segment)
	}},
	{asm: ".byte 0x65,0x67,0x62,0xe1,0xfe,0x48,0x6f,0x46,0x01", check: func(t *testing.T, i Inst) {
		m, ok := i.Args[1].(x86asm.Mem)
		require.True(t, ok)
		assert.Equal(t, x86asm.Mem{Segment: x86asm.GS, Base: x86asm.ESI, Scale: 0, Disp: 0x40}, m)
		assert.Equal(t, 32, i.AddrSize)
	}},

	// Other encodings worth pinning.
	{asm: "mov %fs:0x28,%rax"},
	{asm: ".byte 0x66,0x66,0x66,0x64,0x48,0x8b,0x04,0x25,0,0,0,0"},
	{asm: "lock cmpxchg %ecx,(%rdi)"},
	{asm: "rep stos %rax,%es:(%rdi)"},
	{asm: "movabs 0x80000000,%rax", check: func(t *testing.T, i Inst) {
		m, ok := i.Args[1].(x86asm.Mem)
		require.True(t, ok)
		assert.Equal(t, int64(0x80000000), m.Disp, "moffs64 is an address, not a disp32")
	}},
	{asm: ".byte 0x48,0x8b,0x04,0xc5,0,0,0,0x80", check: func(t *testing.T, i Inst) {
		m, ok := i.Args[1].(x86asm.Mem)
		require.True(t, ok)
		assert.Equal(t, int64(-0x80000000), m.Disp, "disp32 is sign-extended")
	}},
	{asm: "xchg %eax,%r8d"},
	{asm: "fnstsw %ax"},
	{asm: "rdrand %rax"},
	{asm: "crc32q %rax,%rbx"},
}

// slotSize is the spacing of rows in the assembled test program: each row
// is followed by a sentinel instruction, then int3 padding.
const slotSize = 64

// sentinel follows each row; decoding it at the row's End checks that the
// row left the decoder in sync.
const sentinel = "movabs $0x1122334455667788,%r11"

// assembleRows assembles instRows, one per slot, and returns the code and
// objdump's line at the start of each slot and the one after it.
func assembleRows(t *testing.T) ([]byte, []objLine, []objLine) {
	var src strings.Builder
	src.WriteString(".text\n")
	for _, r := range instRows {
		fmt.Fprintf(&src, ".balign %d, 0xcc\n%s\n%s\n", slotSize, r.asm, sentinel)
	}
	code, lines := assemble(t, src.String())
	require.Len(t, code, slotSize*len(instRows)-(slotSize-len(code)%slotSize)%slotSize)
	first := make([]objLine, len(instRows))
	second := make([]objLine, len(instRows))
	for k, l := range lines {
		if l.addr%slotSize == 0 {
			first[l.addr/slotSize] = l
			if k+1 < len(lines) {
				second[l.addr/slotSize] = lines[k+1]
			}
		}
	}
	return code, first, second
}

func TestInstRowsAgainstObjdump(t *testing.T) {
	code, first, second := assembleRows(t)
	covered := map[Special]bool{}
	for k, r := range instRows {
		t.Run(r.asm, func(t *testing.T) {
			addr := uint64(k * slotSize)
			ol := first[k]
			require.NotEmpty(t, ol.bytes, "objdump shows no instruction at slot %d", k)
			require.Equal(t, addr, ol.addr)
			inst, err := Decode(code[addr:], addr)
			require.NoError(t, err, "objdump: %s", ol.text)
			assert.Equal(t, len(ol.bytes), inst.Len, "length; objdump: %s", ol.text)
			assert.Equal(t, addr, inst.Addr)
			assert.Equal(t, addr+uint64(len(ol.bytes)), inst.End())
			assert.Equal(t, r.special, inst.Special, "special; objdump: %s", ol.text)
			assert.Equal(t, r.flow, inst.Flow(), "flow; objdump: %s", ol.text)
			assert.Equal(t, objFlow(ol.text), inst.Flow(), "flow as objdump's text says: %s", ol.text)
			covered[inst.Special] = true

			tgt, ok := inst.Target()
			switch r.flow {
			case FlowJump, FlowCondJump, FlowCall:
				want, wok := objTarget(ol.text)
				require.True(t, wok, "objdump shows no target: %s", ol.text)
				assert.True(t, ok)
				assert.Equal(t, want, tgt, "target; objdump: %s", ol.text)
			default:
				assert.False(t, ok, "Target on a non-direct branch")
			}

			rip, ok := inst.MemRIPTarget()
			assert.Equal(t, r.rip, ok, "MemRIPTarget presence")
			if want, wok := objRIPTarget(ol.text); wok || r.rip {
				require.True(t, wok, "objdump shows no %%rip target: %s", ol.text)
				assert.Equal(t, want, rip, "%%rip target; objdump: %s", ol.text)
			}

			if inst.Special != SpecialNone {
				assert.Zero(t, inst.Op)
				assert.Nil(t, inst.Args[0])
				if !r.noText {
					assertSameText(t, ol.text, inst.String())
				}
			} else {
				assert.NotZero(t, inst.Op)
				assert.NotEmpty(t, inst.String())
			}

			// The next instruction must decode where objdump puts it.
			next, err := Decode(code[inst.End():], inst.End())
			require.NoError(t, err)
			assert.Equal(t, second[k].addr, next.Addr)
			assert.Equal(t, x86asm.MOV, next.Op, "sentinel after %s decoded as %s", r.asm, next.String())
			assert.Equal(t, x86asm.Imm(0x1122334455667788), next.Args[1])

			if r.check != nil {
				r.check(t, inst)
			}
		})
	}
	for s := SpecialNone + 1; s < numSpecial; s++ {
		assert.True(t, covered[s], "no row decodes to %v", s)
	}
}

// assertSameText compares a Special's String with objdump's text: same
// mnemonic up to a size suffix, same explicit operands (objdump also
// prints implicit ones, e.g. for monitorx).
func assertSameText(t *testing.T, objText, ours string) {
	t.Helper()
	if k := strings.Index(objText, " # "); k >= 0 {
		objText = objText[:k]
	}
	omn, oops := objMnemonic(objText)
	oops = strings.ReplaceAll(oops, "0x0(", "(")
	mn, ops, _ := strings.Cut(ours, " ")
	if omn != mn {
		assert.Equal(t, omn[:len(omn)-1], mn, "mnemonic of %q vs objdump %q", ours, objText)
		assert.Contains(t, "bwlq", omn[len(omn)-1:], "suffix of objdump %q", objText)
	}
	if ops != "" {
		assert.Equal(t, oops, ops, "operands of %q vs objdump %q", ours, objText)
	}
}

// TestSpecialFormsAreNeeded checks that x86asm alone still gets every
// Special row wrong (error, bare prefix, wrong length or a different
// mnemonic), so that the table shrinks when x86asm is fixed.
func TestSpecialFormsAreNeeded(t *testing.T) {
	code, first, _ := assembleRows(t)
	for k, r := range instRows {
		if r.special == SpecialNone {
			continue
		}
		ol := first[k]
		raw, err := x86asm.Decode(code[ol.addr:], 64)
		wrong := err != nil || raw.Op == 0 || raw.Len != len(ol.bytes) ||
			!strings.Contains(x86asm.GNUSyntax(raw, ol.addr, nil), r.special.String())
		assert.True(t, wrong, "x86asm decodes %s (% x) correctly now: %s", r.asm, ol.bytes, x86asm.GNUSyntax(raw, ol.addr, nil))
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		code []byte
		want error
	}{
		{name: "empty", code: nil, want: ErrTruncated},
		{name: "lone rex", code: []byte{0x48}, want: ErrTruncated},
		{name: "truncated call", code: []byte{0xE8, 0, 0}, want: ErrTruncated},
		{name: "truncated endbr64", code: []byte{0xF3, 0x0F, 0x1E}, want: ErrTruncated},
		{name: "truncated vzeroupper", code: []byte{0xC5, 0xF8}, want: ErrTruncated},
		{name: "truncated adcx disp32", code: []byte{0x66, 0x0F, 0x38, 0xF6, 0x80, 1, 2}, want: ErrTruncated},
		{name: "truncated rdpkru", code: []byte{0x0F, 0x01}, want: ErrTruncated},
		{name: "16 prefixes", code: []byte{0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x90}, want: ErrTooLong},
		{name: "rep before unknown 0f 38", code: []byte{0xF3, 0x0F, 0x38, 0x00, 0xC0}, want: ErrNoOpcode},
		{name: "rex before vex", code: []byte{0x48, 0xC5, 0xF8, 0x77}, want: ErrPrefixBeforeVEX},
		{name: "66 before vex", code: []byte{0x66, 0xC5, 0xFE, 0x6F, 0x06}, want: ErrPrefixBeforeVEX},
		{name: "invalid in 64-bit mode", code: []byte{0xCE}, want: x86asm.ErrUnrecognized},
		{name: "3DNow!", code: []byte{0x0F, 0x0F, 0xC1, 0xB4}, want: x86asm.ErrUnrecognized},
		{name: "prefetch reg form", code: []byte{0x0F, 0x0D, 0xC0}, want: x86asm.ErrUnrecognized},
		{name: "vzeroupper with vvvv", code: []byte{0xC5, 0xF0, 0x77}, want: x86asm.ErrUnrecognized},
		{name: "vzeroupper map 0F38", code: []byte{0xC4, 0xE2, 0x78, 0x77, 0x00}, want: x86asm.ErrUnrecognized},
		{name: "vzeroupper pp=66", code: []byte{0xC5, 0xF9, 0x77}, want: x86asm.ErrUnrecognized},
		{name: "jmpw rel16", code: []byte{0x66, 0xE9, 0, 0, 0x90, 0x90}, want: ErrVendorDependent},
		{name: "callw rel16", code: []byte{0x66, 0xE8, 0, 0, 0x90, 0x90}, want: ErrVendorDependent},
		{name: "jew rel16", code: []byte{0x66, 0x0F, 0x84, 0, 0, 0x90, 0x90}, want: ErrVendorDependent},
		{name: "data16 jmp rel8", code: []byte{0x66, 0xEB, 0x00}, want: ErrVendorDependent},
		{name: "jmp *%ax", code: []byte{0x66, 0xFF, 0xE0}, want: ErrVendorDependent},
		{name: "retw", code: []byte{0x66, 0xC3}, want: ErrVendorDependent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const addr = 0x4a1b2c
			inst, err := Decode(tt.code, addr)
			require.Error(t, err, "decoded %s", inst.String())
			var de *Error
			require.True(t, errors.As(err, &de))
			assert.ErrorIs(t, err, tt.want)
			assert.Equal(t, uint64(addr), de.Addr)
			assert.Equal(t, tt.code[:min(len(tt.code), MaxLen)], de.Bytes)
			assert.True(t, strings.HasPrefix(err.Error(), "decode 0x4a1b2c ["), err.Error())
			assert.Equal(t, Inst{}, inst)
		})
	}
}

// TestVendorDependentBranches shows why a 66 prefix on a near branch is
// an error: objdump (AMD64 rules: a 16-bit operand) and x86asm (Intel
// rules: the prefix is ignored) disagree on the length.
func TestVendorDependentBranches(t *testing.T) {
	forms := []string{
		".byte 0x66,0xe9,0x00,0x00",      // jmpw rel16
		".byte 0x66,0xe8,0x00,0x00",      // callw rel16
		".byte 0x66,0x0f,0x84,0x00,0x00", // jew rel16
	}
	var src strings.Builder
	src.WriteString(".text\n")
	for _, f := range forms {
		fmt.Fprintf(&src, ".balign 16, 0x90\n%s\n", f)
	}
	src.WriteString(".balign 16, 0x90\n")
	code, lines := assemble(t, src.String())
	for k, f := range forms {
		addr := uint64(16 * k)
		var ol objLine
		for _, l := range lines {
			if l.addr == addr {
				ol = l
			}
		}
		require.NotEmpty(t, ol.bytes, f)
		raw, err := x86asm.Decode(code[addr:], 64)
		require.NoError(t, err)
		assert.NotEqual(t, len(ol.bytes), raw.Len, "%s: objdump %q and x86asm agree", f, ol.text)
		_, err = Decode(code[addr:], addr)
		assert.ErrorIs(t, err, ErrVendorDependent, f)
	}
}
