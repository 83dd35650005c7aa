package cfgio

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteTextSmall(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteText(&buf, smallGraph(), TextOptions{
		Disasm: func(b *cfg.Block) []string { return []string{fmt.Sprintf("insn at %#x", b.Start)} },
	}))
	want := `binary /usr/bin/example build-id 0123456789abcdef, 3 functions

function main [0x1000,0x1040) 6 blocks sources fde,symbol
  part [0x9000,0x9010)
  block [0x1000,0x1010) 4 insts -> cond 0x1020, fallthrough 0x1010
      insn at 0x1000
  block [0x1010,0x1020) 3 insts -> call 0x2000 <<helper & co>>, fallthrough 0x1020
      insn at 0x1010
  block [0x1020,0x1030) 2 insts -> indirect 0x1030, indirect 0x1038
      insn at 0x1020
  block [0x1030,0x1038) 2 insts -> jump 0x9000
      insn at 0x1030
  block [0x1038,0x1040) 2 insts -> tailcall 0x2000 <<helper & co>>
      insn at 0x1038
  block [0x9000,0x9010) 3 insts -> call, unresolved
      insn at 0x9000
  indirect jump 0x102a: computed-goto table 0x5000 256 entries bounded at 0x1024, 2 targets
  indirect jump 0x900c: none, 0 targets

function <helper & co> [0x2000,0x2008) 1 blocks sources call noreturn
  block [0x2000,0x2008) 2 insts -> call 0x3000
      insn at 0x2000

function (unnamed) [0x3000,0x3001) 1 blocks sources gap
  block [0x3000,0x3001) 1 insts -> return
      insn at 0x3000
`
	assert.Equal(t, want, buf.String())
}

func TestWriteTextLua(t *testing.T) {
	g := realLua(t)
	calls := 0
	var buf bytes.Buffer
	require.NoError(t, WriteText(&buf, g, TextOptions{Disasm: func(b *cfg.Block) []string { calls++; return nil }}))
	st := g.Stats()
	count := map[string]int{}
	for _, line := range strings.Split(buf.String(), "\n") {
		count[strings.Fields(line + " x")[0]]++
	}
	assert.Equal(t, st.Functions, count["function"])
	assert.Equal(t, st.Blocks, count["block"])
	assert.Equal(t, st.IndirectJumps, count["indirect"])
	assert.Equal(t, st.ColdParts, count["part"])
	assert.Equal(t, st.Blocks, calls)
	// Every edge is listed: "->" introduces the first, commas the rest.
	edges := strings.Count(buf.String(), " -> ") + strings.Count(buf.String(), ", ") - strings.Count(buf.String(), " targets\n") - 1
	assert.Equal(t, st.Edges, edges)
}
