/*
   Copyright 2020 The Compose Specification Authors.

   Licensed under the Apache License, Version 2.0 (the "License");
   you may not use this file except in compliance with the License.
   You may obtain a copy of the License at

       http://www.apache.org/licenses/LICENSE-2.0

   Unless required by applicable law or agreed to in writing, software
   distributed under the License is distributed on an "AS IS" BASIS,
   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
   See the License for the specific language governing permissions and
   limitations under the License.
*/

package tree

import (
	"strings"
)

const pathSeparator = "."

// PathMatchAll is a token used as part of a Path to match any key at that level
// in the nested structure
const PathMatchAll = "*"

// PathMatchList is a token used as part of a Path to match items in a list
const PathMatchList = "[]"

// Path is a dotted path of keys to a value in a nested mapping structure. A *
// section in a path will match any key in the mapping structure.
type Path string

// NewPath returns a new Path
func NewPath(items ...string) Path {
	return Path(strings.Join(items, pathSeparator))
}

// Next returns a new path by append part to the current path
func (p Path) Next(part string) Path {
	if p == "" {
		return Path(part)
	}
	part = strings.ReplaceAll(part, pathSeparator, "👻")
	return Path(string(p) + pathSeparator + part)
}

func (p Path) Parts() []string {
	return strings.Split(string(p), pathSeparator)
}

// Matches reports whether p matches pattern part by part ("*" matches any
// one part).
//
// berth patch: it walks both strings instead of splitting them; the loader
// calls it for every node of a file against every pattern of several
// tables, and the two slices it allocated per call were a quarter of the
// CPU of loading a 50-service file.
//
// It compares the last parts first: the paths a loader tests share their
// first parts ("services.<name>") with most patterns and differ in the
// last, where the walk from the front found it only after cutting the
// others (a fifth of a 50-service load, BenchmarkLoad50's profile).
func (p Path) Matches(pattern Path) bool {
	ps, pp := string(p), string(pattern)
	last := pp[strings.LastIndexByte(pp, pathSeparator[0])+1:]
	if last != PathMatchAll && last != ps[strings.LastIndexByte(ps, pathSeparator[0])+1:] {
		return false
	}
	for {
		part, prest, plast := cutPart(ps)
		pat, patrest, patlast := cutPart(pp)
		if pat != PathMatchAll && pat != part {
			return false
		}
		if plast || patlast {
			return plast == patlast
		}
		ps, pp = prest, patrest
	}
}

// cutPart splits s at its first separator; last is true when it has none.
func cutPart(s string) (part, rest string, last bool) {
	part, rest, found := strings.Cut(s, pathSeparator)
	return part, rest, !found
}

func (p Path) Last() string {
	parts := p.Parts()
	return parts[len(parts)-1]
}

func (p Path) Parent() Path {
	index := strings.LastIndex(string(p), pathSeparator)
	if index > 0 {
		return p[0:index]
	}
	return ""
}

func (p Path) String() string {
	return strings.ReplaceAll(string(p), "👻", pathSeparator)
}
