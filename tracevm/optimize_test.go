package tracevm

import (
	"encoding/hex"
	"maps"
	"math/rand"
	"os"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

// condHolds on the flags arith computes for cmp a, b agrees with the
// comparisons each condition code stands for.
func TestCondHoldsAfterCmp(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	vals := []uint64{0, 1, 2, 0x7f, 0x80, 0xff, 0x7fffffff, 0x80000000, 1<<63 - 1, 1 << 63, ^uint64(0)}
	for i := 0; i < 200; i++ {
		vals = append(vals, rng.Uint64())
	}
	for _, size := range []int{1, 4, 8} {
		for _, a := range vals {
			for _, b := range vals[:40] {
				ua, ub := truncate(a, size), truncate(b, size)
				sa, sb := int64(signExtend(ua, size)), int64(signExtend(ub, size))
				f := arith(x86asm.CMP, a, b, size)
				want := map[x86enc.Cond]bool{
					x86enc.B: ua < ub, x86enc.AE: ua >= ub, x86enc.E: ua == ub, x86enc.NE: ua != ub,
					x86enc.BE: ua <= ub, x86enc.A: ua > ub, x86enc.L: sa < sb, x86enc.GE: sa >= sb,
					x86enc.LE: sa <= sb, x86enc.G: sa > sb,
					x86enc.S: int64(signExtend(truncate(ua-ub, size), size)) < 0,
				}
				for c, w := range want {
					require.Equal(t, w, condHolds(c, f), "cmp %#x, %#x (size %d): %s", a, b, size, c)
				}
			}
		}
	}
}

// valueGuard turns the memory operand of a 64-bit access into
// cmpq $v, <the same operand>.
func TestValueGuard(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
	}{
		{"mov (%r13,%r14,8),%rax", []byte{0x4b, 0x8b, 0x44, 0xf5, 0x00}},
		{"cmpq $0x1a,(%r13,%r14,8)", []byte{0x4b, 0x83, 0x7c, 0xf5, 0x00, 0x1a}},
		{"mov 0x8(%r13,%rdx),%rax", []byte{0x49, 0x8b, 0x44, 0x15, 0x08}},
		{"mov 0x12345678(%rbx),%r9", []byte{0x4c, 0x8b, 0x8b, 0x78, 0x56, 0x34, 0x12}},
		{"mov %fs:0x10(%rax),%rcx", []byte{0x64, 0x48, 0x8b, 0x48, 0x10}},
		{"sub 0x8(%r12,%rdx),%rbx", []byte{0x49, 0x2b, 0x5c, 0x14, 0x08}},
		{"mov (%r13),%r12d", []byte{0x45, 0x8b, 0x65, 0x00}},
		{"mov (%rsp),%eax", []byte{0x8b, 0x04, 0x24}},
		{"movzwl (%r15),%eax", []byte{0x41, 0x0f, 0xb7, 0x07}},
		{"or 0xb0(%rsp),%sil", []byte{0x40, 0x0a, 0xb4, 0x24, 0xb0, 0, 0, 0}},
		{"movzbl 0x8(%rdx),%esi", []byte{0x0f, 0xb6, 0x72, 0x08}},
		// %rip-relative: the same displacement, right only at the
		// original address (the compiler re-encodes it with ripForm).
		{"movzwl 0x1000(%rip),%ecx", []byte{0x0f, 0xb7, 0x0d, 0x00, 0x10, 0, 0}},
		{"mov 0x10(%rip),%rax", []byte{0x48, 0x8b, 0x05, 0x10, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig, err := x86dec.Decode(tc.code, 0x1000)
			require.NoError(t, err)
			v := int32(0x1234)
			if orig.MemBytes == 1 {
				v = 0x34
			}
			g, err := valueGuard(tc.code, v, orig.MemBytes)
			require.NoError(t, err)
			inst, err := x86dec.Decode(g, 0x1000)
			require.NoError(t, err)
			require.Equal(t, len(g), inst.Len)
			assert.Equal(t, x86asm.CMP, inst.Op)
			assert.Equal(t, orig.MemBytes, inst.MemBytes)
			assert.Equal(t, memArg(&orig), inst.Args[0])
			assert.Equal(t, x86asm.Imm(v), inst.Args[1])
			if want, ok := orig.MemRIPTarget(); ok {
				got, ok := inst.MemRIPTarget()
				require.True(t, ok)
				assert.NotEqual(t, want, got, "the guard is longer: its displacement is stale")
				moved, ok := ripForm(g, want, 0x5000)
				require.True(t, ok)
				mi, err := x86dec.Decode(moved, 0x5000)
				require.NoError(t, err)
				got, _ = mi.MemRIPTarget()
				assert.Equal(t, want, got, "ripForm points it back at the operand")
				assert.Equal(t, x86asm.CMP, mi.Op)
			}
		})
	}
	for _, bad := range [][]byte{
		{0x48, 0x8b, 0xc1}, // register operand
	} {
		_, err := valueGuard(bad, 1, 8)
		assert.Error(t, err, "% x", bad)
	}
}

