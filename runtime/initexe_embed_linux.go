//go:build embedinit

package runtime

import _ "embed"

// initexe/berth-init is built by scripts/build.sh before berth.
//
//go:embed initexe/berth-init
var embeddedInit []byte

// Set by a variable's initialisation, which precedes every init function
// of the package: child_linux.go's init runs the monitor and never returns.
var _ = func() bool { initExe = embeddedInit; return true }()
