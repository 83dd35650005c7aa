package main

// PyperformanceDir holds pyperformance's pure-Python benchmarks (MIT,
// unchanged upstream files), relative to the repository root. They are
// data beside the project, never copied into it
// (../shared/third_party/README.md); where they are missing, their
// programs are reported unavailable.
const PyperformanceDir = "../shared/third_party/pyperformance"

// pyperfEnv puts the pyperf stand-in (scripts/bench/pyperf/pyperf.py)
// first on the import path. No bytecode is written, so that running the
// suite leaves no __pycache__ in the repository.
var pyperfEnv = []string{"PYTHONPATH=" + RootVar + "/scripts/bench/pyperf", "PYTHONDONTWRITEBYTECODE=1"}

// pyperformance lists the benchmarks by directory (bm_<name>). The size is
// the stand-in's run count: bench_func benchmarks run SIZE times and
// bench_time_func ones get SIZE loops, every benchmark of the file
// (deepcopy, logging and pprint have several, scimark five). Full runs
// 1.0-1.4 s and Small under 0.15 s on Debian's python3.11 (2-core EPYC,
// CPU time, the machine being shared when they were chosen), except where
// one run of a fixed workload takes longer: there Small is 1,
// the least that still checks the answer (fannkuch 0.31 s, float 0.16,
// generators 0.23, go 0.17, pidigits 0.21, raytrace 0.25, scimark 0.5-0.7,
// pyflate 0.59, pprint 1.8, where Small is Full).
//
// Left out, though it runs correctly on python3.11: btree. One loop builds
// a fixed 200,000-node tree and takes 3.1 s, above the Full range, and
// bench-quick would pay it five times (every python3.11 configuration).
var pyperformance = []struct{ name, full, small string }{
	{"chaos", "22", "1"},
	{"comprehensions", "60000", "1000"},
	{"coroutines", "45", "2"},
	{"deepcopy", "3500", "100"},
	{"deltablue", "370", "10"},
	{"fannkuch", "4", "1"},
	{"float", "10", "1"},
	{"generators", "19", "1"},
	{"go", "9", "1"},
	{"hexiom", "230", "5"},
	{"json_dumps", "90", "2"},
	{"json_loads", "3600", "100"},
	{"logging", "5000", "200"},
	{"meteor_contest", "12", "1"},
	{"nbody", "16", "1"},
	{"nqueens", "16", "1"},
	{"pidigits", "6", "1"},
	{"pprint", "1", "1"},
	{"pyflate", "2", "1"},
	{"raytrace", "5", "1"},
	{"regex_effbot", "55", "2"},
	{"regex_v8", "65", "1"},
	{"richards", "30", "1"},
	{"richards_super", "22", "1"},
	{"scimark", "2", "1"},
	{"spectral_norm", "15", "1"},
	{"unpack_sequence", "75000", "1000"},
}

// PyperfSuite is pyperformance on python3.11, in the list's order.
func PyperfSuite() []Program {
	var ps []Program
	for _, b := range pyperformance {
		ps = append(ps, Program{Name: SuitePyperf + "/" + b.name, Family: "python3.11",
			Script: PyperformanceDir + "/bm_" + b.name + "/run_benchmark.py",
			Full:   b.full, Small: b.small, Env: pyperfEnv, External: true})
	}
	return ps
}
