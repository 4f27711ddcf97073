package builder

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfile is a parsed Dockerfile: its stages with typed, not yet expanded
// instructions, and the ARGs declared before the first FROM.
type Dockerfile struct {
	Name     string // file name used in error messages
	Stages   []instructions.Stage
	MetaArgs []instructions.ArgCommand
	Escape   rune
	Syntax   string   // the "# syntax=" directive, informative only
	Warnings []string // parser and linter warnings, "file:line: text"
}

// Error is a Dockerfile error with the place it comes from.
type Error struct {
	File string
	Line int // 0 when unknown
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// located wraps err with the first line buildkit attached to it, if any.
func located(file string, err error) error {
	if err == nil {
		return nil
	}
	var be *Error
	if errors.As(err, &be) {
		return err
	}
	line := 0
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	return &Error{File: file, Line: line, Err: stripLocation(err)}
}

// stripLocation drops buildkit's own wrapping so messages read once.
func stripLocation(err error) error {
	var le *parser.LocationError
	if errors.As(err, &le) && le.Unwrap() != nil {
		return errors.New(le.Unwrap().Error())
	}
	return err
}

// errAt builds an Error located at a buildkit source range.
func errAt(file string, loc []parser.Range, format string, a ...any) error {
	line := 0
	if len(loc) > 0 {
		line = loc[0].Start.Line
	}
	return &Error{File: file, Line: line, Err: fmt.Errorf(format, a...)}
}

// wrapAt locates err at a buildkit source range, keeping it unwrappable.
func wrapAt(file string, loc []parser.Range, what string, err error) error {
	line := 0
	if len(loc) > 0 {
		line = loc[0].Start.Line
	}
	return &Error{File: file, Line: line, Err: fmt.Errorf("%s: %w", what, err)}
}

// Parse parses a Dockerfile. Directives (# syntax, # escape, # check),
// heredocs and line continuations are handled by buildkit's parser; the
// "# check" directive only feeds the warnings.
func Parse(name string, data []byte) (*Dockerfile, error) {
	if name == "" {
		name = "Dockerfile"
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, located(name, err)
	}
	df := &Dockerfile{Name: name, Escape: res.EscapeToken}
	df.Syntax, _, _, _ = parser.DetectSyntax(data)
	if df.Syntax != "" && !strings.Contains(df.Syntax, "docker/dockerfile") {
		df.Warnings = append(df.Warnings, fmt.Sprintf("%s:1: syntax=%s ignored: berth builds with its own Dockerfile frontend", name, df.Syntax))
	}
	for _, w := range res.Warnings {
		df.Warnings = append(df.Warnings, warningText(name, w.Short, w.Location))
	}
	cfg := &linter.Config{}
	if check, _, _, ok := parser.ParseDirective("check", data); ok {
		if cfg, err = linter.ParseLintOptions(check); err != nil {
			return nil, &Error{File: name, Line: 1, Err: fmt.Errorf("check directive: %w", err)}
		}
	}
	lintErrors := 0
	cfg.Warn = func(rule, desc, url, msg string, loc []parser.Range) {
		var r *parser.Range
		if len(loc) > 0 {
			r = &loc[0]
		}
		df.Warnings = append(df.Warnings, warningText(name, rule+": "+msg, r))
		lintErrors++
	}
	stages, metaArgs, err := instructions.Parse(res.AST, linter.New(cfg))
	if err != nil {
		return nil, located(name, err)
	}
	if cfg.ReturnAsError && lintErrors > 0 {
		return nil, &Error{File: name, Err: fmt.Errorf("lint checks failed (check=error=true): %s", strings.Join(df.Warnings, "; "))}
	}
	if len(stages) == 0 {
		return nil, &Error{File: name, Err: errors.New("no build stage in the Dockerfile (missing FROM)")}
	}
	for i := range stages {
		stages[i].Name = strings.ToLower(stages[i].Name)
	}
	df.Stages, df.MetaArgs = stages, metaArgs
	return df, nil
}

func warningText(file, msg string, r *parser.Range) string {
	if r != nil && r.Start.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", file, r.Start.Line, msg)
	}
	return file + ": " + msg
}