// FuzzRIPForm: whatever ripForm makes of an instruction with a memory
// operand decodes to the same operation with that operand now the given
// address, %rip-relative, and the same other operands.
// A REX prefix left empty once its X and B bits go is dropped, unless it
// selects a byte register (%sil, not %dh).
func TestRIPFormEmptyREX(t *testing.T) {
	for _, c := range []struct {
		code []byte
		n    int
	}{
		{[]byte{0x66, 0x41, 0x81, 0x3f, 0x5d, 0x07}, 9}, // cmpw $0x75d, (%r15)
		{[]byte{0x41, 0x88, 0x37}, 7},                   // mov %sil, (%r15)
		{[]byte{0x49, 0x8b, 0x07}, 7},                   // mov (%r15), %rax: REX.W stays
	} {
		out, ok := ripForm(c.code, 0x402000, 0x401000)
		require.True(t, ok)
		assert.Len(t, out, c.n, "% x -> % x", c.code, out)
		assert.True(t, sameRegOperands(out, c.code, 0x401000), "% x -> % x", c.code, out)
	}
}

func FuzzRIPForm(f *testing.F) {
	for _, s := range [][]byte{
		{0x4b, 0x83, 0x7c, 0xf5, 0x00, 0x1a}, {0x49, 0x8b, 0x44, 0x15, 0x08},
		{0x48, 0x63, 0x04, 0x87}, {0x66, 0x0f, 0x6f, 0x44, 0x24, 0x10}, {0xf3, 0x0f, 0x10, 0x04, 0xc8},
		{0x48, 0xc7, 0x44, 0x24, 0x08, 1, 0, 0, 0}, {0x0f, 0xb6, 0x04, 0x01},
		{0x41, 0x88, 0x37}, {0x66, 0x41, 0x81, 0x3f, 0x5d, 0x07},
	} {
		f.Add(s, uint64(0x401000), uint64(0x402000))
	}
	f.Fuzz(func(t *testing.T, code []byte, addr, at uint64) {
		inst, err := x86dec.Decode(code, 0x1000)
		if err != nil || inst.Special != x86dec.SpecialNone {
			return
		}
		m, ok := memArg(&inst).(x86asm.Mem)
		if !ok || m.Base == x86asm.RIP || m.Segment != 0 {
			return
		}
		code = code[:inst.Len]
		out, ok := ripForm(code, addr, at)
		if !ok {
			return
		}
		got, err := x86dec.Decode(out, at)
		require.NoError(t, err, "% x -> % x", code, out)
		require.Equal(t, len(out), got.Len)
		target, ok := got.MemRIPTarget()
		require.True(t, ok, "% x -> % x: not %%rip-relative", code, out)
		require.Equal(t, addr, target)
		require.Equal(t, inst.Op, got.Op, "% x -> % x", code, out)
		require.Equal(t, inst.MemBytes, got.MemBytes, "% x -> % x: memory size", code, out)
		require.Equal(t, inst.DataSize, got.DataSize, "% x -> % x: operand size", code, out)
		for k, a := range inst.Args {
			if a == nil {
				break
			}
			if _, isMem := a.(x86asm.Mem); isMem {
				continue
			}
			require.Equal(t, a, got.Args[k], "% x -> % x: operand %d", code, out, k)
		}
	})
}

// Registers known in their low bytes only: a narrow write into a register
// that is not known keeps its value for readers of that width (CPython
// builds each dispatch's opcode in %sil while the rest of %rsi is
// garbage), a 32-bit write zeroes the upper half, and sums and bitwise
// results keep the low bytes both operands have.
func TestPartialRegisters(t *testing.T) {
	var s evalState
	rsi := x86enc.RSI
	setReg(&s, rsi, 1, val{known: true, v: 0xff})
	got, ok := s.regs[rsi].low(1)
	require.True(t, ok)
	assert.Equal(t, uint64(0xff), got.v)
	_, ok = s.regs[rsi].low(2)
	assert.False(t, ok, "only the low byte was written")
	assert.False(t, s.regs[rsi].known)

	// A 16-bit write over it keeps two known bytes; a 1-byte write
	// after that keeps the second one.
	setReg(&s, rsi, 2, val{known: true, v: 0x1234})
	setReg(&s, rsi, 1, val{known: true, v: 0x56})
	got, ok = s.regs[rsi].low(2)
	require.True(t, ok)
	assert.Equal(t, uint64(0x1256), got.v)

	// A 32-bit write of a value known in 4 bytes makes it whole.
	setReg(&s, rsi, 4, val{known: true, v: 0xdeadbeef})
	assert.True(t, s.regs[rsi].known)
	assert.Equal(t, uint64(0xdeadbeef), s.regs[rsi].v)

	// A byte of unknown value over a known register: nothing known.
	setReg(&s, rsi, 1, val{})
	assert.Equal(t, val{}, s.regs[rsi])

	// or %eax, %esi with %esi known in its low byte: the result's low
	// byte is known, the rest is not.
	var o optimizer
	s.regs[rsi] = partial(0x7f, 1, 0)
	s.regs[x86enc.RAX] = val{known: true, v: 0x3a1}
	a, b := o.lowOperand(x86asm.ESI, 4, &s), o.lowOperand(x86asm.EAX, 4, &s)
	require.Equal(t, 1, a.lowBytes())
	require.Equal(t, 8, b.lowBytes())
	n := min(a.lowBytes(), b.lowBytes(), 4)
	setReg(&s, rsi, 4, partial(arithResult(x86asm.OR, a.v, b.v), n, 0))
	got, ok = s.regs[rsi].low(1)
	require.True(t, ok)
	assert.Equal(t, uint64(0xff), got.v)
	_, ok = s.regs[rsi].low(2)
	assert.False(t, ok)
}

