package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/cfg/cfgio"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const lua = "/usr/bin/lua5.4"

// luaGraph is lua5.4's graph as the library recovers it, the reference
// the command's output is checked against.
var luaGraph = sync.OnceValues(func() (*cfg.Graph, error) { return cfg.Open(lua, cfg.Options{}) })

func refLua(t *testing.T) *cfg.Graph {
	t.Helper()
	g, err := luaGraph()
	require.NoError(t, err)
	return g
}

// namedFunctions returns up to n functions of g that have a name unique
// in g, so that --func NAME selects exactly one.
func namedFunctions(t *testing.T, g *cfg.Graph, n int) []*cfg.Function {
	t.Helper()
	count := map[string]int{}
	for _, f := range g.Functions {
		count[f.Name]++
	}
	var fs []*cfg.Function
	for _, f := range g.Functions {
		if f.Name != "" && count[f.Name] == 1 && len(f.Blocks) > 0 && len(fs) < n {
			fs = append(fs, f)
		}
	}
	require.Len(t, fs, n, "lua5.4 should have %d uniquely named functions", n)
	return fs
}

func mustRead(t *testing.T, data string) *cfg.Graph {
	t.Helper()
	g, err := cfgio.ReadJSON(strings.NewReader(data))
	require.NoError(t, err)
	return g
}

func TestCfgFormats(t *testing.T) {
	ref := refLua(t)
	st := ref.Stats()

	r := inProcess("cfg", lua, "--format", "json")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Empty(t, r.stderr)
	g := mustRead(t, r.stdout)
	assert.True(t, cfgio.Diff(ref, g).Equal())
	assert.Equal(t, lua, g.Path)

	def := inProcess("cfg", lua)
	assert.Equal(t, r.stdout, def.stdout, "json is the default format")

	r = inProcess("cfg", lua, "--format", "text")
	require.Equal(t, 0, r.status, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "binary "+lua))
	assert.Equal(t, st.Functions, strings.Count(r.stdout, "\nfunction "))
	assert.Equal(t, st.Blocks, strings.Count(r.stdout, "\n  block "))

	r = inProcess("cfg", lua, "--format", "dot")
	require.Equal(t, 0, r.status, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "digraph "))
	assert.True(t, strings.HasSuffix(r.stdout, "}\n"))
	assert.Equal(t, st.Functions, strings.Count(r.stdout, "subgraph \"cluster_"))
}

func TestCfgJSONDeterministic(t *testing.T) {
	// Two separate processes: nothing may depend on map order or timing.
	first := binary(t, "cfg", lua, "--format", "json")
	require.Equal(t, 0, first.status, first.stderr)
	second := binary(t, "cfg", lua, "--format", "json")
	require.Equal(t, 0, second.status, second.stderr)
	require.NotEmpty(t, first.stdout)
	assert.True(t, first.stdout == second.stdout, "two runs differ")
}

