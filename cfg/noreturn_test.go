package cfg_test

import (
	"debug/dwarf"
	"debug/elf"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/cfg"
)

// TestNoReturnAgainstDWARF checks no-return inference on a stripped copy
// of python3.11d against the DW_AT_noreturn attributes of its DWARF: every
// function the compiler marks must be found from the code alone. Extra
// finds are logged: functions ending in abort() carry no attribute.
func TestNoReturnAgainstDWARF(t *testing.T) {
	ef, err := elf.Open(pythonD)
	require.NoError(t, err)
	defer ef.Close()
	d, err := ef.DWARF()
	require.NoError(t, err)
	truth := map[uint64]string{}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		if e.Tag == dwarf.TagSubprogram {
			if nr, ok := e.Val(dwarf.AttrNoreturn).(bool); ok && nr {
				if lo, ok := e.Val(dwarf.AttrLowpc).(uint64); ok {
					name, _ := e.Val(dwarf.AttrName).(string)
					truth[lo] = name
				}
			}
		}
	}
	require.NotEmpty(t, truth)
	g, err := cfg.Open(stripCopy(t, pythonD), cfg.Options{})
	require.NoError(t, err)
	got := map[uint64]string{}
	for _, f := range g.Functions {
		if f.NoReturn {
			got[f.Start] = f.Name
		}
	}
	for a, name := range truth {
		_, ok := got[a]
		assert.True(t, ok, "missed no-return %#x %s", a, name)
	}
	extra := 0
	for a := range got {
		if _, ok := truth[a]; !ok {
			extra++
		}
	}
	t.Logf("DW_AT_noreturn: %d functions, all found; %d more found without the attribute", len(truth), extra)
}
