//go:build linux && amd64

package codecache

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"
)

// retImm is `mov $imm, %eax; ret`.
func retImm(imm uint32) []byte {
	b := []byte{0xB8, 0, 0, 0, 0, 0xC3}
	binary.LittleEndian.PutUint32(b[1:], imm)
	return b
}

// jmpTo is `jmp rel32` placed at from, aimed at to.
func jmpTo(from, to uint64) []byte {
	b := []byte{0xE9, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], uint32(int32(int64(to-(from+5)))))
	return b
}

// readRX reads n bytes at addr through /proc/self/mem, which sees the RX view itself.
func readRX(t *testing.T, addr uint64, n int) []byte {
	t.Helper()
	f, err := os.Open("/proc/self/mem")
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, int64(addr))
	require.NoError(t, err)
	return b
}

// textRange returns the executable mapping of /proc/self/maps that contains addr.
func textRange(t *testing.T, addr uint64) (lo, hi uint64) {
	t.Helper()
	for _, m := range readMaps(t) {
		if addr >= m.lo && addr < m.hi {
			require.Contains(t, m.perm, "x")
			return m.lo, m.hi
		}
	}
	t.Fatalf("no mapping contains %#x", addr)
	return 0, 0
}

type mapping struct {
	lo, hi uint64
	perm   string
}

func readMaps(t *testing.T) []mapping {
	t.Helper()
	data, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	var out []mapping
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		s, e, _ := strings.Cut(f[0], "-")
		lo, err := strconv.ParseUint(s, 16, 64)
		require.NoError(t, err)
		hi, err := strconv.ParseUint(e, 16, 64)
		require.NoError(t, err)
		out = append(out, mapping{lo, hi, f[1]})
	}
	return out
}

func abs(d int64) uint64 {
	if d < 0 {
		return uint64(-d)
	}
	return uint64(d)
}

// rwAddr returns the address of the write view.
func rwAddr(c *Cache) uint64 { return uint64(uintptr(unsafe.Pointer(&c.rw[0]))) }

func newCache(t *testing.T, size int, lo, hi uint64) *Cache {
	t.Helper()
	c, err := New(size, lo, hi, 0)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

func TestNewReachAndProtection(t *testing.T) {
	fn := uint64(reflect.ValueOf(TestNewReachAndProtection).Pointer())
	textLo, textHi := textRange(t, fn)
	tests := []struct {
		name   string
		size   int
		lo, hi uint64
	}{
		{"own text", 1 << 20, textLo, textHi},
		{"one function", 5000, fn, fn + 1},
		{"far address", 64 << 10, 0x5000_0000_0000, 0x5000_0010_0000},
		{"wide range", 4 << 20, 0x4000_0000_0000, 0x4000_6000_0000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, tt.size, tt.lo, tt.hi)
			page := os.Getpagesize()
			assert.GreaterOrEqual(t, c.Size(), tt.size)
			assert.Zero(t, c.Size()%page)
			assert.Zero(t, c.Base()%uint64(page))
			assert.True(t, c.Reaches(tt.lo, tt.hi))

			// Every corner pair is within rel32 reach, whichever side the cache is on.
			first, last := c.Base(), c.Base()+uint64(c.Size())-1
			for _, a := range []uint64{first, last} {
				for _, b := range []uint64{tt.lo, tt.hi - 1} {
					assert.Less(t, abs(int64(a-b)), uint64(1<<31), "%#x to %#x", a, b)
				}
			}
			assert.True(t, last < tt.lo || first >= tt.hi, "cache overlaps the code")

			rx, err := Protection(c.Base())
			require.NoError(t, err)
			assert.Equal(t, "r-xs", rx)
			rx, err = Protection(last)
			require.NoError(t, err)
			assert.Equal(t, "r-xs", rx)
			rw, err := Protection(rwAddr(c))
			require.NoError(t, err)
			assert.Equal(t, "rw-s", rw)
			for _, m := range readMaps(t) {
				assert.False(t, strings.Contains(m.perm, "w") && strings.Contains(m.perm, "x"),
					"writable and executable mapping %#x-%#x %s", m.lo, m.hi, m.perm)
			}
			assert.True(t, c.Contains(first))
			assert.True(t, c.Contains(last))
			assert.False(t, c.Contains(first-1))
			assert.False(t, c.Contains(last+1))
			assert.False(t, c.Contains(rwAddr(c)))
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		lo, hi uint64
		target error
	}{
		{"range wider than reach", 4096, 0x1000_0000_0000, 0x1000_0000_0000 + 3<<30, ErrUnreachable},
		{"range plus cache just too wide", 1 << 20, 0x1000_0000_0000, 0x1000_0000_0000 + Reach - 1<<20 + 1, ErrUnreachable},
		{"above the address space", 4096, 1 << 62, 1<<62 + 4096, ErrUnreachable},
		{"zero size", 0, 0x1000_0000_0000, 0x1000_0000_1000, nil},
		{"inverted range", 4096, 0x1000_0000_1000, 0x1000_0000_0000, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.size, tt.lo, tt.hi, 0)
			require.Error(t, err)
			assert.Nil(t, c)
			if tt.target != nil {
				assert.ErrorIs(t, err, tt.target)
				assert.Contains(t, err.Error(), strconv.FormatUint(tt.lo, 16))
			}
		})
	}
}

