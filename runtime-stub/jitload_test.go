package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Until a loop is hot the process has the original's threads: the JIT
// library (and with it the Go runtime) is loaded at the first hot loop,
// and never with the JIT off (TestDisable covers the runtime off).
func TestNothingBeforeHot(t *testing.T) {
	fx := getFixture(t)
	bin := fx.patched(t, "pie", patchSpec{})
	for _, tc := range []struct {
		name    string
		env     []string
		hits    int
		threads string
		jit     bool
	}{
		{"cold", nil, 999, "threads=1", false},
		{"hot", nil, 1000, "", true},
		{"jit off", []string{"REDMAGIC_JIT=0"}, 5000, "threads=1", false},
		{"too early", []string{"REDMAGIC_JIT_DELAY=100000"}, 5000, "threads=1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runHarness(t, bin, tc.env, args("tasks", "hit", siteJump, 1, 0, tc.hits, "tasks")...)
			require.Equal(t, 0, r.exit, r.stderr)
			assert.Empty(t, r.stderr)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			require.Len(t, lines, 2)
			assert.Equal(t, "threads=1", lines[0], "at start")
			if tc.threads != "" {
				assert.Equal(t, tc.threads, lines[1], "after the loop")
			} else {
				assert.NotEqual(t, "threads=1", lines[1], "the Go runtime's threads after the loop")
			}
			assert.Equal(t, tc.jit, r.stats.JIT != nil, "the JIT's report")
		})
	}
}

// By default the JIT loads on a thread of its own while the program runs
// on: the thread that found the first hot loop does not wait for it, a
// fork meanwhile waits for the load to end (the child must not inherit a
// loader's locks held by a thread it does not have), and the JIT arrives.
func TestJITBackground(t *testing.T) {
	fx := getFixture(t)
	bin := fx.patched(t, "pie", patchSpec{})
	for i := 0; i < 5; i++ {
		r := runHarness(t, bin, []string{"REDMAGIC_JIT_BACKGROUND=1"},
			args("hit", siteJump, 1, 0, 1000, "fork", siteJump, 3, "sleep", 300, "tasks")...)
		require.Equal(t, 0, r.exit, r.stderr)
		assert.Empty(t, r.stderr)
		assert.NotEqual(t, "threads=1", strings.TrimSpace(r.stdout), "the Go runtime's threads once loaded")
		assert.NotNil(t, r.stats.JIT, "the JIT's report")
	}
	// A program that ends while its JIT loads exits as it would have.
	for i := 0; i < 40; i++ {
		r := runHarness(t, bin, []string{"REDMAGIC_JIT_BACKGROUND=1"}, args("hit", siteJump, 1, 0, 1000)...)
		require.Equal(t, 0, r.exit, r.stderr)
		require.Empty(t, r.stderr)
	}
	r := runHarness(t, bin, []string{"REDMAGIC_JIT_BACKGROUND=x"}, "slots")
	assert.Equal(t, "redmagic: REDMAGIC_JIT_BACKGROUND=x is not 0 or 1, ignored\n", r.stderr)
}