func TestCfgStats(t *testing.T) {
	ref := refLua(t).Stats()
	r := inProcess("cfg", lua, "--stats")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Equal(t, 1, strings.Count(r.stdout, "\n"), "one JSON object on one line")
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	require.NoError(t, dec.Decode(&m))
	assert.False(t, dec.More())
	for _, k := range []string{"functions", "blocks", "edges", "indirect_jumps", "indirect_resolved", "seconds"} {
		assert.Contains(t, m, k)
	}
	var st cfg.Stats
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	assert.Greater(t, st.Seconds, 0.0)
	st.Seconds = 0
	assert.Equal(t, ref, st)

	fs := namedFunctions(t, refLua(t), 1)
	r = inProcess("cfg", lua, "--stats", "--func", fs[0].Name)
	require.Equal(t, 0, r.status, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	assert.Equal(t, 1, st.Functions)
	assert.Equal(t, len(fs[0].Blocks), st.Blocks)
}

func TestCfgFunc(t *testing.T) {
	fs := namedFunctions(t, refLua(t), 2)
	f0, f1 := fs[0], fs[1]
	tests := []struct {
		name  string
		specs []string
		want  []uint64 // starts of the selected functions
	}{
		{"by name", []string{f0.Name}, []uint64{f0.Start}},
		{"by start", []string{fmt.Sprintf("%#x", f0.Start)}, []uint64{f0.Start}},
		{"by inner address", []string{fmt.Sprintf("%#X", f0.End-1)}, []uint64{f0.Start}},
		{"two", []string{f1.Name, f0.Name}, []uint64{min(f0.Start, f1.Start), max(f0.Start, f1.Start)}},
		{"same twice", []string{f0.Name, fmt.Sprintf("%#x", f0.Start)}, []uint64{f0.Start}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"cfg", lua}
			for _, s := range tt.specs {
				args = append(args, "--func", s)
			}
			r := inProcess(args...)
			require.Equal(t, 0, r.status, r.stderr)
			g := mustRead(t, r.stdout)
			var got []uint64
			for _, f := range g.Functions {
				got = append(got, f.Start)
			}
			assert.Equal(t, tt.want, got)
		})
	}
	assertOneLineError(t, inProcess("cfg", lua, "--func", "no_such_function"), lua+": no function named no_such_function")
	assertOneLineError(t, inProcess("cfg", lua, "--func", f0.Name, "--func", "0x1"), lua+": no function at 0x1")
}

func TestCfgOutputFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "lua.json")
	r := inProcess("cfg", lua, "-o", out)
	require.Equal(t, 0, r.status, r.stderr)
	assert.Empty(t, r.stdout)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, inProcess("cfg", lua).stdout, string(data))
	fi, err := os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())

	// --stats with -o: the graph to the file (replacing it), counts to stdout.
	r = inProcess("cfg", lua, "--stats", "--format", "text", "--output", out)
	require.Equal(t, 0, r.status, r.stderr)
	var st cfg.Stats
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	assert.Equal(t, refLua(t).Stats().Blocks, st.Blocks)
	data, err = os.ReadFile(out)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(data, []byte("binary ")))
	assertOnlyFiles(t, dir, "lua.json")

	// An output directory that does not exist: an error naming the output.
	missing := filepath.Join(dir, "nodir", "x.json")
	assertOneLineError(t, inProcess("cfg", lua, "-o", missing), missing, "no such file or directory")
	assert.NoFileExists(t, missing)
}

// assertOnlyFiles checks that dir holds exactly names: no temporary file
// was left behind.
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	assert.ElementsMatch(t, names, got)
}

// badInputs writes the malformed binaries of the error tests into dir.
func badInputs(t *testing.T, dir string) map[string]string {
	t.Helper()
	elf, err := os.ReadFile(lua)
	require.NoError(t, err)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o644))
		return p
	}
	class32 := bytes.Clone(elf)
	class32[4] = 1 // EI_CLASS = ELFCLASS32
	aarch64 := bytes.Clone(elf)
	aarch64[18], aarch64[19] = 183, 0 // e_machine = EM_AARCH64
	return map[string]string{
		"missing file":  filepath.Join(dir, "does-not-exist"),
		"directory":     dir,
		"empty file":    write("empty", nil),
		"text file":     write("notes.txt", []byte("print('hello')\n")),
		"truncated ELF": write("truncated", elf[:1000]),
		"32-bit ELF":    write("class32", class32),
		"AArch64 ELF":   write("aarch64", aarch64),
	}
}

func TestCfgBadInputs(t *testing.T) {
	inputs := badInputs(t, t.TempDir())
	for name, path := range inputs {
		t.Run(name, func(t *testing.T) {
			outDir := t.TempDir()
			out := filepath.Join(outDir, "out.json")
			for _, format := range []string{"json", "dot", "text"} {
				r := binary(t, "cfg", path, "--format", format, "-o", out)
				assertOneLineError(t, r, path)
				assert.NoFileExists(t, out)
				assertOnlyFiles(t, outDir)
			}
			assertOneLineError(t, inProcess("cfg", path), path)
			assertOneLineError(t, inProcess("cfg", path, "--stats"), path)
		})
	}
}

