package main

/*
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include "rm_internal.h"
#include "tv.h"

const volatile int32_t *rm_host_quiet_tid(void);

// The JIT library's file and load address, found by one of its C
// functions.
static const char *rm_jit_self(uintptr_t *base)
{
	Dl_info info;
	if (!dladdr((void *)tv_park, &info) || !info.dli_fname)
		return 0;
	*base = (uintptr_t)info.dli_fbase;
	return info.dli_fname;
}
*/
import "C"

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"reflect"
	"syscall"
)

// startParking turns on parking of the Go runtime's threads while the JIT
// is idle (tracevm/park.c): it needs the bounds of this library's Go code,
// which only its symbol table has (runtime.text, runtime.etext). It
// returns "on", or "off: " and why (for the statistics); REDMAGIC_PARK=0
// turns it off.
func startParking() string {
	if os.Getenv("REDMAGIC_PARK") == "0" {
		return "off: REDMAGIC_PARK=0"
	}
	if underCallgrind() {
		// Its signal tracking asserts when threads of one process wait
		// in signal handlers while others run (valgrind 3.19).
		return "off: under callgrind"
	}
	lo, hi, err := goText()
	if err != nil {
		return "off: " + err.Error()
	}
	if C.tv_park_setup(C.uint64_t(lo), C.uint64_t(hi), C.rm_host_quiet_tid()) == 0 {
		return "off: its signal is taken"
	}
	return "on"
}

// goText returns the run-time bounds of the library's Go code, checked
// against a Go function and a C one.
func goText() (lo, hi uint64, err error) {
	var base C.uintptr_t
	name := C.rm_jit_self(&base)
	if name == nil {
		return 0, 0, fmt.Errorf("cannot find the JIT library's file")
	}
	path := C.GoString(name)
	f, unmap, err := openELFRaw(path) // not os: no network poller
	if err != nil {
		return 0, 0, err
	}
	defer unmap()
	// Scanned in place: the Go library's table has tens of thousands of
	// symbols, and debug/elf's Symbols allocating each one's name was a
	// millisecond of the JIT's start.
	scanSymbols(f, elf.SHT_SYMTAB, func(_ int, name []byte, s elf.Symbol) {
		switch string(name) {
		case "runtime.text":
			lo = s.Value
		case "runtime.etext":
			hi = s.Value
		}
	})
	if lo == 0 || hi <= lo {
		return 0, 0, fmt.Errorf("%s: no runtime.text/runtime.etext symbols", path)
	}
	lo += uint64(base)
	hi += uint64(base)
	goFn := uint64(reflect.ValueOf(goText).Pointer())
	cFn := uint64(uintptr(C.tv_park_addr()))
	if goFn-lo >= hi-lo || cFn-lo < hi-lo {
		return 0, 0, fmt.Errorf("%s: Go code bounds %#x-%#x do not fit its functions", path, lo, hi)
	}
	return lo, hi, nil
}

// underCallgrind reports whether the process runs under valgrind's
// callgrind tool, whose code shows in the process's mappings. Read with
// plain system calls (rawfile.go says why).
func underCallgrind() bool {
	fd, err := syscall.Open("/proc/self/maps", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	var maps []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(fd, buf)
		if n <= 0 || err != nil {
			break
		}
		maps = append(maps, buf[:n]...)
	}
	return bytes.Contains(maps, []byte("/callgrind-"))
}
