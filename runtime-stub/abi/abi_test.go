package abi

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAPINamesFollowTheHeader reads enum rm_api from the C header: one
// RM_API_<NAME> per line, in order, then RM_API_COUNT.
func TestAPINamesFollowTheHeader(t *testing.T) {
	h, err := os.ReadFile("../include/redmagic_patch.h")
	require.NoError(t, err)
	body := regexp.MustCompile(`(?s)enum rm_api \{(.*?)\};`).FindSubmatch(h)
	require.NotNil(t, body, "enum rm_api")
	var names []string
	for _, m := range regexp.MustCompile(`RM_API_([A-Z_]+)`).FindAllSubmatch(body[1], -1) {
		names = append(names, strings.ToLower(string(m[1])))
	}
	require.NotEmpty(t, names)
	assert.Equal(t, "count", names[len(names)-1])
	assert.Equal(t, APINames[:], names[:len(names)-1])
	assert.Len(t, names[:len(names)-1], NumAPI)
}
