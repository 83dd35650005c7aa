package sites_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/cfg/sites"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/internal/testvms"
)

func discover(t *testing.T, path, profile string) *sites.Result {
	t.Helper()
	f, err := elfimage.Open(path)
	require.NoError(t, err)
	g, err := cfg.Recover(f, cfg.Options{})
	require.NoError(t, err)
	p, why, err := sites.Select(f, profile)
	require.NoError(t, err)
	r, err := sites.Discover(f, g, p, why)
	require.NoError(t, err)
	for _, s := range r.Sites {
		t.Logf("%s %-28s addr %#x via %s slot %#x bypass %d: %s", r.Profile, s.Name, s.Addr, s.Via, s.Slot, s.Bypass, s.Found)
	}
	for _, s := range r.Skipped {
		t.Logf("skipped %s %#x: %s", s.Name, s.Addr, s.Why)
	}
	return r
}

func TestAutoDetect(t *testing.T) {
	vms, err := testvms.Build()
	require.NoError(t, err)
	var annot string
	for _, vm := range vms {
		if vm.Name == "annotvm" {
			annot = vm.Stripped
		}
	}
	for _, c := range []struct{ path, want string }{
		{"/usr/bin/python3.11", "cpython3.11"},
		{"/usr/bin/lua5.4", "lua5.4"},
		{annot, "annotated"},
	} {
		r := discover(t, c.path, "auto")
		assert.Equal(t, c.want, r.Profile, c.path)
		t.Logf("%s: %s (%s)", c.path, r.Profile, r.Reason)
	}
}

func TestPythonSites(t *testing.T) {
	r := discover(t, "/usr/bin/python3.11", "cpython3.11")
	// The back-edge opcodes but the yield from loop's
	// (JUMP_BACKWARD_NO_INTERRUPT, which never stays in its frame), and
	// the three combined compare-and-jumps.
	require.Len(t, r.Sites, 9)
	cmp := 0
	for _, s := range r.Sites {
		assert.NotEqual(t, "JUMP_BACKWARD_NO_INTERRUPT", s.Name)
		assert.Equal(t, sites.ViaTableEntry, s.Via)
		assert.Equal(t, "r15", s.IDReg)
		if slices.Contains(s.Flags, sites.FlagCPython311CmpJump) {
			assert.True(t, strings.HasPrefix(s.Name, "COMPARE_OP_") && strings.HasSuffix(s.Name, "_JUMP"), s.Name)
			cmp++
		}
	}
	assert.Equal(t, 3, cmp)
}

// TestPythonSitesIDRegister: each CPython handler's id register is the
// one it stores to frame->prev_instr first thing, whatever the build
// allocated: r15 in Debian's python3.11, r14 in pyenv's -O3 libpython.
func TestPythonSitesIDRegister(t *testing.T) {
	builds := []struct{ path, reg string }{{"/usr/bin/python3.11", "r15"}}
	if libs, _ := filepath.Glob(os.ExpandEnv("$HOME/.pyenv/versions/3.11.*/lib/libpython3.11.so.1.0")); len(libs) > 0 {
		builds = append(builds, struct{ path, reg string }{libs[0], "r14"})
	}
	for _, b := range builds {
		r := discover(t, b.path, "cpython3.11")
		assert.Len(t, r.Sites, 9, b.path)
		for _, s := range r.Sites {
			assert.Equal(t, b.reg, s.IDReg, "%s %s", b.path, s.Name)
		}
	}
}

func TestLuaSites(t *testing.T) {
	r := discover(t, "/usr/bin/lua5.4", "lua5.4")
	// The loop handlers, OP_JMP, and the comparisons and tests that take
	// the OP_JMP after them inline (OP_EQ ... OP_TESTSET).
	require.Len(t, r.Sites, 15)
	cond := 0
	for _, s := range r.Sites {
		assert.Equal(t, sites.ViaTableRelative, s.Via)
		if slices.Contains(s.Flags, sites.FlagLua54CondSJ) {
			cond++
		}
	}
	assert.Equal(t, 11, cond)
}

func TestUnrecognised(t *testing.T) {
	f, err := elfimage.Open("/bin/ls")
	require.NoError(t, err)
	_, _, err = sites.Select(f, "auto")
	require.ErrorIs(t, err, sites.ErrNoProfile)
	assert.Contains(t, err.Error(), "cpython3.11")
}

// TestBuiltinNames: the names --profile accepts are the embedded
// profiles', annotated first, and each one loads.
func TestBuiltinNames(t *testing.T) {
	names := sites.BuiltinNames()
	assert.Equal(t, []string{"auto", "annotated", "cpython3.11", "lua5.4"}, names)
	ps, err := sites.Builtin()
	require.NoError(t, err)
	require.Len(t, ps, len(names)-1)
	for i, p := range ps {
		assert.Equal(t, names[i+1], p.Name)
		if q := sites.BuiltinNamed(p.Name); assert.NotNil(t, q, p.Name) {
			assert.Equal(t, p.Name, q.Name)
		}
	}
}
