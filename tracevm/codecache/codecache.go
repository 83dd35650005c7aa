// Package codecache owns the executable memory that holds the JIT's compiled traces.
//
// A cache is one memfd mapped twice: an execute-only view (r-x) placed within rel32 reach
// of the patched object's text, and a write view (rw-) at an address of the kernel's
// choosing. No page is ever writable and executable at once; code is written through the
// write view and runs at the execute view's addresses, which are the only addresses this
// package hands out.
package codecache

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Reach is the largest distance allowed between any byte of a cache and any byte of the
// code it must reach with rel32. It keeps 1 MiB below 2^31 so that displacements, which
// count from the end of an instruction, never overflow.
const Reach = 1<<31 - 1<<20

// probeStep is the distance between the spots tried for a mapping: fine enough to find
// holes between the objects and heaps near a program's text, coarse enough that a 2 GiB
// window costs at most about a thousand failed mmap calls.
const probeStep = 2 << 20

var (
	// ErrFull is returned by Alloc when the cache has no room left.
	ErrFull = errors.New("codecache: cache full")
	// ErrRetired is returned by Alloc after Retire or Close.
	ErrRetired = errors.New("codecache: cache retired")
)

// Cache is a region of executable memory near some code.
type Cache struct {
	base uint64 // RX address of the first byte
	rw   []byte // the write view, same length as the RX view

	mu      sync.Mutex
	used    int
	retired bool
	// populated: the bytes from the start whose pages are mapped in
	// both views already (populateAhead); noPopulate once the kernel
	// refused.
	populated  int
	noPopulate bool
}

// populateAhead: Alloc keeps this much beyond what it handed out mapped
// in both views, in one system call a chunk. Page by page, the first
// write through the write view and the first run through the execute view
// each take a fault (some 10 us each on the development machines): most
// of a short recording's time once went there.
const populateAhead = 512 << 10

// Base returns the RX address of the first byte.
func (c *Cache) Base() uint64 { return c.base }

// Size returns the size of the cache in bytes (a multiple of the page size).
func (c *Cache) Size() int { return len(c.rw) }

// Used returns the number of bytes handed out by Alloc, alignment padding included.
func (c *Cache) Used() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Contains reports whether addr lies in the RX view.
func (c *Cache) Contains(addr uint64) bool {
	return addr >= c.base && addr-c.base < uint64(len(c.rw))
}

// Reaches reports whether every byte of the cache is within Reach of every byte of [lo, hi).
func (c *Cache) Reaches(lo, hi uint64) bool {
	return reaches(c.base, uint64(len(c.rw)), lo, hi)
}

// reaches reports whether [base, base+size) and [lo, hi) are within Reach of each other:
// the farthest pairs are the outer ends of the two ranges.
func reaches(base, size, lo, hi uint64) bool {
	end := base + size
	return max(end, hi)-min(base, lo) <= Reach
}

// spots returns the addresses, best first, to try for a mapping of size bytes whose every
// byte is within Reach of every byte of [lo, hi), all multiples of 2 MiB.
//
// brk is the program's break, the top of its brk heap (0: none or unknown). The heap grows
// up from there, and a mapping in its way makes malloc go on in scattered mmap'd pieces
// (glibc's main arena): pyperformance's pyflate took up to 5,700 more page faults. So
// with the heap above the code the spots run between the code and the heap, then below
// the code, then from the farthest in reach down to the heap; otherwise just above the
// code moving up, then below it moving down.
func spots(size, lo, hi, brk uint64) []uint64 {
	heapAbove := brk > hi
	var out []uint64
	for b := (hi + probeStep - 1) &^ (probeStep - 1); b >= hi && b+size > b &&
		reaches(b, size, lo, hi) && (!heapAbove || b+size <= brk); b += probeStep {
		out = append(out, b)
	}
	if lo >= size+probeStep {
		for b := (lo - size) &^ (probeStep - 1); b >= probeStep && reaches(b, size, lo, hi); b -= probeStep {
			out = append(out, b)
		}
	}
	if heapAbove && lo <= ^uint64(0)-Reach && lo+Reach >= size {
		for b := (lo + Reach - size) &^ (probeStep - 1); b >= brk && reaches(b, size, lo, hi); b -= probeStep {
			out = append(out, b)
		}
	}
	return out
}

