package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Snapshot is a container's writable filesystem: the image's layers as
// overlay lowers plus its own upper directory.
type Snapshot struct {
	Key     string          `json:"key"`
	Image   digest.Digest   `json:"image"` // manifest digest; GC keeps the image's content
	Ref     string          `json:"ref,omitempty"`
	Chains  []digest.Digest `json:"chains"`         // unpacked layers in use
	Flat    digest.Digest   `json:"flat,omitempty"` // flattened lower part, if any
	Mounts  []specs.Mount   `json:"mounts"`
	Created time.Time       `json:"created"`
}

var keyPattern = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// mountPage is the limit of mount(2)'s data argument (one page, with NUL).
const mountPage = 4096

func (s *Store) snapshotDir(key string) string { return s.path("snapshots", key) }

// Prepare creates the snapshot key on top of img and returns the mounts
// that build its root filesystem (Destination "/"). Layers are unpacked as
// needed. Images too deep for one overlay option string get their lower
// layers flattened into one directory (cached per chain ID).
func (s *Store) Prepare(ctx context.Context, key string, img *Image) ([]specs.Mount, error) {
	if !keyPattern().MatchString(key) {
		return nil, fmt.Errorf("invalid snapshot key %q", key)
	}
	release, err := s.lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if exists(s.snapshotDir(key)) {
		return nil, fmt.Errorf("snapshot %s: %w", key, ErrExists)
	}
	if err := s.Unpack(ctx, img); err != nil {
		return nil, err
	}
	snap := Snapshot{Key: key, Image: img.ManifestDigest, Ref: img.Ref, Chains: img.ChainIDs(), Created: time.Now().UTC()}
	upper, work := filepath.Join(s.snapshotDir(key), "upper"), filepath.Join(s.snapshotDir(key), "work")
	lowers, flat, err := s.lowers(ctx, img, len(upper)+len(work))
	if err != nil {
		return nil, err
	}
	snap.Flat = flat
	opts := []string{"lowerdir=" + strings.Join(lowers, ":"), "upperdir=" + upper, "workdir=" + work}
	if overlayVolatile() {
		opts = append(opts, "volatile")
	}
	snap.Mounts = []specs.Mount{{Type: "overlay", Source: "overlay", Destination: "/", Options: opts}}
	tmp, err := os.MkdirTemp(s.path("tmp"), "snap-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return nil, err
		}
	}
	b, _ := json.MarshalIndent(snap, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), b, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, s.snapshotDir(key)); err != nil {
		if exists(s.snapshotDir(key)) {
			return nil, fmt.Errorf("snapshot %s: %w", key, ErrExists)
		}
		return nil, err
	}
	return snap.Mounts, nil
}

// lowers lists overlay lowerdirs, top first, flattening the bottom of the
// stack when the option string would not fit a page.
func (s *Store) lowers(ctx context.Context, img *Image, fixed int) ([]string, digest.Digest, error) {
	chains := img.ChainIDs()
	if len(chains) == 0 {
		empty := s.path("empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return nil, "", err
		}
		return []string{empty}, "", nil
	}
	per := len(s.path("l")) + 1 + shortLen + 1
	budget := mountPage - 1 - fixed - len("lowerdir=,upperdir=,workdir=,volatile") - 64
	n := len(chains)
	keep := n // layers mounted individually; the rest are flattened
	if n*per > budget {
		keep = budget/per - 1
		if keep < 1 {
			return nil, "", fmt.Errorf("store root %s is too long for overlay mount options", s.root)
		}
	}
	var lowers []string
	for i := n - 1; i >= n-keep; i-- {
		lowers = append(lowers, s.path("l", chains[i].Encoded()[:shortLen]))
	}
	if keep == n {
		return lowers, "", nil
	}
	name, err := s.flatten(ctx, img, n-keep)
	if err != nil {
		return nil, "", err
	}
	return append(lowers, s.path("l", name)), chains[n-keep-1], nil
}

// Mounts returns the mounts of an existing snapshot.
func (s *Store) Mounts(key string) ([]specs.Mount, error) {
	snap, err := s.snapshot(key)
	if err != nil {
		return nil, err
	}
	return snap.Mounts, nil
}

// UpperDir is the snapshot's writable directory (what Commit turns into a
// layer).
func (s *Store) UpperDir(key string) string { return filepath.Join(s.snapshotDir(key), "upper") }

func (s *Store) snapshot(key string) (*Snapshot, error) {
	if !keyPattern().MatchString(key) {
		return nil, fmt.Errorf("invalid snapshot key %q", key)
	}
	b, err := os.ReadFile(filepath.Join(s.snapshotDir(key), "meta.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("snapshot %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var snap Snapshot
	return &snap, json.Unmarshal(b, &snap)
}

// Snapshots lists every snapshot.
func (s *Store) Snapshots() ([]*Snapshot, error) {
	ents, err := os.ReadDir(s.path("snapshots"))
	if err != nil {
		return nil, err
	}
	var out []*Snapshot
	for _, e := range ents {
		if snap, err := s.snapshot(e.Name()); err == nil {
			out = append(out, snap)
		}
	}
	return out, nil
}

// RemoveSnapshot deletes a snapshot (which must no longer be mounted).
// Removing a missing snapshot is not an error.
func (s *Store) RemoveSnapshot(ctx context.Context, key string) error {
	if !keyPattern().MatchString(key) {
		return fmt.Errorf("invalid snapshot key %q", key)
	}
	release, err := s.lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	return s.removeTree(s.snapshotDir(key))
}
