// Command berth is the CLI: flags become options, options become calls into
// berth's packages. No logic lives here beyond that wiring.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
)

// gcPercent is the collector's GOGC for the CLI when the environment sets
// none. A command lives for milliseconds and allocates most of what it
// ever will in its first ones (compose-go's load of 50 services: ~40 MB
// of short-lived maps); at the default 100 the collector runs several
// cycles through it, on the second core a loaded machine does not have
// (berth config of 50 services: user time 113 -> 73 ms at 400). A
// long-lived command (up attached, watch) keeps a small live heap, and
// five times small is still small. The container init and the monitor
// never reach main (runtime's init runs them), so they keep the default.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	root := newRootCmd()
	root.SetArgs(projectFlagBeforeRun(os.Args[1:]))
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "berth:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(1)
	}
}

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }
