package x86dec

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestFlagsDeadAt scans small programs at address 0x1000; the bytes were
// checked with GNU as.
func TestFlagsDeadAt(t *testing.T) {
	tests := []struct {
		name string
		code []byte
		dead bool
	}{
		{"cmp first", []byte{0x48, 0x39, 0xc8}, true},                                     // cmp %rcx,%rax
		{"moves then test", []byte{0x48, 0x8b, 0x07, 0x49, 0x89, 0xc0, 0x85, 0xc0}, true}, // mov (%rdi),%rax; mov %rax,%r8; test %eax,%eax
		{"jcc reads", []byte{0x74, 0x00}, false},                                          // je .+2
		{"adc reads", []byte{0x48, 0x11, 0xc8}, false},                                    // adc %rcx,%rax
		{"inc keeps CF", []byte{0x48, 0xff, 0xc0, 0x48, 0x39, 0xc8}, false},               // inc %rax; cmp
		{"shift by 3 writes", []byte{0x48, 0xc1, 0xe0, 0x03}, true},                       // shl $3,%rax
		{"shift by %cl may not", []byte{0x48, 0xd3, 0xe0}, false},                         // shl %cl,%rax
		{"call ends them", []byte{0xe8, 0x00, 0x00, 0x00, 0x00}, true},                    // call .+5
		{"ret ends them", []byte{0xc3}, true},
		{"indirect jump", []byte{0xff, 0xe0}, false},                              // jmp *%rax
		{"jmp followed to cmp", []byte{0xeb, 0x01, 0x90, 0x48, 0x39, 0xc8}, true}, // jmp over a nop to cmp
		{"self loop of moves", []byte{0x48, 0x89, 0xc1, 0xeb, 0xfb}, false},       // mov; jmp back: no writer within the limit
		{"runs out of code", []byte{0x48, 0x89, 0xc1}, false},
		{"float chain then cmp", []byte{0xf2, 0x0f, 0x59, 0x45, 0x10, 0xf2, 0x0f, 0x58, 0xc1, 0x48, 0x39, 0xc8}, true}, // mulsd 0x10(%rbp),%xmm0; addsd %xmm1,%xmm0; cmp
		{"float chain then jcc", []byte{0xf2, 0x0f, 0x5e, 0xc1, 0x74, 0x00}, false},                                    // divsd %xmm1,%xmm0; je
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := func(a uint64, n int) ([]byte, error) {
				if a < 0x1000 || a >= 0x1000+uint64(len(tt.code)) {
					return nil, errors.New("outside")
				}
				return tt.code[a-0x1000:], nil
			}
			assert.Equal(t, tt.dead, FlagsDeadAt(read, 0x1000, 16))
		})
	}
}