// A program that has not run REDMAGIC_JIT_DELAY yet counts without the
// JIT; its hot loops load it later (their counts look at the clock every
// 65,536 hits).
func TestJITDelay(t *testing.T) {
	fx := getFixture(t)
	bin := fx.patched(t, "pie", patchSpec{})
	r := runHarness(t, bin, []string{"REDMAGIC_JIT_DELAY=300"},
		args("hit", siteJump, 1, 0, 1500, "tasks", "sleep", 400, "hit", siteJump, 1, 0, 70000, "tasks")...)
	require.Equal(t, 0, r.exit, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2)
	assert.Equal(t, "threads=1", lines[0], "hot, but too early")
	assert.NotEqual(t, "threads=1", lines[1], "loaded once the delay passed")
	assert.NotNil(t, r.stats.JIT)

	// A loop that has run REDMAGIC_JIT_EAGER iterations loads it after a
	// quarter of the delay, not before.
	eager := []string{"REDMAGIC_JIT_DELAY=800", "REDMAGIC_JIT_EAGER=131072"}
	for _, tc := range []struct {
		sleep   int
		threads bool
	}{{0, false}, {300, true}} {
		r = runHarness(t, bin, eager,
			args("hit", siteJump, 1, 0, 1500, "tasks", "sleep", tc.sleep, "hit", siteJump, 1, 0, 140000, "tasks")...)
		require.Equal(t, 0, r.exit, r.stderr)
		lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
		require.Len(t, lines, 2)
		assert.Equal(t, "threads=1", lines[0], "hot, but too early")
		if tc.threads {
			assert.NotEqual(t, "threads=1", lines[1], "loaded after %d ms and 141,500 iterations", tc.sleep)
		} else {
			assert.Equal(t, "threads=1", lines[1], "141,500 iterations, but too early")
		}
	}

	r = runHarness(t, bin, []string{"REDMAGIC_JIT_DELAY=x"}, "slots")
	assert.Equal(t, "redmagic: REDMAGIC_JIT_DELAY=x is not a count of milliseconds, using 200\n", r.stderr)
}

// The JIT loads only while hot loops run REDMAGIC_JIT_RATE back-edges a
// second or more: a loop that counts 65,536 hits every 40 ms (1.6 million
// a second) is hot but leaves it unloaded, with its refusals counted, and
// loads it at any rate with REDMAGIC_JIT_RATE=0; a loop of millions of hits
// without a pause loads it.
func TestJITRate(t *testing.T) {
	fx := getFixture(t)
	bin := fx.patched(t, "pie", patchSpec{})
	slow := args("hit", siteJump, 1, 0, 1500)
	for i := 0; i < 8; i++ {
		slow = append(slow, args("sleep", 40, "hit", siteJump, 1, 0, 65536)...)
	}
	slow = append(slow, "tasks")
	fast := args("hit", siteJump, 1, 0, 1500, "hit", siteJump, 1, 0, 20000000, "tasks")
	for _, tc := range []struct {
		name    string
		env     []string
		prog    []string
		jit     bool
		refused bool // the JIT was due by time, the loops too slow
	}{
		{"slow", []string{"REDMAGIC_JIT_RATE=10000000"}, slow, false, true},
		{"slow, any rate", []string{"REDMAGIC_JIT_RATE=0"}, slow, true, false},
		{"fast", []string{"REDMAGIC_JIT_RATE=10000000"}, fast, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runHarness(t, bin, tc.env, tc.prog...)
			require.Equal(t, 0, r.exit, r.stderr)
			assert.Empty(t, r.stderr)
			assert.Equal(t, tc.jit, r.stats.JIT != nil, "the JIT's report")
			assert.Equal(t, tc.jit, strings.TrimSpace(r.stdout) != "threads=1", "the Go runtime's threads: %s", r.stdout)
			if tc.refused {
				assert.Greater(t, r.stats.JITRateRefusals, uint64(0), "refusals")
				assert.Less(t, r.stats.JITRateBest, uint64(10000000), "the fastest window")
				assert.Greater(t, r.stats.JITRateBest, uint64(100000), "the fastest window")
			}
		})
	}
	r := runHarness(t, bin, []string{"REDMAGIC_JIT_RATE=x"}, "slots")
	assert.Equal(t, "redmagic: REDMAGIC_JIT_RATE=x is not a count of back-edges a second, using 10000000\n", r.stderr)
}

// The Go runtime's threads keep every asynchronous signal blocked, so a
// signal the program blocks stays pending for the program's own threads
// (CPython's test_signal relies on it).
func TestSignalsStayWithProgramThreads(t *testing.T) {
	fx := getFixture(t)
	bin := fx.patched(t, "pie", patchSpec{})
	r := runHarness(t, bin, nil, args("block-usr1", "hit", siteJump, 1, 0, 1000, "tasks", "raise-usr1")...)
	require.Equal(t, 0, r.exit, r.stderr)
	assert.NotContains(t, r.stdout, "threads=1\n", "the JIT was loaded")
	assert.Contains(t, r.stdout, "usr1 pending=1\n")
}

