//go:build !(linux && amd64)

package codecache

import (
	"errors"
	"fmt"
)

// ErrUnreachable is returned by New when no free spot lies within reach of the code.
var ErrUnreachable = errors.New("codecache: no free spot within rel32 reach")

// New always fails: the cache relies on Linux x86-64 system calls.
func New(size int, lo, hi, brk uint64) (*Cache, error) {
	return nil, fmt.Errorf("codecache: cache near [%#x, %#x): %w", lo, hi, errors.ErrUnsupported)
}

// populateTo does nothing; New never returns a cache on this platform.
func (c *Cache) populateTo(end int) {}

// Close does nothing; New never returns a cache on this platform.
func (c *Cache) Close() error { return nil }

// MapData always fails: see New.
func MapData(size, lo, hi, brk uint64) (uint64, error) {
	return 0, fmt.Errorf("codecache: data near [%#x, %#x): %w", lo, hi, errors.ErrUnsupported)
}
