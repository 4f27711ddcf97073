// Command berth-init is the program of berth's container init and exec
// children: the runtime package alone, so that a child starts without
// initialising the hundreds of packages berth's commands need
// (runtime/initexe_linux.go). scripts/build.sh embeds it in berth; it is
// not meant to be run by hand.
package main

import (
	"fmt"
	"os"

	_ "github.com/berth-dev/berth/runtime" // its init serves the child roles
)

func main() {
	fmt.Fprintln(os.Stderr, "berth-init: berth's container init; berth runs it, not you")
	os.Exit(2)
}