// stepTest returns an optimiser over codes, one instruction each, laid
// out one after the other, and an empty state to step them in.
func stepTest(t *testing.T, codes ...[]byte) (*optimizer, *evalState) {
	t.Helper()
	o := &optimizer{}
	at := uint64(0x1000)
	for _, c := range codes {
		inst, err := x86dec.Decode(c, at)
		require.NoError(t, err)
		o.ops = append(o.ops, op{kind: opInsn, addr: at, code: c, inst: &inst})
		o.insts = append(o.insts, &inst)
		at += uint64(len(c))
	}
	s := &evalState{spec: map[uint64]val{}, stores: map[uint64]storedVal{}, saved: map[uint64]val{}}
	s.ranges = &o.storeRanges
	return o, s
}

// CPython's dispatch over an assumed %rsi (sbb %sil,%sil; or %eax,%esi;
// movzbl %sil,%eax): the opcode it dispatches on rests on the flags and
// %eax, not on the garbage above %sil, so that folding the dispatch does
// not make the trace check all of %rsi at its head (a side trace back at
// the head with other garbage there failed that check at every
// iteration).
func TestLowByteDeps(t *testing.T) {
	o, s := stepTest(t,
		[]byte{0x40, 0x18, 0xf6},       // sbb %sil, %sil
		[]byte{0x09, 0xc6},             // or %eax, %esi
		[]byte{0x40, 0x0f, 0xb6, 0xc6}, // movzbl %sil, %eax
	)
	const rsiBit, flagsBit, raxBit = assume(1 << x86enc.RSI), assume(1 << 20), assume(1 << 21)
	s.regs[x86enc.RSI] = val{known: true, v: 0x500cc826, deps: rsiBit}
	s.regs[x86enc.RAX] = val{known: true, v: 0x27c, deps: raxBit}
	s.flags = flagState{known: true, deps: flagsBit}
	for i := range o.ops {
		require.True(t, o.step(i, s, nil))
	}
	rsi, rax := s.regs[x86enc.RSI], s.regs[x86enc.RAX]
	require.True(t, rsi.known)
	assert.Equal(t, uint64(0x500cca7c), rsi.v)
	assert.Equal(t, rsiBit|flagsBit|raxBit, rsi.deps, "the whole register rests on its head value")
	require.True(t, rax.known)
	assert.Equal(t, uint64(0x7c), rax.v)
	assert.Equal(t, flagsBit|raxBit, rax.deps, "the opcode does not rest on %rsi's upper bytes")

	// A sum's low bytes rest on the operands' low bytes alone; a
	// 16-bit read past the byte written rests on the whole register.
	lo, ok := rsi.low(2)
	require.True(t, ok)
	assert.Equal(t, rsiBit|flagsBit|raxBit, lo.deps)
	sum := bytewise(val{known: true, v: 1, deps: rsiBit | raxBit}, rsi, val{known: true, v: 1})
	b, _ := sum.low(1)
	assert.Equal(t, flagsBit|raxBit, b.deps)
}

// The high-byte registers %ah-%bh are bits 8-15 of %rax-%rbx: an
// instruction that writes one reads and writes that register, and the
// optimiser forgets the value it knew (siphash's mov %al, %bh left %rbx
// "known" and dropped its writer: a wrong hash in a side trace).
func TestHighByteRegisters(t *testing.T) {
	for _, c := range []struct {
		code []byte
		reg  x86enc.Reg
	}{
		{[]byte{0x88, 0xc7}, x86enc.RBX},       // mov %al, %bh
		{[]byte{0x88, 0xe0}, x86enc.RAX},       // mov %ah, %al: reads %rax
		{[]byte{0x80, 0xc5, 0x01}, x86enc.RCX}, // add $1, %ch
		{[]byte{0x30, 0xf6}, x86enc.RDX},       // xor %dh, %dh
	} {
		inst, err := x86dec.Decode(c.code, 0x1000)
		require.NoError(t, err)
		t.Run(inst.String(), func(t *testing.T) {
			w, _ := writes(&inst)
			r, _ := reads(&inst)
			assert.NotZero(t, (w|r)&(1<<c.reg), "reads %#x writes %#x", r, w)
			if inst.Args[0].(x86asm.Reg) >= x86asm.AH && inst.Args[0].(x86asm.Reg) <= x86asm.BH {
				assert.NotZero(t, w&(1<<c.reg), "writes %#x", w)
				assert.NotZero(t, r&(1<<c.reg), "a partial write reads %#x", r)
				o, s := stepTest(t, c.code)
				for k := range s.regs {
					s.regs[k] = val{known: true, v: 0x1122334455667788}
				}
				require.True(t, o.step(0, s, nil))
				assert.False(t, s.regs[c.reg].known, "%s still known after the write", c.reg)
			}
		})
	}
}

