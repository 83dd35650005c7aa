package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/cfg/cfgio"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
	"github.com/spf13/cobra"
)

type cfgDiffFlags struct {
	funcs []string
	json  bool
}

func newCfgDiffCmd() *cobra.Command {
	var fl cfgDiffFlags
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two control-flow graphs",
		Long: `Compare two control-flow graphs. A and B are each a JSON dump written by
"redmagic-patch cfg" (recognised by its first non-space byte, '{') or a
binary, whose graph is recovered on the fly.

Functions are matched by name, or by address when unnamed; blocks, edges
and indirect-jump targets are compared relative to their function, so a
binary relinked at other addresses compares equal.

Exit status: 0 equal, 1 different, 2 error.`,
		Example: `  redmagic-patch cfg diff testdata/vm.cfg.json build/vm
  redmagic-patch cfg diff old.json new.json --json`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCfgDiff(cmd.OutOrStdout(), args[0], args[1], &fl)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&fl.funcs, "func", nil, "compare only the function `NAME` or the one holding address 0xADDR (repeatable)")
	f.BoolVar(&fl.json, "json", false, "print the report as JSON")
	return cmd
}

func runCfgDiff(stdout io.Writer, pathA, pathB string, fl *cfgDiffFlags) error {
	if err := checkFuncSpecs(fl.funcs); err != nil {
		return err
	}
	a, err := loadGraph(pathA)
	if err != nil {
		return err
	}
	b, err := loadGraph(pathB)
	if err != nil {
		return err
	}
	// A function present on one side only is a difference to report, not
	// an error; a --func matching neither side is a mistake.
	for _, s := range fl.funcs {
		sa, _ := selectFunctions(a, pathA, []string{s}, false)
		sb, _ := selectFunctions(b, pathB, []string{s}, false)
		if len(sa.Functions) == 0 && len(sb.Functions) == 0 {
			return fmt.Errorf("%s, %s: no function matches --func %s", pathA, pathB, s)
		}
	}
	a, _ = selectFunctions(a, pathA, fl.funcs, false)
	b, _ = selectFunctions(b, pathB, fl.funcs, false)

	r := cfgio.Diff(a, b)
	err = writeOutput(stdout, "", 0, func(w io.Writer) error {
		if fl.json {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(r)
		}
		return r.WriteText(w)
	})
	if err != nil {
		return err
	}
	if !r.Equal() {
		return &exitError{status: statusDifferent}
	}
	return nil
}

// loadGraph reads a JSON dump or recovers a binary's graph, telling them
// apart by content: a dump is a JSON object, and no ELF file starts with
// '{' (its first byte is 0x7f).
func loadGraph(path string) (*cfg.Graph, error) {
	f, _, err := elfimage.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	if isJSON(br) {
		g, err := cfgio.ReadJSON(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return g, nil
	}
	f.Close()
	return cfg.Open(path, cfg.Options{})
}

// isJSON reports whether the first non-space byte br holds is '{',
// without consuming anything but the leading space.
func isJSON(br *bufio.Reader) bool {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return false
		}
		if !strings.ContainsRune(" \t\r\n", rune(c)) {
			br.UnreadByte()
			return c == '{'
		}
	}
}
