package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFuzzValues(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, text string
		want       []string
		bad        bool
	}{
		{"two", "go test fuzz v1\n[]byte(\"a\\x00\")\nuint64(7)\n", []string{`[]byte("a\x00")`, "uint64(7)"}, false},
		{"header", "go test fuzz v2\n[]byte(\"a\")\n", nil, true},
	} {
		path := filepath.Join(dir, tt.name)
		require.NoError(t, os.WriteFile(path, []byte(tt.text), 0o644))
		vals, err := FuzzValues(path)
		if tt.bad {
			assert.Error(t, err, tt.name)
			continue
		}
		require.NoError(t, err, tt.name)
		assert.Equal(t, tt.want, vals, tt.name)
	}
	_, err := FuzzValues(filepath.Join(dir, "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestFuzzBytes(t *testing.T) {
	for _, tt := range []struct {
		line string
		want []byte
		bad  bool
	}{
		{`[]byte("a\x00\xff")`, []byte{'a', 0, 0xff}, false},
		{`[]byte("")`, []byte{}, false},
		{`uint64(7)`, nil, true},
		{`[]byte("a"`, nil, true},
		{`[]byte(a)`, nil, true},
	} {
		b, err := FuzzBytes(tt.line)
		if tt.bad {
			assert.Error(t, err, tt.line)
			continue
		}
		require.NoError(t, err, tt.line)
		assert.Equal(t, tt.want, b, tt.line)
	}
}