// TestNewSearchesHoles fills the whole reach of a small range with a reservation and
// checks that New fails, then that it finds the one hole punched into it.
func TestNewSearchesHoles(t *testing.T) {
	const span = 5 << 30
	res, err := syscall.Mmap(-1, 0, span, syscall.PROT_NONE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	require.NoError(t, err)
	defer syscall.Munmap(res)
	start := uint64(uintptr(unsafe.Pointer(&res[0])))
	lo := (start + span/2) &^ (probeStep - 1)
	hi := lo + 4096

	_, err = New(64<<10, lo, hi, 0)
	require.ErrorIs(t, err, ErrUnreachable)

	for _, hole := range []uint64{lo - 1<<30, hi + 1<<30} {
		hole &^= probeStep - 1
		require.NoError(t, munmap(hole, probeStep))
		c, err := New(64<<10, lo, hi, 0)
		require.NoError(t, err)
		assert.Equal(t, hole, c.Base())
		require.NoError(t, c.Close())
		// Fill the hole again so the next case finds only its own.
		_, _, errno := syscall.Syscall6(syscall.SYS_MMAP, uintptr(hole), probeStep, syscall.PROT_NONE,
			syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_FIXED, ^uintptr(0), 0)
		require.Zero(t, errno)
	}
}

func TestSpots(t *testing.T) {
	const lo, hi, size = 0x5555_0000_1234, 0x5555_0200_0000, 1 << 20
	cs := spots(size, lo, hi, 0)
	require.NotEmpty(t, cs)
	assert.GreaterOrEqual(t, cs[0], uint64(hi))
	assert.Less(t, cs[0], uint64(hi+probeStep))
	var above, below int
	for _, b := range cs {
		assert.Zero(t, b%probeStep)
		assert.True(t, reaches(b, size, lo, hi), "%#x", b)
		switch {
		case b >= hi:
			above++
		case b+size <= lo:
			below++
		default:
			t.Errorf("candidate %#x overlaps the code", b)
		}
	}
	// Each side of the code offers nearly 2 GiB of candidates.
	assert.Greater(t, above, 900)
	assert.Greater(t, below, 900)
}

// TestSpotsAroundHeap: with a brk heap above the code, no spot lies where the heap grows;
// the room between the code and the heap comes first, then below the code, then from the
// farthest spot in reach down to the heap.
func TestSpotsAroundHeap(t *testing.T) {
	const size = 128 << 20
	tests := []struct {
		name    string
		lo, hi  uint64
		brk     uint64
		between bool // room for the cache between the code and the heap
	}{
		{"heap far above a non-PIE text", 0x40_0000, 0xad_0000, 0x3c20_2000, true},
		{"heap right after a non-PIE text", 0x40_0000, 0xad_0000, 0xb0_0000, false},
		{"heap right after a PIE text", 0x5555_5555_0000, 0x5555_5560_0000, 0x5555_5570_0000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := spots(size, tt.lo, tt.hi, tt.brk)
			require.NotEmpty(t, cs)
			const (
				between = iota
				below
				above
			)
			last := between
			for i, b := range cs {
				assert.True(t, reaches(b, size, tt.lo, tt.hi), "%#x", b)
				var where int
				switch {
				case b >= tt.hi && b+size <= tt.brk:
					where = between
				case b+size <= tt.lo:
					where = below
				case b >= tt.brk:
					where = above
					if i > 0 && cs[i-1] >= tt.brk {
						assert.Less(t, b, cs[i-1], "above the heap, the farthest first")
					}
				default:
					t.Fatalf("spot %#x is in the code's or the heap's way", b)
				}
				assert.GreaterOrEqual(t, where, last, "spot %#x out of order", b)
				last = where
			}
			assert.Equal(t, tt.between, cs[0] < tt.brk && cs[0] >= tt.hi)
			if !tt.between && tt.lo < size {
				// No room below a text at 4 MiB: the first spot is the farthest one.
				assert.Greater(t, cs[0], tt.lo+Reach-size-probeStep)
			}
		})
	}
}

