package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"
)

// entry is one file-system object selected for COPY or ADD.
type entry struct {
	rel  string // path in the source tree
	dst  string // path below the copy's destination; "" for a single file
	st   unix.Stat_t
	link string // symlink target
}

func (e *entry) isDir() bool  { return e.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (e *entry) isReg() bool  { return e.st.Mode&unix.S_IFMT == unix.S_IFREG }
func (e *entry) isLink() bool { return e.st.Mode&unix.S_IFMT == unix.S_IFLNK }

// match is one source that matched a COPY/ADD argument: a file (one entry
// with dst "") or a directory whose contents are copied (entries below it).
type match struct {
	rel     string
	dir     bool
	prefix  string // --parents: the path kept under the destination
	entries []entry
}

// selectOptions are the COPY/ADD flags that change what is selected.
type selectOptions struct {
	excludes []string
	parents  bool
	ignored  func(rel string) bool // the context's ignore rules; nil for stages
}

func hasGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// selectSources resolves COPY/ADD source arguments against fs. Every source
// must match something; a symlink given as a source is followed, but only
// within fs; symlinks below a selected directory are copied as they are.
func selectSources(fs *srcFS, srcs []string, o selectOptions) ([]match, error) {
	var ex *patternmatcher.PatternMatcher
	if len(o.excludes) > 0 {
		var err error
		if ex, err = patternmatcher.New(o.excludes); err != nil {
			return nil, fmt.Errorf("--exclude: %w", err)
		}
	}
	skip := func(rel, within string) bool {
		if o.ignored != nil && o.ignored(rel) {
			return true
		}
		if ex == nil {
			return false
		}
		if ok, _ := ex.MatchesOrParentMatches(rel); ok {
			return true
		}
		ok, _ := ex.MatchesOrParentMatches(within)
		return within != "" && ok
	}
	var out []match
	for _, src := range srcs {
		pivot := ""
		if o.parents {
			if before, _, ok := strings.Cut(filepath.ToSlash(src), "/./"); ok {
				pivot = before
			}
		}
		rel, err := cleanSource(src)
		if err != nil {
			return nil, err
		}
		names := []string{rel}
		if hasGlob(rel) {
			if names, err = glob(fs, rel, skip); err != nil {
				return nil, err
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("no source files were specified: %s matches nothing", src)
			}
		} else if rel != "." && skip(rel, "") {
			return nil, fmt.Errorf("%s: not found in the build context (excluded by .dockerignore or --exclude)", src)
		}
		for _, name := range names {
			m, err := selectOne(fs, name, pivot, o.parents, skip)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func selectOne(fs *srcFS, rel, pivot string, parents bool, skip func(string, string) bool) (match, error) {
	st, err := fs.stat(rel)
	if err != nil {
		return match{}, fmt.Errorf("source %s: %w", rel, err)
	}
	m := match{rel: rel, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR}
	if parents {
		p, _ := cleanSource(pivot)
		m.prefix = rel
		if p != "." && (rel == p || strings.HasPrefix(rel, p+"/")) {
			m.prefix = strings.TrimPrefix(strings.TrimPrefix(rel, p), "/")
		}
		if m.prefix == "." {
			m.prefix = ""
		}
	}
	if !m.dir {
		m.entries = []entry{{rel: rel, st: st}}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return match{}, fmt.Errorf("source %s: not a regular file or directory", rel)
		}
		return m, nil
	}
	err = walk(fs, rel, "", skip, &m.entries)
	return m, err
}

// walk appends everything below directory rel, parents before children.
func walk(fs *srcFS, rel, within string, skip func(string, string) bool, out *[]entry) error {
	names, err := fs.readDir(rel)
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		r := path.Join(rel, n)
		w := path.Join(within, n)
		if skip(r, w) {
			continue
		}
		st, err := fs.lstat(r)
		if err != nil {
			return err
		}
		e := entry{rel: r, dst: w, st: st}
		if e.isLink() {
			if e.link, err = fs.readlink(r); err != nil {
				return err
			}
		}
		*out = append(*out, e)
		if e.isDir() {
			if err := walk(fs, r, w, skip, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// glob expands a pattern one path component at a time, never looking
// through ignored names.
func glob(fs *srcFS, pattern string, skip func(string, string) bool) ([]string, error) {
	parts := strings.Split(pattern, "/")
	cur := []string{"."}
	for _, part := range parts {
		var next []string
		for _, dir := range cur {
			if !hasGlob(part) {
				next = append(next, path.Join(dir, part))
				continue
			}
			names, err := fs.readDir(dir)
			if err != nil {
				continue // not a directory: no match below it
			}
			sort.Strings(names)
			for _, n := range names {
				ok, err := path.Match(part, n)
				if err != nil {
					return nil, fmt.Errorf("bad pattern %q: %w", pattern, err)
				}
				if ok {
					next = append(next, path.Join(dir, n))
				}
			}
		}
		cur = next
	}
	var out []string
	for _, c := range cur {
		if skip(c, "") {
			continue
		}
		if _, err := fs.lstat(c); err == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// digestMatches hashes what a copy of ms would write: paths, types,
// permission bits, link targets and file contents. Timestamps and owners
// are left out, as buildkit does, so a touch does not bust the cache.
// fh, when set, spares reading files that did not change.
func digestMatches(fs *srcFS, ms []match, fh *fileHashes) (string, error) {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for _, m := range ms {
		fmt.Fprintf(h, "match %q dir=%v prefix=%q\n", m.rel, m.dir, m.prefix)
		for i := range m.entries {
			e := &m.entries[i]
			fmt.Fprintf(h, "%q %o %d %q", e.dst, e.st.Mode, e.st.Size, e.link)
			if e.isReg() {
				d, err := fh.digest(fs, e.rel, &e.st, buf)
				if err != nil {
					return "", err
				}
				h.Write([]byte(" " + d))
			}
			h.Write([]byte{'\n'})
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
