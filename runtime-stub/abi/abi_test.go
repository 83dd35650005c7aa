package abi

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAPINamesFollowTheHeader reads RM_API_LIST, which makes enum rm_api,
// from the C header: one X(NAME, name) per function, in order.
func TestAPINamesFollowTheHeader(t *testing.T) {
	h, err := os.ReadFile("../include/redmagic_patch.h")
	require.NoError(t, err)
	body := regexp.MustCompile(`(?s)#define RM_API_LIST\(X\)(.*?)\n\n`).FindSubmatch(h)
	require.NotNil(t, body, "RM_API_LIST")
	var names []string
	for _, m := range regexp.MustCompile(`X\(([A-Z_]+), ([a-z_]+)\)`).FindAllSubmatch(body[1], -1) {
		assert.Equal(t, strings.ToLower(string(m[1])), string(m[2]), "the two spellings of one function")
		names = append(names, string(m[2]))
	}
	assert.Equal(t, APINames[:], names)
	assert.Len(t, names, NumAPI)
}

// TestCPythonJumpLayoutFollowsTheHeader: the comparison sites' constants
// are the header's.
func TestCPythonJumpLayoutFollowsTheHeader(t *testing.T) {
	h, err := os.ReadFile("../include/redmagic_patch.h")
	require.NoError(t, err)
	for name, want := range map[string]int{"RM_CPY311_JUMP_AT": CPy311JumpAt, "RM_CPY311_JUMP_BACK_MIN": CPy311JumpBackMin} {
		m := regexp.MustCompile(`#define ` + name + ` (\d+)\n`).FindSubmatch(h)
		require.NotNil(t, m, name)
		assert.Equal(t, strconv.Itoa(want), string(m[1]), name)
	}
}
