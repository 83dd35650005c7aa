package tracevm

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// luaJMP is a Lua 5.4 OP_JMP instruction word with jump offset sj.
func luaJMP(sj int64) uint64 { return uint64(56 | (sj+0xffffff)<<7) }

// TestLoopID: a Lua OP_JMP back-edge is keyed by the pc it jumps to (the
// pc past the jump plus sJ words), a forward jump closes no loop, and
// other back-edges are keyed by their id register.
func TestLoopID(t *testing.T) {
	lua := BackEdge{IDReg: 13, AuxReg: 12, Keying: KeyLuaSJ}
	noAux := BackEdge{IDReg: 13, AuxReg: -1, Keying: KeyLuaSJ}
	plain := BackEdge{IDReg: 15, AuxReg: -1}
	cpy := BackEdge{IDReg: 15, AuxReg: 9, Keying: KeyOparg}
	const pc = 0x5555_0000_1000
	for _, c := range []struct {
		be       BackEdge
		id, aux  uint64
		key      uint64
		back     bool
		byHeader bool
	}{
		{lua, pc, luaJMP(-1), pc - 4, true, true},
		{lua, pc, luaJMP(-11), pc - 44, true, true},
		{lua, pc + 28, luaJMP(-18), pc - 44, true, true}, // another branch, the same header
		{lua, pc, luaJMP(-0xffffff), pc - 4*0xffffff, true, true},
		{lua, pc, luaJMP(0), 0, false, true},
		{lua, pc, luaJMP(5), 0, false, true},
		{noAux, pc, luaJMP(-3), pc, true, false},
		// JUMP_BACKWARD at pc, oparg 11: past it (pc+2) less 11 units.
		{cpy, pc, 11, pc + 2 - 22, true, true},
		{cpy, pc + 40, 31, pc + 2 - 22, true, true},      // the else branch's jump back
		{cpy, pc, 0xffff_ffff_0000_0001, pc, true, true}, // the upper half is not oparg
		{plain, pc, 0, pc, true, false},
	} {
		t.Run(fmt.Sprintf("%+v/%#x/%#x", c.be, c.id, c.aux), func(t *testing.T) {
			key, back := c.be.loopID(c.id, c.aux)
			assert.Equal(t, c.back, back)
			if back {
				assert.Equal(t, fmt.Sprintf("%#x", c.key), fmt.Sprintf("%#x", key))
			}
			assert.Equal(t, c.byHeader, c.be.keyedByHeader())
		})
	}
}

// TestLoopIDOfComparison: a Lua comparison's back-edge is the OP_JMP after
// it, read from the code at its id (the pc past the comparison): keyed by
// where that jump lands; a comparison followed by a forward jump closes
// nothing. Its traces are entered from the comparison itself (keyed by
// header for counting, not for entry).
func TestLoopIDOfComparison(t *testing.T) {
	cmp := BackEdge{IDReg: 13, AuxReg: 12, Keying: KeyLuaCondSJ}
	assert.False(t, cmp.keyedByHeader())
	for _, sj := range []int64{-1, -7, -0xffffff, 0, 3} {
		code := []uint32{58 /* OP_LT */, uint32(luaJMP(sj))}
		id := uint64(uintptr(unsafe.Pointer(&code[1])))
		key, back := cmp.loopID(id, 0x1234)
		runtime.KeepAlive(code)
		assert.Equal(t, sj < 0, back, "sJ %d", sj)
		if back {
			assert.Equal(t, id+4+uint64(sj*4), key, "sJ %d", sj)
		}
	}
}

// TestLoopIDOfCPythonComparison: a CPython 3.11 combined compare-and-jump
// takes the POP_JUMP_* past its two cache entries: a back-edge only when
// that jump is backward, keyed by the header it lands at (past the jump
// less oparg code units); its traces are entered from the comparison.
func TestLoopIDOfCPythonComparison(t *testing.T) {
	cmp := BackEdge{IDReg: 15, AuxReg: 9, Keying: KeyCPyCmpJump}
	assert.False(t, cmp.keyedByHeader())
	assert.True(t, cmp.Keying.cond())
	for _, c := range []struct {
		jumpOp, oparg uint8
		back          bool
	}{
		{176, 12, true},  // POP_JUMP_BACKWARD_IF_TRUE
		{175, 255, true}, // POP_JUMP_BACKWARD_IF_FALSE, the longest
		{114, 12, false}, // POP_JUMP_FORWARD_IF_FALSE
		{115, 3, false},  // POP_JUMP_FORWARD_IF_TRUE
	} {
		// COMPARE_OP_INT_JUMP <, two cache entries, then the jump.
		code := []uint8{28, 0, 0, 0, 0, 0, c.jumpOp, c.oparg}
		id := uint64(uintptr(unsafe.Pointer(&code[0])))
		key, back := cmp.loopID(id, 0)
		runtime.KeepAlive(code)
		assert.Equal(t, c.back, back, "opcode %d", c.jumpOp)
		if back {
			assert.Equal(t, id+8-2*uint64(c.oparg), key, "oparg %d", c.oparg)
		}
	}
}
