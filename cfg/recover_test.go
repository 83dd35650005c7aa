package cfg_test

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/redmagic-patch/redmagic-patch/internal/testvms"
)

const (
	python  = "/usr/bin/python3.11"
	pythonD = "/usr/bin/python3.11d"
	lua     = "/usr/bin/lua5.4"
)

// symtabFuncStarts returns the addresses of the defined FUNC symbols of
// path's .symtab that lie in executable sections: the ground truth for
// function discovery.
func symtabFuncStarts(t *testing.T, path string) map[uint64]string {
	t.Helper()
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	syms, err := f.Symbols()
	require.NoError(t, err, "%s has no .symtab", path)
	out := map[uint64]string{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Section == elf.SHN_UNDEF || int(s.Section) >= len(f.Sections) {
			continue
		}
		sec := f.Sections[s.Section]
		if sec.Flags&elf.SHF_EXECINSTR == 0 || s.Value < sec.Addr || s.Value >= sec.Addr+sec.Size {
			continue
		}
		out[s.Value] = s.Name
	}
	require.NotEmpty(t, out)
	return out
}

// stripCopy writes a copy of path with every symbol removed.
func stripCopy(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(path)+".stripped")
	out, err := exec.Command("strip", "--strip-all", "-o", dst, path).CombinedOutput()
	require.NoError(t, err, "strip: %s", out)
	return dst
}

// recoveredStarts is every function start and cold-part start of g.
func recoveredStarts(g *cfg.Graph) map[uint64]bool {
	out := map[uint64]bool{}
	for _, f := range g.Functions {
		out[f.Start] = true
		for _, p := range f.Parts {
			out[p.Start] = true
		}
	}
	return out
}

func debugFileFor(t *testing.T, path string) string {
	t.Helper()
	f, err := elfimage.Open(path)
	require.NoError(t, err)
	if len(f.BuildID) < 4 {
		return ""
	}
	return filepath.Join("/usr/lib/debug/.build-id", f.BuildID[:2], f.BuildID[2:]+".debug")
}

// TestFunctionStarts checks function discovery on stripped binaries
// against the symbol tables of their unstripped originals.
func TestFunctionStarts(t *testing.T) {
	type subject struct {
		name, truth, stripped string
	}
	var subjects []subject
	vms, err := testvms.Build()
	require.NoError(t, err)
	for _, vm := range vms {
		subjects = append(subjects, subject{vm.Name, vm.Path, vm.Stripped})
	}
	if _, err := os.Stat(pythonD); err == nil {
		subjects = append(subjects, subject{"python3.11d", pythonD, stripCopy(t, pythonD)})
	} else {
		t.Errorf("%s missing: scripts/install-deps.sh installs python3.11-dbg", pythonD)
	}
	if dbg := debugFileFor(t, python); dbg != "" {
		if _, err := os.Stat(dbg); err == nil {
			// Debian's own stripped binary against its detached symbols.
			subjects = append(subjects, subject{"python3.11", dbg, python})
		}
	}
	// A shared object: pyenv's CPython, where the machine has it.
	if libs, _ := filepath.Glob(os.ExpandEnv("$HOME/.pyenv/versions/3.11.*/lib/libpython3.11.so.1.0")); len(libs) > 0 {
		subjects = append(subjects, subject{"libpython3.11.so", libs[0], stripCopy(t, libs[0])})
	} else {
		t.Log("no pyenv libpython3.11.so on this machine: shared-object subject not run")
	}
	for _, s := range subjects {
		s := s
		t.Run(s.name, func(t *testing.T) {
			truth := symtabFuncStarts(t, s.truth)
			g, err := cfg.Open(s.stripped, cfg.Options{})
			require.NoError(t, err)
			got := recoveredStarts(g)
			var missed, extra []string
			hits := 0
			for a, name := range truth {
				if got[a] {
					hits++
				} else {
					missed = append(missed, fmt.Sprintf("%#x %s", a, name))
				}
			}
			for a := range got {
				if _, ok := truth[a]; !ok {
					extra = append(extra, fmt.Sprintf("%#x", a))
				}
			}
			sort.Strings(missed)
			sort.Strings(extra)
			recall := float64(hits) / float64(len(truth))
			precision := float64(hits) / float64(len(got))
			t.Logf("%s: %d symbols, %d recovered, recall %.4f, precision %.4f", s.name, len(truth), len(got), recall, precision)
			if len(missed) > 0 {
				t.Logf("missed (up to 15): %v", missed[:min(15, len(missed))])
			}
			if len(extra) > 0 {
				t.Logf("extra (up to 15): %v", extra[:min(15, len(extra))])
			}
			assert.GreaterOrEqual(t, recall, 0.99, "recall")
			assert.GreaterOrEqual(t, precision, 0.99, "precision")
		})
	}
}

