package redmagic

import (
	"debug/elf"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/elfpatch"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

// TestAlreadyPatched: a file with a DT_REDMAGIC entry, or with a
// .redmagic.* section, is refused before any analysis with a one-line
// error naming the file; the writer itself knows nothing of these marks.
func TestAlreadyPatched(t *testing.T) {
	const lua = "/usr/bin/lua5.4"
	testenv.NeedFile(t, lua)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		dyn  bool // the mark is the dynamic entry, else the section
		msg  string
	}{
		{"dynamic", true, "has a DT_REDMAGIC entry"},
		{"section", false, "has section .redmagic.data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, raw, err := elfpatch.Open(lua)
			require.NoError(t, err)
			l, err := NewLayout(f, raw)
			require.NoError(t, err)
			data := l.PlaceData(0)
			p := &elfpatch.Plan{Data: make([]byte, 64)}
			if c.dyn {
				p.DynTags = []elfpatch.DynEntry{{Tag: DTRedmagic, Val: data}}
			} else {
				p.Sections = []elfpatch.NewSection{{Name: SectionPrefix + "data", Type: elf.SHT_PROGBITS,
					Flags: elf.SHF_ALLOC | elf.SHF_WRITE, Addr: data, Size: 64, Addralign: 8}}
			}
			out, err := elfpatch.Write(f, raw, l, p)
			require.NoError(t, err)
			path := filepath.Join(dir, c.name)
			require.NoError(t, elfpatch.WriteFileAtomic(path, out, 0o755))

			f, raw, err = elfpatch.Open(path)
			require.NoError(t, err)
			_, err = elfpatch.NewLayout(f, raw)
			assert.NoError(t, err, "the writer alone would lay it out again")
			_, err = NewLayout(f, raw)
			assert.ErrorIs(t, err, ErrAlreadyPatched)
			var pe *elfpatch.Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, path, pe.File)
			assert.EqualError(t, err, path+": already patched by redmagic-patch ("+c.msg+")")
		})
	}
}
