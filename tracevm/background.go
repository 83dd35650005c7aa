package tracevm

/*
#include "tv.h"
*/
import "C"

import (
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
)

// Compiling in the background (Config.Background). Optimising and emitting
// a trace took 60-70% of the JIT's time on the program's thread (python
// richards: 6.3 of 8.8 ms), and nothing the program does next needs it: a
// new root trace is entered only at a later back-edge (after the
// governor's sample of the interpreter), and the path a side recording
// ends on (a link to a trace, an exit to the original code) is where the
// program goes on without it. So a finished recording is handed to one
// goroutine, and the program thread goes on at once; the trace is
// published (root) or linked into its parent's guard (side) when ready,
// as a trace compiled by another program thread always was. Until then the
// loop starts no other recording and the exit none (no twin traces).

// compileQueue bounds the recordings waiting for the compiler; past it a
// recording is compiled on its own thread, as without a compiler.
const compileQueue = 16

// bgJobs is tv_g.bg_jobs, which parking reads.
func bgJobs() *uint64 { return (*uint64)(unsafe.Pointer(&C.tv_g.bg_jobs)) }

// SetBackground turns compiling in the background on or off
// (Config.Background); recordings already queued are compiled either way.
func (m *Machine) SetBackground(on bool) {
	if on {
		m.compilerOnce.Do(func() {
			m.compiles = make(chan *recording, compileQueue)
			go m.compileLoop()
		})
	}
	m.background.Store(on)
}

// WaitCompiled waits until no recording waits for the compiler, at most
// timeout; it reports whether none does.
func (m *Machine) WaitCompiled(timeout time.Duration) bool {
	for end := time.Now().Add(timeout); atomic.LoadUint64(bgJobs()) != 0; {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// queueCompile hands r, which has just ended with its last op, to the
// compiler; false when it is off or full, and the caller compiles r
// itself. The job takes a copy of r's ops: r's scratch, room for the
// longest recording (megabytes), goes back to the pool at once rather
// than waiting in the queue (with every recording allowed, 70 of them
// were held, 190 MB of live heap for the collector to scan). The copy goes
// into a list a compiled job gave back (jobOps).
func (m *Machine) queueCompile(r *recording) bool {
	if !m.background.Load() {
		return false
	}
	job := &recording{m: m, key: r.key, side: r.side, exitID: r.exitID, start: r.start,
		headRegs: r.headRegs, closeRegs: r.closeRegs, entryStack: r.entryStack, initStack: r.initStack, ninsns: r.ninsns,
		unrolled: r.unrolled, mem: newMemView(m.pid)}
	job.mem.snapshot(&r.closeRegs, int(x86enc.RSP))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.off {
		return false
	}
	st := m.loops[r.key]
	ex := exitTable()
	switch {
	case r.side == nil && st == nil:
		return false
	case r.side != nil && int(r.exitID) >= len(ex):
		return false
	}
	job.ops = append(m.jobOps(len(r.ops)), r.ops...)
	atomic.AddUint64(bgJobs(), 1)
	select {
	case m.compiles <- job:
	default:
		atomic.AddUint64(bgJobs(), ^uint64(0))
		m.keepJobOps(job.ops)
		return false
	}
	if r.side == nil {
		st.compiling = true
	} else {
		// Counted no more, so never recorded twice; linked, or
		// killed, once compiled.
		ex[r.exitID].state = C.TV_EXIT_DEAD
	}
	return true
}

// jobOps returns an empty op list with room for n ops for a queued job's
// copy: the smallest one compiled jobs gave back that has the room, its
// pages touched, or a new one. New copies were fresh memory on the
// program's thread (the heap is collected once per 16 MiB allocated): with
// every recording allowed, their page faults were most of what recording
// cost it (the Lua corpus' exprparser: 54 ms). The caller holds m.mu.
func (m *Machine) jobOps(n int) []op {
	best := -1
	for i, ops := range m.spareJobOps {
		if cap(ops) >= n && (best < 0 || cap(ops) < cap(m.spareJobOps[best])) {
			best = i
		}
	}
	if best < 0 {
		// Rounded up, so that a list serves later copies of about the
		// same length; not to a scratch's room, all of which a new list
		// has cleared on the program's thread (a first 600-op copy into
		// 4,096 ops took 38 page faults there).
		return make([]op, 0, max(512, 1<<bits.Len(uint(n))))
	}
	ops := m.spareJobOps[best]
	m.spareJobOps = slices.Delete(m.spareJobOps, best, best+1)
	return ops
}

// keepJobOps keeps a job's op list for the copies to come, the largest
// maxScratch of them; the caller holds m.mu.
func (m *Machine) keepJobOps(ops []op) {
	clear(ops) // drop the references they hold
	ops = ops[:0]
	if len(m.spareJobOps) < maxScratch {
		m.spareJobOps = append(m.spareJobOps, ops)
		return
	}
	small := 0
	for i, o := range m.spareJobOps {
		if cap(o) < cap(m.spareJobOps[small]) {
			small = i
		}
	}
	if cap(ops) > cap(m.spareJobOps[small]) {
		m.spareJobOps[small] = ops
	}
}

// logCompileFailure writes to the log why r's trace was not compiled.
func (m *Machine) logCompileFailure(r *recording, err error) {
	fmt.Fprintf(m.cfg.Log, "redmagic: compiling the recording of site %d id %#x from %#x: %v\n", r.key.gsite, r.key.id, r.start, err)
}

// compileLoop is the compiler goroutine: it runs for the process's life.
func (m *Machine) compileLoop() {
	for job := range m.compiles {
		m.compileJob(job)
		if m.cfg.Collect != nil {
			m.cfg.Collect()
		}
	}
}

// compileJob installs one queued recording and settles its loop or exit
// as finish and end would have on the recording's thread.
func (m *Machine) compileJob(job *recording) {
	t0, c0 := time.Now(), C.tv_rdtsc_now()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				// A bug of ours: the recording is lost, the
				// program never sees it.
				m.stats.abort("internal-error")
				err = fmt.Errorf("tracevm: internal error compiling: %v", p)
			}
		}()
		_, err = m.install(job)
		return err
	}()
	C.tv_spent_bg(c0)
	m.stats.compileNanos.Add(int64(time.Since(t0)))
	m.mu.Lock()
	if job.side == nil {
		if st := m.loops[job.key]; st != nil {
			st.compiling = false
			if err != nil {
				st.aborts++
			}
		}
	} else if err != nil {
		m.killExit(job.exitID)
	}
	m.mu.Unlock()
	if err != nil {
		m.stats.abort("compile")
		if m.cfg.Log != nil {
			m.logCompileFailure(job, err)
		}
	}
	m.mu.Lock()
	m.keepJobOps(job.ops)
	m.mu.Unlock()
	job.ops = nil
	atomic.AddUint64(bgJobs(), ^uint64(0))
}