func TestCallWrittenCode(t *testing.T) {
	lo, hi := textRange(t, uint64(reflect.ValueOf(TestCallWrittenCode).Pointer()))
	c := newCache(t, 4096, lo, hi)
	code := retImm(42)
	insts := decodeAll(t, code, 0)
	require.Len(t, insts, 2)
	assert.Equal(t, x86asm.MOV, insts[0].Op)
	assert.Equal(t, x86asm.Imm(42), insts[0].Args[1])
	assert.Equal(t, x86asm.RET, insts[1].Op)

	at, err := c.Alloc(len(code), 16)
	require.NoError(t, err)
	require.NoError(t, c.Write(at, code))
	assert.Equal(t, code, readRX(t, at, len(code)))
	assert.Equal(t, uint64(42), callRaw(uintptr(at)))
}

func decodeAll(t *testing.T, code []byte, addr uint64) []x86dec.Inst {
	t.Helper()
	var out []x86dec.Inst
	for len(code) > 0 {
		inst, err := x86dec.Decode(code, addr)
		require.NoError(t, err)
		out = append(out, inst)
		code, addr = code[inst.Len:], addr+uint64(inst.Len)
	}
	return out
}

func TestAlloc(t *testing.T) {
	c := newCache(t, 1<<20, 0x5000_0000_0000, 0x5000_0000_1000)
	prevEnd := c.Base()
	for _, tt := range []struct{ n, align int }{
		{1, 1}, {3, 2}, {5, 16}, {1, 64}, {100, 4096}, {7, 8}, {1, 1}, {4096, 4096},
	} {
		next := c.Next(tt.align)
		at, err := c.Alloc(tt.n, tt.align)
		require.NoError(t, err)
		assert.Equal(t, next, at, "Next(%d) is where Alloc allocates", tt.align)
		assert.Zero(t, at%uint64(tt.align), "align %d", tt.align)
		assert.GreaterOrEqual(t, at, prevEnd, "overlaps previous allocation")
		assert.Less(t, at-prevEnd, uint64(tt.align), "needless padding")
		prevEnd = at + uint64(tt.n)
		assert.Equal(t, int(prevEnd-c.Base()), c.Used())
	}
	for _, tt := range []struct{ n, align int }{{0, 1}, {-1, 1}, {1, 0}, {1, 3}, {1, -4}} {
		_, err := c.Alloc(tt.n, tt.align)
		assert.Error(t, err, "n %d align %d", tt.n, tt.align)
		assert.NotErrorIs(t, err, ErrFull)
	}
}

func TestAllocFull(t *testing.T) {
	c := newCache(t, 8192, 0x5000_0000_0000, 0x5000_0000_1000)
	at, err := c.Alloc(c.Size()-10, 1)
	require.NoError(t, err)
	assert.Equal(t, c.Base(), at)
	_, err = c.Alloc(11, 1)
	assert.ErrorIs(t, err, ErrFull)
	_, err = c.Alloc(4, 16) // fits in 10 bytes only without alignment
	assert.ErrorIs(t, err, ErrFull)
	_, err = c.Alloc(1<<62, 1)
	assert.ErrorIs(t, err, ErrFull)
	at, err = c.Alloc(10, 1)
	require.NoError(t, err)
	assert.Equal(t, c.Base()+uint64(c.Size())-10, at)
	_, err = c.Alloc(1, 1)
	assert.ErrorIs(t, err, ErrFull)
	assert.Equal(t, c.Size(), c.Used())

	c.Reset()
	assert.Zero(t, c.Used())
	at, err = c.Alloc(1, 1)
	require.NoError(t, err)
	assert.Equal(t, c.Base(), at)
}

