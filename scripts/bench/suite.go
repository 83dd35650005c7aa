package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Program is one benchmark: a script run by one interpreter family at a
// size given as its only argument. Expected outputs live in
// testdata/bench/expected/<Key>.<size>.out, one per size the suite uses.
type Program struct {
	Name   string // e.g. "lua/fib"
	Family string // key into the family table
	Script string // absolute, or relative to the repository root (may lie outside it)
	Full   string // size for `make bench` (0.5-5 s on the original)
	Small  string // size for --quick and --instructions (valgrind is ~50x slower)
	// Env is added to every configuration's environment for this program
	// only; RootVar in a value stands for the repository root.
	Env []string
	// External marks a script that is data beside the repository, not in
	// it (pyperformance): where it is missing the program is unavailable,
	// not failed, so the harness still runs on a bare checkout.
	External bool
	// NoPeers says why the family's peers cannot run this program (the
	// Lua corpus is Lua 5.4; LuaJIT is Lua 5.1): they are reported n/a
	// rather than failed. Empty: the peers run it.
	NoPeers string
	// SameAs is the Key of a program whose expected outputs this one
	// shares (the annotated corpus runs annotvm's programs); empty: its
	// own.
	SameAs string
}

// RootVar in a Program's Env is replaced by the absolute repository root.
const RootVar = "${ROOT}"

// ScriptPath is the program's script on this machine.
func (p Program) ScriptPath(root string) string {
	if filepath.IsAbs(p.Script) {
		return p.Script
	}
	return filepath.Join(root, p.Script)
}

// Suite names: pyperformance and the Lua corpus are reported apart from
// the harness's own programs, which make up the "bench" suite.
const (
	SuiteBench     = "bench"
	SuitePyperf    = "pyperf"
	SuiteLuaCorpus = "luacorpus"
	SuiteAnnot     = "annotcorpus"
)

// Suites in report order.
var Suites = []string{SuiteBench, SuitePyperf, SuiteLuaCorpus, SuiteAnnot}

// SuiteOf names the suite of a program from its name alone, so that the
// reports of an old results.json (--render) group the same way.
func SuiteOf(program string) string {
	if prefix, _, ok := strings.Cut(program, "/"); ok && (prefix == SuitePyperf || prefix == SuiteLuaCorpus || prefix == SuiteAnnot) {
		return prefix
	}
	return SuiteBench
}

// Key is the program's name as used in expected-output file names.
func (p Program) Key() string { return strings.ReplaceAll(p.Name, "/", "-") }

// ExpectedPath is where the correct output for size lives.
func (p Program) ExpectedPath(root, size string) string {
	key := p.Key()
	if p.SameAs != "" {
		key = p.SameAs
	}
	return filepath.Join(root, "testdata", "bench", "expected", key+"."+size+".out")
}

// classics are written once per language with identical output, so the
// Lua and Python expected files for a size must agree (a test checks it).
var classics = []struct{ name, luaFull, pyFull, small string }{
	{"fib", "35", "34", "20"},
	{"loops", "25000000", "6000000", "100000"},
	{"sieve", "4000000", "3000000", "50000"},
	{"nbody", "500000", "150000", "2000"},
	{"spectralnorm", "700", "400", "50"},
	{"fannkuch", "10", "9", "7"},
	{"mandelbrot", "1200", "600", "60"},
	{"binarytrees", "15", "15", "8"},
	{"strings", "1200000", "3000000", "20000"},
	{"closures", "5000000", "3000000", "30000"},
}

// DefaultSuite is every program in a fixed order: the harness's own (test
// VMs, Lua, Python), pyperformance, then the Lua corpus found under root.
// The error names each corpus file that cannot be registered.
func DefaultSuite(root string) ([]Program, error) {
	corpus, err := CorpusSuite(root)
	if err != nil {
		return nil, err
	}
	ps := append(BenchSuite(), PyperfSuite()...)
	ps = append(ps, corpus...)
	return append(ps, AnnotSuite()...), nil
}

// annotVariants are the annotated corpus's builds the harness times
// (testdata/annotcorpus): each dispatch form, each place the loop
// annotation is called from, each way the API is defined but the shared
// library (its patched copy would not find the library beside it), gcc
// at every level and clang.
var annotVariants = []string{
	"switch-direct-header-gccO2-pie", "goto-direct-header-clangO2-nopie",
	"switch-helper-header-gccO1-nopie", "goto-macro-header-gccO3-nopie",
	"switch-noinline-header-gccO3-pie", "goto-tailcall-header-gccOs-pie",
	"switch-direct-weak-clangO2-nopie", "goto-helper-object-gccO3-pie",
}

// AnnotSuite is annotvm's loop_n and count run by builds of the
// annotated corpus: an annotated interpreter as compilers build it must
// be at least as fast patched as it was (loop_n's time goes mostly to
// its two divisions an iteration; count is integer adds and a compare).
func AnnotSuite() []Program {
	var ps []Program
	for _, v := range annotVariants {
		ps = append(ps, Program{Name: SuiteAnnot + "/" + v + "/loop_n", Family: "annot:" + v,
			Script: "testdata/vms/programs/loop_n.vm", Full: "20000000", Small: "200000",
			SameAs: "annotvm-loop_n"},
			Program{Name: SuiteAnnot + "/" + v + "/count", Family: "annot:" + v,
				Script: "testdata/bench/vm/count.vm", Full: "20000000", Small: "200000",
				SameAs: "annotvm-count"})
	}
	return ps
}

