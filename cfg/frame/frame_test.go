package frame

import (
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// codeFrames is a Code over functions given as code at addresses
// (the tests' own, or an ELF file's text).
type codeFrames struct {
	funcs Funcs
	text  []byte
	base  uint64
}

func (c *codeFrames) FuncAt(pc uint64) (Range, bool) { return c.funcs.At(pc) }

func (c *codeFrames) Bytes(r Range) []byte {
	if r.Lo < c.base || r.Hi > c.base+uint64(len(c.text)) {
		return nil
	}
	return c.text[r.Lo-c.base : r.Hi-c.base]
}

// assemble lays functions out one after another from 0x1000.
func assemble(fns ...[]byte) *codeFrames {
	c := &codeFrames{base: 0x1000}
	for _, f := range fns {
		lo := c.base + uint64(len(c.text))
		c.text = append(c.text, f...)
		c.funcs = append(c.funcs, Range{Lo: lo, Hi: lo + uint64(len(f))})
	}
	return c
}

func join(parts ...[]byte) []byte { return slices.Concat(parts...) }

// Encodings used below (checked against objdump).
var (
	push15      = []byte{0x41, 0x57}                                        // push %r15
	pushRbx     = []byte{0x53}                                              // push %rbx
	sub68       = []byte{0x48, 0x83, 0xec, 0x68}                            // sub $0x68,%rsp
	add68       = []byte{0x48, 0x83, 0xc4, 0x68}                            // add $0x68,%rsp
	popRbx      = []byte{0x5b}                                              // pop %rbx
	pop15       = []byte{0x41, 0x5f}                                        // pop %r15
	ret         = []byte{0xc3}                                              // ret
	spill28     = []byte{0x4c, 0x89, 0x54, 0x24, 0x28}                      // mov %r10,0x28(%rsp)
	reload28    = []byte{0x4c, 0x8b, 0x54, 0x24, 0x28}                      // mov 0x28(%rsp),%r10
	spill0      = []byte{0x48, 0x89, 0x0c, 0x24}                            // mov %rcx,(%rsp)
	spill8      = []byte{0x48, 0x89, 0x4c, 0x24, 0x08}                      // mov %rcx,0x8(%rsp)
	lea40       = []byte{0x48, 0x8d, 0x54, 0x24, 0x40}                      // lea 0x40(%rsp),%rdx
	callRel     = []byte{0xe8, 0x00, 0x00, 0x00, 0x00}                      // call .+5
	movRspRbp   = []byte{0x48, 0x89, 0xe5}                                  // mov %rsp,%rbp
	indexed30   = []byte{0x48, 0x89, 0x44, 0xcc, 0x30}                      // mov %rax,0x30(%rsp,%rcx,8)
	pushInBody  = []byte{0x6a, 0x00}                                        // push $0
	stackCanary = []byte{0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0}       // mov %fs:0x28,%rax
	jmpCold     = func(rel int32) []byte { return rel32(0xe9, rel) }        // jmp rel32
	jeCold      = func(rel int32) []byte { return rel32x(0x0f, 0x84, rel) } // je rel32
)

func rel32(op byte, rel int32) []byte {
	return []byte{op, byte(rel), byte(rel >> 8), byte(rel >> 16), byte(rel >> 24)}
}

func rel32x(op0, op1 byte, rel int32) []byte {
	return append([]byte{op0}, rel32(op1, rel)...)
}

// TestAnalyse checks which stack slots are found private in
// functions built to show each rule.
func TestAnalyse(t *testing.T) {
	prologue := join(push15, pushRbx, sub68)
	epilogue := join(add68, popRbx, pop15, ret)
	tests := []struct {
		name string
		fns  [][]byte
		want Slots
	}{
		{"spills only", [][]byte{join(prologue, spill28, callRel, reload28, epilogue)}, Slots{0, 0x68}},
		{"an address taken", [][]byte{join(prologue, lea40, spill28, epilogue)}, Slots{0, 0x40}},
		{"an indexed array", [][]byte{join(prologue, indexed30, epilogue)}, Slots{0, 0x30}},
		// Argument slots stay: the caller never reads them back.
		{"stack arguments", [][]byte{join(prologue, spill0, spill8, callRel, epilogue)}, Slots{0, 0x68}},
		{"a push in the body", [][]byte{join(prologue, lea40, pushInBody, callRel, epilogue)}, Slots{8, 0x38}},
		{"a frame pointer", [][]byte{join(push15, movRspRbp, sub68, spill28, epilogue)}, Slots{}},
		{"no frame", [][]byte{join(spill28, ret)}, Slots{}},
		{"the canary is not the frame", [][]byte{join(prologue, stackCanary, epilogue)}, Slots{0, 0x68}},
		// The cold part (second function, no prologue of its own) takes
		// an address in the frame the first allocated.
		{"a cold part", [][]byte{join(prologue, jeCold(int32(len(epilogue))+5), jmpCold(int32(len(epilogue))), epilogue), join(lea40, jmpCold(-100))}, Slots{0, 0x40}},
		// A tail-called function is read as if it were a cold part:
		// its pushes and its frame shift the offsets, and nothing is
		// left.
		{"a tail call", [][]byte{join(prologue, add68, popRbx, pop15, jmpCold(0)), join(push15, sub68, lea40, add68, pop15, ret)}, Slots{}},
		{"a tail call to a leaf", [][]byte{join(prologue, spill28, add68, popRbx, pop15, jmpCold(0)), join(reload28, ret)}, Slots{0, 0x68}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := assemble(tt.fns...)
			assert.Equal(t, tt.want, Analyse(c, c.funcs[0].Lo))
		})
	}
}

