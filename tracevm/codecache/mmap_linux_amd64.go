package codecache

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

const (
	sysMemfdCreate    = 319 // x86-64
	mfdCloexec        = 0x1
	mfdNoexecSeal     = 0x8 // no execve of the file; mmap with PROT_EXEC is still allowed
	mapFixedNoreplace = 0x100000
)

// ErrUnreachable is returned by New when no free spot lies within reach of the code.
var ErrUnreachable = errors.New("codecache: no free spot within rel32 reach")

// New maps a cache of size bytes (rounded up to the page size) whose every byte is within
// Reach of every byte of [lo, hi), out of the way of a brk heap whose top is brk (0: none
// or unknown; see spots). It fails, and the JIT stays off, when memfd_create is
// unavailable (for instance under seccomp) or no spot in reach is free.
func New(size int, lo, hi, brk uint64) (*Cache, error) {
	page := os.Getpagesize()
	if size <= 0 || size > Reach {
		return nil, fmt.Errorf("codecache: bad cache size %d", size)
	}
	if lo > hi {
		return nil, fmt.Errorf("codecache: bad code range [%#x, %#x)", lo, hi)
	}
	size = (size + page - 1) &^ (page - 1)
	fd, err := memfd(size)
	if err != nil {
		return nil, err
	}
	// The mappings keep the file alive; the descriptor is not needed afterwards.
	defer syscall.Close(fd)

	base, err := mapNear("exec view", fd, uint64(size), lo, hi, brk,
		syscall.PROT_READ|syscall.PROT_EXEC, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	rw, err := syscall.Mmap(fd, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		munmap(base, uint64(size))
		return nil, fmt.Errorf("codecache: mapping %d-byte write view: %w", size, err)
	}
	return &Cache{base: base, rw: rw}, nil
}

// MADV_POPULATE_READ and _WRITE (Linux 5.14).
const (
	madvPopulateRead  = 22
	madvPopulateWrite = 23
)

// populateTo maps the pages of [populated, end) in both views: allocated
// and written through the write view, mapped readable (so executable) in
// the execute view. A kernel that does not know the advice is not asked
// again: the pages then come by faults as before. c.mu is held.
func (c *Cache) populateTo(end int) {
	page := os.Getpagesize()
	lo := c.populated &^ (page - 1)
	end = (end + page - 1) &^ (page - 1)
	if end <= lo {
		return
	}
	rw := uintptr(unsafe.Pointer(&c.rw[0]))
	n := uintptr(end - lo)
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, rw+uintptr(lo), n, madvPopulateWrite); errno != 0 {
		c.noPopulate = true
		return
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(c.base)+uintptr(lo), n, madvPopulateRead); errno != 0 {
		c.noPopulate = true
	}
	c.populated = end
}

// memfd creates an anonymous file of size bytes to back both views.
func memfd(size int) (int, error) {
	name := []byte("tracevm-codecache\x00")
	fd, _, errno := syscall.Syscall(sysMemfdCreate, uintptr(unsafe.Pointer(&name[0])),
		mfdCloexec|mfdNoexecSeal, 0)
	if errno == syscall.EINVAL {
		// Kernels before 6.3 do not know MFD_NOEXEC_SEAL.
		fd, _, errno = syscall.Syscall(sysMemfdCreate, uintptr(unsafe.Pointer(&name[0])),
			mfdCloexec, 0)
	}
	if errno != 0 {
		return -1, fmt.Errorf("codecache: memfd_create: %w", errno)
	}
	if err := syscall.Ftruncate(int(fd), int64(size)); err != nil {
		syscall.Close(int(fd))
		return -1, fmt.Errorf("codecache: ftruncate memfd to %d bytes: %w", size, err)
	}
	return int(fd), nil
}

// mapNear maps size bytes of fd (-1: anonymous memory) with prot and flags at the first
// free spot near [lo, hi) (spots); what names the mapping in errors.
func mapNear(what string, fd int, size, lo, hi, brk uint64, prot, flags int) (uint64, error) {
	for _, hint := range spots(size, lo, hi, brk) {
		addr, _, errno := syscall.Syscall6(syscall.SYS_MMAP, uintptr(hint), uintptr(size),
			uintptr(prot), uintptr(flags|mapFixedNoreplace), uintptr(fd), 0)
		switch errno {
		case 0:
		case syscall.EEXIST, syscall.ENOMEM, syscall.EPERM:
			// Occupied, beyond the address space, or below mmap_min_addr.
			continue
		default:
			return 0, fmt.Errorf("codecache: mapping %d-byte %s at %#x: %w", size, what, hint, errno)
		}
		if uint64(addr) != hint {
			// Kernels before 4.17 treat MAP_FIXED_NOREPLACE as a plain hint.
			munmap(uint64(addr), size)
			continue
		}
		return hint, nil
	}
	return 0, fmt.Errorf("%w: %d bytes near [%#x, %#x)", ErrUnreachable, size, lo, hi)
}

// MapData maps size bytes (a multiple of the page size) of zeroed read-write memory
// within Reach of every byte of [lo, hi), out of the way of a brk heap whose top is brk,
// as New places a cache: data that code there addresses %rip-relative.
func MapData(size, lo, hi, brk uint64) (uint64, error) {
	return mapNear("data area", -1, size, lo, hi, brk, syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
}

func munmap(addr, size uint64) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MUNMAP, uintptr(addr), uintptr(size), 0); errno != 0 {
		return errno
	}
	return nil
}

// Close unmaps both views. Only tests may call it: a thread still running code in the
// cache would fault.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retired = true
	if c.rw == nil {
		return nil
	}
	size := uint64(len(c.rw))
	err := syscall.Munmap(c.rw)
	c.rw = nil
	if err2 := munmap(c.base, size); err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("codecache: unmapping cache at %#x: %w", c.base, err)
	}
	return nil
}
