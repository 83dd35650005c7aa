package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"path/filepath"
	"syscall"
)

// Files the runtime opens while the interpreter runs go through plain
// system calls: the os package would start Go's network poller, whose
// epoll and eventfd descriptors stay open in the host process, where the
// interpreter (and CPython's own tests) can see them.

// mapFileRaw maps the whole file at path read-only; unmap releases it.
// Mapped rather than read: the runtime's heap is collected only near its
// limit, and an interpreter's file is several megabytes.
func mapFileRaw(path string) (data []byte, unmap func(), err error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Size <= 0 || st.Size != int64(int(st.Size)) {
		return nil, nil, fmt.Errorf("%s: cannot map a file of %d bytes", path, st.Size)
	}
	data, err = syscall.Mmap(fd, 0, int(st.Size), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return data, func() { syscall.Munmap(data) }, nil
}

// mappedELF is an ELF file parsed over its mapping (openELFRaw).
type mappedELF struct {
	*elf.File
	data []byte
}

// openELFRaw maps an ELF file and parses it; what the parser returns is
// copied out of the mapping (symbol names), so the caller may unmap once
// it has done with f, except what sectionBytes returns.
func openELFRaw(path string) (f *mappedELF, unmap func(), err error) {
	data, unmap, err := mapFileRaw(path)
	if err != nil {
		return nil, nil, err
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		unmap()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return &mappedELF{File: ef, data: data}, unmap, nil
}

// sectionBytes returns s's contents in the mapping itself, valid until the
// file is unmapped: Section.Data copies into fresh heap, and a Go
// library's symbol table is megabytes, whose first touch (page faults at
// about 10 us each here) was a fifth of the JIT's start. A compressed
// section, or one without bytes in the file, is left to Data.
func (f *mappedELF) sectionBytes(s *elf.Section) ([]byte, error) {
	if s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_COMPRESSED != 0 {
		return s.Data()
	}
	end := s.Offset + s.FileSize
	if end < s.Offset || end > uint64(len(f.data)) {
		return nil, fmt.Errorf("section %s: bytes %#x-%#x lie outside the file", s.Name, s.Offset, end)
	}
	return f.data[s.Offset:end:end], nil
}

// logFile appends each Write to the file at its path, opened for that
// write alone (O_APPEND|O_CLOEXEC) and closed after it. The runtime must
// hold no descriptor the program can see or reuse: a program that closes
// every descriptor it did not open and then opens a file of its own would
// get the log's number, and the log written into its file. Each trace's
// log is one Write, so the file is opened once a trace. (A descriptor kept
// at a high number and checked with fstat before each write would still
// show in /proc/self/fd, where CPython's tests look, and a program's
// close_range or dup2 onto that number would take it away.)
type logFile string

// openLog makes sure the file at path can be opened for appending
// (creating it) and returns its writer. A relative path is taken from the
// working directory now, so that a later chdir of the program does not
// move the log.
func openLog(path string) (logFile, error) {
	if !filepath.IsAbs(path) {
		wd, err := syscall.Getwd()
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		path = filepath.Join(wd, path)
	}
	w := logFile(path)
	if _, err := w.Write(nil); err != nil {
		return "", err
	}
	return w, nil
}

func (w logFile) Write(p []byte) (int, error) {
	fd, err := syscall.Open(string(w), syscall.O_WRONLY|syscall.O_CREAT|syscall.O_APPEND|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", string(w), err)
	}
	defer syscall.Close(fd)
	done := 0
	for done < len(p) {
		n, err := syscall.Write(fd, p[done:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}
