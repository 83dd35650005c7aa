package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/cfg/sites"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

// TestReturnsTwiceEndsRecording patches lua5.4 with its profile minus the
// native list, so recordings reach luaD_rawrunprotected's _setjmp (pcall,
// error, coroutines): such a recording must end there, not call _setjmp
// from a block buffer that its second return would find reused.
func TestReturnsTwiceEndsRecording(t *testing.T) {
	requireRuntime(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	p := sites.BuiltinNamed("lua5.4")
	require.NotNil(t, p)
	p.Native, p.Name = nil, "lua5.4-no-native"
	data, err := json.Marshal(p)
	require.NoError(t, err)
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile.json")
	require.NoError(t, os.WriteFile(profile, data, 0o644))
	out := filepath.Join(dir, "lua")
	patch(t, "/usr/bin/lua5.4", out, "--profile", profile)
	for _, prog := range []string{"errors.lua", "coroutines.lua"} {
		path := filepath.Join(root, "testdata/lua", prog)
		want := runBin(t, "/usr/bin/lua5.4", []string{path}, nil, false)
		statsPath := filepath.Join(dir, prog+".json")
		got := runBin(t, out, []string{path}, []string{"REDMAGIC_THRESHOLD=1", "REDMAGIC_STATS=" + statsPath}, false)
		assert.Equal(t, want.result, got.result, prog)
		raw, err := os.ReadFile(statsPath)
		require.NoError(t, err)
		var st struct {
			JIT struct {
				Aborts map[string]int64 `json:"aborts"`
			} `json:"jit"`
		}
		require.NoError(t, json.Unmarshal(raw, &st))
		assert.Positive(t, st.JIT.Aborts["returns-twice"], "%s: recordings reached _setjmp and ended there", prog)
	}
}