// TestRegisterEffects checks the general registers instructions the
// optimiser meets in interpreters' float code read and write: SSE
// instructions touch only the general registers they name (unknown, each
// made the optimiser forget every register, %rsp included), and the
// one-operand imul writes %rdx:%rax. Encodings from GNU as.
func TestRegisterEffects(t *testing.T) {
	const (
		rax = 1 << x86enc.RAX
		rcx = 1 << x86enc.RCX
		rdx = 1 << x86enc.RDX
		rbx = 1 << x86enc.RBX
		rsi = 1 << x86enc.RSI
		rdi = 1 << x86enc.RDI
	)
	tests := []struct {
		name         string
		code         []byte
		reads, write uint16
		all, stores  bool
	}{
		{"punpcklqdq %xmm1,%xmm0", []byte{0x66, 0x0f, 0x6c, 0xc1}, 0, 0, false, false},
		{"sqrtsd %xmm2,%xmm1", []byte{0xf2, 0x0f, 0x51, 0xca}, 0, 0, false, false},
		{"andnpd %xmm1,%xmm0", []byte{0x66, 0x0f, 0x55, 0xc1}, 0, 0, false, false},
		{"movhps %xmm0,0x8(%rdi)", []byte{0x0f, 0x17, 0x47, 0x08}, rdi, 0, false, true},
		{"movhps 0x10(%rsi),%xmm3", []byte{0x0f, 0x16, 0x5e, 0x10}, rsi, 0, false, false},
		{"pextrw $1,%xmm0,%eax", []byte{0x66, 0x0f, 0xc5, 0xc0, 0x01}, 0, rax, false, false},
		{"movmskpd %xmm1,%ecx", []byte{0x66, 0x0f, 0x50, 0xc9}, 0, rcx, false, false},
		// Uses %rcx, %rax and %rdx without naming them: unknown.
		{"pcmpistri $0,%xmm1,%xmm0", []byte{0x66, 0x0f, 0x3a, 0x63, 0xc1, 0x00}, 0, 0, true, true},
		{"imul %rdi", []byte{0x48, 0xf7, 0xef}, rax | rdx | rdi, rax | rdx, false, false},
		{"imull 0x8(%rbx)", []byte{0xf7, 0x6b, 0x08}, rax | rdx | rbx, rax | rdx, false, false},
		{"imul %rcx,%rdx", []byte{0x48, 0x0f, 0xaf, 0xd1}, rcx | rdx, rdx, false, false},
		{"setnp %al", []byte{0x0f, 0x9b, 0xc0}, rax, rax, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := x86dec.Decode(tt.code, 0x1000)
			require.NoError(t, err)
			w, wall := writes(&inst)
			r, rall := reads(&inst)
			assert.Equal(t, tt.all, wall, "writes all")
			assert.Equal(t, tt.all, rall, "reads all")
			if !tt.all {
				assert.Equal(t, tt.write, w, "writes")
				assert.Equal(t, tt.reads, r, "reads")
			}
			assert.Equal(t, tt.stores, storesMemory(&inst), "stores")
		})
	}
}

// banVariant keeps a speculation only where the next iteration finds the
// value again: no store of an unknown value before the load, and the last
// whole store over the slot writes the value speculated.
func TestBanVariant(t *testing.T) {
	const slot, v = 0x7000, 0x7f00_1234_5678
	unknown := func(op int) storeRange { return storeRange{lo: slot, hi: slot + 8, op: op, scalar: true} }
	known := func(op int, x uint64) storeRange {
		return storeRange{lo: slot, hi: slot + 8, op: op, v: x, known: true, scalar: true}
	}
	for _, tc := range []struct {
		name   string
		load   int
		stores []storeRange
		banned bool
	}{
		{"never stored", 5, nil, false},
		{"stored back", 5, []storeRange{known(9, v)}, false},
		{"another value last", 5, []storeRange{known(9, v+1)}, true},
		{"unknown last", 5, []storeRange{known(7, v), unknown(9)}, true},
		{"shared spill slot, restored", 5, []storeRange{unknown(6), unknown(7), known(9, v)}, false},
		{"read after an unknown store", 8, []storeRange{unknown(6), known(9, v)}, true},
		{"vector store", 5, []storeRange{{lo: slot, hi: slot + 8, op: 9, v: 1, known: true}}, false},
		{"another slot", 5, []storeRange{{lo: slot + 8, hi: slot + 16, op: 9, scalar: true}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &optimizer{banned: map[int]bool{}, storeRanges: tc.stores}
			o.specOp, o.specAddr, o.specVal = []int{tc.load}, []uint64{slot}, []uint64{v}
			o.specSize, o.specFwd, o.specPost = []int{8}, []bool{false}, []int{-1}
			assert.Equal(t, tc.banned, o.banVariant())
			assert.Equal(t, tc.banned, o.banned[tc.load])
		})
	}
}

