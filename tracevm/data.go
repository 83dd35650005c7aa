package tracevm

import (
	"fmt"
	"syscall"
)

// newDataArea maps size bytes of read-write memory within rel32 reach of
// near (the code cache), trying addresses below it, then above.
func newDataArea(near uint64, size int) (*dataArea, error) {
	const mapFixedNoReplace = 0x100000
	const step = 1 << 21
	sz := uint64(size+4095) &^ 4095
	try := func(a uint64) (uint64, bool) {
		r, _, errno := syscall.Syscall6(syscall.SYS_MMAP, uintptr(a), uintptr(sz),
			syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|mapFixedNoReplace, ^uintptr(0), 0)
		if errno != 0 {
			return 0, false
		}
		if uint64(r) != a {
			syscall.Syscall(syscall.SYS_MUNMAP, r, uintptr(sz), 0)
			return 0, false
		}
		return a, true
	}
	base := near &^ (step - 1)
	for d := uint64(step); d < 1<<30; d += step {
		if base > d+sz {
			if a, ok := try(base - d); ok {
				return &dataArea{base: a, size: int(sz)}, nil
			}
		}
		if a, ok := try(base + (1 << 30) + d); ok {
			return &dataArea{base: a, size: int(sz)}, nil
		}
	}
	return nil, fmt.Errorf("no free address within reach of %#x", near)
}
