package main

import (
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Each command lives in a file of its
// own and is added here.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	pf := &patchFlags{}
	root := &cobra.Command{
		Use:   "redmagic-patch",
		Short: "Recover the control flow of an x86-64 ELF interpreter and patch it with a tracing JIT",
		Long: `redmagic-patch reads an unmodified x86-64 Linux ELF interpreter (such as
python3.11 or lua5.4), recovers its control-flow graph, and patches it to
run a tracing JIT.

Exit status: 0 success, 1 differences found (cfg diff), 2 error.`,
		Version:       versionString(),
		Args:          cobra.MaximumNArgs(1),
		SilenceUsage:  true, // a failed run prints one line, not the usage
		SilenceErrors: true, // execute prints errors itself
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("no command given (see redmagic-patch --help)")
			}
			if _, err := os.Stat(args[0]); err != nil && !strings.ContainsRune(args[0], '/') {
				return usageErrorf("unknown command %q, and no file of that name (see redmagic-patch --help)", args[0])
			}
			return runPatch(cmd, args[0], pf)
		},
	}
	root.Use = "redmagic-patch INPUT -o OUTPUT | redmagic-patch COMMAND"
	addPatchFlags(root, pf)
	// Declared here so that cobra does not take -v for it: later commands
	// may want -v for verbose.
	root.Flags().Bool("version", false, "print the version")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%s%v", cmdPrefix(c), err)
	})
	root.AddCommand(
		newVersionCmd(),
		newCfgCmd(),
		newSitesCmd(),
		newInspectCmd(),
		newBatchCmd(),
	)
	return root
}

// exactArgs is cobra.ExactArgs with a message that names the command and
// what it expects.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%swant %d argument(s), got %d (usage: %s)", cmdPrefix(cmd), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

// cmdPrefix is "cfg diff: " for a subcommand and "" for the root, whose
// name already starts every message.
func cmdPrefix(c *cobra.Command) string {
	if !c.HasParent() {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ") + ": "
}