// Speculations past the first specBits share bits; what rests on a shared
// bit is attributed only to the speculations made before it, so that a
// contradiction early in a trace does not ban a load near its end, and a
// guard folded early does not make a later speculation worth its guard.
func TestSharedSpecBits(t *testing.T) {
	o := &optimizer{banned: map[int]bool{}}
	for k := 0; k < 2*specBits+5; k++ {
		o.specOp, o.specAddr, o.specSize = append(o.specOp, 10*k), append(o.specAddr, 0x1000+uint64(16*k)), append(o.specSize, 2)
	}
	b := specBit(3)
	require.Equal(t, b, specBit(3+specBits))
	require.Equal(t, b, specBit(3+2*specBits))
	var got []int
	o.specsOf(foldedGuard{op: 10*(3+specBits) + 1, deps: b | 1<<2}, func(k int) { got = append(got, k) })
	assert.Equal(t, []int{3, 3 + specBits}, got, "those before the op, not the third")

	o.contras = []foldedGuard{{op: 10*3 + 1, deps: b}}
	require.True(t, o.banContradicted())
	assert.True(t, o.banned[10*3])
	assert.False(t, o.banned[10*(3+specBits)], "made after the contradiction")
	o.contras = []foldedGuard{{op: 5, deps: 1 << 4}} // a head register alone
	assert.False(t, o.banContradicted())

	// A contradiction resting on a word read from memory (a variable's
	// object) and on bytecode: the word is banned, the bytecode kept.
	clear(o.banned)
	o.specSize[5] = 8
	o.contras = []foldedGuard{{op: 10*6 + 1, deps: specBit(4) | specBit(5)}}
	require.True(t, o.banContradicted())
	assert.Equal(t, map[int]bool{10 * 5: true}, o.banned)
	// In the frame's private slots it is the interpreter's own pointer:
	// both go.
	clear(o.banned)
	o.private = addrRange{0x1000 + 16*5, 0x1000 + 16*5 + 8}
	require.True(t, o.banContradicted())
	assert.Equal(t, map[int]bool{10 * 4: true, 10 * 5: true}, o.banned)

	// An exit knows a value certain only when every speculation with its
	// bit was guarded before the exit.
	p := &plan{specGuard: make([]int, len(o.specOp)), specLoad: o.specOp}
	for k := range p.specGuard {
		p.specGuard[k] = o.specOp[k] + 1 // a guard after its load
	}
	assert.False(t, p.certainAt(b, 10*3+1), "guarded after op 31")
	assert.True(t, p.certainAt(b, 10*3+2), "the later ones that share the bit are not loaded yet")
	assert.False(t, p.certainAt(b, 10*(3+specBits)+1))
	assert.True(t, p.certainAt(b, 10*(3+2*specBits)+2))
}

// refcountStore: only an in-place add or subtract of one on the 8-byte
// word a register points to counts as a reference count's change.
func TestRefcountStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		want bool
	}{
		{"addq $0x1,(%rax)", []byte{0x48, 0x83, 0x00, 0x01}, true},
		{"subq $0x1,(%rdi)", []byte{0x48, 0x83, 0x2f, 0x01}, true},
		{"incq (%r9)", []byte{0x49, 0xff, 0x01}, true},
		{"decq (%rbx)", []byte{0x48, 0xff, 0x0b}, true},
		{"addq $0x2,(%rax)", []byte{0x48, 0x83, 0x00, 0x02}, false},
		{"addl $0x1,(%rax)", []byte{0x83, 0x00, 0x01}, false},
		{"addq $0x1,0x8(%rax)", []byte{0x48, 0x83, 0x40, 0x08, 0x01}, true},
		{"addq $0x1,0xa56228(%rbx)", []byte{0x48, 0x83, 0x83, 0x28, 0x62, 0xa5, 0x00, 0x01}, true},
		{"addq $0x1,(%rax,%rcx,8)", []byte{0x48, 0x83, 0x04, 0xc8, 0x01}, true},
		{"addq $0x1,%fs:(%rax)", []byte{0x64, 0x48, 0x83, 0x00, 0x01}, false},
		{"addq $0x1,0x10(%rip)", []byte{0x48, 0x83, 0x05, 0x10, 0, 0, 0, 0x01}, false},
		{"mov %rdx,(%rax)", []byte{0x48, 0x89, 0x10}, false},
		{"add %rdx,(%rax)", []byte{0x48, 0x01, 0x10}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst, err := x86dec.Decode(tc.code, 0x1000)
			require.NoError(t, err)
			m, ok := memArg(&inst).(x86asm.Mem)
			require.True(t, ok)
			assert.Equal(t, tc.want, refcountStore(&inst, m))
		})
	}
}

// forgetWords keeps every value narrower than a word, and the words in
// the frame's private slots; a store through an unknown pointer keeps
// only the latter.
func TestForgetWords(t *testing.T) {
	key := func(a uint64, size int) uint64 { return a<<4 | uint64(size) }
	fill := func() *evalState {
		s := &evalState{spec: map[uint64]val{}, stores: map[uint64]storedVal{}, private: addrRange{0x7000, 0x7100}}
		for _, k := range []uint64{key(0x1000, 2), key(0x1008, 8), key(0x2000, 1), key(0x7008, 8), key(0x3000, 4)} {
			s.spec[k] = val{known: true, v: 1}
		}
		s.stores[key(0x4000, 8)] = storedVal{val: val{known: true, v: 2}}
		s.stores[key(0x4008, 4)] = storedVal{val: val{known: true, v: 3}}
		s.stores[key(0x7010, 8)] = storedVal{val: val{known: true, v: 4}, private: true}
		s.words = []uint64{key(0x4000, 8), key(0x7010, 8)} // as the stores made them
		return s
	}
	s := fill()
	s.forgetWords()
	assert.ElementsMatch(t, []uint64{key(0x1000, 2), key(0x2000, 1), key(0x7008, 8), key(0x3000, 4)}, slices.Collect(maps.Keys(s.spec)))
	assert.ElementsMatch(t, []uint64{key(0x4000, 8), key(0x4008, 4), key(0x7010, 8)}, slices.Collect(maps.Keys(s.stores)))
	assert.Equal(t, staleEpoch, s.stores[key(0x4000, 8)].epoch, "an 8-byte word stored is stale: guarded when loaded, never certain")
	assert.Zero(t, s.stores[key(0x4008, 4)].epoch, "a narrower one stays certain")
	assert.Zero(t, s.stores[key(0x7010, 8)].epoch, "so does one in the private slots")
	assert.Empty(t, s.words)
	assert.Zero(t, s.epoch, "what the trace stored stays certain")
	assert.True(t, s.wordsForgotten)

	s = fill()
	s.clobber()
	assert.ElementsMatch(t, []uint64{key(0x7008, 8)}, slices.Collect(maps.Keys(s.spec)))
	assert.Equal(t, uint32(1), s.epoch)
}

