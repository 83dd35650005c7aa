package testvms

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

type result struct {
	stdout, stderr string
	status         int
}

func run(t *testing.T, cmd *exec.Cmd, env ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

func buildVMs(t *testing.T) []VM {
	t.Helper()
	vms, err := Build()
	require.NoError(t, err)
	require.Len(t, vms, len(Names))
	return vms
}

func loadPrograms(t *testing.T) []Program {
	t.Helper()
	progs, err := Programs()
	require.NoError(t, err)
	return progs
}

// TestPrograms runs every program on every interpreter, with and without
// symbols, and checks the exact output, status and back-edge count.
func TestPrograms(t *testing.T) {
	vms := buildVMs(t)
	progs := loadPrograms(t)
	for _, vm := range vms {
		for _, bin := range []string{vm.Path, vm.Stripped} {
			for _, p := range progs {
				t.Run(filepath.Base(bin)+"/"+p.Name, func(t *testing.T) {
					t.Parallel()
					ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
					defer cancel()
					got := run(t, p.Command(ctx, bin))
					assert.Equal(t, p.Stdout, got.stdout, "stdout")
					assert.Equal(t, p.Stderr, got.stderr, "stderr")
					assert.Equal(t, p.Status, got.status, "exit status")

					got = run(t, p.Command(ctx, bin), EnvCountBackEdges+"=1")
					assert.Equal(t, p.Stdout, got.stdout, "stdout while counting")
					assert.Equal(t, p.Status, got.status, "exit status while counting")
					rest, n, err := SplitBackEdges(got.stderr)
					require.NoError(t, err)
					assert.Equal(t, p.Stderr, rest, "stderr while counting")
					assert.Equal(t, p.BackEdges, n, "back-edges")
				})
			}
		}
	}
}

// TestProgramSet checks that the programs cover what other packages rely
// on: every mnemonic of the ISA, loops of both jump directions, run-time
// and load-time errors, and an argument.
func TestProgramSet(t *testing.T) {
	progs := loadPrograms(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	isa, err := os.ReadFile(filepath.Join(root, "testdata", "vms", "vm_isa.h"))
	require.NoError(t, err)
	mnemonics := regexp.MustCompile(`X\(\w+, "(\w+)"`).FindAllSubmatch(isa, -1)
	require.Greater(t, len(mnemonics), 20)

	used := map[string]bool{}
	statuses := map[int]bool{}
	withArgs := false
	for _, p := range progs {
		src, err := os.ReadFile(p.Path)
		require.NoError(t, err)
		for _, line := range strings.Split(string(src), "\n") {
			line, _, _ = strings.Cut(line, ";")
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasSuffix(f[0], ":") {
				f = f[1:]
			}
			if len(f) > 0 {
				used[f[0]] = true
			}
		}
		statuses[p.Status] = true
		withArgs = withArgs || len(p.Args) > 0
	}
	for _, m := range mnemonics {
		name := string(m[1])
		// The assembler picks jmp_back* for jumps to earlier labels.
		name = strings.Replace(name, "jmp_back", "jmp", 1)
		assert.True(t, used[name], "no program uses %s", m[1])
	}
	assert.True(t, statuses[0] && statuses[1] && statuses[2], "statuses %v", statuses)
	assert.True(t, withArgs, "no program takes an argument")
}

// TestLoopArgument scales loop_n.vm by its argument and checks its output
// against the same loop computed here.
func TestLoopArgument(t *testing.T) {
	vms := buildVMs(t)
	progs := loadPrograms(t)
	var prog Program
	for _, p := range progs {
		if p.Name == "loop_n" {
			prog = p
		}
	}
	require.NotEmpty(t, prog.Path, "loop_n.vm")
	expect := func(n int64) string {
		var s, c int64
		for i := int64(0); i < n; i++ {
			s += i * i % 7
			if i%3 == 0 {
				c++
			}
		}
		return strconv.FormatInt(s, 10) + "\n" + strconv.FormatInt(c, 10) + "\n"
	}
	tests := []struct {
		args []string
		n    int64
	}{
		{nil, 1000}, // the default of ARG
		{[]string{"0"}, 0},
		{[]string{"1"}, 1},
		{[]string{"7"}, 7},
		{[]string{"200000"}, 200000},
	}
	for _, vm := range vms {
		for _, tt := range tests {
			p := prog
			p.Args = tt.args
			got := run(t, p.Command(context.Background(), vm.Path), EnvCountBackEdges+"=1")
			assert.Equal(t, 0, got.status, "%s %v", vm.Name, tt.args)
			assert.Equal(t, expect(tt.n), got.stdout, "%s %v", vm.Name, tt.args)
			assert.Equal(t, "backedges: "+strconv.FormatInt(tt.n, 10)+"\n", got.stderr, "%s %v", vm.Name, tt.args)
		}
	}
}

// TestUsageErrors checks the command-line errors, which exit with status 1.
func TestUsageErrors(t *testing.T) {
	vms := buildVMs(t)
	progs := loadPrograms(t)
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no program", nil, "usage: "},
		{"bad argument", []string{progs[0].Path, "12x"}, "error: argument 12x is not an integer\n"},
		{"missing file", []string{"/nonexistent/x.vm"}, "error: x.vm: No such file or directory\n"},
	}
	for _, vm := range vms {
		for _, tt := range tests {
			got := run(t, exec.Command(vm.Path, tt.args...))
			assert.Equal(t, 1, got.status, "%s: %s", vm.Name, tt.name)
			assert.Empty(t, got.stdout, "%s: %s", vm.Name, tt.name)
			assert.True(t, strings.HasPrefix(got.stderr, tt.stderr), "%s: %s: %q", vm.Name, tt.name, got.stderr)
		}
	}
}

// TestReportTraced checks annotvm's use of redmagic_is_traced and of the
// merge-block housekeeping: with the default (empty) API nothing is traced,
// and fib, called 57,291 times, is the one hot function.
func TestReportTraced(t *testing.T) {
	vms := buildVMs(t)
	var fib Program
	for _, p := range loadPrograms(t) {
		if p.Name == "fib" {
			fib = p
		}
	}
	require.NotEmpty(t, fib.Path, "fib.vm")
	for _, bin := range []string{vms[2].Path, vms[2].Stripped} {
		got := run(t, fib.Command(context.Background(), bin), EnvReportTraced+"=1")
		assert.Equal(t, fib.Stdout, got.stdout)
		assert.Equal(t, "annotvm: traced prints 0, hot functions 1\n", got.stderr)
	}
}

// disasm returns the instructions of symbol fn in bin as "mnemonic operands"
// strings, from objdump (AT&T syntax).
func disasm(t *testing.T, bin, fn string) []string {
	t.Helper()
	out, err := exec.Command("objdump", "-d", "--no-show-raw-insn", bin).Output()
	require.NoError(t, err)
	var insns []string
	in := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasSuffix(line, " <"+fn+">:"):
			in = true
		case in && strings.TrimSpace(line) == "":
			return insns
		case in:
			if _, insn, ok := strings.Cut(line, ":\t"); ok {
				insns = append(insns, strings.Join(strings.Fields(insn), " "))
			}
		}
	}
	require.NotEmpty(t, insns, "%s not found in %s", fn, bin)
	return insns
}

