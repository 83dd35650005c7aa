package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

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
	fast := regexp.MustCompile(`^(rm_hit_(lua_)?\d|rm_api_call|rm_api_\w+_entry(_\d)?|rm_first|rm_insert|` +
		`rm_grow|rm_hot|rm_count_overflow|rm_invalid_site|rm_map|rm_unmap|rm_table_new|` +
		`rm_thread_forget|rm_thread_nomem|rm_jit_call|rm_record_due|rm_hit_hot|` +
		// The tracing machine's C side (tracevm/tv.c) runs on the same
		// terms: it is reached from trampolines and generated code.
		`tv_\w+|__get_cpuid)` + suffix)
	funcs := disassemble(t, fx.so, fast)
	hot := regexp.MustCompile(`^rm_hit_(lua_)?\d$`)
	vector := regexp.MustCompile(`%([xyz]mm\d+|k[0-7]\b|st\b|st\(\d\))`)
	callRe := regexp.MustCompile(`^call\s+\S+\s+<([^>]+)>`)
	// Calls that may leave the file, and only with the state saved.
	guarded := map[string]bool{"rm_thread_register": true, "rmHot": true, "rmJITCall": true,
		"tvBeginRecord": true, "tvStep": true, "tvSideExit": true, "tvAbortStale": true}
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
	for _, want := range []string{"rm_hit_0", "rm_hit_lua_7", "rm_api_call", "rm_api_backwards_branch_entry_1",
		"rm_api_end_merge_block_entry_7", "rm_hot", "rm_first"} {
		assert.Contains(t, seen, want)
	}
}

// medianMin times cmd n times, interleaved with the other commands.
func timeInterleaved(t *testing.T, n int, cmds ...func() *exec.Cmd) (median, best []time.Duration) {
	t.Helper()
	runs := make([][]time.Duration, len(cmds))
	for i := 0; i < n; i++ {
		for j, mk := range cmds {
			cmd := mk()
			start := time.Now()
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			runs[j] = append(runs[j], time.Since(start))
		}
	}
	for _, r := range runs {
		slices.Sort(r)
		median = append(median, r[len(r)/2])
		best = append(best, r[0])
	}
	return median, best
}

// Loading the runtime must not slow start-up noticeably (BRIEF: the Go
// runtime starts lazily; the constructor calls no Go). Measured on an empty
// C program with and without libredmagic.so as DT_NEEDED, and on
// python3.11 with the library preloaded (the patched python will have it
// as DT_NEEDED, which costs the same).
func TestStartupCost(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	fx := getFixture(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "nop.c")
	require.NoError(t, os.WriteFile(src, []byte("int main(void) { return 0; }\n"), 0o644))
	plain, linked := filepath.Join(dir, "nop"), filepath.Join(dir, "nop-rt")
	require.NoError(t, run(dir, "gcc", "-O2", "-o", plain, src))
	require.NoError(t, run(dir, "gcc", "-O2", "-o", linked, src, "-L"+fx.dir, "-Wl,--no-as-needed",
		"-lredmagic", "-Wl,-rpath,"+fx.dir))
	env := append(os.Environ(), "REDMAGIC_STATS=")
	mk := func(path string, extra ...string) func() *exec.Cmd {
		return func() *exec.Cmd {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t.Cleanup(cancel)
			c := exec.CommandContext(ctx, path, extra...)
			c.Env = env
			return c
		}
	}
	med, best := timeInterleaved(t, 21, mk(plain), mk(linked))
	t.Logf("empty C program: median %v -> %v (+%v), fastest %v -> %v (+%v)",
		med[0], med[1], med[1]-med[0], best[0], best[1], best[1]-best[0])

	py := "/usr/bin/python3.11"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no python3.11")
	}
	pre := func() *exec.Cmd {
		c := mk(py, "-c", "pass")()
		c.Env = append(c.Env, "LD_PRELOAD="+fx.so)
		return c
	}
	med, best = timeInterleaved(t, 21, mk(py, "-c", "pass"), pre)
	t.Logf("python3.11 -c pass: median %v -> %v (+%v), fastest %v -> %v (+%v)",
		med[0], med[1], med[1]-med[0], best[0], best[1], best[1]-best[0])
	// The requirement is < 5 ms; the fastest runs are what repeats on a
	// loaded machine.
	assert.Less(t, best[1]-best[0], 5*time.Millisecond)
}
