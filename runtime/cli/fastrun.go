package cli

// The C path of an attached `berth runtime run`, run by a constructor before
// the Go runtime starts (see fastrun.c); it falls back to the Go path below
// when it cannot serve the command.

// #cgo CFLAGS: -Wall -O2
import "C"
