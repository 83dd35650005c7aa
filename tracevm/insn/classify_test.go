package insn

import (
	"debug/elf"
	"fmt"
	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"sort"
	"strings"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

const (
	testBase = 0x400000
	testFar  = 0x40400000 // the symbol "far": only rel32 reaches it from testBase
)

type classifyCase struct {
	text   string
	kind   Kind
	reason string
	rip    bool
	rel    int64 // Jump, Call, CondJump: target relative to the instruction (when !far)
	far    bool  // Jump, Call, CondJump: the target is the symbol far
}

func u(text, reason string) classifyCase {
	return classifyCase{text: text, kind: Unsupported, reason: reason}
}

var classifyCases = []classifyCase{
	// Plain.
	{text: "mov %rax,%rbx"},
	{text: "lea far(%rip),%rax", rip: true},
	{text: "cmpl $1,far(%rip)", rip: true},
	{text: "pushq far(%rip)", rip: true},
	{text: "vmovdqu far(%rip),%ymm0", rip: true},
	{text: "vmovdqu64 far(%rip),%zmm17", rip: true},
	{text: "adcx far(%rip),%rax", rip: true}, // x86dec Special
	{text: "prefetchw far(%rip)", rip: true},
	{text: "endbr64"},
	{text: "vzeroupper"},
	{text: "pushf"},
	{text: "popf"},
	{text: "cld"},
	{text: "xtest"},
	{text: "mov %fs:0x28,%rax"},
	{text: "mov %gs:(%rax),%rbx"},
	{text: "rdfsbase %rax"},
	{text: "cpuid"},
	{text: "rdtsc"},
	{text: "rdpid %rax"},
	{text: "nopw 0x0(%rax,%rax,1)"},
	{text: "cs nopw 0x0(%rax,%rax,1)"},
	{text: "lock cmpxchg %rbx,(%rax)"},
	{text: "rep movsb"},
	{text: "mov 0x10(%eax),%ecx"}, // addr32 without %eip runs natively
	{text: "jmp .+0x10", kind: Jump, rel: 0x10},
	{text: "jmp .-0x70", kind: Jump, rel: -0x70},
	{text: "jmp far", kind: Jump, far: true},
	{text: "bnd jmp far", kind: Jump, far: true},
	{text: "call far", kind: Call, far: true},
	{text: "call .+0x100", kind: Call, rel: 0x100},
	{text: "bnd call far", kind: Call, far: true},
	{text: "bnd je far", kind: CondJump, far: true},
	{text: "jmp *%rax", kind: IndirectJump},
	{text: "jmp *%r11", kind: IndirectJump},
	{text: "jmp *(%rax)", kind: IndirectJump},
	{text: "notrack jmp *(%rax,%rcx,8)", kind: IndirectJump},
	{text: "bnd jmp *%rdx", kind: IndirectJump},
	{text: "jmp *%fs:0x10", kind: IndirectJump},
	{text: "jmp *far(%rip)", kind: IndirectJump},
	{text: "call *%rax", kind: IndirectCall},
	{text: "call *0x8(%rbx)", kind: IndirectCall},
	{text: "notrack call *%r11", kind: IndirectCall},
	{text: "bnd call *(%rax)", kind: IndirectCall},
	{text: "ret", kind: Return},
	{text: "bnd ret", kind: Return},
	{text: "rep ret", kind: Return},

	// Unsupported.
	u("syscall", ReasonSyscall),
	u("sysenter", ReasonSysenter),
	u("int3", ReasonInt3),
	u(".byte 0xcd, 3", ReasonInt), // int $3 (gas emits int3)
	u("int $0x80", ReasonInt),
	u("int1", ReasonInt1),
	u("hlt", ReasonHlt),
	u("ud2", ReasonUD),
	u("ud0 %eax,%eax", ReasonUD),
	u("ud1 %eax,%eax", ReasonUD),
	u(".byte 0xf0, 0xff, 0x20", ReasonUD), // lock jmp *(%rax)
	u("std", ReasonStd),
	u("ljmp *(%rax)", ReasonFarBranch),
	u("lcall *(%rax)", ReasonFarBranch),
	u("lretq", ReasonFarBranch),
	u("lretq $8", ReasonFarBranch),
	u("iretq", ReasonIret),
	u("iretl", ReasonIret),
	u("ret $8", ReasonRetImm),
	u("loop .+0x10", ReasonLoop),
	u("loope .+0x10", ReasonLoop),
	u("loopne .+0x10", ReasonLoop),
	u("jrcxz .+0x10", ReasonLoop),
	u("jecxz .+0x10", ReasonLoop),
	u("xbegin .+0x10", ReasonXbegin),
	u("xabort $1", ReasonXabortXend),
	u("xend", ReasonXabortXend),
	u("mov 0x10(%eip),%eax", ReasonEIPRelative),
	u("jmp *0x10(%eip)", ReasonEIPRelative),
	u("adox 0x10(%eip),%eax", ReasonEIPRelative), // x86dec Special
	u("jmp *(%eax)", ReasonIndirectArg),
	u("call *0x8(%eax,%ecx,4)", ReasonIndirectArg),
	u("cli", ReasonPrivileged),
	u("sti", ReasonPrivileged),
	u("in %dx,%al", ReasonPrivileged),
	u("out %al,%dx", ReasonPrivileged),
	u("insb", ReasonPrivileged),
	u("outsb", ReasonPrivileged),
	u("rdmsr", ReasonPrivileged),
	u("wrmsr", ReasonPrivileged),
	u("swapgs", ReasonPrivileged),
	u("sysretq", ReasonPrivileged),
	u("sysexit", ReasonPrivileged),
	u("mov %cr0,%rax", ReasonPrivileged),
	u("mov %rax,%dr7", ReasonPrivileged),
	u("lgdt (%rax)", ReasonPrivileged),
	u("invlpg (%rax)", ReasonPrivileged),
	u("wbinvd", ReasonPrivileged),
	u("xsetbv", ReasonPrivileged),
	u("monitor", ReasonPrivileged),
	u("mwait", ReasonPrivileged),
	u("xsaves (%rax)", ReasonPrivileged),
	u("wbnoinvd", ReasonPrivileged),
	u("enqcmds (%rax),%rax", ReasonPrivileged),
	u("rdsspq %rax", ReasonShadowStack),
	u("incsspq %rax", ReasonShadowStack),
	u("saveprevssp", ReasonShadowStack),
	u("rstorssp (%rax)", ReasonShadowStack),
	u("setssbsy", ReasonShadowStack),
	u("clrssbsy (%rax)", ReasonShadowStack),
	u("wrssq %rax,(%rbx)", ReasonShadowStack),
	u("wrussq %rax,(%rbx)", ReasonShadowStack),
}

// jccNames are the canonical jcc mnemonics in encoding order (x86enc.Cond
// order); jccAliases are other GNU spellings, checked against the encoding.
var (
	jccNames   = []string{"jo", "jno", "jb", "jae", "je", "jne", "jbe", "ja", "js", "jns", "jp", "jnp", "jl", "jge", "jle", "jg"}
	jccAliases = []string{"jc", "jnc", "jnae", "jnb", "jz", "jnz", "jna", "jnbe", "jpe", "jpo", "jnge", "jnl", "jng", "jnle"}
)

// jccCond reads the condition from a jcc encoding: 70+cc rel8 or
// 0F 80+cc rel32, after any prefixes.
func jccCond(t *testing.T, code []byte) (x86enc.Cond, bool) {
	k := 0
	for k < len(code) && isLegacyPrefix(code[k]) {
		k++
	}
	switch {
	case code[k]&0xF0 == 0x70:
		return x86enc.Cond(code[k] & 15), false
	case code[k] == 0x0F && code[k+1]&0xF0 == 0x80:
		return x86enc.Cond(code[k+1] & 15), true
	}
	t.Fatalf("not a jcc: % x", code)
	return 0, false
}

func TestClassifyGNU(t *testing.T) {
	cases := append([]classifyCase(nil), classifyCases...)
	for _, name := range append(append([]string(nil), jccNames...), jccAliases...) {
		cases = append(cases,
			classifyCase{text: name + " .-0x20", kind: CondJump, rel: -0x20},
			classifyCase{text: name + " far", kind: CondJump, far: true})
	}
	texts := make([]string, len(cases))
	for k, c := range cases {
		texts[k] = c.text
	}
	slots := gnuref.Assemble(t, testBase, gnuSlot, texts, map[string]uint64{"far": testFar})
	seenKinds := map[Kind]bool{}
	seenReasons := map[string]bool{}
	for k, c := range cases {
		addr := uint64(testBase + k*gnuSlot)
		inst, err := x86dec.Decode(slots[k], addr)
		require.NoError(t, err, c.text)
		code := gnuref.TrimSlot(t, slots[k], inst.Len, c.text)
		msg := fmt.Sprintf("%s [% x] decoded %q", c.text, code, inst.String())
		info := Classify(&inst)
		seenKinds[info.Kind] = true
		seenReasons[info.Reason] = true
		require.Equal(t, c.kind, info.Kind, msg)
		assert.Equal(t, c.reason, info.Reason, msg)
		assert.Equal(t, c.rip, info.RIPRelative, msg)
		switch c.kind {
		case Jump, Call, CondJump:
			want := addr + uint64(c.rel)
			if c.far {
				want = testFar
			}
			assert.Equal(t, want, info.Target, msg)
		default:
			assert.Zero(t, info.Target, msg)
		}
		if c.kind != CondJump {
			assert.Zero(t, info.Cond, msg)
			continue
		}
		cond, rel32 := jccCond(t, code)
		assert.Equal(t, cond, info.Cond, msg)
		assert.Equal(t, c.far, rel32, "%s: rel8 or rel32 form", msg)
		if c.far {
			assert.Len(t, code, 6+countPrefixes(code), msg)
		} else {
			assert.Len(t, code, 2, msg)
		}
		name := strings.Fields(c.text)[0]
		if name == "bnd" {
			name = strings.Fields(c.text)[1]
		}
		for n, canon := range jccNames {
			if name == canon {
				assert.Equal(t, x86enc.Cond(n), info.Cond, msg)
				assert.Equal(t, canon[1:], info.Cond.String(), msg)
			}
		}
	}
	for kind := Plain; kind < numKind; kind++ {
		assert.True(t, seenKinds[kind], "no case of %v", kind)
	}
	for _, r := range Reasons {
		// An Inst with no opcode and an unknown flow do not come out of
		// x86dec.Decode: TestClassifyUndecoded covers the first.
		if r == ReasonUndecoded || r == ReasonUnknownFlow {
			continue
		}
		assert.True(t, seenReasons[r], "no case of reason %q", r)
	}
}

func countPrefixes(code []byte) int {
	k := 0
	for k < len(code) && isLegacyPrefix(code[k]) {
		k++
	}
	return k
}

func TestClassifyUndecoded(t *testing.T) {
	assert.Equal(t, Info{Kind: Unsupported, Reason: ReasonUndecoded}, Classify(&x86dec.Inst{}))
}

// Instructions the brief wants Unsupported that x86dec does not decode:
// the recorder never gets to classify them. If the decoder learns one,
// Classify must not call it Plain.
func TestClassifyUndecodable(t *testing.T) {
	texts := []string{"enclu", "encls", "vmcall", "vmfunc", "vmlaunch", ".byte 0xce" /* into */}
	slots := gnuref.Assemble(t, testBase, gnuSlot, texts, nil)
	for k, text := range texts {
		inst, err := x86dec.Decode(slots[k], uint64(testBase+k*gnuSlot))
		if err != nil {
			continue
		}
		info := Classify(&inst)
		assert.Equal(t, Unsupported, info.Kind, "%s decodes as %q and is %v", text, inst.String(), info.Kind)
	}
}

func TestKindString(t *testing.T) {
	seen := map[string]bool{}
	for k := Plain; k < numKind; k++ {
		s := k.String()
		assert.False(t, seen[s], s)
		seen[s] = true
	}
	assert.Equal(t, "Kind(200)", Kind(200).String())
}

// sweepText decodes the .text of path linearly and calls f for each
// instruction. The decoder agrees with objdump on every boundary of these
// binaries (cfg/x86dec's tests), so a decode error is a failure.
func sweepText(t *testing.T, path string, f func(inst *x86dec.Inst, code []byte)) {
	file, err := elf.Open(path)
	require.NoError(t, err)
	defer file.Close()
	sec := file.Section(".text")
	require.NotNil(t, sec, "%s has no .text", path)
	data, err := sec.Data()
	require.NoError(t, err)
	for off := 0; off < len(data); {
		inst, err := x86dec.Decode(data[off:], sec.Addr+uint64(off))
		require.NoError(t, err)
		f(&inst, data[off:off+inst.Len])
		off += inst.Len
	}
}

func TestClassifyRealBinaries(t *testing.T) {
	for _, path := range []string{"/usr/bin/python3.11", "/usr/bin/lua5.4"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			t.Parallel()
			kinds := map[Kind]int{}
			reasons := map[string]int{}
			examples := map[string]string{}
			total, loads := 0, 0
			valid := map[string]bool{"": true}
			for _, r := range Reasons {
				valid[r] = true
			}
			sweepText(t, path, func(inst *x86dec.Inst, code []byte) {
				total++
				info := Classify(inst)
				require.Less(t, info.Kind, numKind, "%#x %s", inst.Addr, inst)
				kinds[info.Kind]++
				if info.Kind == Unsupported {
					require.NotEmpty(t, info.Reason, "%#x %s", inst.Addr, inst)
					reasons[info.Reason]++
					if _, ok := examples[info.Reason]; !ok {
						examples[info.Reason] = fmt.Sprintf("%#x %s", inst.Addr, inst)
					}
				} else {
					require.Empty(t, info.Reason, "%#x %s", inst.Addr, inst)
				}
				require.True(t, valid[info.Reason], info.Reason)
				switch info.Kind {
				case IndirectJump, IndirectCall:
					// Every indirect branch the recorder meets must load.
					dst := x86enc.Reg(loads % 16)
					out, err := LoadTarget(inst, code, dst, inst.Addr)
					require.NoError(t, err)
					mov, err := x86dec.Decode(out, inst.Addr)
					require.NoError(t, err)
					require.Equal(t, x86asm.MOV, mov.Op, "%s -> %s", inst, mov.String())
					require.Equal(t, len(out), mov.Len)
					loads++
				}
			})
			names := make([]string, 0, len(reasons))
			for r := range reasons {
				names = append(names, r)
			}
			sort.Strings(names)
			for k := Plain; k < numKind; k++ {
				t.Logf("%s: %-14v %d", path, k, kinds[k])
			}
			for _, r := range names {
				t.Logf("%s: unsupported %-14s %d (e.g. %s)", path, r, reasons[r], examples[r])
			}
			t.Logf("%s: %d instructions, %d indirect-branch loads checked, %d syscall", path, total, loads, reasons[ReasonSyscall])
			assert.Greater(t, total, 10000)
			assert.Less(t, float64(kinds[Unsupported]), 0.01*float64(total), "Unsupported fraction")
			assert.Positive(t, kinds[CondJump])
			assert.Positive(t, kinds[Return])
			assert.Positive(t, kinds[Plain])
		})
	}
}
