package x86dec

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Memo's decodings are Decode's, instruction for instruction, over the
// whole code of the real binaries (most of it repeats, so most of these
// are hits), errors included; a full Memo still decodes.
func TestMemoMatchesDecode(t *testing.T) {
	for _, path := range realBinaries {
		t.Run(path, func(t *testing.T) {
			m := NewMemo()
			m.max = 1 << 20
			var n, hits int
			for _, s := range execSections(t, path) {
				for off := 0; off < len(s.data); {
					code := s.data[off:]
					addr := s.addr + uint64(off)
					want, werr := Decode(code, addr)
					_, hit := m.lookup(code[:min(len(code), MaxLen)])
					got, gerr := m.Decode(code, addr)
					if werr != nil {
						require.Error(t, gerr, "%#x", addr)
						assert.Equal(t, werr.Error(), gerr.Error())
						off++
						continue
					}
					require.NoError(t, gerr, "%#x", addr)
					if !reflect.DeepEqual(want, got) {
						t.Fatalf("%#x % x: memo %v (%+v), decode %v (%+v)", addr, code[:want.Len], &got, got, &want, want)
					}
					n++
					if hit {
						hits++
					}
					off += want.Len
				}
			}
			t.Logf("%d instructions, %.0f%% hits, %d remembered", n, 100*float64(hits)/float64(n), m.n)
			assert.Greater(t, hits, n/2, "compiled code repeats itself")
		})
	}
}

func TestMemoFull(t *testing.T) {
	m := NewMemo()
	m.max = 1
	a, err := m.Decode([]byte{0x48, 0x89, 0xc3}, 0x1000) // mov %rax,%rbx
	require.NoError(t, err)
	b, err := m.Decode([]byte{0x48, 0x89, 0xd8, 0xc3}, 0x2000) // mov %rbx,%rax; ret
	require.NoError(t, err)
	assert.Equal(t, 3, a.Len)
	assert.Equal(t, 3, b.Len)
	assert.Equal(t, uint64(0x2000), b.Addr)
	assert.Equal(t, 1, m.n)
	_, ok := m.lookup([]byte{0x48, 0x89, 0xd8})
	assert.False(t, ok)
	c, err := m.Decode([]byte{0x48, 0x89, 0xc3, 0x90}, 0x3000)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x3000), c.Addr)
	assert.Equal(t, a.Op, c.Op)
}

func BenchmarkMemoDecodeLua(b *testing.B) {
	secs := execSections(b, "/usr/bin/lua5.4")
	m := NewMemo()
	m.max = 1 << 20
	b.ResetTimer()
	var n int
	for range b.N {
		for _, s := range secs {
			for off := 0; off < len(s.data); {
				inst, err := m.Decode(s.data[off:], s.addr+uint64(off))
				if err != nil {
					off++
					continue
				}
				off += inst.Len
				n++
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/insn")
}

// A fresh Memo filled with the first instructions of lua5.4's text, as a
// JIT's first recordings fill it: the cost of remembering.
func BenchmarkMemoColdLua(b *testing.B) {
	secs := execSections(b, "/usr/bin/lua5.4")
	b.ResetTimer()
	var n int
	for range b.N {
		m := NewMemo()
		k := 0
		for _, s := range secs {
			for off := 0; off < len(s.data) && k < 8000; k++ {
				inst, err := m.Decode(s.data[off:], s.addr+uint64(off))
				if err != nil {
					off++
					continue
				}
				off += inst.Len
			}
		}
		n += k
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/insn")
}

// Decode alone over the same instructions, for comparison.
func BenchmarkDecodeColdLua(b *testing.B) {
	secs := execSections(b, "/usr/bin/lua5.4")
	b.ResetTimer()
	var n int
	for range b.N {
		k := 0
		for _, s := range secs {
			for off := 0; off < len(s.data) && k < 8000; k++ {
				inst, err := Decode(s.data[off:], s.addr+uint64(off))
				if err != nil {
					off++
					continue
				}
				off += inst.Len
			}
		}
		n += k
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/insn")
}
