package store

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Reference is a parsed image reference in docker's normal form:
// docker.io/library/busybox:latest, registry:5000/team/app@sha256:….
type Reference struct {
	Domain string
	Path   string // repository path below the domain
	Tag    string
	Digest digest.Digest
}

var (
	pathComponent = lazyRegexp(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	tagPattern    = lazyRegexp(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	domainPattern = lazyRegexp(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$`)
)

// lazyRegexp compiles its pattern on first use: compiled at package
// initialisation, the patterns cost every berth process (and every
// container's init child, a re-exec of berth) their compile time.
func lazyRegexp(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}

// DefaultDomain is where names without a registry live.
const DefaultDomain = "docker.io"

// ParseReference normalises a docker-style reference: busybox →
// docker.io/library/busybox:latest. A reference with a digest keeps its tag
// only if one was given.
func ParseReference(s string) (Reference, error) {
	var r Reference
	rest := s
	if i := strings.Index(rest, "@"); i >= 0 {
		d, err := digest.Parse(rest[i+1:])
		if err != nil {
			return r, fmt.Errorf("invalid reference %q: %w", s, err)
		}
		r.Digest, rest = d, rest[:i]
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i:], "/") {
		r.Tag, rest = rest[i+1:], rest[:i]
		if !tagPattern().MatchString(r.Tag) {
			return r, fmt.Errorf("invalid tag in reference %q", s)
		}
	}
	first, remainder, hasSlash := strings.Cut(rest, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		if !domainPattern().MatchString(first) {
			return r, fmt.Errorf("invalid registry in reference %q", s)
		}
		r.Domain, r.Path = first, remainder
	} else {
		r.Domain, r.Path = DefaultDomain, rest
	}
	if r.Domain == "index.docker.io" {
		r.Domain = DefaultDomain
	}
	if r.Domain == DefaultDomain && !strings.Contains(r.Path, "/") {
		r.Path = "library/" + r.Path
	}
	for _, c := range strings.Split(r.Path, "/") {
		if !pathComponent().MatchString(c) {
			return r, fmt.Errorf("invalid reference %q: repository name must be lowercase", s)
		}
	}
	if len(r.Domain)+1+len(r.Path) > 255 {
		return r, fmt.Errorf("invalid reference %q: name too long", s)
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

// Name is domain/path.
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the normal form.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Familiar is the short form docker prints: busybox:latest.
func (r Reference) Familiar() string {
	return FamiliarName(r.Name()) + strings.TrimPrefix(r.String(), r.Name())
}

// FamiliarName shortens docker.io/library/x to x and docker.io/u/x to u/x.
func FamiliarName(name string) string {
	if n, ok := strings.CutPrefix(name, DefaultDomain+"/"); ok {
		return strings.TrimPrefix(n, "library/")
	}
	return name
}

// NormalizeRef returns the normal form of s.
func NormalizeRef(s string) (string, error) {
	r, err := ParseReference(s)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}