// countRegs finds a reference count changed by load, adjust by one and
// store back through the same, unchanged, base register.
func TestCountRegs(t *testing.T) {
	var (
		load     = []byte{0x48, 0x8b, 0x02}             // mov (%rdx),%rax
		spill    = []byte{0x48, 0x89, 0x44, 0x24, 0x10} // mov %rax,0x10(%rsp)
		dec      = []byte{0x48, 0x83, 0xe8, 0x01}       // sub $0x1,%rax
		inc      = []byte{0x48, 0xff, 0xc0}             // inc %rax
		add2     = []byte{0x48, 0x83, 0xc0, 0x02}       // add $0x2,%rax
		moveBase = []byte{0x48, 0x89, 0xca}             // mov %rcx,%rdx
		reload   = []byte{0x48, 0x8b, 0x44, 0x24, 0x10} // mov 0x10(%rsp),%rax
		store    = []byte{0x48, 0x89, 0x02}             // mov %rax,(%rdx)
		storeAt8 = []byte{0x48, 0x89, 0x42, 0x08}       // mov %rax,0x8(%rdx)
	)
	for _, tc := range []struct {
		name string
		seq  [][]byte
		want bool
	}{
		{"decrement", [][]byte{load, spill, dec, store}, true},
		{"increment", [][]byte{load, inc, store}, true},
		{"not adjusted", [][]byte{load, store}, false},
		{"by two", [][]byte{load, add2, store}, false},
		{"base changed", [][]byte{load, dec, moveBase, store}, false},
		{"value reloaded", [][]byte{load, dec, reload, store}, false},
		{"another word", [][]byte{load, dec, storeAt8}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c countRegs
			for k, code := range tc.seq {
				inst, err := x86dec.Decode(code, 0x1000)
				require.NoError(t, err)
				if k == len(tc.seq)-1 {
					m, ok := memArg(&inst).(x86asm.Mem)
					require.True(t, ok)
					assert.Equal(t, tc.want, c.storesBack(&inst, m))
					return
				}
				c.after(&inst)
			}
		})
	}
}

// A block an allocator returned stays fresh in the registers it is copied
// to until they are written; stores into it (not before it, not indexed)
// change nothing the trace knows.
func TestFreshBlocks(t *testing.T) {
	dec := func(code ...byte) *x86dec.Inst {
		inst, err := x86dec.Decode(code, 0x1000)
		require.NoError(t, err)
		return &inst
	}
	mem := func(inst *x86dec.Inst) x86asm.Mem {
		m, ok := memArg(inst).(x86asm.Mem)
		require.True(t, ok)
		return m
	}
	s := &evalState{fresh: 1 << x86enc.RAX}
	assert.True(t, s.intoFresh(mem(dec(0x48, 0xc7, 0x40, 0x08, 0x20, 0, 0, 0))), "movq $0x20,0x8(%rax)")
	assert.True(t, s.intoFresh(mem(dec(0x48, 0xc7, 0x00, 0x01, 0, 0, 0))), "movq $0x1,(%rax)")
	assert.False(t, s.intoFresh(mem(dec(0x48, 0x89, 0x48, 0xf8))), "mov %rcx,-0x8(%rax): before the block")
	assert.False(t, s.intoFresh(mem(dec(0x48, 0x89, 0x0c, 0xd0))), "mov %rcx,(%rax,%rdx,8)")
	assert.False(t, s.intoFresh(mem(dec(0x48, 0x89, 0x4b, 0x08))), "mov %rcx,0x8(%rbx)")

	s.freshAfter(dec(0x48, 0x89, 0xc3)) // mov %rax,%rbx
	assert.Equal(t, uint16(1<<x86enc.RAX|1<<x86enc.RBX), s.fresh)
	s.freshAfter(dec(0x48, 0x89, 0x4b, 0x08)) // a store: no register written
	assert.Equal(t, uint16(1<<x86enc.RAX|1<<x86enc.RBX), s.fresh)
	s.freshAfter(dec(0x48, 0x8b, 0x00)) // mov (%rax),%rax
	assert.Equal(t, uint16(1<<x86enc.RBX), s.fresh)
	s.freshAfter(dec(0x48, 0x83, 0xc3, 0x08)) // add $0x8,%rbx
	assert.Zero(t, s.fresh)
}

