package cfg_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/cfg/cfgio"
	"github.com/redmagic-patch/redmagic-patch/internal/testvms"
)

var update = flag.Bool("update", false, "rewrite the golden CFG files from the current recovery")

// TestGoldenVMs compares the recovered CFGs of the stripped test
// interpreters with golden dumps through cfgio.Diff, which matches by
// function name and block offset, so a rebuild that only shifts addresses
// still compares equal. Run with -update after an intended change and
// review the diff of the golden files.
func TestGoldenVMs(t *testing.T) {
	vms, err := testvms.Build()
	require.NoError(t, err)
	for _, vm := range vms {
		vm := vm
		t.Run(vm.Name, func(t *testing.T) {
			g, err := cfg.Open(vm.Stripped, cfg.Options{})
			require.NoError(t, err)
			g.Path = vm.Name + ".stripped" // keep the machine's paths out of the golden file
			golden := filepath.Join("testdata", "golden", vm.Name+".json")
			if *update {
				var buf bytes.Buffer
				require.NoError(t, cfgio.WriteJSON(&buf, g))
				require.NoError(t, os.MkdirAll(filepath.Dir(golden), 0o755))
				require.NoError(t, os.WriteFile(golden, buf.Bytes(), 0o644))
				return
			}
			f, err := os.Open(golden)
			require.NoError(t, err, "run go test ./cfg -run TestGoldenVMs -update to create it")
			defer f.Close()
			want, err := cfgio.ReadJSON(f)
			require.NoError(t, err)
			report := cfgio.Diff(want, g)
			if !report.Equal() {
				var buf bytes.Buffer
				require.NoError(t, report.WriteText(&buf))
				t.Fatalf("recovered CFG differs from %s:\n%s", golden, buf.String())
			}
		})
	}
}