// Alloc reserves n bytes whose RX address is a multiple of align (a power of two) and
// returns that address. It returns ErrFull when the cache has no room and ErrRetired once
// the cache has been retired.
func (c *Cache) Alloc(n, align int) (uint64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("codecache: alloc of %d bytes", n)
	}
	if align <= 0 || align&(align-1) != 0 {
		return 0, fmt.Errorf("codecache: alloc alignment %d is not a power of two", align)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.retired {
		return 0, ErrRetired
	}
	a := uint64(align)
	addr := (c.base + uint64(c.used) + a - 1) &^ (a - 1)
	if addr+uint64(n) > c.base+uint64(len(c.rw)) || addr+uint64(n) < addr {
		return 0, fmt.Errorf("alloc of %d bytes aligned %d with %d of %d used: %w",
			n, align, c.used, len(c.rw), ErrFull)
	}
	c.used = int(addr-c.base) + n
	if !c.noPopulate && c.used+populateAhead/2 > c.populated {
		c.populateTo(min(len(c.rw), c.used+populateAhead))
	}
	return addr, nil
}

// Next returns the address the next Alloc aligned align would return
// (align a power of two).
func (c *Cache) Next(align int) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := uint64(align)
	return (c.base + uint64(c.used) + a - 1) &^ (a - 1)
}

// rwRange returns the write-view slice for the RX range [at, at+n) after checking that
// it lies in allocated space. c.mu must be held.
func (c *Cache) rwRange(at uint64, n int) ([]byte, error) {
	if c.rw == nil {
		return nil, fmt.Errorf("codecache: access at %#x after Close", at)
	}
	if at < c.base || at-c.base > uint64(c.used) || uint64(c.used)-(at-c.base) < uint64(n) {
		return nil, fmt.Errorf("codecache: %d bytes at %#x outside allocated [%#x, %#x)",
			n, at, c.base, c.base+uint64(c.used))
	}
	off := at - c.base
	return c.rw[off : off+uint64(n)], nil
}

// Write copies b to the RX address at through the write view. [at, at+len(b)) must lie in
// space returned by Alloc. Write is allowed after Retire so that live traces stay patchable.
func (c *Cache) Write(at uint64, b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dst, err := c.rwRange(at, len(b))
	if err != nil {
		return err
	}
	copy(dst, b)
	return nil
}

// Freeze blocks every write to the cache (Write, Patch32) until Thaw: a
// process about to fork copies the cache for its child meanwhile.
func (c *Cache) Freeze() { c.mu.Lock() }

// Thaw ends Freeze.
func (c *Cache) Thaw() { c.mu.Unlock() }

// Patch32 replaces the 4 bytes at RX address at (typically a rel32 or imm32 field) with v
// in a single store, so a thread executing the code sees either the old or the new value.
// Aligned fields use an atomic store. x86 also makes an unaligned 4-byte store atomic when
// it does not cross a 64-byte cache line, so fields that would cross one are rejected.
func (c *Cache) Patch32(at uint64, v uint32) error {
	if at%64 > 60 {
		return fmt.Errorf("codecache: 4-byte patch at %#x crosses a 64-byte cache line", at)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dst, err := c.rwRange(at, 4)
	if err != nil {
		return err
	}
	p := unsafe.Pointer(&dst[0])
	if at%4 == 0 {
		atomic.StoreUint32((*uint32)(p), v)
	} else {
		// A plain uint32 store is one MOVL on amd64.
		*(*uint32)(p) = v
	}
	return nil
}

// Reset forgets all allocations. The caller guarantees that no thread runs, or will
// return into, code in the cache; the JIT normally retires a full cache instead.
func (c *Cache) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used = 0
}

// Retire makes every later Alloc fail with ErrRetired. The mapping stays in place forever
// because threads may still be executing the code in it.
func (c *Cache) Retire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retired = true
}

// Protection returns the permission string ("r-xs", "rw-s", ...) of the mapping in
// /proc/self/maps that contains addr.
func Protection(addr uint64) (string, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return "", fmt.Errorf("codecache: protection of %#x: %w", addr, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode [path]
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		s, e, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(s, 16, 64)
		end, err2 := strconv.ParseUint(e, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if addr >= start && addr < end {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("codecache: protection of %#x: %w", addr, err)
	}
	return "", fmt.Errorf("codecache: no mapping contains %#x", addr)
}
