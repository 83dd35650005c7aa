package main

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// function is one symbol's disassembly.
type function struct {
	name  string
	insts []string // "mnemonic operands", without address
}

var (
	funcHeader = regexp.MustCompile(`^[0-9a-f]+ <([^>]+)>:$`)
	instLine   = regexp.MustCompile(`^\s+[0-9a-f]+:\s+(.*)$`)
)

// disassemble runs objdump on path and returns the functions whose names
// match keep.
func disassemble(t *testing.T, path string, keep *regexp.Regexp) map[string]*function {
	t.Helper()
	out, err := exec.Command("objdump", "-d", "--no-show-raw-insn", path).Output()
	require.NoError(t, err)
	funcs := map[string]*function{}
	var cur *function
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasSuffix(line, ">:") {
			cur = nil
			if m := funcHeader.FindStringSubmatch(line); m != nil && keep.MatchString(m[1]) {
				cur = &function{name: m[1]}
				funcs[cur.name] = cur
			}
		} else if cur != nil {
			if m := instLine.FindStringSubmatch(line); m != nil {
				cur.insts = append(cur.insts, strings.TrimSpace(strings.SplitN(m[1], "#", 2)[0]))
			}
		}
	}
	return funcs
}

// The code rm_fast.c compiles to runs with only the general registers
// saved: it must not touch a vector or x87 register, and may reach libc or
// Go only between xsave and xrstor. The hit functions' hot part takes no
// lock and calls nothing.
func TestFastPathCode(t *testing.T) {
	fx := getFixture(t)
	suffix := `(\.(cold|part\.\d+|isra\.\d+|constprop\.\d+))*$`
	fast := regexp.MustCompile(`^(rm_hit_(keyed_)?\d|rm_api_call|rm_api_\w+_entry(_\d)?|rm_first|rm_insert|` +
		`rm_grow|rm_hot|rm_count_overflow|rm_invalid_site|rm_map|rm_unmap|rm_table_new|` +
		`rm_thread_forget|rm_thread_nomem|rm_jit_call|rm_park|rm_pend|rm_record_due|rm_hit_hot|rm_sample_open|rm_govern|rm_enter|rm_quiet_check|rm_jit_try|rm_spent|rm_ic_put|rm_ic_forget|rm_interp_close|rm_window_c16|rm_window_open|rm_thread_init|rm_cond_forward|rm_cond_new_hot|` +
		// The tracing machine's C side (tracevm/tv.c) runs on the same
		// terms: it is reached from trampolines and generated code.
		`tv_\w+|__get_cpuid)` + suffix)
	funcs := disassemble(t, fx.so, fast)
	// Parking (tracevm/park.c) calls the C library: it is entered only
	// with the state saved, except its cheap test, tv_park_due, and the
	// fork child's reset.
	parking := regexp.MustCompile(`^(tv_park(_\w+)?|tv_unpark|tv_go_enter|tv_futex)` + suffix)
	parkingFast := regexp.MustCompile(`^(tv_park_due|tv_park_fork_child)` + suffix)
	for name, f := range disassemble(t, fx.jit, fast) {
		if parking.MatchString(name) && !parkingFast.MatchString(name) {
			continue
		}
		funcs[name] = f
	}
	hot := regexp.MustCompile(`^rm_hit_(keyed_)?\d$`)
	vector := regexp.MustCompile(`%([xyz]mm\d+|k[0-7]\b|st\b|st\(\d\))`)
	callRe := regexp.MustCompile(`^call\s+\S+\s+<([^>]+)>`)
	// Calls that may leave the file, and only with the state saved.
	guarded := map[string]bool{"rm_thread_register": true, "rm_jit_load": true, "rm_jit_begin": true, "rm_go_quiet": true, "rm_jit_due": true,
		"rm_disarm_site": true, "rm_rearm_disarmed": true,
		"tvBeginRecord": true, "tvStep": true, "tvSideExit": true, "tvAbortStale": true,
		"tv_park": true, "tv_go_enter": true, "tv_unpark": true}
	// The fork handlers are plain C calls from pthread_atfork, where the
	// vector registers are the caller's to save: they may call Go as is.
	forkGo := map[string]map[string]bool{
		"tv_fork_prepare": {"tvFreezeCache": true},
		"tv_fork_parent":  {"tvThawCache": true},
	}

	var seen []string
	for name, f := range funcs {
		seen = append(seen, name)
		saved := false
		for i, in := range f.insts {
			assert.NotRegexp(t, vector, in, "%s: %s", name, in)
			fields := strings.Fields(in)
			if len(fields) == 0 {
				continue
			}
			switch fields[0] {
			case "xsave64", "fxsave64":
				saved = true
			case "xrstor64", "fxrstor64":
				saved = false
			}
			if hot.MatchString(name) {
				assert.NotEqual(t, "lock", fields[0], "%s: %s", name, in)
				assert.False(t, strings.HasPrefix(fields[0], "call"), "%s: %s", name, in)
			}
			if strings.HasPrefix(fields[0], "call") && strings.Contains(in, "*") {
				// Through rm_g.ops into the JIT: its C side (tv_*,
				// checked here too), or Go for an annotation.
				if strings.HasPrefix(name, "rm_jit_call") {
					assert.True(t, saved, "%s: %s without xsave before it (inst %d)", name, in, i)
				}
				continue
			}
			if strings.HasPrefix(fields[0], "call") {
				m := callRe.FindStringSubmatch(in)
				require.NotNil(t, m, "%s: indirect call %q", name, in)
				target := strings.TrimSuffix(m[1], "@plt")
				if forkGo[name][target] {
					continue
				}
				if guarded[target] {
					assert.True(t, saved, "%s: %s without xsave before it (inst %d)", name, in, i)
				} else {
					assert.Regexp(t, fast, target, "%s calls %s", name, target)
				}
			}
		}
	}
	slices.Sort(seen)
	for _, want := range []string{"rm_hit_0", "rm_hit_keyed_7", "rm_api_call", "rm_api_backwards_branch_entry_1",
		"rm_api_end_merge_block_entry_7", "rm_hot", "rm_first", "rm_jit_call", "tv_trace_lookup", "tv_try_record", "tv_park_due"} {
		assert.Contains(t, seen, want)
	}
}
