package cfg

import (
	"strings"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
)

// noReturnNames are functions known never to return to their caller. The
// list covers libc, the compiler runtime and the interpreters this tool
// targets; everything else is inferred from the code.
var noReturnNames = map[string]bool{
	"exit": true, "_exit": true, "_Exit": true, "quick_exit": true, "abort": true,
	"__stack_chk_fail": true, "__stack_chk_fail_local": true, "__chk_fail": true,
	"__fortify_fail": true, "__assert_fail": true, "__assert_perror_fail": true,
	"__assert": true, "err": true, "errx": true, "verr": true, "verrx": true,
	"longjmp": true, "_longjmp": true, "siglongjmp": true, "__longjmp_chk": true,
	"pthread_exit": true, "thrd_exit": true, "__libc_start_main": true,
	"__cxa_throw": true, "__cxa_rethrow": true, "__cxa_bad_cast": true,
	"__cxa_bad_typeid": true, "__cxa_throw_bad_array_new_length": true,
	"_Unwind_Resume": true, "__cxa_call_unexpected": true, "__cxa_pure_virtual": true,
	"_ZSt9terminatev": true, "__ubsan_handle_builtin_unreachable": true,
	"Py_FatalError": true, "_Py_FatalErrorFunc": true, "_Py_FatalErrorFormat": true,
	"Py_Exit": true, "_Py_FatalError_TstateNULL": true, "_PyObject_AssertFailed": true,
	"lua_error": true, "luaL_error": true, "luaL_argerror": true, "luaL_typeerror": true,
	"luaG_runerror": true, "luaG_errormsg": true, "luaD_throw": true, "luaM_toobig": true,
}

// knownNoReturn reports whether name, stripped of any symbol version, is
// a function known never to return.
func knownNoReturn(name string) bool {
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	return noReturnNames[name]
}

// inferNoReturn decides which units never return, as a greatest fixed
// point: every unit starts as no-return and becomes returning once a path
// from its entry reaches a ret, a tail call to a returning function or an
// indirect jump it cannot follow. A unit is rechecked only when one of its
// callees becomes returning.
func (r *recoverer) inferNoReturn() {
	callers := map[*unit][]*unit{}
	for _, u := range r.units {
		u.noReturn = true
		seen := map[*unit]bool{}
		for _, in := range u.insts {
			if in.target == 0 {
				continue
			}
			if c := r.unitAt[in.target]; c != nil && c != u && !seen[c] {
				seen[c] = true
				callers[c] = append(callers[c], u)
			}
		}
	}
	work := append([]*unit(nil), r.units...)
	for len(work) > 0 {
		u := work[len(work)-1]
		work = work[:len(work)-1]
		if !u.noReturn || !r.mayReturn(u) {
			continue
		}
		u.noReturn = false
		for _, c := range callers[u] {
			if c.noReturn {
				work = append(work, c)
			}
		}
	}
}

// calleeReturns reports whether a call or tail call to t may return under
// the current assumptions.
func (r *recoverer) calleeReturns(t uint64) bool {
	if r.noReturnAddr[t] {
		return false
	}
	if c := r.unitAt[t]; c != nil {
		return !c.noReturn
	}
	return true
}

// mayReturn reports whether some path from u's entry returns.
func (r *recoverer) mayReturn(u *unit) bool {
	seen := map[uint64]bool{}
	work := []uint64{u.start}
	for len(work) > 0 {
		a := work[len(work)-1]
		work = work[:len(work)-1]
		for !seen[a] {
			seen[a] = true
			in := u.insts[a]
			if in == nil {
				break
			}
			next := in.End()
			switch in.flow {
			case x86dec.FlowReturn:
				return true
			case x86dec.FlowHalt:
				next = 0
			case x86dec.FlowJump, x86dec.FlowCondJump:
				if in.target != 0 && !u.contains(in.target) && r.calleeReturns(in.target) {
					return true
				}
				if in.target != 0 && u.contains(in.target) {
					work = append(work, in.target)
				}
				if in.flow == x86dec.FlowJump {
					next = 0
				}
			case x86dec.FlowCall:
				if in.target != 0 && !r.calleeReturns(in.target) {
					next = 0
				}
			case x86dec.FlowIndirectJump:
				ij := u.indirect[a]
				if ij == nil || !ij.Resolved() {
					return true // an indirect tail call or an unknown jump
				}
				for _, t := range ij.Targets {
					if u.contains(t) {
						work = append(work, t)
					} else if r.calleeReturns(t) {
						return true
					}
				}
				next = 0
			}
			if next == 0 {
				break
			}
			a = next
		}
	}
	return false
}
