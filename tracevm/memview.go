package tracevm

import (
	"encoding/binary"
	"syscall"
	"unsafe"
)

// memLine is the unit a memView copies: lines never straddle a page, so
// a line is readable or not as a whole.
const memLine = 256

// A memView is the process's memory as one compilation sees it: the
// optimiser's reads of values to fold or speculate on are answered from
// copies of the lines they fall in, each line copied by one system call
// the first time it is read. A read never faults: the kernel copies a
// line (process_vm_readv on our own pid) and reports a page that is
// unmapped or not readable (a guard page, PROT_NONE) as an error instead
// of a SIGSEGV (mincore is not enough: it succeeds on mapped PROT_NONE
// pages). A line whose copy fails is remembered as unreadable.
//
// Reading a word by a system call each cost a quarter of a small trace's
// compilation: an iteration's loads cluster in a few lines (a frame's
// slots, an object's header, the bytecode), so one copy a line serves
// most of them. Every read of an address in one view gives the same
// value, which the passes of one trace (its peeled copy included) rely
// on.
type memView struct {
	pid   int                       // this process's (a fork child never compiles)
	lines map[uint64]*[memLine]byte // by line address; nil: not readable
}

func newMemView(pid int) *memView {
	return &memView{pid: pid, lines: map[uint64]*[memLine]byte{}}
}

// read returns n <= 8 bytes at a, zero-extended, and whether all of them
// are readable.
func (v *memView) read(a uint64, n int) (uint64, bool) {
	if n <= 0 || n > 8 || a+uint64(n) < a {
		return 0, false
	}
	var buf [8]byte
	for i := 0; i < n; {
		at := a + uint64(i)
		line := v.line(at &^ (memLine - 1))
		if line == nil {
			return 0, false
		}
		i += copy(buf[i:n], line[at&(memLine-1):])
	}
	return binary.LittleEndian.Uint64(buf[:]), true
}

func (v *memView) line(base uint64) *[memLine]byte {
	if l, seen := v.lines[base]; seen {
		return l
	}
	l := new([memLine]byte)
	if !copyOwn(v.pid, unsafe.Pointer(l), base, memLine) {
		l = nil
	}
	v.lines[base] = l
	return l
}

// copyOwn copies n bytes at a in this process (pid) to dst through the
// kernel, reporting a fault as false.
func copyOwn(pid int, dst unsafe.Pointer, a uint64, n int) bool {
	local := syscall.Iovec{Base: (*byte)(dst), Len: uint64(n)}
	remote := syscall.Iovec{Base: (*byte)(addrPtr(a)), Len: uint64(n)}
	got, _, errno := syscall.Syscall6(sysProcessVMReadv, uintptr(pid),
		uintptr(unsafe.Pointer(&local)), 1, uintptr(unsafe.Pointer(&remote)), 1, 0)
	return errno == 0 && int(got) == n
}

// sysProcessVMReadv is process_vm_readv's number on x86-64.
const sysProcessVMReadv = 310

// Windows a snapshot copies around the registers at a recording's end:
// the stack pointer's covers the loop frame's slots and the spill slots
// below them (CPython 2.7 keeps its bytecode pointer in one), any other
// register's the object or array it points into.
const (
	snapStackBelow, snapStackAbove = 512, 4096
	snapBelow, snapAbove           = 256, 768
)

// snapshot copies now, on the recording's thread, the lines around what
// regs point to (sp: the stack pointer's number), so that a compilation
// in the background reads the values the recording ended with, not those
// the program has written since: a spill slot the loop rewrites every
// iteration would otherwise be speculated on at another iteration's value
// and the guards resting on it contradict the recording.
func (v *memView) snapshot(regs *[16]uint64, sp int) {
	for r, x := range regs {
		if x < 1<<16 {
			continue // not a pointer: a count, a small constant
		}
		below, above := uint64(snapBelow), uint64(snapAbove)
		if r == sp {
			below, above = snapStackBelow, snapStackAbove
		}
		lo, hi := x-min(x, below), x+above
		if hi < x {
			hi = ^uint64(0)
		}
		for base := lo &^ (memLine - 1); base < hi && base >= lo&^(memLine-1); base += memLine {
			v.line(base)
		}
	}
}
