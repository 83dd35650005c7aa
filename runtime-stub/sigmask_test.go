package main

import (
	"debug/elf"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestInitOrderKeepsSignalsFromGoThreads checks the .init_array order the
// signal-mask handling in rm_init.c relies on: the constructor that blocks
// asynchronous signals runs before the Go runtime's entry (whose threads
// inherit that mask), and rm_ctor, which restores the mask, after it.
// The effect on a real interpreter is covered by test_signal in the
// CPython core subset run under the patched python3.11.
func TestInitOrderKeepsSignalsFromGoThreads(t *testing.T) {
	fx := getFixture(t)
	f, err := elf.Open(fx.so)
	require.NoError(t, err)
	defer f.Close()
	sec := f.Section(".init_array")
	require.NotNil(t, sec)
	data, err := sec.Data()
	require.NoError(t, err)
	syms, err := f.Symbols()
	require.NoError(t, err)
	name := map[uint64]string{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			name[s.Value] = s.Name
		}
	}
	// .init_array of a shared object holds link-time addresses that the
	// RELATIVE relocations fill in; the file bytes may be zero, so read
	// the relocations' addends.
	entries := make([]uint64, len(data)/8)
	for i := range entries {
		entries[i] = binary.LittleEndian.Uint64(data[8*i:])
	}
	rela := f.Section(".rela.dyn")
	require.NotNil(t, rela)
	rd, err := rela.Data()
	require.NoError(t, err)
	for off := 0; off+24 <= len(rd); off += 24 {
		at := binary.LittleEndian.Uint64(rd[off:])
		if at >= sec.Addr && at < sec.Addr+sec.Size && elf.R_X86_64(binary.LittleEndian.Uint64(rd[off+8:])&0xffffffff) == elf.R_X86_64_RELATIVE {
			entries[(at-sec.Addr)/8] = binary.LittleEndian.Uint64(rd[off+16:])
		}
	}
	pos := map[string]int{}
	for i, e := range entries {
		pos[name[e]] = i + 1
	}
	block, goInit, ctor := pos["rm_block_signals_for_go"], pos["_rt0_amd64_linux_lib"], pos["rm_ctor"]
	t.Logf(".init_array order: block %d, Go %d, rm_ctor %d", block, goInit, ctor)
	require.NotZero(t, block)
	require.NotZero(t, goInit)
	require.NotZero(t, ctor)
	require.Less(t, block, goInit)
	require.Less(t, goInit, ctor)
}
