package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// batchResult is the outcome of patching one input.
type batchResult struct {
	input, output, profile string
	sites                  int
	err                    error
	took                   time.Duration
}

func newBatchCmd() *cobra.Command {
	var outDir, profile string
	var jobs int
	c := &cobra.Command{
		Use:   "batch --out-dir DIR INPUT...",
		Short: "Patch several interpreters in parallel into one directory",
		Long: `batch patches each INPUT into DIR/<basename of INPUT>, in parallel, and
writes the runtime libraries into DIR once. An input whose base name an
earlier one has taken gets NAME.1, NAME.2, ... (never another input's
name). It keeps going past failures, ends with a summary table and exits
2 if any input failed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("batch: no inputs (usage: %s)", cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if outDir == "" {
				return usageErrorf("batch: --out-dir is required")
			}
			if jobs < 1 {
				return usageErrorf("batch: -j must be at least 1")
			}
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				return fmt.Errorf("%s: %w", outDir, elfimage.Cause(err))
			}
			return runBatch(cmd.OutOrStdout(), outDir, profile, jobs, args)
		},
	}
	c.Flags().StringVar(&outDir, "out-dir", "", "directory for the patched files and the runtime library")
	c.Flags().StringVar(&profile, "profile", "auto", "profile for every input: auto, annotated, cpython3.11, lua5.4, or a file")
	c.Flags().IntVarP(&jobs, "jobs", "j", runtime.NumCPU(), "inputs patched at once")
	return c
}

func runBatch(w io.Writer, outDir, profile string, jobs int, inputs []string) error {
	results := make([]batchResult, len(inputs))
	anyOK := false
	for i, out := range outputNames(outDir, inputs) {
		err := checkOutput(inputs[i], out)
		results[i] = batchResult{input: inputs[i], output: out, err: err}
		anyOK = anyOK || err == nil
	}
	// The runtime goes in once, after every output has been checked (an
	// input may be a runtime library's destination) and before any
	// patched file; it is taken out again if no patched file is written.
	var rt *runtimeInstall
	if anyOK {
		var err error
		if rt, err = installRuntime(outDir); err != nil {
			return err
		}
	}
	tty := isTerminal(w)
	var mu sync.Mutex
	done := 0
	report := func(r *batchResult) {
		mu.Lock()
		defer mu.Unlock()
		done++
		status := fmt.Sprintf("ok, %d sites", r.sites)
		if r.err != nil {
			status = "FAILED: " + r.err.Error()
		}
		if tty {
			fmt.Fprintf(w, "\r\033[K[%d/%d] %s: %s\n", done, len(inputs), r.input, status)
		} else {
			fmt.Fprintf(w, "[%d/%d] %s: %s\n", done, len(inputs), r.input, status)
		}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for k := 0; k < min(jobs, len(inputs)); k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r := &results[i]
				if r.err == nil {
					start := time.Now()
					r.profile, r.sites, r.err = patchOne(r.input, r.output, profile)
					r.took = time.Since(start)
				}
				report(r)
			}
		}()
	}
	for i := range inputs {
		work <- i
	}
	close(work)
	wg.Wait()

	failed := 0
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "INPUT\tOUTPUT\tPROFILE\tSITES\tSECONDS\tRESULT")
	for _, r := range results {
		result := "ok"
		if r.err != nil {
			failed++
			result = "failed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.2f\t%s\n", r.input, r.output, r.profile, r.sites, r.took.Seconds(), result)
	}
	tw.Flush()
	if failed == len(inputs) && rt != nil {
		rt.undo()
	}
	if failed > 0 {
		return &exitError{status: statusError, err: fmt.Errorf("batch: %d of %d inputs failed", failed, len(inputs))}
	}
	return nil
}

// patchOne patches in into out, whose directory holds the runtime.
func patchOne(in, out, profile string) (string, int, error) {
	sum, patched, err := planPatch(in, profile, version)
	if err != nil {
		return "", 0, err
	}
	a, err := createPatched(in, out, patched)
	if err != nil {
		return "", 0, err
	}
	if err := a.Commit(); err != nil {
		return "", 0, err
	}
	return sum.Profile, len(sum.Sites), nil
}

// outputNames gives each input a file of its own in dir: its base name,
// or, when an earlier input took that, the first of base.1, base.2, ...
// that no input has taken or has as its own base name.
func outputNames(dir string, inputs []string) []string {
	own := map[string]bool{}
	for _, in := range inputs {
		own[filepath.Base(in)] = true
	}
	taken := map[string]bool{}
	out := make([]string, len(inputs))
	for i, in := range inputs {
		base := filepath.Base(in)
		name := base
		for k := 1; taken[name] || name != base && own[name]; k++ {
			name = fmt.Sprintf("%s.%d", base, k)
		}
		taken[name] = true
		out[i] = filepath.Join(dir, name)
	}
	return out
}

// isTerminal reports whether w is a character device (progress can then
// be redrawn in place).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
