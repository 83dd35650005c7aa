package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/cfg/cfgio"
	"github.com/spf13/cobra"
)

type cfgFlags struct {
	funcs  []string
	format string
	output string
	stats  bool
}

func newCfgCmd() *cobra.Command {
	var fl cfgFlags
	cmd := &cobra.Command{
		Use:   "cfg BINARY",
		Short: "Recover and print the control-flow graph of a binary",
		Long: `Recover the control-flow graph of BINARY (an x86-64 ELF executable or
shared object) and print it as JSON (the redmagic-cfg schema, version 1,
documented in package cfg/cfgio), Graphviz DOT, or text.

With --stats, print instead one JSON object of counts (functions, blocks,
edges, indirect_jumps, indirect_resolved, ...) with "seconds", the wall
time of reading and recovering the binary. With --stats and -o, the graph
goes to the file and the counts to standard output.`,
		Example: `  redmagic-patch cfg /usr/bin/lua5.4 --format json -o lua.json
  redmagic-patch cfg /usr/bin/python3.11 --func _PyEval_EvalFrameDefault --format dot | dot -Tsvg > eval.svg
  redmagic-patch cfg /usr/bin/python3.11 --stats`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCfg(cmd.OutOrStdout(), args[0], &fl)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&fl.funcs, "func", nil, "only the function `NAME` or the one holding address 0xADDR (repeatable)")
	f.StringVar(&fl.format, "format", "json", "output `format`: json, dot or text")
	f.StringVarP(&fl.output, "output", "o", "", "write to `FILE` (atomically) instead of standard output")
	f.BoolVar(&fl.stats, "stats", false, "print counts and timing as one JSON object")
	cmd.AddCommand(newCfgDiffCmd())
	return cmd
}

// graphWriters maps --format values to writers.
var graphWriters = map[string]func(io.Writer, *cfg.Graph) error{
	"json": cfgio.WriteJSON,
	"dot":  func(w io.Writer, g *cfg.Graph) error { return cfgio.WriteDOT(w, g, cfgio.DOTOptions{}) },
	"text": func(w io.Writer, g *cfg.Graph) error { return cfgio.WriteText(w, g, cfgio.TextOptions{}) },
}

func runCfg(stdout io.Writer, path string, fl *cfgFlags) error {
	write, ok := graphWriters[fl.format]
	if !ok {
		return usageErrorf("cfg: --format %q: want json, dot or text", fl.format)
	}
	if err := checkFuncSpecs(fl.funcs); err != nil {
		return err
	}
	// Recovery analyses the whole binary whatever Options.Funcs says, so
	// selecting here costs nothing and keeps the messages of both cfg
	// and cfg diff alike.
	start := time.Now()
	g, err := cfg.Open(path, cfg.Options{})
	if err != nil {
		return err
	}
	seconds := time.Since(start).Seconds()
	if g, err = selectFunctions(g, path, fl.funcs, true); err != nil {
		return err
	}
	if !fl.stats || fl.output != "" {
		if err := writeOutput(stdout, fl.output, 0o644, func(w io.Writer) error { return write(w, g) }); err != nil {
			return err
		}
	}
	if fl.stats {
		st := g.Stats()
		st.Seconds = seconds
		return writeOutput(stdout, "", 0, func(w io.Writer) error { return json.NewEncoder(w).Encode(st) })
	}
	return nil
}

// checkFuncSpecs rejects a malformed --func value before any work is done.
func checkFuncSpecs(specs []string) error {
	for _, s := range specs {
		if s == "" {
			return usageErrorf("--func: empty function name")
		}
		if _, isAddr, err := parseFuncSpec(s); isAddr && err != nil {
			return usageErrorf("--func %s: not a valid address: %v", s, err)
		}
	}
	return nil
}

// parseFuncSpec reads a --func value: 0xADDR is an address, anything else
// a name.
func parseFuncSpec(s string) (addr uint64, isAddr bool, err error) {
	if !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") {
		return 0, false, nil
	}
	addr, err = strconv.ParseUint(s[2:], 16, 64)
	if err != nil {
		return 0, true, err.(*strconv.NumError).Err
	}
	return addr, true, nil
}

// selectFunctions returns the part of g holding the functions specs name
// (all of g when specs is empty): by name, or by an address inside the
// function. With strict, a spec matching nothing is an error naming the
// binary; otherwise the caller decides (see cfg diff).
func selectFunctions(g *cfg.Graph, path string, specs []string, strict bool) (*cfg.Graph, error) {
	if len(specs) == 0 {
		return g, nil
	}
	keep := make(map[*cfg.Function]bool)
	for _, s := range specs {
		found := false
		addr, isAddr, _ := parseFuncSpec(s)
		for _, f := range g.Functions {
			if isAddr && holds(f, addr) || !isAddr && f.Name == s {
				keep[f], found = true, true
			}
		}
		if !found && strict {
			if isAddr {
				return nil, fmt.Errorf("%s: no function at %s", path, s)
			}
			return nil, fmt.Errorf("%s: no function named %s", path, s)
		}
	}
	sel := &cfg.Graph{Path: g.Path, BuildID: g.BuildID}
	for _, f := range g.Functions {
		if keep[f] {
			sel.Functions = append(sel.Functions, f)
		}
	}
	return sel, nil
}

func holds(f *cfg.Function, addr uint64) bool {
	if addr >= f.Start && addr < f.End {
		return true
	}
	for _, p := range f.Parts {
		if addr >= p.Start && addr < p.End {
			return true
		}
	}
	return false
}