// TestAnalyseRealInterpreters reads the eval loops of the
// interpreters this machine runs: CPython 3.11 keeps next_instr at
// 0x28(%rsp) and takes the address of its _PyCFrame at 0xb0; Lua 5.4's
// luaV_execute keeps base at 0x18(%rsp) and takes an address at 0x40.
func TestAnalyseRealInterpreters(t *testing.T) {
	tests := []struct {
		path    string
		pc      uint64 // a back-edge handler inside the eval loop
		private []uint32
		escaped []uint32
	}{
		{"/usr/bin/python3.11", 0x5026cb, []uint32{0x8, 0x28, 0x50}, []uint32{0x80, 0xb0}},
		{"/usr/bin/lua5.4", 0x1b918, []uint32{0x18}, []uint32{0x40}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			c := elfFrames(t, tt.path)
			ps := Analyse(c, tt.pc)
			t.Logf("private slots [%#x, %#x)", ps.Lo, ps.Hi)
			for _, off := range tt.private {
				assert.True(t, off >= ps.Lo && off+8 <= ps.Hi, "%#x private in %#x", off, ps)
			}
			for _, off := range tt.escaped {
				assert.False(t, off+8 > ps.Lo && off < ps.Hi, "%#x escaped, not in %#x", off, ps)
			}
		})
	}
}

// elfFrames reads an ELF file's text and FDEs at their link addresses.
func elfFrames(t *testing.T, path string) *codeFrames {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		t.Skipf("%s: not installed", path)
	}
	f, err := elfimage.Open(path)
	require.NoError(t, err)
	text := f.Section(".text")
	require.NotNil(t, text)
	data, err := f.Read(text.Addr, int(text.Size))
	require.NoError(t, err)
	c := &codeFrames{text: data, base: text.Addr}
	for _, fde := range f.FDEs {
		c.funcs = append(c.funcs, Range{Lo: fde.Start, Hi: fde.End})
	}
	return c
}

// BenchmarkAnalysePython is the patcher's cost for CPython's eval loop
// (60 KiB of code).
func BenchmarkAnalysePython(b *testing.B) {
	c := elfFrames(&testing.T{}, "/usr/bin/python3.11")
	for range b.N {
		Analyse(c, 0x5026cb)
	}
}

// TestPack checks the site table's encoding of Slots.
func TestPack(t *testing.T) {
	for _, s := range []Slots{{8, 0x80}, {0x10, 0x40}, {0, 0xffff}} {
		assert.Equal(t, s, Unpack(s.Pack()))
	}
	assert.Equal(t, uint32(0), Slots{}.Pack())
	assert.Equal(t, uint32(0), Slots{8, 0x10000}.Pack(), "too large to say")
	assert.True(t, Unpack(0).Empty())
}
