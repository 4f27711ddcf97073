// Package nsenter links a C constructor into the binary that joins existing
// namespaces before the Go runtime starts (see nsenter.c for the protocol).
// Importing it is enough; the variables below name its environment contract.
package nsenter

// #cgo CFLAGS: -Wall -O2
import "C"

// Environment variables read by the constructor.
const (
	// EnvJoin lists "type:path" pairs, comma separated, to setns into.
	EnvJoin = "_BERTH_NSENTER"
	// EnvFork names an fd: fork once more after joining, report the pid there.
	EnvFork = "_BERTH_NSFORK"
)