// A load of a slot the trace last stored a value it does not know to
// reads that value, not what memory holds once the recording is over (a
// called function's frame, written by the next iteration's other callee):
// it is never speculated on. A known value stored over it lifts that; a
// vector store makes each 8-byte word under it such a slot, and so does a
// native call that may have written a slot whose address the trace took.
func TestUnknownStores(t *testing.T) {
	const sp = 0x7fff0000
	key := func(a uint64) uint64 { return a<<4 | 8 }
	code := map[string]string{
		"store":  "4889442418",         // mov %rax,0x18(%rsp)
		"load":   "488b4c2418",         // mov 0x18(%rsp),%rcx
		"imm":    "48c744241805000000", // movq $0x5,0x18(%rsp)
		"vector": "f30f7f442420",
		"lea":    "488d4c2418", // lea 0x18(%rsp),%rcx       // movdqu %xmm0,0x20(%rsp)
	}
	run := func(names ...string) (*optimizer, *evalState) {
		o := &optimizer{m: &Machine{}}
		var rs []storeRange
		s := &evalState{ranges: &rs, spec: map[uint64]val{}, stores: map[uint64]storedVal{}, saved: map[uint64]val{}, unknownAt: map[uint64]bool{}}
		s.regs[x86enc.RSP] = val{known: true, v: sp}
		for i, n := range names {
			b, err := hex.DecodeString(code[n])
			require.NoError(t, err)
			inst, err := x86dec.Decode(b, 0x1000)
			require.NoError(t, err)
			o.ops = append(o.ops, op{kind: opInsn, addr: 0x1000, code: b})
			o.insts = append(o.insts, &inst)
			s.op = i
			require.True(t, o.step(i, s, nil), n)
		}
		return o, s
	}
	o, s := run("store", "load")
	assert.True(t, s.unknownAt[key(sp+0x18)])
	assert.Empty(t, o.specOp, "the load reads what the trace stored")
	assert.False(t, s.regs[x86enc.RCX].known)

	_, s = run("store", "imm")
	assert.False(t, s.unknownAt[key(sp+0x18)], "a known value stored over it")
	assert.Equal(t, uint64(5), s.stores[key(sp+0x18)].v)

	// An out argument: the slot's address taken, then a native call.
	_, s = run("lea", "imm")
	require.Equal(t, []uint64{sp + 0x18}, s.escaped)
	s.spec[key(sp+0x20)] = val{known: true, v: 7}
	s.spec[key(sp+0x30)] = val{known: true, v: 7}
	s.calledOut()
	assert.True(t, s.unknownAt[key(sp+0x18)], "the call writes the slot")
	assert.True(t, s.unknownAt[key(sp+0x20)], "16 bytes of it")
	assert.NotContains(t, s.stores, key(sp+0x18))
	assert.NotContains(t, s.spec, key(sp+0x20))
	assert.Contains(t, s.spec, key(sp+0x30), "past it")

	_, s = run("vector")
	assert.True(t, s.unknownAt[key(sp+0x20)])
	assert.True(t, s.unknownAt[key(sp+0x28)])
	assert.False(t, s.unknownAt[(sp+0x28)<<4|1], "a type tag beside a word may be speculated on")
}

// Past an indirect jump's target guard its register holds the target: a
// second dispatch through it (an interpreter that jumps to a handler and
// compares the handler's address again, or a side trace whose entry does
// not know it) folds.
func TestGuardTargetKnownAfter(t *testing.T) {
	jmp := []byte{0xff, 0xe1} // jmp *%rcx
	inst, err := x86dec.Decode(jmp, 0x1000)
	require.NoError(t, err)
	ops, _ := decodeOps(t, []string{"4881f900200000"}) // cmp $0x2000,%rcx
	ops = append([]op{{kind: opGuardTarget, addr: 0x0ff0, code: jmp, inst: &inst, target: 0x2000, exit: 0x0ff0}}, ops...)
	ops = append(ops, op{kind: opGuard, addr: 0x1007, cond: x86enc.NE, exit: 0x1007}, op{kind: opExit, addr: 0x1010, exit: 0x1010})
	m := &Machine{}
	var head [16]uint64
	p := m.optimize(ops, head, head, calleeSaved, &sideEntry{known: []regValue{{x86enc.RSP, 0x7fff0000}}}, nil, frame.Slots{}, newMemView(os.Getpid()), nil)
	require.NotNil(t, p, "the compare's guard folds")
	defer p.release()
	assert.False(t, p.known.get(0, int(x86enc.RCX)).known)
	assert.Equal(t, val{known: true, v: 0x2000}, p.known.get(1, int(x86enc.RCX)))
	assert.True(t, p.drop[2], "the guard is gone")
}

// A side trace does not speculate on memory its loop stores to at known
// addresses (what it held when recorded says nothing of the next
// iteration), unless the side trace stored the value there itself: a
// store through an unknown pointer since makes it uncertain, and the
// load is guarded on what was stored, as in a root trace.
func TestSideSpeculatesOnItsOwnStore(t *testing.T) {
	const (
		storeImm  = "48c70425005000000500000000" // movq $0x5,0x5000
		storeAny  = "48890a"                     // mov %rcx,(%rdx)
		load      = "488b042500500000"           // mov 0x5000,%rax
		cmpRAX    = "4883f805"                   // cmp $0x5,%rax
		otherLoad = "488b0c2508500000"           // mov 0x5008,%rcx
		cmpRCX    = "4883f905"                   // cmp $0x5,%rcx
	)
	// (A speculation is worth its guard where it folds two.)
	ops, _ := decodeOps(t, []string{storeImm, storeAny, load, cmpRAX, cmpRAX, otherLoad, cmpRCX, cmpRCX})
	at := func(i int) uint64 { return ops[i].addr }
	g := func(i int) op { return op{kind: opGuard, addr: at(i) + 4, cond: x86enc.NE, exit: at(i) + 4} }
	ops = append(ops[:4:4], g(3), ops[4], g(4), ops[5], ops[6], g(6), ops[7], g(7), op{kind: opExit, addr: 0x2000, exit: 0x2000})
	entry := &sideEntry{known: []regValue{{x86enc.RSP, 0x7fff0000}}, variant: []addrRange{{0x5000, 0x5010}}}
	m := &Machine{}
	var head [16]uint64
	p := m.optimize(ops, head, head, calleeSaved, entry, nil, frame.Slots{}, newMemView(os.Getpid()), nil)
	require.NotNil(t, p)
	defer p.release()
	assert.Equal(t, map[int]uint64{2: 5}, p.spec, "the load of what it stored, guarded; not the other")
	assert.True(t, p.drop[4] && p.drop[6], "its compares' guards fold")
	assert.False(t, p.drop[9] || p.drop[11])
}