// opcodeTableByScan finds CPython's opcode_targets the way the brief
// describes, independently of the CFG: 256 consecutive pointers in
// .rodata, most of them into the eval function.
func opcodeTableByScan(t *testing.T, path string, fn *cfg.Function) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sec := f.Section(".rodata")
	require.NotNil(t, sec)
	data, err := sec.Data()
	require.NoError(t, err)
	inside := func(v uint64) bool {
		if v >= fn.Start && v < fn.End {
			return true
		}
		for _, p := range fn.Parts {
			if v >= p.Start && v < p.End {
				return true
			}
		}
		return false
	}
	best, bestOff := 0, 0
	for off := 0; off+256*8 <= len(data); off += 8 {
		n := 0
		for i := 0; i < 256; i++ {
			if inside(binary.LittleEndian.Uint64(data[off+8*i:])) {
				n++
			}
		}
		if n > best {
			best, bestOff = n, off
		}
	}
	require.GreaterOrEqual(t, best, 150, "%s: no opcode table found by scanning .rodata", path)
	return sec.Addr + uint64(bestOff)
}

func TestPythonDispatch(t *testing.T) {
	g, err := cfg.Open(python, cfg.Options{Funcs: []string{"_PyEval_EvalFrameDefault"}})
	require.NoError(t, err)
	require.Len(t, g.Functions, 1)
	fn := g.Functions[0]
	table := opcodeTableByScan(t, python, fn)
	dispatch := 0
	for _, j := range fn.Indirect {
		if j.Table == table {
			dispatch++
			assert.Equal(t, cfg.TableComputedGoto, j.Kind, "jump at %#x", j.Addr)
			assert.Equal(t, 256, j.Entries, "jump at %#x", j.Addr)
			assert.NotZero(t, j.BoundFrom, "jump at %#x: the movzbl bounds the index", j.Addr)
			for _, target := range j.Targets {
				assert.Equal(t, fn, g.FunctionAt(target), "target %#x of %#x", target, j.Addr)
			}
		}
	}
	t.Logf("_PyEval_EvalFrameDefault %#x-%#x, %d parts: %d indirect jumps, %d through opcode_targets %#x",
		fn.Start, fn.End, len(fn.Parts), len(fn.Indirect), dispatch, table)
	assert.GreaterOrEqual(t, dispatch, 200)
	assert.NotEmpty(t, fn.Parts, "the .cold part is tied to the function")
}

func TestLuaDispatch(t *testing.T) {
	g, err := cfg.Open(lua, cfg.Options{})
	require.NoError(t, err)
	var largest *cfg.Function
	for _, f := range g.Functions {
		if largest == nil || f.End-f.Start > largest.End-largest.Start {
			largest = f
		}
	}
	require.NotNil(t, largest)
	// The table's length, independently: consecutive RELATIVE relocations.
	ef, err := elfimage.Open(lua)
	require.NoError(t, err)
	dispatch := 0
	for _, j := range largest.Indirect {
		if j.Kind != cfg.TableComputedGoto {
			continue
		}
		dispatch++
		n := 0
		for {
			if _, ok := ef.Relative[j.Table+8*uint64(n)]; !ok {
				break
			}
			n++
		}
		assert.Equal(t, 83, j.Entries, "jump at %#x", j.Addr)
		assert.Equal(t, 83, n, "table %#x", j.Table)
		assert.NotZero(t, j.BoundFrom)
	}
	t.Logf("lua5.4 largest function %#x-%#x: %d indirect jumps, %d dispatch", largest.Start, largest.End, len(largest.Indirect), dispatch)
	assert.GreaterOrEqual(t, dispatch, 3)
}

func TestDeterministic(t *testing.T) {
	a, err := cfg.Open(lua, cfg.Options{})
	require.NoError(t, err)
	b, err := cfg.Open(lua, cfg.Options{})
	require.NoError(t, err)
	require.Equal(t, a, b)
}

func TestRecoverPythonUnder2s(t *testing.T) {
	start := time.Now()
	g, err := cfg.Open(python, cfg.Options{})
	require.NoError(t, err)
	s := g.Stats()
	t.Logf("python3.11: %+v in %v", s, time.Since(start))
	require.Greater(t, s.Functions, 3000)
}

func BenchmarkRecoverPython(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := cfg.Open(python, cfg.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(text, []byte("hello\n"), 0o644))
	luaBytes, err := os.ReadFile(lua)
	require.NoError(t, err)
	trunc := filepath.Join(dir, "truncated")
	require.NoError(t, os.WriteFile(trunc, luaBytes[:3000], 0o644))
	arm := filepath.Join(dir, "arm")
	armBytes := append([]byte(nil), luaBytes...)
	binary.LittleEndian.PutUint16(armBytes[18:], uint16(elf.EM_AARCH64))
	require.NoError(t, os.WriteFile(arm, armBytes, 0o644))
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "no such file"},
		{text, "ELF"},
		{trunc, ""},
		{arm, "x86-64"},
	} {
		_, err := cfg.Open(c.path, cfg.Options{})
		require.Error(t, err, c.path)
		msg := err.Error()
		assert.Contains(t, msg, c.path)
		assert.Contains(t, msg, c.want)
		assert.NotContains(t, msg, "\n")
	}
}

func TestFuncSelection(t *testing.T) {
	_, err := cfg.Open(lua, cfg.Options{Funcs: []string{"no_such_function"}})
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "no_such_function"))
	g, err := cfg.Open(lua, cfg.Options{Funcs: []string{"lua_pushnil"}})
	require.NoError(t, err)
	require.Len(t, g.Functions, 1)
	g2, err := cfg.Open(lua, cfg.Options{Funcs: []string{fmt.Sprintf("%#x", g.Functions[0].Start+1)}})
	require.NoError(t, err)
	require.Equal(t, g.Functions, g2.Functions)
}