// BenchSuite is the harness's own programs: test VMs, Lua, Python.
func BenchSuite() []Program {
	var ps []Program
	for _, vm := range []string{"switchvm", "gotovm", "annotvm"} {
		ps = append(ps, Program{Name: vm + "/loop_n", Family: vm,
			Script: "testdata/vms/programs/loop_n.vm", Full: "20000000", Small: "200000"})
		// Loops without division (loop_n's two mod per iteration take
		// most of its time): integer adds, nested loops, floating point.
		for _, name := range []string{"count", "nested", "fsum"} {
			ps = append(ps, Program{Name: vm + "/" + name, Family: vm,
				Script: "testdata/bench/vm/" + name + ".vm", Full: "20000000", Small: "200000"})
		}
	}
	for _, c := range classics {
		ps = append(ps, Program{Name: "lua/" + c.name, Family: "lua5.4",
			Script: "testdata/bench/lua/" + c.name + ".lua", Full: c.luaFull, Small: c.small})
	}
	for _, c := range classics {
		ps = append(ps, Program{Name: "python/" + c.name, Family: "python3.11",
			Script: "testdata/bench/python/" + c.name + ".py", Full: c.pyFull, Small: c.small})
	}
	for _, m := range []struct{ name, full string }{
		{"while_module", "10000000"}, {"for_module", "15000000"},
		{"while_func", "15000000"}, {"for_func", "25000000"},
	} {
		ps = append(ps, Program{Name: "python/" + m.name, Family: "python3.11",
			Script: "testdata/bench/python/" + m.name + ".py", Full: m.full, Small: "200000"})
	}
	return ps
}

// Family is one original interpreter, how to patch it, and the peers a
// user might run instead.
type Family struct {
	Name     string
	Title    string // shown in reports
	Original string // absolute, or relative to the repository root
	Profile  string // --profile for redmagic-patch; "" means auto
	Peers    []Config
}

// ConfigKind says how a configuration relates to the original.
type ConfigKind string

const (
	KindOriginal   ConfigKind = "original"
	KindPatchedOff ConfigKind = "patched-off" // patched, REDMAGIC_DISABLE=1
	KindPatchedOn  ConfigKind = "patched-on"  // patched, runtime active
	KindPeer       ConfigKind = "peer"
)

// Config is one way of running a family's programs.
type Config struct {
	Name string
	Kind ConfigKind
	Path string
	Args []string // before the script
	Env  []string
	// Unavailable is why the configuration cannot run at all (missing
	// interpreter, failed patch); it is reported per program, not fatal.
	Unavailable string
}

// Families returns the interpreter table; peers are looked up on this
// machine (luajit on PATH, pyenv CPythons) and marked unavailable if absent.
func Families() map[string]Family {
	vmProfile := "testdata/vms/vm-profile.json"
	fams := map[string]Family{
		"switchvm": {Name: "switchvm", Title: "test VM (switch)", Original: "testdata/build/switchvm", Profile: vmProfile},
		"gotovm":   {Name: "gotovm", Title: "test VM (computed goto)", Original: "testdata/build/gotovm", Profile: vmProfile},
		"annotvm":  {Name: "annotvm", Title: "test VM (annotated)", Original: "testdata/build/annotvm"},
		"lua5.4": {Name: "lua5.4", Title: "Lua 5.4", Original: "/usr/bin/lua5.4", Peers: []Config{
			lookPeer("luajit", "luajit"),
			withArgs(lookPeer("luajit -joff", "luajit"), "-joff"),
		}},
		"python3.11": {Name: "python3.11", Title: "Python 3.11", Original: "/usr/bin/python3.11", Peers: []Config{
			pyenvPeer("3.12"),
			pyenvPeer("3.13"),
		}},
	}
	for _, v := range annotVariants {
		fams["annot:"+v] = Family{Name: "annot:" + v, Title: "annotated corpus " + v, Original: "testdata/build/annotcorpus/" + v}
	}
	return fams
}

func withArgs(c Config, args ...string) Config {
	c.Args = append(c.Args, args...)
	return c
}

func lookPeer(name, file string) Config {
	c := Config{Name: name, Kind: KindPeer}
	p, err := exec.LookPath(file)
	if err != nil {
		c.Unavailable = fmt.Sprintf("%s not installed: %v", file, err)
		return c
	}
	c.Path = p
	return c
}

// pyenvRoot finds pyenv's root without running the shell wrapper when the
// usual places answer.
func pyenvRoot() string {
	if r := os.Getenv("PYENV_ROOT"); r != "" {
		return r
	}
	if out, err := exec.Command("pyenv", "root").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".pyenv")
	}
	return ""
}

// pyenvPeer picks the newest installed pyenv CPython of a minor version.
func pyenvPeer(minor string) Config {
	c := Config{Name: "python" + minor, Kind: KindPeer}
	root := pyenvRoot()
	matches, _ := filepath.Glob(filepath.Join(root, "versions", minor+".*", "bin", "python"+minor))
	if root == "" || len(matches) == 0 {
		c.Unavailable = fmt.Sprintf("no pyenv CPython %s under %s", minor, filepath.Join(root, "versions"))
		return c
	}
	// Lexical order: fine for the usual one patch release per minor.
	sort.Strings(matches)
	c.Path = matches[len(matches)-1]
	c.Name = "python" + minor + " (pyenv)"
	return c
}
