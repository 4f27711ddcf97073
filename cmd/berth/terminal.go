package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// isTerminal tells whether w is a terminal (for colours and progress).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
