package harness

import (
	"testing"
)

// BenchmarkRecordCompile records and compiles traces of the harness's
// loops, each run in fresh loop ids, and reports the recorder's and the
// compiler's time per recorded instruction (the runtime's record_seconds
// and compile_seconds over recorded_insns) besides the time per run. With
// -cpuprofile it shows where recording goes.
func BenchmarkRecordCompile(b *testing.B) {
	cases := []struct {
		name string
		f    Func
		in   []int64
	}{
		{"switch-interpreter", Interp, []int64{2000, 0x5a5}},
		{"memory-pc-interpreter", MemInterp, []int64{2000, 0x3c9}},
		{"calls", Calls, []int64{2000, 3}},
		{"branchy", Branchy, []int64{2000, 0x9e3779b9}},
	}
	// The disassembly the tests read is not part of the cost.
	KeepLogs(false)
	defer KeepLogs(true)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			m := Machine()
			s0 := m.Snapshot()
			for range b.N {
				ids := NewIDs()
				c.f.Run(append([]int64{int64(ids)}, c.in...)...)
			}
			s1 := m.Snapshot()
			insns := float64(s1.RecordedInsns - s0.RecordedInsns)
			if insns == 0 {
				b.Fatalf("nothing recorded; aborts %v", s1.Aborts)
			}
			b.ReportMetric(1e9*(s1.RecordSeconds-s0.RecordSeconds)/insns, "record-ns/insn")
			b.ReportMetric(1e9*(s1.CompileSeconds-s0.CompileSeconds)/insns, "compile-ns/insn")
			b.ReportMetric(insns/float64(b.N), "insns/run")
			b.ReportMetric(float64(s1.TracesCompiled-s0.TracesCompiled)/float64(b.N), "traces/run")
		})
	}
}

// BenchmarkShortInnerLoop runs tt_nested (three inner iterations
// per outer one) natively and traced, with other loops' back-edges
// unrolled and not: not unrolled, the outer loop's trace links into the
// inner loop's, which is left at every outer iteration (a trace exit, and
// an entry at the next back-edge), so the difference per outer iteration
// is about what an exit and an entry cost.
func BenchmarkShortInnerLoop(b *testing.B) {
	const n = 100000
	for _, c := range []struct {
		name   string
		native bool
		unroll int // tracevm.Config.LoopUnroll
	}{{"native", true, 0}, {"unrolled", false, 0}, {"linked", false, -1}} {
		b.Run(c.name, func(b *testing.B) {
			ids := int64(NewIDs())
			run := func() { Nested.Run(ids, n, 3, 0) }
			if c.native {
				run = func() { Nested.RunNative(ids, n, 3, 0) }
			} else {
				Machine().SetLoopUnroll(c.unroll)
				defer Machine().SetLoopUnroll(0)
			}
			run() // the traces, compiled
			b.ResetTimer()
			for range b.N {
				run()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/outer-iteration")
		})
	}
}