func symbol(t *testing.T, bin, prefix string) elf.Symbol {
	t.Helper()
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	syms, err := f.Symbols()
	require.NoError(t, err)
	for _, s := range syms {
		if strings.HasPrefix(s.Name, prefix) {
			return s
		}
	}
	require.Failf(t, "no symbol", "%s in %s", prefix, bin)
	return elf.Symbol{}
}

// TestDispatchShapes checks the machine code shapes the interpreters exist
// to provide.
func TestDispatchShapes(t *testing.T) {
	vms := buildVMs(t)
	vmByName := map[string]VM{}
	for _, vm := range vms {
		vmByName[vm.Name] = vm
	}

	t.Run("switchvm jump table", func(t *testing.T) {
		insns := disasm(t, vmByName["switchvm"].Path, "vm_eval")
		// lea TABLE(%rip),%B ... movslq (%B,%I,4),%R; add %B,%R; jmp *%R
		lea := map[string]bool{}
		for _, in := range insns {
			if m := regexp.MustCompile(`^lea -?0x[0-9a-f]+\(%rip\),(%r\w+)`).FindStringSubmatch(in); m != nil {
				lea[m[1]] = true
			}
		}
		movslq := regexp.MustCompile(`^movslq \((%r\w+),%r\w+,4\),(%r\w+)$`)
		found := 0
		for i := 2; i < len(insns); i++ {
			m := movslq.FindStringSubmatch(insns[i-2])
			if m == nil || !lea[m[1]] {
				continue
			}
			if insns[i-1] == "add "+m[1]+","+m[2] && insns[i] == "jmp *"+m[2] {
				found++
			}
		}
		assert.GreaterOrEqual(t, found, 1, "no lea/movslq/add/jmp* in:\n%s", strings.Join(insns, "\n"))
	})

	t.Run("gotovm replicated dispatch", func(t *testing.T) {
		bin := vmByName["gotovm"].Path
		table := symbol(t, bin, "dispatch_table")
		assert.Equal(t, elf.STB_LOCAL, elf.ST_BIND(table.Info))
		ops := int(table.Size / 8)
		root, err := testenv.RepoRoot()
		require.NoError(t, err)
		isa, err := os.ReadFile(filepath.Join(root, "testdata", "vms", "vm_isa.h"))
		require.NoError(t, err)
		assert.Equal(t, len(regexp.MustCompile(`X\(\w+, "`).FindAll(isa, -1)), ops, "dispatch_table entries")
		jumps := 0
		for _, in := range disasm(t, bin, "vm_eval") {
			if strings.HasPrefix(in, "jmp *") {
				jumps++
			}
		}
		assert.Greater(t, jumps, ops/2, "indirect jumps in vm_eval for %d opcodes", ops)
	})

	t.Run("annotvm redmagic calls", func(t *testing.T) {
		vm := vmByName["annotvm"]
		out, err := exec.Command("objdump", "-d", "--no-show-raw-insn", vm.Path).Output()
		require.NoError(t, err)
		text := string(out)
		for _, fn := range []string{"redmagic_backwards_branch", "redmagic_fellthrough_branch",
			"redmagic_begin_branchable_frame", "redmagic_end_branchable_frame",
			"redmagic_begin_merge_block", "redmagic_end_merge_block", "redmagic_temp_disable",
			"redmagic_start", "redmagic_is_traced", "redmagic_do_not_trace_function",
			"redmagic_ensure_not_traced"} {
			assert.Regexp(t, `\tcall +[0-9a-f]+ <`+fn+`>`, text)
		}
		// annot_print ends in a tail jump, the third form of call.
		assert.Regexp(t, `\tjmp +[0-9a-f]+ <redmagic_temp_enable>`, text)

		// Weak definitions with symbols; exported, so the stripped copy
		// still names them in .dynsym.
		api := []string{"redmagic_start", "redmagic_backwards_branch", "redmagic_fellthrough_branch",
			"redmagic_begin_branchable_frame", "redmagic_end_branchable_frame",
			"redmagic_force_begin_trace", "redmagic_force_end_trace", "redmagic_force_jump_to_trace",
			"redmagic_ensure_not_traced", "redmagic_temp_disable", "redmagic_temp_enable",
			"redmagic_do_not_trace_function", "redmagic_disable_branch", "redmagic_is_traced",
			"redmagic_begin_merge_block", "redmagic_end_merge_block"}
		for _, fn := range api {
			s := symbol(t, vm.Path, fn)
			assert.Equal(t, fn, s.Name)
			assert.Equal(t, elf.STT_FUNC, elf.ST_TYPE(s.Info), fn)
			assert.Equal(t, elf.STB_WEAK, elf.ST_BIND(s.Info), fn)
		}
		f, err := elf.Open(vm.Stripped)
		require.NoError(t, err)
		defer f.Close()
		_, err = f.Symbols()
		assert.ErrorIs(t, err, elf.ErrNoSymbols, "stripped copy has .symtab")
		dyn, err := f.DynamicSymbols()
		require.NoError(t, err)
		exported := map[string]bool{}
		for _, s := range dyn {
			if s.Section != elf.SHN_UNDEF {
				exported[s.Name] = true
			}
		}
		for _, fn := range api {
			assert.True(t, exported[fn], "%s not in .dynsym of %s", fn, vm.Stripped)
		}
	})
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Program
		err  string
	}{
		{"minimal", "; backedges: 3\nfunc main 0 0\n", Program{BackEdges: 3}, ""},
		{"all keys", "; x.vm: prose: with colons\n\n; args: 10 -2\n; status: 2\n; backedges: 7 (why)\nfunc main 0 0\n",
			Program{Args: []string{"10", "-2"}, Status: 2, BackEdges: 7}, ""},
		{"keys after the block are code comments", "; backedges: 1\nfunc main 0 0\n; status: 2\n", Program{BackEdges: 1}, ""},
		{"missing backedges", "; status: 1\n", Program{}, "no \"; backedges:\" line"},
		{"duplicate", "; backedges: 1\n; backedges: 2\n", Program{}, "p.vm:2: duplicate backedges"},
		{"negative", "; backedges: -1\n", Program{}, "p.vm:1: bad backedges \"-1\""},
		{"status range", "; status: 256\n; backedges: 0\n", Program{}, "p.vm:1: bad status \"256\""},
		{"empty value", "; backedges:\n", Program{}, "p.vm:1: backedges without a value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHeader("p.vm", []byte(tt.src))
			if tt.err != "" {
				var pe *ProgramError
				require.ErrorAs(t, err, &pe)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			tt.want.Path = "p.vm"
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSplitBackEdges(t *testing.T) {
	tests := []struct {
		in, rest string
		n        int64
		ok       bool
	}{
		{"backedges: 12\n", "", 12, true},
		{"error: x at pc 3\nbackedges: 0\n", "error: x at pc 3\n", 0, true},
		{"backedges: 12", "", 0, false},
		{"error: x\n", "", 0, false},
		{"backedges: x\n", "", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		rest, n, err := SplitBackEdges(tt.in)
		if !tt.ok {
			assert.Error(t, err, "%q", tt.in)
			continue
		}
		require.NoError(t, err, "%q", tt.in)
		assert.Equal(t, tt.rest, rest)
		assert.Equal(t, tt.n, n)
	}
}

func FuzzParseHeader(f *testing.F) {
	root, err := testenv.RepoRoot()
	require.NoError(f, err)
	paths, err := filepath.Glob(filepath.Join(root, "testdata", "vms", "programs", "*.vm"))
	require.NoError(f, err)
	for _, p := range paths {
		src, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(src)
	}
	f.Add([]byte("; backedges: 9223372036854775808\n"))
	f.Add([]byte(";status:2\n;backedges:0\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := parseHeader("f.vm", src)
		if err != nil {
			var pe *ProgramError
			require.ErrorAs(t, err, &pe)
			return
		}
		assert.GreaterOrEqual(t, p.BackEdges, int64(0))
		assert.True(t, p.Status >= 0 && p.Status <= 255, "status %d", p.Status)
	})
}

// capWriter keeps the first max bytes written to it and discards the rest,
// so that a fuzzed program printing in a loop cannot exhaust memory.
type capWriter struct {
	buf bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// FuzzAssembler feeds arbitrary source to the interpreters' shared loader
// and verifier and runs what they accept: no interpreter may crash (only
// exit statuses 0, 1 and 2 are allowed) and all three must agree exactly,
// which also checks the eval loops against each other.
func FuzzAssembler(f *testing.F) {
	vms, err := Build()
	require.NoError(f, err)
	progs, err := Programs()
	require.NoError(f, err)
	for _, p := range progs {
		src, err := os.ReadFile(p.Path)
		require.NoError(f, err)
		f.Add(src)
	}
	f.Add([]byte("func main 0 0\n.word 24 0 0\nhalt\n"))                         // call with a bad index
	f.Add([]byte("func main 0 0\nl: jmp l\n"))                                   // endless loop
	f.Add([]byte("func main 0 0\n.word 21 -9223372036854775808\n"))              // jmp_back overflow
	f.Add([]byte("func main 0 1\narg 5 -3\nprint\nhalt\nfunc main 0 0\nhalt\n")) // duplicate main
	f.Fuzz(func(t *testing.T, src []byte) {
		path := filepath.Join(t.TempDir(), "f.vm")
		require.NoError(t, os.WriteFile(path, src, 0o644))
		var first *result
		for _, vm := range vms {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			cmd := exec.CommandContext(ctx, vm.Path, path, "3")
			stdout, stderr := &capWriter{max: 1 << 16}, &capWriter{max: 1 << 16}
			cmd.Stdout, cmd.Stderr = stdout, stderr
			err := cmd.Run()
			timedOut := ctx.Err() != nil
			cancel()
			if timedOut {
				return // an endless loop: nothing to compare
			}
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				require.NoError(t, err)
			}
			status := cmd.ProcessState.ExitCode()
			require.Contains(t, []int{0, 1, 2}, status, "%s: %v\nstderr: %s", vm.Name, err, stderr.buf.String())
			got := result{stdout.buf.String(), stderr.buf.String(), status}
			if first == nil {
				first = &got
				continue
			}
			assert.Equal(t, *first, got, "%s disagrees with %s", vm.Name, vms[0].Name)
		}
	})
}
