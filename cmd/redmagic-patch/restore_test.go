package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/elfpatch/redmagic"
)

// With the runtime disabled, or with the JIT off and no statistics wanted,
// the patched python3.11 runs its original dispatch table: every
// redirected opcode_targets entry holds the original handler again (read
// back through ctypes in the running process), and nothing else changes.
func TestDispatchRestoredInPython(t *testing.T) {
	requireRuntime(t)
	out := filepath.Join(t.TempDir(), "python3.11")
	var sum redmagic.Summary
	require.NoError(t, json.Unmarshal([]byte(patch(t, "/usr/bin/python3.11", out, "--json")), &sum))
	require.NotEmpty(t, sum.Sites)
	var read []string
	for _, s := range sum.Sites {
		read = append(read, fmt.Sprintf("hex(ctypes.c_uint64.from_address(%d).value)", s.Slot))
	}
	prog := "import ctypes\nprint(" + strings.Join(read, ", ") + ")\n"
	want := func(addr func(redmagic.SiteReport) uint64) string {
		var w []string
		for _, s := range sum.Sites {
			w = append(w, fmt.Sprintf("%#x", addr(s)))
		}
		return strings.Join(w, " ") + "\n"
	}
	orig := want(func(s redmagic.SiteReport) uint64 { return s.Resume })
	tramp := want(func(s redmagic.SiteReport) uint64 { return s.Trampoline })
	for _, tc := range []struct {
		env   []string
		stats bool
		want  string
	}{
		{nil, false, tramp},
		{[]string{"REDMAGIC_DISABLE=1"}, false, orig},
		{[]string{"REDMAGIC_DISABLE=1"}, true, orig},
		{[]string{"REDMAGIC_JIT=0"}, false, orig},
		{[]string{"REDMAGIC_JIT=0"}, true, tramp},
	} {
		r := runBin(t, out, []string{"-c", prog}, tc.env, tc.stats)
		require.Equal(t, 0, r.status, r.stderr)
		assert.Equal(t, tc.want, r.stdout, "%v stats=%v", tc.env, tc.stats)
	}
}
