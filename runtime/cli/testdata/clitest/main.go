// A command that is only `berth runtime` (runtime/cli runs it from its
// init, or its C constructor does), for the tests of the C path.
package main

import (
	"context"
	"os"

	"github.com/berth-dev/berth/runtime/cli"
)

func main() {
	root, rest, ok := cli.FindArgs(os.Args[1:])
	if !ok {
		os.Exit(2)
	}
	os.Exit(cli.Main(context.Background(), root, rest))
}
