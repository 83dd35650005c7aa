package main

import (
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/cfg/sites"
	"github.com/redmagic-patch/redmagic-patch/elfpatch"
	"github.com/redmagic-patch/redmagic-patch/elfpatch/redmagic"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// The runtime libraries the tool installs beside each patched file
// (redmagic.RuntimeFiles). `make build` puts them here; a build without
// them can do everything but write patched files.
//
//go:embed runtime
var runtimeFS embed.FS

// runtimeLibraries returns the contents of redmagic.RuntimeFiles, in order.
func runtimeLibraries() ([][]byte, error) {
	var out [][]byte
	for _, name := range redmagic.RuntimeFiles {
		data, err := runtimeFS.ReadFile("runtime/" + name)
		if err != nil {
			return nil, fmt.Errorf("this redmagic-patch was built without its runtime library %s; build it with `make build`", name)
		}
		out = append(out, data)
	}
	return out, nil
}

type patchFlags struct {
	output  string
	profile string
	dryRun  bool
	json    bool
}

func addPatchFlags(c *cobra.Command, pf *patchFlags) {
	c.Flags().StringVarP(&pf.output, "output", "o", "", "the patched file to write (the runtime library is written beside it)")
	c.Flags().StringVar(&pf.profile, "profile", "auto", "auto, annotated, cpython3.11, lua5.4, or a profile file")
	c.Flags().BoolVar(&pf.dryRun, "dry-run", false, "find the sites and plan the patch, write nothing")
	c.Flags().BoolVar(&pf.json, "json", false, "print the patch summary as JSON")
}

// runPatch is the root command: redmagic-patch INPUT -o OUTPUT.
func runPatch(cmd *cobra.Command, in string, pf *patchFlags) error {
	if pf.output == "" && !pf.dryRun {
		return usageErrorf("no output file: redmagic-patch INPUT -o OUTPUT (or --dry-run)")
	}
	if !pf.dryRun {
		if err := checkOutput(in, pf.output); err != nil {
			return err
		}
	}
	sum, out, err := planPatch(in, pf.profile, version)
	if err != nil {
		return err
	}
	if !pf.dryRun {
		if err := installPatched(in, pf.output, out); err != nil {
			return err
		}
	}
	return printSummary(cmd.OutOrStdout(), in, pf, sum)
}

// planPatch reads, analyses and patches in memory.
func planPatch(in, profile, toolVersion string) (*redmagic.Summary, []byte, error) {
	f, raw, err := elfpatch.Open(in)
	if err != nil {
		return nil, nil, err
	}
	// Refusals that depend only on the file (Go, static, already patched)
	// come before the analysis.
	if _, err := redmagic.NewLayout(f, raw); err != nil {
		return nil, nil, err
	}
	res, err := discoverSites(f, profile)
	if err != nil {
		return nil, nil, err
	}
	out, sum, err := redmagic.PatchFile(f, raw, res, redmagic.Options{ToolVersion: toolVersion})
	if err != nil {
		return nil, nil, err
	}
	return sum, out, nil
}

// discoverSites recovers f's control flow and finds the sites of the
// profile named by profile (or the one that matches).
func discoverSites(f *elfimage.File, profile string) (*sites.Result, error) {
	g, err := cfg.Recover(f, cfg.Options{})
	if err != nil {
		return nil, err
	}
	p, why, err := sites.Select(f, profile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return sites.Discover(f, g, p, why)
}

// printJSON writes v indented, for the --json flags.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printSummary(w io.Writer, in string, pf *patchFlags, sum *redmagic.Summary) error {
	if pf.json {
		return printJSON(w, sum)
	}
	verb := "patched"
	if pf.dryRun {
		verb = "would patch"
	}
	dest := pf.output
	if dest == "" {
		dest = "(dry run)"
	}
	fmt.Fprintf(w, "%s: profile %s (%s)\n", in, sum.Profile, sum.Reason)
	fmt.Fprintf(w, "%s %d sites -> %s; trampolines at %#x, header at %#x\n", verb, len(sum.Sites), dest, sum.TextAddr, sum.Header)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, s := range sum.Sites {
		fmt.Fprintf(tw, "  %d\t%s\t%#x\tvia %s\ttrampoline %#x\n", s.Index, s.Name, s.Addr, s.Via, s.Trampoline)
	}
	tw.Flush()
	for _, s := range sum.Skipped {
		fmt.Fprintf(w, "  skipped %s at %#x: %s\n", s.Name, s.Addr, s.Why)
	}
	return nil
}

func newSitesCmd() *cobra.Command {
	var profile string
	var asJSON bool
	c := &cobra.Command{
		Use:   "sites BINARY",
		Short: "List the sites a patch would redirect, and how each was found",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := elfimage.Open(args[0])
			if err != nil {
				return err
			}
			res, err := discoverSites(f, profile)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, res)
			}
			fmt.Fprintf(w, "%s: profile %s (%s)\n", args[0], res.Profile, res.Reason)
			for _, s := range res.Sites {
				fmt.Fprintf(w, "  %-30s %#x  %s\n", s.Name, s.Addr, s.Found)
			}
			for _, s := range res.Skipped {
				fmt.Fprintf(w, "  skipped %s at %#x: %s\n", s.Name, s.Addr, s.Why)
			}
			return nil
		},
	}
	c.Flags().StringVar(&profile, "profile", "auto", "auto, annotated, cpython3.11, lua5.4, or a profile file")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newInspectCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect PATCHED",
		Short: "Tell what a patched file contains: profile, sites, tool version, the original's build-id",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := elfimage.Open(args[0])
			if err != nil {
				return err
			}
			info, err := redmagic.Inspect(f)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, info)
			}
			fmt.Fprintf(w, "%s: patched by redmagic-patch %s, profile %s, original build-id %s, header at %#x\n",
				args[0], info.ToolVersion, info.Profile, info.BuildID, info.Header)
			for i, s := range info.Sites {
				fmt.Fprintf(w, "  %d %-30s %s %#x -> %#x", i, s.Name, s.Kind, s.Addr, s.Resume)
				if names := s.FlagNames(); len(names) > 0 {
					fmt.Fprintf(w, " [%s]", strings.Join(names, ","))
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
