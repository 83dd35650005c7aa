package codecache

// callRaw calls the machine code at fn and returns its RAX. It exists only so that tests
// can run code written into a cache: go test does not assemble _test.s files, and this
// package avoids cgo. The code must return with RET and clobber nothing but RAX and flags.
func callRaw(fn uintptr) uint64