func TestCfgDiff(t *testing.T) {
	dir := t.TempDir()
	dump := filepath.Join(dir, "lua.json")
	r := inProcess("cfg", lua, "-o", dump)
	require.Equal(t, 0, r.status, r.stderr)

	// A copy with leading white space is still recognised as JSON.
	data, err := os.ReadFile(dump)
	require.NoError(t, err)
	spaced := filepath.Join(dir, "spaced.json")
	require.NoError(t, os.WriteFile(spaced, append([]byte(" \n\t"), data...), 0o644))

	// A changed copy: one named function loses its last block and one
	// block of it gains an instruction.
	g := mustRead(t, string(data))
	fs := namedFunctions(t, g, 2)
	changed, unchanged := fs[0], fs[1]
	changed.Blocks[0].Insts++
	if len(changed.Blocks) > 1 {
		changed.Blocks = changed.Blocks[:len(changed.Blocks)-1]
	}
	modified := filepath.Join(dir, "modified.json")
	var buf bytes.Buffer
	require.NoError(t, cfgio.WriteJSON(&buf, g))
	require.NoError(t, os.WriteFile(modified, buf.Bytes(), 0o644))

	equal := []struct{ a, b string }{
		{dump, lua},
		{lua, dump},
		{dump, spaced},
		{lua, lua},
	}
	for _, tt := range equal {
		r := inProcess("cfg", "diff", tt.a, tt.b)
		assert.Equal(t, statusOK, r.status, "%s vs %s: %s", tt.a, tt.b, r.stderr)
		assert.Contains(t, r.stdout, "\nequal: ")
		assert.Empty(t, r.stderr)
	}

	r = inProcess("cfg", "diff", dump, modified)
	assert.Equal(t, statusDifferent, r.status, r.stderr)
	assert.Empty(t, r.stderr)
	assert.Equal(t, 1, strings.Count(r.stdout, "~ function "), r.stdout)
	assert.Contains(t, r.stdout, "~ function "+changed.Name+" ")

	r = inProcess("cfg", "diff", lua, modified, "--json")
	assert.Equal(t, statusDifferent, r.status, r.stderr)
	var rep cfgio.Report
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	require.Len(t, rep.Changed, 1)
	assert.Equal(t, changed.Name, rep.Changed[0].A.Name)
	assert.Equal(t, len(g.Functions), rep.Matched)

	// --func restricts both sides.
	r = inProcess("cfg", "diff", dump, modified, "--func", unchanged.Name)
	assert.Equal(t, statusOK, r.status, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "equal: 1 functions matched")
	r = inProcess("cfg", "diff", lua, modified, "--func", fmt.Sprintf("%#x", changed.Start))
	assert.Equal(t, statusDifferent, r.status, r.stdout+r.stderr)
	assertOneLineError(t, inProcess("cfg", "diff", dump, modified, "--func", "no_such_function"), "no function matches --func no_such_function")

	// Errors name the file at fault.
	truncated := filepath.Join(dir, "truncated.json")
	require.NoError(t, os.WriteFile(truncated, data[:len(data)/2], 0o644))
	wrongFormat := filepath.Join(dir, "stats.json")
	require.NoError(t, os.WriteFile(wrongFormat, []byte(`{"functions":1,"blocks":2}`), 0o644))
	bad := badInputs(t, dir)
	for _, path := range []string{truncated, wrongFormat, bad["missing file"], bad["text file"], bad["AArch64 ELF"]} {
		assertOneLineError(t, inProcess("cfg", "diff", dump, path), path)
		assertOneLineError(t, inProcess("cfg", "diff", path, dump), path)
	}

	// The built command's exit statuses.
	assert.Equal(t, statusOK, binary(t, "cfg", "diff", dump, lua).status)
	assert.Equal(t, statusDifferent, binary(t, "cfg", "diff", dump, modified).status)
	assertOneLineError(t, binary(t, "cfg", "diff", dump, truncated), truncated)
}