// When the JIT cannot start, the program runs on counting, with one line
// on standard error and unchanged results.
func TestJITCannotStart(t *testing.T) {
	fx := getFixture(t)
	bin := fx.patched(t, "pie", patchSpec{})
	ops := args("hit", siteJump, 1, 0, 3000, "tasks")

	// A runtime without its JIT library beside it.
	alone := t.TempDir()
	data, err := os.ReadFile(fx.so)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(alone, "libredmagic.so"), data, 0o755))
	r := runHarness(t, bin, []string{"LD_LIBRARY_PATH=" + alone}, ops...)
	require.Equal(t, 0, r.exit, r.stderr)
	assert.Regexp(t, `^redmagic: the JIT cannot start: .*libredmagic-jit.so.*; running on without it\n$`, r.stderr)
	assert.Equal(t, "threads=1\n", r.stdout)
	assert.Equal(t, uint64(3000), r.stats.site(t, siteJump).Hits)
	assert.Nil(t, r.stats.JIT)

	// An address-space limit under which the Go runtime would abort.
	sh := "ulimit -v 800000 && exec \"$0\" \"$@\""
	r = runHarness(t, "/bin/sh", nil, append([]string{"-c", sh, bin}, ops...)...)
	require.Equal(t, 0, r.exit, r.stderr)
	assert.Regexp(t, `^redmagic: the JIT cannot start: the address-space limit \(ulimit -v 800000 KiB\).*\n$`, r.stderr)
	assert.Equal(t, "threads=1\n", r.stdout)
	assert.Equal(t, uint64(3000), r.stats.site(t, siteJump).Hits)
}

// Where counting cannot pay, the runtime puts the original dispatch entries
// back: with the runtime disabled, with the JIT off and no statistics
// wanted, and when the JIT cannot start (without statistics). Otherwise
// the entries keep their trampolines.
func TestDispatchEntriesRestored(t *testing.T) {
	fx := getFixture(t)
	bin := fx.patched(t, "nopie", patchSpec{slots: true})
	patched := fmt.Sprintf("ro64=%#x rw64=%#x pic32=%#x\n", testTramp(siteJump), testTramp(siteJumpQuick),
		uint32(testSlotOrig(siteAPI0+1)+testTramp(siteAPI0+1)-(testSiteAddr(siteAPI0+1)+5)))
	orig := fmt.Sprintf("ro64=%#x rw64=%#x pic32=%#x\n", testSlotOrig(siteJump), testSlotOrig(siteJumpQuick),
		uint32(testSlotOrig(siteAPI0+1)))
	alone := t.TempDir()
	data, err := os.ReadFile(fx.so)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(alone, "libredmagic.so"), data, 0o755))
	noStats := "REDMAGIC_STATS="
	for _, tc := range []struct {
		name   string
		env    []string
		before string // before any hit
		after  string // after a hot loop
	}{
		{"runtime on", nil, patched, patched},
		{"disabled", []string{"REDMAGIC_DISABLE=1"}, orig, orig},
		{"jit off, statistics wanted", []string{"REDMAGIC_JIT=0"}, patched, patched},
		{"jit off, no statistics", []string{"REDMAGIC_JIT=0", noStats}, orig, orig},
		{"jit cannot start, statistics wanted", []string{"LD_LIBRARY_PATH=" + alone}, patched, patched},
		{"jit cannot start, no statistics", []string{"LD_LIBRARY_PATH=" + alone, noStats}, patched, orig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := []string{"tables"}
			if tc.before == patched {
				// The hits go through the filled slot, as a
				// trampoline's would.
				ops = append(ops, args("hit", siteJump, 1, 0, 1500)...)
			}
			r := runHarness(t, bin, tc.env, append(ops, "tables")...)
			require.Equal(t, 0, r.exit, r.stderr)
			assert.Equal(t, tc.before+tc.after, r.stdout)
			if r.stats != nil && tc.before == orig {
				assert.Equal(t, uint64(3), r.stats.DispatchRestored)
			}
		})
	}
}

