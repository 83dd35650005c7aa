package tracevm

import (
	"fmt"
	"syscall"

	"github.com/redmagic-patch/redmagic-patch/tracevm/codecache"
)

// newDataArea maps size bytes of read-write memory within rel32 reach of
// every byte of the code cache [lo, hi), out of the brk heap's way
// (codecache.Spots).
func newDataArea(lo, hi, brk uint64, size int) (*dataArea, error) {
	const mapFixedNoReplace = 0x100000
	sz := uint64(size+4095) &^ 4095
	for _, a := range codecache.Spots(sz, lo, hi, brk) {
		r, _, errno := syscall.Syscall6(syscall.SYS_MMAP, uintptr(a), uintptr(sz),
			syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|mapFixedNoReplace, ^uintptr(0), 0)
		if errno != 0 {
			continue
		}
		if uint64(r) != a {
			syscall.Syscall(syscall.SYS_MUNMAP, r, uintptr(sz), 0)
			continue
		}
		return &dataArea{base: a, size: int(sz)}, nil
	}
	return nil, fmt.Errorf("no free address within reach of [%#x, %#x)", lo, hi)
}
