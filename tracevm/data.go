package tracevm

import "github.com/redmagic-patch/redmagic-patch/tracevm/codecache"

// newDataArea maps size bytes of read-write memory within rel32 reach of
// every byte of the code cache [lo, hi), out of the brk heap's way.
func newDataArea(lo, hi, brk uint64, size int) (*dataArea, error) {
	size = (size + 4095) &^ 4095
	base, err := codecache.MapData(uint64(size), lo, hi, brk)
	if err != nil {
		return nil, err
	}
	return &dataArea{base: base, size: size}, nil
}
