package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What patching costs a program that never runs a hot loop: start-up
// time, peak RSS and threads, original against patched (runtime off and
// on), interleaved. The runtime loads its JIT (and the Go runtime) only at
// the first hot loop, so before it the patched process should look like
// the original.

// coldProbe is one interpreter's empty program and its thread probes.
type coldProbe struct {
	Family  string
	Empty   []string // arguments of a program that does nothing
	Threads []string // prints the process's threads, no hot loop
	HotThen []string // runs a hot loop, then prints the threads
}

var coldProbes = []coldProbe{
	{
		Family:  "python3.11",
		Empty:   []string{"-c", "pass"},
		Threads: []string{"-c", "print(open('/proc/self/status').read().split('Threads:')[1].split()[0])"},
		HotThen: []string{"-c", "def f():\n s = 0\n for i in range(100000): s += i\nf()\nprint(open('/proc/self/status').read().split('Threads:')[1].split()[0])"},
	},
	{
		Family:  "lua5.4",
		Empty:   []string{"-e", ""},
		Threads: []string{"-e", "print(io.open('/proc/self/status'):read('a'):match('Threads:%s*(%d+)'))"},
		HotThen: []string{"-e", "local s = 0 for i = 1, 100000 do s = s + i end print(io.open('/proc/self/status'):read('a'):match('Threads:%s*(%d+)'))"},
	},
}

// ColdRecord is one configuration's figures.
type ColdRecord struct {
	Interpreter   string  `json:"interpreter"`
	Config        string  `json:"config"`
	StartupMs     float64 `json:"startup_ms"`      // median wall time of the empty program
	StartupDiffMs float64 `json:"startup_diff_ms"` // minus the original's median
	MaxRSSKiB     int64   `json:"max_rss_kib"`     // median peak RSS of the empty program
	RSSDiffKiB    int64   `json:"rss_diff_kib"`
	Threads       int     `json:"threads"`          // before any hot loop
	ThreadsHot    int     `json:"threads_hot_loop"` // after one (0: not measured)
	Error         string  `json:"error,omitempty"`
}

// runCold runs argv once and returns its output, wall time and peak RSS.
func runCold(argv, env []string, timeout time.Duration) (string, time.Duration, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = cleanEnv(env)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return "", wall, 0, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, tail(errb.String(), 200))
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return out.String(), wall, rss, nil
}

func medianDur(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianInt(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// MeasureCold measures every probe under the original and the patched
// interpreter (runtime off, runtime on), runs interleaved rounds.
func (b *Bench) MeasureCold(runs int) []ColdRecord {
	var recs []ColdRecord
	for _, pr := range coldProbes {
		cs, err := b.Configs(pr.Family)
		if err != nil {
			continue
		}
		cs = cs[:3] // original, patched off, patched on
		walls := make([][]time.Duration, len(cs))
		rss := make([][]int64, len(cs))
		errs := make([]string, len(cs))
		for r := -1; r < runs; r++ { // round -1 warms the page cache
			for i, c := range cs {
				if c.Unavailable != "" || errs[i] != "" {
					continue
				}
				_, wall, kib, err := runCold(append([]string{c.Path}, pr.Empty...), c.Env, b.Opts.Timeout)
				if err != nil {
					errs[i] = err.Error()
					continue
				}
				if r >= 0 {
					walls[i] = append(walls[i], wall)
					rss[i] = append(rss[i], kib)
				}
			}
		}
		var base ColdRecord
		for i, c := range cs {
			rec := ColdRecord{Interpreter: pr.Family, Config: c.Name, Error: errs[i]}
			if c.Unavailable != "" {
				rec.Error = c.Unavailable
			}
			if rec.Error == "" {
				rec.StartupMs = float64(medianDur(walls[i]).Microseconds()) / 1000
				rec.MaxRSSKiB = medianInt(rss[i])
				rec.Threads = threadsOf(c, pr.Threads, b.Opts.Timeout, &rec)
				if c.Kind != KindOriginal {
					rec.ThreadsHot = threadsOf(c, pr.HotThen, b.Opts.Timeout, &rec)
				}
			}
			if i == 0 {
				base = rec
			} else if base.Error == "" && rec.Error == "" {
				rec.StartupDiffMs = rec.StartupMs - base.StartupMs
				rec.RSSDiffKiB = rec.MaxRSSKiB - base.MaxRSSKiB
			}
			recs = append(recs, rec)
		}
	}
	return recs
}

func threadsOf(c Config, args []string, timeout time.Duration, rec *ColdRecord) int {
	out, _, _, err := runCold(append([]string{c.Path}, args...), c.Env, timeout)
	if err != nil {
		rec.Error = err.Error()
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		rec.Error = fmt.Sprintf("thread probe printed %q", out)
	}
	return n
}

// writeCold prints the table and writes cold.json and cold.md into dir.
func writeCold(recs []ColdRecord, runs int, dir string, stdout io.Writer) error {
	var md bytes.Buffer
	fmt.Fprintf(&md, "# Before the first hot loop\n\nEmpty program (`-c pass`, `-e ''`), medians of %d interleaved runs; threads from /proc/self/status.\n\n", runs)
	fmt.Fprintln(&md, "| interpreter | configuration | start-up | vs original | peak RSS | vs original | threads | threads after a hot loop |")
	fmt.Fprintln(&md, "|---|---|---|---|---|---|---|---|")
	for _, r := range recs {
		if r.Error != "" {
			fmt.Fprintf(&md, "| %s | %s | error: %s | | | | | |\n", r.Interpreter, r.Config, r.Error)
			continue
		}
		hot := "-"
		if r.ThreadsHot > 0 {
			hot = strconv.Itoa(r.ThreadsHot)
		}
		fmt.Fprintf(&md, "| %s | %s | %.2f ms | %+.2f ms | %d KiB | %+d KiB | %d | %s |\n", r.Interpreter, r.Config,
			r.StartupMs, r.StartupDiffMs, r.MaxRSSKiB, r.RSSDiffKiB, r.Threads, hot)
	}
	stdout.Write(md.Bytes())
	data, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cold.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cold.md"), md.Bytes(), 0o644)
}
