package tracevm

import (
	"testing"

	"github.com/redmagic-patch/redmagic-patch/internal/gnuref"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

// TestImmSourceForm re-encodes instructions GNU as assembled with their
// known register operand as an immediate and reads the result back with
// objdump.
type immCase struct {
	asm  string // the original instruction
	src  int    // which operand is known (its index in x86asm's Args)
	v    uint64
	want string // objdump's reading; "" when there is no such form
}

func TestImmSourceForm(t *testing.T) {
	cases := []immCase{
		{"or %eax,%esi", 1, 0xd05, "or $0xd05,%esi"},
		{".byte 0x0b,0xf0", 1, 0xd05, "or $0xd05,%esi"}, // or r32, r/m32
		{"mov %r9d,0x50(%rsp)", 1, 0xa, "movl $0xa,0x50(%rsp)"},
		{"add %rbx,%rax", 1, 5, "add $0x5,%rax"},
		{"add %rbx,%rax", 1, 0x12345678, "add $0x12345678,%rax"},
		{"add %rbx,%rax", 1, 0x123456789, ""},
		{"add %rbx,%rax", 1, 0xffffffffffffff80, "add $0xffffffffffffff80,%rax"},
		{"sub %r10,%r11", 1, 0x100, "sub $0x100,%r11"},
		{"or %sil,%al", 1, 7, "or $0x7,%al"},
		{"or %al,%sil", 1, 7, "or $0x7,%sil"},
		{"and %cl,0x8(%rbx)", 1, 0xfe, "andb $0xfe,0x8(%rbx)"},
		{"test %ecx,%eax", 1, 0x10, "test $0x10,%eax"},
		{"test %ecx,%eax", 0, 0x10, "test $0x10,%ecx"},
		{"add %bx,%ax", 1, 0x1234, "add $0x1234,%ax"},
		{"lock add %eax,(%rdi)", 1, 1, "lock addl $0x1,(%rdi)"},
		{"cmp %r12,0x10(%r13,%r14,8)", 1, 3, "cmpq $0x3,0x10(%r13,%r14,8)"},
		{"xor %edx,%r8d", 1, 0x80000000, "xor $0x80000000,%r8d"},
		{"mov %eax,%esi", 1, 1, "mov $0x1,%esi"},
		{"imul %eax,%esi", 1, 3, ""},
	}
	insts, codes := assembledCases(t, cases, func(c immCase) string { return c.asm })
	for k, c := range cases {
		inst, code, at := insts[k], codes[k], insts[k].Addr
		src, ok := inst.Args[c.src].(x86asm.Reg)
		require.True(t, ok, c.asm)
		out, ok := immSourceForm(code, inst, src, c.v)
		if c.want == "" {
			require.False(t, ok, "%s: % x", c.asm, out)
			continue
		}
		require.True(t, ok, c.asm)
		require.Equal(t, []string{c.want}, gnuref.Disasm(t, at, out), "%s with %#x: % x", c.asm, c.v, out)
	}
}

func TestMovImmPartial(t *testing.T) {
	cases := []struct {
		r    x86enc.Reg
		size int
		v    uint64
		want string
	}{
		{x86enc.RSI, 1, 0, "mov $0x0,%sil"},
		{x86enc.RAX, 1, 5, "mov $0x5,%al"},
		{x86enc.RBX, 1, 0xff, "mov $0xff,%bl"},
		{x86enc.RSP, 1, 1, "mov $0x1,%spl"},
		{x86enc.R9, 2, 0x1234, "mov $0x1234,%r9w"},
		{x86enc.R15, 1, 0x80, "mov $0x80,%r15b"},
		{x86enc.RCX, 2, 0xffff, "mov $0xffff,%cx"},
	}
	for _, c := range cases {
		out := movImmPartial(c.r, c.size, c.v)
		require.Equal(t, []string{c.want}, gnuref.Disasm(t, 0x1000, out), "% x", out)
	}
}

// TestFoldKnownIndex re-encodes instructions GNU as assembled with their
// index register, known, taken into the displacement, and reads the
// result back with objdump.
type foldCase struct {
	asm  string
	v    uint64 // the index register's value
	want string // "" when there is no such form
}

func TestFoldKnownIndex(t *testing.T) {
	cases := []foldCase{
		{"mov 0x48(%rbx,%rbp,8),%rax", 2, "mov 0x58(%rbx),%rax"},
		{"mov %rdx,0x8(%rbx,%r9,8)", 0x13, "mov %rdx,0xa0(%rbx)"},
		{"mov 0x8(%rbx,%rax,8),%rdi", 0, "mov 0x8(%rbx),%rdi"},
		{"mov 0x10(%r12,%rcx,4),%r8d", 1, "mov 0x14(%r12),%r8d"},
		{"mov (%rsp,%rcx,1),%al", 5, "mov 0x5(%rsp),%al"},
		{"mov (%r13,%rcx,8),%rax", 0, "mov 0x0(%r13),%rax"},
		{"mov (%rbp,%rcx,8),%rax", 0, "mov 0x0(%rbp),%rax"},
		{"cmpq $0x5,0x18(%rcx,%rax,8)", 3, "cmpq $0x5,0x30(%rcx)"},
		{"movb $0x7,(%rdi,%rsi,1)", 0x100, "movb $0x7,0x100(%rdi)"},
		{"addl $0x1,-0x8(%r14,%rdx,4)", 0xffffffffffffffff, "addl $0x1,-0xc(%r14)"},
		{"mov 0x737e40(,%rax,8),%rax", 4, "mov 0x737e60,%rax"},
		{"lea 0x1(%rdi,%rsi,2),%rax", 3, "lea 0x7(%rdi),%rax"},
		{"mov %fs:(%rax,%rcx,8),%rdx", 1, ""},          // a segment
		{"mov 0x8(%rbx,%rax,8),%rdi", 0x100000000, ""}, // beyond a disp32
		{"movsd 0x8(%rbx,%rax,8),%xmm0", 1, ""},        // a vector register
		{"mov 0x8(%ebx,%eax,8),%edi", 1, ""},           // a 32-bit address
	}
	insts, codes := assembledCases(t, cases, func(c foldCase) string { return c.asm })
	for k, c := range cases {
		inst, code, at := insts[k], codes[k], insts[k].Addr
		var known [16]val
		if m, ok := memArg(inst).(x86asm.Mem); ok {
			if r, _, ok := gpr(m.Index); ok {
				known[r] = val{known: true, v: c.v}
			}
		}
		out, d, ok := foldKnownIndex(code, inst, &known)
		if c.want == "" {
			require.False(t, ok, "%s: % x", c.asm, out)
			continue
		}
		require.True(t, ok, c.asm)
		require.Equal(t, []string{c.want}, gnuref.Disasm(t, at, out), "%s with %#x: % x", c.asm, c.v, out)
		require.Equal(t, d.Len, len(out), c.asm)
	}
}

// assembledCases is assembled (widesplit_test.go) for a table of cases,
// each with its instruction's text.
func assembledCases[C any](t *testing.T, cases []C, text func(C) string) ([]*x86dec.Inst, [][]byte) {
	t.Helper()
	texts := make([]string, len(cases))
	for k, c := range cases {
		texts[k] = text(c)
	}
	return assembled(t, texts)
}
