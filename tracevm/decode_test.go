package tracevm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
)

// newDecoded decodes and classifies the instruction at the start of code,
// which lies at a, as the machine's decode does (a copy of its bytes is
// kept).
func newDecoded(code []byte, a uint64) (*decoded, error) {
	d := &decoded{}
	if err := d.init(x86dec.NewMemo(), code, a); err != nil {
		return nil, err
	}
	d.code = append([]byte(nil), d.code...)
	return d, nil
}

// TestEmitPlain checks the cached placement of Plain instructions against
// x86enc.Relocate, the reference, at addresses below, at and above the
// original (bytes assembled with GNU as).
func TestEmitPlain(t *testing.T) {
	const at = 0x500000
	tests := []struct {
		name    string
		code    []byte
		ripDisp int
	}{
		{"mov reg", []byte{0x48, 0x89, 0xc8}, 0},                                        // mov %rcx,%rax
		{"load rip", []byte{0x48, 0x8b, 0x05, 0x10, 0x20, 0x00, 0x00}, 3},               // mov 0x2010(%rip),%rax
		{"store rip imm", []byte{0xc7, 0x05, 0xf0, 0xff, 0xff, 0xff, 0x01, 0, 0, 0}, 2}, // movl $1,-0x10(%rip)
		{"cmp rip imm8", []byte{0x48, 0x83, 0x3d, 0x00, 0x01, 0x00, 0x00, 0x05}, 3},     // cmpq $5,0x100(%rip)
		{"lea rip r12", []byte{0x4c, 0x8d, 0x25, 0x34, 0x12, 0x00, 0x00}, 3},            // lea 0x1234(%rip),%r12
		{"vex rip", []byte{0xc5, 0xfa, 0x10, 0x05, 0x08, 0x00, 0x00, 0x00}, 4},          // vmovss 0x8(%rip),%xmm0
		{"movss rip", []byte{0xf3, 0x0f, 0x10, 0x0d, 0x00, 0x10, 0x00, 0x00}, 4},        // movss 0x1000(%rip),%xmm1
		{"indexed", []byte{0x48, 0x8b, 0x04, 0xc8}, 0},                                  // mov (%rax,%rcx,8),%rax
		{"segment", []byte{0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00}, 0},    // mov %fs:0x28,%rax
		{"imm64", []byte{0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8}, 0},                        // movabs
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := newDecoded(tt.code, at)
			require.NoError(t, err)
			assert.Equal(t, tt.ripDisp, d.ripDisp)
			for _, base := range []uint64{at - 0x10000, at, at + 0x7000_0000} {
				want, err := x86enc.Relocate(tt.code, at, base)
				require.NoError(t, err)
				e := newEmitter(base, 0)
				require.NoError(t, d.emitPlain(e))
				assert.Equal(t, want, e.buf, "placed at %#x", base)
				assert.Equal(t, tt.code, d.code, "the cached bytes stay as they were")
			}
		})
	}
	// Out of rel32 reach: the reference's error.
	d, err := newDecoded(tests[1].code, at)
	require.NoError(t, err)
	assert.Error(t, d.emitPlain(newEmitter(at+0x1_0000_0000, 0)))
}
