// Command redmagic-patch reads an unmodified x86-64 Linux ELF interpreter,
// recovers its control-flow graph, finds its loop sites and writes a
// patched copy that loads the runtime library it carries. This package owns the command line: parsing, output
// files, messages and exit statuses; the work is done by the packages it
// calls.
//
// Exit status: 0 success, 1 a comparison found differences, 2 any error
// (usage errors included). Errors are one line on stderr.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit statuses.
const (
	statusOK        = 0
	statusDifferent = 1 // a comparison found differences
	statusError     = 2 // any failure, usage errors included
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	return execute(newRootCmd(stdout, stderr), args, stderr)
}

// exitError makes a command end with a given status. A nil err means the
// command has said all it had to say (as when a diff finds differences).
type exitError struct {
	status int
	err    error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.status)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a bad command line.
func usageErrorf(format string, args ...any) error {
	return &exitError{status: statusError, err: fmt.Errorf(format, args...)}
}

// execute runs root with args, prints any error as one line on stderr and
// returns the exit status. A panic is turned into such a line too: a
// stack trace is never what a user of a command-line tool should see.
func execute(root *cobra.Command, args []string, stderr io.Writer) (status int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "redmagic-patch: internal error: %s\n", oneLine(fmt.Sprint(r)))
			status = statusError
		}
	}()
	if args == nil {
		args = []string{} // cobra reads os.Args when given nil
	}
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return statusOK
	}
	status = statusError
	var ee *exitError
	if errors.As(err, &ee) {
		status = ee.status
		if ee.err == nil {
			return status
		}
	}
	fmt.Fprintf(stderr, "redmagic-patch: %s\n", oneLine(err.Error()))
	return status
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