// TestSpeculatesThroughUnknownPointer: a load through a register the
// optimiser does not know (not meaningful at the head), whose value the
// concrete run finds the same at every iteration, is speculated on: a
// guard after the load, marked as resting on the concrete run alone, and
// the compares on its value fold. A ban on the load's address (a guard
// of an earlier trace of the loop that failed) leaves it alone.
func TestSpeculatesThroughUnknownPointer(t *testing.T) {
	const (
		load  = "488b0f"   // mov (%rdi),%rcx
		cmp3  = "4883f903" // cmp $0x3,%rcx
		cmp4  = "4883f904" // cmp $0x4,%rcx
		other = "4889c8"   // mov %rcx,%rax
	)
	word := heapWords(1)
	word[0] = 3
	ops, _ := decodeOps(t, []string{load, cmp3, cmp4, other})
	g := func(i int, c x86enc.Cond) op {
		return op{kind: opGuard, addr: ops[i].addr + 4, cond: c, exit: ops[i].addr + 4}
	}
	ops = append(ops[:2:2], g(1, x86enc.NE), ops[2], g(2, x86enc.E), ops[3], op{kind: opClose, addr: 0x2000})
	var head [16]uint64
	head[x86enc.RDI] = uint64(uintptr(unsafe.Pointer(&word[0])))
	head[x86enc.RSP] = 0x7fff0000
	m := &Machine{}
	for _, tc := range []struct {
		name   string
		bans   map[uint64]bool
		folded bool
	}{
		{"speculated", nil, true},
		{"banned", map[uint64]bool{ops[0].addr: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := m.optimize(ops, head, head, calleeSaved, nil, nil, frame.Slots{}, newMemView(os.Getpid()), tc.bans)
			if !tc.folded {
				require.True(t, p == nil || !p.drop[2] && !p.drop[4], "nothing folds without the speculation")
				p.release()
				return
			}
			require.NotNil(t, p)
			defer p.release()
			require.Equal(t, map[int]postGuardAt{1: {reg: x86enc.RCX, v: 3, resume: ops[1].addr, load: ops[0].addr}}, p.post)
			require.True(t, p.drop[2] && p.drop[4], "both compares' guards fold")
		})
	}
	runtime.KeepAlive(word)
}

// A wide value read beside a 2-byte word the trace speculates on is taken
// as an inline cache of that bytecode and speculated on outright; beside a
// 1-byte one (a value's type tag, as Lua lays them out) it is data: it is
// speculated on only as the concrete run finds it, with a guard whose
// failures retire the trace (respec.go).
func TestInlineCacheOnlyBesideCodeWords(t *testing.T) {
	const (
		loadByte = "0fb64308" // movzbl 0x8(%rbx),%eax
		loadWord = "0fb74308" // movzwl 0x8(%rbx),%eax
		cmpTag   = "83f813"   // cmp $0x13,%eax
		loadWide = "488b0b"   // mov (%rbx),%rcx
		copyRCX  = "4889ca"   // mov %rcx,%rdx
		topBits  = "48c1ea3c" // shr $0x3c,%rdx
		cmpTop   = "4883fa03" // cmp $0x3,%rdx
	)
	obj := heapWords(2)
	obj[0] = 0x3f851804a1498461 // a double
	obj[1] = 0x13
	var head [16]uint64
	head[x86enc.RBX] = uint64(uintptr(unsafe.Pointer(&obj[0])))
	head[x86enc.RSP] = 0x7fff0000
	m := &Machine{}
	for _, tc := range []struct {
		name, first string
		risky       bool
	}{
		{"code word", loadWord, false},
		{"type tag", loadByte, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, _ := decodeOps(t, []string{tc.first, cmpTag, cmpTag, loadWide, copyRCX, topBits, cmpTop, cmpTop})
			g := func(i int) op {
				return op{kind: opGuard, addr: ops[i].addr + 1, cond: x86enc.NE, exit: ops[i].addr + 1}
			}
			ops = append(ops[:2:2], g(1), ops[2], g(2), ops[3], ops[4], ops[5], ops[6], g(6), ops[7], g(7), op{kind: opClose, addr: 0x2000})
			p := m.optimize(ops, head, head, calleeSaved, nil, nil, frame.Slots{}, newMemView(os.Getpid()), nil)
			require.NotNil(t, p)
			defer p.release()
			require.True(t, p.drop[2] && p.drop[4], "the tag's compares fold")
			post, ok := p.post[6]
			require.True(t, ok, "the wide value is guarded after its load")
			assert.Equal(t, tc.risky, post.load != 0, "its guard retires the trace when it fails")
			assert.True(t, p.drop[9] && p.drop[11], "the compares on its top bits fold")
		})
	}
	runtime.KeepAlive(obj)
}
