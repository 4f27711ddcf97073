package store

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// refRecord is one entry of refs.json. Keys are normalised references, or
// a manifest digest ("sha256:…") for an image that has lost its last name
// but is kept (docker's dangling images).
type refRecord struct {
	Target  digest.Digest `json:"target"` // manifest or index digest
	Created time.Time     `json:"created"`
}

type refIndex map[string]refRecord

func danglingKey(k string) bool { return strings.HasPrefix(k, "sha256:") }

func (s *Store) readRefs() (refIndex, error) {
	b, err := os.ReadFile(s.path("refs.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return refIndex{}, nil
	}
	if err != nil {
		return nil, err
	}
	idx := refIndex{}
	return idx, json.Unmarshal(b, &idx)
}

// updateRefs applies f to the index under the refs lock and writes it back
// atomically when f returns nil.
func (s *Store) updateRefs(ctx context.Context, f func(refIndex) error) error {
	release, err := s.lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	unlock, err := s.lock(ctx, "refs.lock", unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := s.readRefs()
	if err != nil {
		return err
	}
	if err := f(idx); err != nil {
		return err
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path("refs.json"), b)
}

// setRef points name at target. An image that loses its last name this way
// stays as a dangling image, as with docker.
func setRef(idx refIndex, name string, target digest.Digest) {
	old, had := idx[name]
	idx[name] = refRecord{Target: target, Created: time.Now().UTC()}
	delete(idx, target.String())
	if had && old.Target != target && !idx.targets()[old.Target] {
		idx[old.Target.String()] = old
	}
}

func (idx refIndex) targets() map[digest.Digest]bool {
	m := map[digest.Digest]bool{}
	for _, r := range idx {
		m[r.Target] = true
	}
	return m
}

func (idx refIndex) names(target digest.Digest) []string {
	var out []string
	for k, r := range idx {
		if r.Target == target && !danglingKey(k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
