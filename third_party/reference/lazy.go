package reference

import (
	"regexp"
	"sync"
)

// berth patch: the package's regular expressions are compiled on first use
// instead of in its initialisation, which took ~1.2 ms of the start of
// every program linking it (`GODEBUG=inittrace=1`): every berth command,
// every container init, whether it parses a reference or not.

// lazyRegexp is a regular expression compiled on first use.
type lazyRegexp struct {
	pattern string
	once    sync.Once
	re      *regexp.Regexp
}

func lazy(pattern string) *lazyRegexp { return &lazyRegexp{pattern: pattern} }

// Regexp is the compiled expression.
func (l *lazyRegexp) Regexp() *regexp.Regexp {
	l.once.Do(func() { l.re = regexp.MustCompile(l.pattern) })
	return l.re
}

func (l *lazyRegexp) MatchString(s string) bool            { return l.Regexp().MatchString(s) }
func (l *lazyRegexp) FindStringSubmatch(s string) []string { return l.Regexp().FindStringSubmatch(s) }
func (l *lazyRegexp) String() string                       { return l.pattern }
