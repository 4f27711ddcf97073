// Package cli is `berth runtime`: runc's command line over package runtime.
//
// It runs from an init function when the process was started as
// `berth [global flags] runtime ...`: this package is initialized right
// after package runtime, before the rest of berth (compose, store,
// builder...) whose initialization would dominate the time of a short
// `create` or `start`. cmd/berth also registers it as a cobra command, for
// help and for argument shapes the fast path does not recognise.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/runtime"
)

// globalValueFlags are berth's global flags that take a value; the fast
// path must skip them to find the subcommand.
var globalValueFlags = map[string]bool{
	"-f": true, "--file": true, "-p": true, "--project-name": true, "--project-directory": true,
	"--profile": true, "--env-file": true, "--root": true, "--run-root": true, "--progress": true, "--parallel": true,
}

func init() {
	registerCommands()
	if os.Getenv("BERTH_NO_FAST_PATH") != "" || len(os.Args) < 2 {
		return
	}
	runRoot, rest, ok := fastPath(os.Args[1:])
	if !ok {
		return
	}
	os.Exit(Main(context.Background(), runRoot, rest))
}

// FindArgs finds `runtime` after berth's global flags in a berth command
// line (os.Args[1:]) and returns the run root they name and the arguments
// after `runtime`.
func FindArgs(args []string) (runRoot string, rest []string, ok bool) { return fastPath(args) }

func fastPath(args []string) (runRoot string, rest []string, ok bool) {
	runRoot = os.Getenv("BERTH_RUN_ROOT")
	if runRoot == "" {
		runRoot = "/run/berth"
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "runtime":
			if i+1 < len(args) && (args[i+1] == "-h" || args[i+1] == "--help" || args[i+1] == "help") {
				return "", nil, false // cobra prints berth's help
			}
			return runRoot, args[i+1:], true
		case strings.HasPrefix(a, "--run-root="):
			runRoot = strings.TrimPrefix(a, "--run-root=")
		case a == "--run-root" && i+1 < len(args):
			runRoot = args[i+1]
			i++
		case globalValueFlags[a]:
			i++
		case strings.HasPrefix(a, "-"):
			// --flag=value forms and boolean flags
		default:
			return "", nil, false
		}
	}
	return "", nil, false
}

// Open opens the runtime's state root under a run root.
func Open(runRoot string) (*runtime.Runtime, error) {
	return runtime.New(filepath.Join(runRoot, "runtime"))
}

// ExitError carries a process's exit status out of a command.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

type command struct {
	usage string
	run   func(ctx context.Context, rt *runtime.Runtime, args []string) error
}

var commands = map[string]command{}

// Main runs one `berth runtime` command and returns the exit status;
// errors print as runc's do, prefixed "berth: ".
func Main(ctx context.Context, runRoot string, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "berth: runtime: unknown command %q\n", args[0])
		usage(os.Stderr)
		return 1
	}
	rt, err := Open(runRoot)
	if err == nil {
		err = c.run(ctx, rt, args[1:])
	}
	var ee ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintln(os.Stderr, "berth:", err)
	return 1
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: berth runtime COMMAND [flags] ...   (runc's command line)")
	for _, name := range []string{"create", "start", "state", "kill", "delete", "run", "exec", "list", "pause", "resume", "ps", "logs", "stats"} {
		fmt.Fprintf(w, "  %-7s %s\n", name, commands[name].usage)
	}
}

// flags makes a FlagSet that stops at the first argument, as runc's.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

func wantArgs(fs *flag.FlagSet, min, max int) error {
	n := fs.NArg()
	if n < min || (max >= 0 && n > max) {
		return fmt.Errorf("%s: wrong number of arguments (usage: %s)", fs.Name(), commands[fs.Name()].usage)
	}
	return nil
}

type flagSet struct{ *flag.FlagSet }

func newFlagSet(name string) *flagSet { return &flagSet{flags(name)} }

// Alias makes -short mean --long.
func (f *flagSet) Alias(short, long string) {
	f.Var(f.Lookup(long).Value, short, "same as --"+long)
}
