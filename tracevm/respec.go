package tracevm

/*
#include "tv.h"
*/
import "C"

// Respecialisation. A root trace may speculate on values only the
// concrete runs of its recording found (concrete.go): the object a
// method lookup reaches, a type tag behind a pointer. One sample cannot
// tell a value the loop keeps from one that merely repeated: where the
// guard on such a value fails often enough to ask for a side trace, the
// loop's trace is retired instead, the load is banned for the loop, and
// the loop is recorded again at its next iteration (as LuaJIT blacklists
// a specialisation that keeps failing and recompiles). A loop is
// respecialised a few times at most; after that its guards' exits get
// side traces like any other.

// riskyExit is an exit of a guard on such a value, and the original
// address of the load it checks.
type riskyExit struct {
	exit int
	load uint64
}

// maxRespecs bounds the retirements of one loop's traces.
const maxRespecs = 4

// respecialize retires root trace t when exit id is one of its risky
// exits, banning the load for the loop, and reports whether it did. The
// caller holds m.mu.
func (m *Machine) respecialize(t *trace, id uint32) bool {
	if t.side || t.risky == nil || m.byKey[t.key] != t {
		return false
	}
	load, ok := t.risky[id-t.exitBase]
	if !ok {
		return false
	}
	ex := &exitTable()[id]
	st := m.loops[t.key]
	if st == nil || st.respecs >= maxRespecs || st.recording || st.compiling {
		// An exit like any other from now on.
		if ex.state == C.TV_EXIT_RISKY {
			ex.state = C.TV_EXIT_OPEN
		}
		return false
	}
	st.respecs++
	if st.bans == nil {
		st.bans = map[uint64]bool{}
	}
	st.bans[load] = true
	st.unbudgeted = true
	delete(m.byKey, t.key)
	m.stats.respecs.Add(1)
	// Unpublished, its links from other loops' traces leave for the
	// original code, and this thread records the loop at its next
	// iteration.
	C.tv_retire(C.uint32_t(t.key.gsite), C.uint64_t(t.key.id))
	return true
}

// loopBans returns a copy of the loads banned for loop key, and whether
// a trace of the loop was retired.
func (m *Machine) loopBans(key loopKey) (bans map[uint64]bool, retired bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.loops[key]
	if st == nil {
		return nil, false
	}
	if len(st.bans) > 0 {
		bans = make(map[uint64]bool, len(st.bans))
		for a := range st.bans {
			bans[a] = true
		}
	}
	return bans, st.respecs > 0
}
