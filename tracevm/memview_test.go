package tracevm

import (
	"os"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMemView checks that the optimiser's memory reads never fault: a
// guard page (mapped, PROT_NONE) and an unmapped page are reported as
// unreadable, a readable word is read whole and zero-extended, also
// across two lines.
func TestMemView(t *testing.T) {
	page, err := syscall.Mmap(-1, 0, 2*4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	require.NoError(t, err)
	defer syscall.Munmap(page)
	require.NoError(t, syscall.Mprotect(page[4096:], syscall.PROT_NONE))
	base := uint64(uintptr(unsafe.Pointer(&page[0])))
	copy(page[8:], []byte{1, 2, 3, 4, 5, 6, 7, 0x88})
	copy(page[memLine:], []byte{9, 10, 11, 12})

	tests := []struct {
		name string
		addr uint64
		size int
		want uint64
		ok   bool
	}{
		{"word", base + 8, 8, 0x8807060504030201, true},
		{"dword", base + 8, 4, 0x04030201, true},
		{"byte", base + 15, 1, 0x88, true},
		{"straddles two lines", base + memLine - 4, 8, 0x0c0b0a09_00000000, true},
		{"guard page", base + 4096, 8, 0, false},
		{"straddles the guard page", base + 4092, 8, 0, false},
		{"last bytes before the guard page", base + 4088, 8, 0, true},
		{"null page", 0, 8, 0, false},
		{"non-canonical", 1 << 63, 4, 0, false},
		{"wraps", ^uint64(0) - 2, 8, 0, false},
		{"too wide", base, 16, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := newMemView(os.Getpid()).read(tt.addr, tt.size)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, v)
		})
	}
}

// TestMemViewIsASnapshot checks that one view answers an address with
// the value of its first read: the passes of one trace must agree on
// what they folded.
func TestMemViewIsASnapshot(t *testing.T) {
	page, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	require.NoError(t, err)
	defer syscall.Munmap(page)
	a := uint64(uintptr(unsafe.Pointer(&page[0])))
	page[0] = 7
	v := newMemView(os.Getpid())
	got, ok := v.read(a, 8)
	require.True(t, ok)
	assert.Equal(t, uint64(7), got)
	page[0] = 9
	got, _ = v.read(a, 8)
	assert.Equal(t, uint64(7), got, "the same view")
	got, _ = newMemView(os.Getpid()).read(a, 8)
	assert.Equal(t, uint64(9), got, "a new view")
}

// TestMemViewSnapshotAtRecordingEnd checks that snapshot copies the
// windows around the registers at once: a compilation later reads the
// values the recording ended with there (a spill slot rewritten since),
// and what lies outside every window as it is when first read.
func TestMemViewSnapshotAtRecordingEnd(t *testing.T) {
	page, err := syscall.Mmap(-1, 0, 4*4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	require.NoError(t, err)
	defer syscall.Munmap(page)
	base := uint64(uintptr(unsafe.Pointer(&page[0])))
	le := func(off int, v byte) { page[off] = v }
	const sp, obj, far = 64, 3 * 4096, 2 * 4096
	le(sp+0x18, 1)             // a spill slot above the stack pointer
	le(sp+snapStackAbove-8, 2) // the stack window's far end
	le(obj-snapBelow, 3)       // the lowest byte of another register's window
	le(far, 4)                 // in no window
	le(obj+snapAbove-1, 5)     // the last byte of that window
	var regs [16]uint64
	regs[4], regs[0], regs[1] = base+sp, base+obj, 7 // %rsp, %rax, a count
	v := newMemView(os.Getpid())
	v.snapshot(&regs, 4)
	for _, off := range []int{sp + 0x18, sp + snapStackAbove - 8, obj - snapBelow, far, obj + snapAbove - 1} {
		page[off] = 0xee // the program goes on
	}
	for _, tt := range []struct {
		off  int
		want uint64
	}{
		{sp + 0x18, 1}, {sp + snapStackAbove - 8, 2}, {obj - snapBelow, 3}, {far, 0xee}, {obj + snapAbove - 1, 5},
	} {
		got, ok := v.read(base+uint64(tt.off), 1)
		assert.True(t, ok)
		assert.Equal(t, tt.want, got, "offset %#x", tt.off)
	}
}
