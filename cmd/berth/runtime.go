package main

import (
	"os"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/runtime/cli"
)

func init() { register(newRuntimeCmd) }

// newRuntimeCmd is `berth runtime`, runc's command line. Its usual path
// never reaches cobra: package runtime/cli runs it from an init function
// (see there); this command serves help and unusual global-flag shapes.
func newRuntimeCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "runtime COMMAND [flags] ...",
		Short:              "The OCI runtime, with runc's command line (create, start, state, kill, delete, run, exec, list)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			runRoot := global.runRoot
			if r, rest, ok := cli.FindArgs(os.Args[1:]); ok {
				runRoot, args = r, rest // flags were not parsed: read them here
			}
			if code := cli.Main(cmd.Context(), runRoot, args); code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
}

// Shared with other commands (exec, kill): runc's spellings of signals.
func parseSignal(s string) (syscall.Signal, error) { return cli.ParseSignal(s) }