// Between calls into Go the JIT's threads are parked and glibc's malloc
// goes back to its single-threaded path (__libc_single_threaded = 1):
// after the JIT has been idle for a while, through a fork (the child has
// none of them), not while the program has a thread of its own (created
// by it, which sets the flag to 0), and again once that thread is gone.
// Allocation, forking and threads work throughout; REDMAGIC_PARK=0
// leaves the threads running.
func TestParking(t *testing.T) {
	fx := getFixture(t)
	bin := fx.patched(t, "pie", patchSpec{})
	ops := args("hit", siteJump, 1, 0, 1000, "park-wait", siteJump, parkWaitMS, "single",
		"churn", 20000, "fork", siteJump, 2, "single",
		"threads", 2, siteJump, 10, "single",
		"park-wait", siteJump, parkWaitMS, "single", "churn", 20000)
	for _, tc := range []struct {
		name    string
		env     []string
		singles []string
		parking string
	}{
		{"on", nil, []string{"single=1", "single=1", "single=0", "single=1"}, "on"},
		{"off", []string{"REDMAGIC_PARK=0"}, []string{"single=0", "single=0", "single=0", "single=0"}, "off: REDMAGIC_PARK=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runHarness(t, bin, tc.env, ops...)
			require.Equal(t, 0, r.exit, r.stderr)
			assert.Empty(t, r.stderr)
			var singles []string
			for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				if strings.HasPrefix(l, "single=") {
					singles = append(singles, l)
				}
			}
			assert.Equal(t, tc.singles, singles, r.stdout)
			assert.Contains(t, r.stdout, "churn=")
			require.NotNil(t, r.stats.JIT)
			assert.Equal(t, tc.parking, r.stats.JIT.Parking)
			if tc.parking == "on" {
				assert.GreaterOrEqual(t, r.stats.JIT.Parks, uint64(2), "refusals %d", r.stats.JIT.ParkRefusals)
				assert.Greater(t, r.stats.JIT.ParkedSeconds, 0.0)
				// The report at exit released them.
				assert.Equal(t, r.stats.JIT.Parks, r.stats.JIT.Unparks)
			} else {
				assert.Zero(t, r.stats.JIT.Parks)
			}
		})
	}
}

// parkWaitMS bounds how long a test waits for the JIT's threads to park:
// on a loaded machine an attempt is refused while a thread is busy, and
// the next waits twice as long.
const parkWaitMS = 3000

// A program that installs a handler for the signal parking uses, after
// the JIT started, ends parking at the next attempt (threads parked
// before wait in the runtime's handler until the next call into Go): its
// handler never runs for it.
func TestParkingSignalTaken(t *testing.T) {
	fx := getFixture(t)
	bin := fx.patched(t, "pie", patchSpec{})
	r := runHarness(t, bin, nil, args("hit", siteJump, 1, 0, 1000, "park-wait", siteJump, parkWaitMS, "single",
		"take-park-signal", "hit", siteJump, 1, 0, 1000, "sleep", 80, "hit", siteJump, 1, 0, 10, "single",
		"park-signals", "churn", 1000)...)
	require.Equal(t, 0, r.exit, r.stderr)
	assert.Empty(t, r.stderr)
	assert.Contains(t, r.stdout, "single=1\nsingle=0\npark-signals=0\n")
	require.NotNil(t, r.stats.JIT)
	assert.Equal(t, "off: the program installed a handler for its signal", r.stats.JIT.Parking)
	assert.Equal(t, uint64(1), r.stats.JIT.Parks)
}
