package cfg_test

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
	"github.com/redmagic-patch/redmagic-patch/internal/testvms"
)

// opcodeCount counts the X(...) entries of the ISA's X-macro list: the
// number of opcodes the C source defines.
func opcodeCount(t *testing.T) int {
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	src, err := os.ReadFile(filepath.Join(root, "testdata/vms/vm_isa.h"))
	require.NoError(t, err)
	n := len(regexp.MustCompile(`(?m)^\s*X\([A-Z_0-9]+,`).FindAll(src, -1))
	require.Greater(t, n, 10)
	return n
}

// symbol returns the value and size of the named symbol of an unstripped binary.
func symbol(t *testing.T, f *elf.File, name string) (uint64, uint64) {
	syms, err := f.Symbols()
	require.NoError(t, err)
	for _, s := range syms {
		if s.Name == name {
			return s.Value, s.Size
		}
	}
	t.Fatalf("no symbol %s", name)
	return 0, 0
}

// TestVMDispatch checks, on the stripped test interpreters, that every
// indirect jump of the eval loop resolves to the targets the C source
// defines: for the computed-goto VM exactly the label table's entries, for
// the switch VMs a table with one entry per opcode.
func TestVMDispatch(t *testing.T) {
	vms, err := testvms.Build()
	require.NoError(t, err)
	nops := opcodeCount(t)
	for _, vm := range vms {
		vm := vm
		t.Run(vm.Name, func(t *testing.T) {
			ef, err := elf.Open(vm.Path)
			require.NoError(t, err)
			defer ef.Close()
			eval, _ := symbol(t, ef, "vm_eval")
			g, err := cfg.Open(vm.Stripped, cfg.Options{})
			require.NoError(t, err)
			fn := g.FunctionAt(eval)
			require.NotNil(t, fn)
			require.Equal(t, eval, fn.Start)
			require.NotEmpty(t, fn.Indirect)

			var want []uint64
			kind := cfg.TablePIC
			if vm.Name == "gotovm" {
				kind = cfg.TableComputedGoto
				table, size := symbol(t, ef, "dispatch_table.0")
				require.Equal(t, uint64(nops*8), size)
				sec := ef.Sections[0]
				for _, s := range ef.Sections {
					if table >= s.Addr && table < s.Addr+s.Size && s.Type == elf.SHT_PROGBITS {
						sec = s
					}
				}
				data, err := sec.Data()
				require.NoError(t, err)
				seen := map[uint64]bool{}
				for i := 0; i < nops; i++ {
					seen[binary.LittleEndian.Uint64(data[table-sec.Addr+uint64(8*i):])] = true
				}
				for a := range seen {
					want = append(want, a)
				}
				sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
			}
			blocks := map[uint64]bool{}
			for _, b := range fn.Blocks {
				blocks[b.Start] = true
			}
			for _, j := range fn.Indirect {
				require.True(t, j.Resolved(), "jump at %#x unresolved", j.Addr)
				assert.Equal(t, kind, j.Kind, "jump at %#x", j.Addr)
				assert.Equal(t, nops, j.Entries, "jump at %#x", j.Addr)
				assert.NotZero(t, j.BoundFrom, "jump at %#x", j.Addr)
				if want != nil {
					assert.Equal(t, want, j.Targets, "jump at %#x", j.Addr)
				}
				for _, target := range j.Targets {
					assert.True(t, blocks[target], "target %#x of %#x starts a block", target, j.Addr)
				}
			}
			t.Logf("%s: vm_eval %#x-%#x, %d indirect jumps, %d opcodes", vm.Name, fn.Start, fn.End, len(fn.Indirect), nops)
		})
	}
}