func TestWriteBounds(t *testing.T) {
	c := newCache(t, 8192, 0x5000_0000_0000, 0x5000_0000_1000)
	at, err := c.Alloc(100, 1)
	require.NoError(t, err)
	tests := []struct {
		name string
		at   uint64
		n    int
		ok   bool
	}{
		{"whole allocation", at, 100, true},
		{"last byte", at + 99, 1, true},
		{"empty at end", at + 100, 0, true},
		{"past allocation end", at + 99, 2, false},
		{"after allocation", at + 100, 1, false},
		{"before base", at - 1, 1, false},
		{"in rw view", rwAddr(c), 1, false},
		{"far beyond", at + 1<<40, 1, false},
		{"wrapping", ^uint64(0), 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := make([]byte, tt.n)
			for i := range b {
				b[i] = byte(i + 1)
			}
			err := c.Write(tt.at, b)
			if !tt.ok {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, b, readRX(t, tt.at, tt.n))
		})
	}
	// Nothing outside the allocation was touched.
	assert.Equal(t, make([]byte, 16), readRX(t, at+100, 16))
}

func TestPatch32(t *testing.T) {
	c := newCache(t, 4096, 0x5000_0000_0000, 0x5000_0000_1000)

	// Aligned field: three NOPs put the mov immediate at a 4-byte boundary.
	fn, err := c.Alloc(64, 64)
	require.NoError(t, err)
	require.NoError(t, c.Write(fn, append([]byte{0x90, 0x90, 0x90}, retImm(7)...)))
	require.Equal(t, uint64(7), callRaw(uintptr(fn)))
	require.NoError(t, c.Patch32(fn+4, 1234567))
	assert.Equal(t, uint64(1234567), callRaw(uintptr(fn)))

	// Unaligned field: retarget a jmp rel32 from one function to another.
	one, err := c.Alloc(8, 8)
	require.NoError(t, err)
	require.NoError(t, c.Write(one, retImm(1)))
	two, err := c.Alloc(8, 8)
	require.NoError(t, err)
	require.NoError(t, c.Write(two, retImm(2)))
	jmp, err := c.Alloc(5, 1)
	require.NoError(t, err)
	require.NoError(t, c.Write(jmp, jmpTo(jmp, one)))
	require.Equal(t, uint64(1), callRaw(uintptr(jmp)))
	require.NotZero(t, (jmp+1)%4)
	require.NoError(t, c.Patch32(jmp+1, uint32(int32(int64(two-(jmp+5))))))
	assert.Equal(t, uint64(2), callRaw(uintptr(jmp)))
	insts := decodeAll(t, readRX(t, jmp, 5), jmp)
	require.Len(t, insts, 1)
	target, ok := insts[0].Target()
	require.True(t, ok)
	assert.Equal(t, two, target)

	// Rejected: crossing a cache line, or outside allocated space.
	end, err := c.Alloc(128, 64)
	require.NoError(t, err)
	for _, off := range []uint64{61, 62, 63} {
		assert.ErrorContains(t, c.Patch32(end+off, 0), "cache line")
	}
	assert.NoError(t, c.Patch32(end+60, 0xdeadbeef))
	assert.Equal(t, []byte{0xef, 0xbe, 0xad, 0xde}, readRX(t, end+60, 4))
	assert.Error(t, c.Patch32(end+126, 0))
	assert.Error(t, c.Patch32(c.Base()-4, 0))
}

