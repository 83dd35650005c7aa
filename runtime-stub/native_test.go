package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/cfg/sites"
)

// TestSymbolEntries resolves the built-in profiles' native functions in
// the installed interpreters: each name the profile lists is exported by
// the binary it serves, so each must be found, at its symbol's address.
func TestSymbolEntries(t *testing.T) {
	for _, tc := range []struct{ profile, path string }{
		{"cpython3.11", "/usr/bin/python3.11"},
		{"lua5.4", "/usr/bin/lua5.4"},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			p := sites.BuiltinNamed(tc.profile)
			require.NotNil(t, p)
			require.NotEmpty(t, p.Native)
			f, unmap, err := openELFRaw(tc.path)
			require.NoError(t, err)
			defer unmap()
			const bias = 0x10000
			got := symbolEntries(f, bias, p.Native)[0]
			syms, err := f.DynamicSymbols()
			require.NoError(t, err)
			byName := map[string]uint64{}
			for _, s := range syms {
				if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF {
					byName[s.Name] = s.Value
				}
			}
			for _, n := range p.Native {
				v, ok := byName[n]
				if assert.True(t, ok, "%s does not export %s", tc.path, n) {
					assert.True(t, got[bias+v], "%s not resolved", n)
				}
			}
			assert.LessOrEqual(t, len(got), len(p.Native))
		})
	}
	assert.Nil(t, sites.BuiltinNamed("no-such-profile"))
}

// TestMapFileRaw maps a file exactly as os.ReadFile reads it, and names
// the file when it cannot.
func TestMapFileRaw(t *testing.T) {
	want, err := os.ReadFile("/usr/bin/lua5.4")
	require.NoError(t, err)
	got, unmap, err := mapFileRaw("/usr/bin/lua5.4")
	require.NoError(t, err)
	assert.Equal(t, want, got)
	unmap()
	_, _, err = mapFileRaw("/no/such/file")
	assert.ErrorContains(t, err, "/no/such/file")
	_, _, err = mapFileRaw("/proc/self/cmdline") // size 0: not mappable
	assert.ErrorContains(t, err, "/proc/self/cmdline")
}

// TestImportSlots finds lua5.4's _setjmp (returns twice) and
// __longjmp_chk (returns to an earlier frame): each one's GOT slot (from
// .rela.plt) and the PLT stub that jumps through it, and nothing else.
func TestImportSlots(t *testing.T) {
	f, unmap, err := openELFRaw("/usr/bin/lua5.4")
	require.NoError(t, err)
	defer unmap()
	out, err := exec.Command("objdump", "-d", "-j", ".plt", "/usr/bin/lua5.4").Output()
	require.NoError(t, err)
	rels, err := exec.Command("readelf", "-rW", "/usr/bin/lua5.4").Output()
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		got  map[uint64]bool
	}{
		{"_setjmp", importSlots(f, 0, returnsTwiceNames)[0]},
		{"__longjmp_chk", importSlots(f, 0, longjmpNames)[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NotEmpty(t, tc.got)
			// "0000000000007110 <_setjmp@plt>:"
			m := regexp.MustCompile(`(?m)^([0-9a-f]+) <` + tc.name + `@plt>:`).FindStringSubmatch(string(out))
			require.NotNil(t, m, "objdump names the stub")
			stub, err := strconv.ParseUint(m[1], 16, 64)
			require.NoError(t, err)
			assert.True(t, tc.got[stub], "the stub at %#x", stub)
			m = regexp.MustCompile(`(?m)^([0-9a-f]+)\s+\S+\s+R_X86_64_JUMP_SLOT\s+\S+\s+` + tc.name + `@`).FindStringSubmatch(string(rels))
			require.NotNil(t, m, "readelf names the slot")
			slot, err := strconv.ParseUint(m[1], 16, 64)
			require.NoError(t, err)
			assert.True(t, tc.got[slot], "the slot at %#x", slot)
			assert.LessOrEqual(t, len(tc.got), 3, "the slot and the stub (and its 16-byte start): %v", tc.got)
		})
	}
	// Several sets in one reading of the file: each as if read alone, a
	// set with nothing imported nil.
	both := importSlots(f, 0, returnsTwiceNames, longjmpNames, map[string]bool{"no_such_import": true})
	assert.Equal(t, importSlots(f, 0, returnsTwiceNames)[0], both[0])
	assert.Equal(t, importSlots(f, 0, longjmpNames)[0], both[1])
	assert.Nil(t, both[2])
}

// TestSectionBytes: a section read in place is what debug/elf copies out,
// for every section of the interpreters; a section the header places past
// the file's end is an error, not a slice of someone else's bytes.
func TestSectionBytes(t *testing.T) {
	for _, path := range []string{"/usr/bin/lua5.4", "/usr/bin/python3.11"} {
		t.Run(path, func(t *testing.T) {
			f, unmap, err := openELFRaw(path)
			require.NoError(t, err)
			defer unmap()
			for _, s := range f.Sections {
				want, wantErr := s.Data()
				got, err := f.sectionBytes(s)
				assert.Equal(t, wantErr, err, s.Name)
				assert.Equal(t, want, got, s.Name)
			}
			s := *f.Section(".dynsym")
			s.Offset = uint64(len(f.data)) - 8
			_, err = f.sectionBytes(&s)
			assert.ErrorContains(t, err, "outside the file")
		})
	}
}
