package watch

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// ignoredName is true for names no watch rule ever wants: version control
// metadata and the temporary files editors write next to the file being
// saved (a sync of vim's swap file into a container is never wanted, and
// would double every save's work).
func ignoredName(name string) bool {
	switch {
	case name == ".git", name == ".hg", name == ".svn":
		return true
	case name == "4913": // vim probes a directory's writability with it
		return true
	case strings.HasSuffix(name, "~"): // vim/emacs backups
		return true
	case strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".swp") || strings.HasSuffix(name, ".swx") || strings.HasSuffix(name, ".swo")):
		return true
	case strings.HasPrefix(name, ".#"), strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"): // emacs
		return true
	case strings.HasSuffix(name, "___jb_tmp___"), strings.HasSuffix(name, "___jb_old___"): // JetBrains safe write
		return true
	}
	return false
}

// ignoredBelow is true when any component of p below root is ignored.
func ignoredBelow(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == "." {
		return false
	}
	for _, c := range strings.Split(rel, string(filepath.Separator)) {
		if ignoredName(c) {
			return true
		}
	}
	return false
}

// matcher is a set of .dockerignore-style patterns relative to a base
// directory.
type matcher struct {
	base string
	pm   *patternmatcher.PatternMatcher
}

func newMatcher(base string, patterns []string) (*matcher, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	return &matcher{base: base, pm: pm}, nil
}

// readDockerignore loads a build context's .dockerignore (nil when there is
// none).
func readDockerignore(ctxDir string) (*matcher, error) {
	f, err := os.Open(filepath.Join(ctxDir, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return newMatcher(ctxDir, patterns)
}

// matches reports whether p (absolute) or one of its parents matches; a
// path outside the base never does.
func (m *matcher) matches(p string) bool {
	if m == nil {
		return false
	}
	rel, err := filepath.Rel(m.base, p)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return false
	}
	ok, _ := m.pm.MatchesOrParentMatches(filepath.ToSlash(rel))
	return ok
}

// exceptions reports whether some pattern is a "!" exception.
func (m *matcher) exceptions() bool { return m != nil && m.pm.Exclusions() }