func TestConcurrentAlloc(t *testing.T) {
	c := newCache(t, 1<<20, 0x5000_0000_0000, 0x5000_0000_1000)
	type span struct{ at, n uint64 }
	var (
		mu    sync.Mutex
		spans []span
		wg    sync.WaitGroup
	)
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewSource(int64(g)))
			for range 200 {
				n, align := 1+r.Intn(100), 1<<r.Intn(7)
				at, err := c.Alloc(n, align)
				if !assert.NoError(t, err) {
					return
				}
				assert.Zero(t, at%uint64(align))
				assert.NoError(t, c.Write(at, make([]byte, n)))
				mu.Lock()
				spans = append(spans, span{at, uint64(n)})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, spans, 16*200)
	sort.Slice(spans, func(i, j int) bool { return spans[i].at < spans[j].at })
	for i, s := range spans {
		assert.True(t, c.Contains(s.at) && c.Contains(s.at+s.n-1))
		if i > 0 {
			p := spans[i-1]
			assert.LessOrEqual(t, p.at+p.n, s.at, "allocations overlap")
		}
	}
	last := spans[len(spans)-1]
	assert.Equal(t, int(last.at+last.n-c.Base()), c.Used())
}

func TestRetire(t *testing.T) {
	c := newCache(t, 4096, 0x5000_0000_0000, 0x5000_0000_1000)
	at, err := c.Alloc(8, 8)
	require.NoError(t, err)
	require.NoError(t, c.Write(at, retImm(5)))
	c.Retire()
	_, err = c.Alloc(1, 1)
	assert.ErrorIs(t, err, ErrRetired)
	// Live code stays patchable and runnable.
	require.NoError(t, c.Patch32(at+1, 6))
	assert.Equal(t, uint64(6), callRaw(uintptr(at)))
	prot, err := Protection(at)
	require.NoError(t, err)
	assert.Equal(t, "r-xs", prot)
}

func TestClose(t *testing.T) {
	c, err := New(4096, 0x5000_0000_0000, 0x5000_0000_1000, 0)
	require.NoError(t, err)
	at, err := c.Alloc(8, 1)
	require.NoError(t, err)
	base := c.Base()
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	_, err = Protection(base)
	assert.Error(t, err, "RX view still mapped")
	assert.Error(t, c.Write(at, []byte{1}))
	assert.Error(t, c.Patch32(at, 1))
	_, err = c.Alloc(1, 1)
	assert.True(t, errors.Is(err, ErrRetired))
}

func TestProtection(t *testing.T) {
	fn := uint64(reflect.ValueOf(TestProtection).Pointer())
	p, err := Protection(fn)
	require.NoError(t, err)
	assert.Regexp(t, `^r-xp$`, p)
	var local int
	p, err = Protection(uint64(uintptr(unsafe.Pointer(&local))))
	require.NoError(t, err)
	assert.Regexp(t, `^rw-p$`, p)
	_, err = Protection(8)
	assert.ErrorContains(t, err, "0x8")
}

// MapData places zeroed, writable memory within reach of the code, as New places a cache.
func TestMapData(t *testing.T) {
	lo, hi := textRange(t, uint64(reflect.ValueOf(TestMapData).Pointer()))
	const size = 64 << 10
	a, err := MapData(size, lo, hi, 0)
	require.NoError(t, err)
	defer munmap(a, size)
	assert.True(t, reaches(a, size, lo, hi), "%#x", a)
	// Through a pipe, the kernel reads the memory and writes it (a pointer made from the
	// address would be vet's "misuse of unsafe.Pointer").
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	last := uintptr(a + size - 1)
	_, _, errno := syscall.Syscall(syscall.SYS_WRITE, w.Fd(), last, 1)
	require.Zero(t, errno)
	got := make([]byte, 1)
	_, err = r.Read(got)
	require.NoError(t, err)
	assert.Zero(t, got[0], "zeroed")
	_, err = w.Write([]byte{7})
	require.NoError(t, err)
	_, _, errno = syscall.Syscall(syscall.SYS_READ, r.Fd(), last, 1)
	require.Zero(t, errno, "writable")
	_, _, errno = syscall.Syscall(syscall.SYS_WRITE, w.Fd(), last, 1)
	require.Zero(t, errno)
	_, err = r.Read(got)
	require.NoError(t, err)
	assert.Equal(t, byte(7), got[0])

	_, err = MapData(size, 1<<62, 1<<62+4096, 0)
	assert.ErrorIs(t, err, ErrUnreachable)
}
