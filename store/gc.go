package store

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	"golang.org/x/sys/unix"
)

// GCStats say what a collection reclaimed.
type GCStats struct {
	Blobs, Layers, Scratch int
	Bytes                  int64
}

type marks struct {
	blobs  map[string]bool // hex
	chains map[string]bool // hex of layers/ and flat/ dirs
}

// GC removes every blob and unpacked layer that no reference and no
// snapshot needs, and all scratch left by interrupted operations. It waits
// for operations in flight (they hold the GC lock shared) and holds off new
// ones while it runs.
func (s *Store) GC(ctx context.Context) (GCStats, error) {
	unlock, err := s.lock(ctx, "gc.lock", unix.LOCK_EX)
	if err != nil {
		return GCStats{}, err
	}
	defer unlock()
	m, err := s.mark()
	if err != nil {
		return GCStats{}, err
	}
	return s.sweep(m), nil
}

func (s *Store) mark() (*marks, error) {
	m := &marks{blobs: map[string]bool{}, chains: map[string]bool{}}
	idx, err := s.readRefs()
	if err != nil {
		return nil, err
	}
	for _, r := range idx {
		s.markManifest(m, r.Target, 0)
	}
	snaps, err := s.Snapshots()
	if err != nil {
		return nil, err
	}
	for _, sn := range snaps {
		s.markManifest(m, sn.Image, 0)
		for _, c := range sn.Chains {
			m.chains[c.Encoded()] = true
		}
		if sn.Flat != "" {
			m.chains[sn.Flat.Encoded()] = true
		}
	}
	// Keep the lowers of snapshots whose meta.json is unreadable: a
	// mounted container must never lose them.
	return m, nil
}

// markManifest marks a manifest or index and everything it reaches that
// is stored (an index may name platforms never pulled).
func (s *Store) markManifest(m *marks, d digest.Digest, depth int) {
	if depth > 4 || d.Validate() != nil {
		return
	}
	m.blobs[d.Encoded()] = true
	b, err := s.ReadBlob(d)
	if err != nil {
		return
	}
	var doc manifestOrIndex
	if json.Unmarshal(b, &doc) != nil {
		return
	}
	for _, c := range doc.Manifests {
		s.markManifest(m, c.Digest, depth+1)
	}
	if doc.Config == nil {
		return
	}
	m.blobs[doc.Config.Digest.Encoded()] = true
	for _, l := range doc.Layers {
		m.blobs[l.Digest.Encoded()] = true
	}
	cb, err := s.ReadBlob(doc.Config.Digest)
	if err != nil {
		return
	}
	var cfg struct {
		RootFS struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if json.Unmarshal(cb, &cfg) != nil {
		return
	}
	for _, c := range identity.ChainIDs(cfg.RootFS.DiffIDs) {
		m.chains[c.Encoded()] = true
	}
}

func (s *Store) sweep(m *marks) GCStats {
	var st GCStats
	for _, e := range readDir(s.path("blobs", "sha256")) {
		if !m.blobs[e.Name()] {
			st.Bytes += size(filepath.Join(s.path("blobs", "sha256"), e.Name()))
			if os.Remove(filepath.Join(s.path("blobs", "sha256"), e.Name())) == nil {
				st.Blobs++
			}
		}
	}
	for _, e := range readDir(s.path("sources")) {
		if !m.blobs[e.Name()] {
			os.Remove(filepath.Join(s.path("sources"), e.Name()))
		}
	}
	for _, kind := range []string{"layers", "flat"} {
		for _, e := range readDir(s.path(kind)) {
			if !m.chains[e.Name()] {
				p := filepath.Join(s.path(kind), e.Name())
				st.Bytes += size(p)
				if s.removeTree(p) == nil {
					st.Layers++
				}
			}
		}
	}
	for _, e := range readDir(s.path("l")) {
		p := filepath.Join(s.path("l"), e.Name())
		if _, err := os.Stat(p); err != nil || strings.Contains(e.Name(), ".tmp-") {
			os.Remove(p)
		}
	}
	for _, dir := range []string{"ingest", "tmp"} {
		for _, e := range readDir(s.path(dir)) {
			p := filepath.Join(s.path(dir), e.Name())
			st.Bytes += size(p)
			if os.RemoveAll(p) == nil {
				st.Scratch++
			}
		}
	}
	return st
}

func readDir(p string) []os.DirEntry {
	ents, _ := os.ReadDir(p)
	return ents
}

// size is the disk usage of a file or tree, hard links counted once.
func size(p string) int64 {
	var n int64
	seen := map[uint64]bool{}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(q, &st) != nil || seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		n += st.Blocks * 512
		return nil
	})
	return n
}

// Prune drops dangling images (all images no snapshot uses, with all) and
// collects garbage. It returns the references removed.
func (s *Store) Prune(ctx context.Context, all bool) ([]string, GCStats, error) {
	snaps, err := s.Snapshots()
	if err != nil {
		return nil, GCStats{}, err
	}
	used := map[digest.Digest]bool{}
	for _, sn := range snaps {
		used[sn.Image] = true
	}
	var removed []string
	err = s.updateRefs(ctx, func(idx refIndex) error {
		for k, r := range idx {
			if used[r.Target] || !(all || danglingKey(k)) {
				continue
			}
			delete(idx, k)
			removed = append(removed, k)
		}
		return nil
	})
	if err != nil {
		return nil, GCStats{}, err
	}
	st, err := s.GC(ctx)
	return removed, st, err
}

// Usage is what berth system df reports.
type Usage struct {
	Images, Layers, Snapshots             int
	ImageBytes, LayerBytes, SnapshotBytes int64
	ReclaimableBytes                      int64 // content no reference or snapshot needs
}

// DiskUsage measures the store.
func (s *Store) DiskUsage() (Usage, error) {
	var u Usage
	imgs, err := s.List()
	if err != nil {
		return u, err
	}
	u.Images = len(imgs)
	m, err := s.mark()
	if err != nil {
		return u, err
	}
	for _, e := range readDir(s.path("blobs", "sha256")) {
		n := size(filepath.Join(s.path("blobs", "sha256"), e.Name()))
		u.ImageBytes += n
		if !m.blobs[e.Name()] {
			u.ReclaimableBytes += n
		}
	}
	for _, kind := range []string{"layers", "flat"} {
		for _, e := range readDir(s.path(kind)) {
			n := size(filepath.Join(s.path(kind), e.Name()))
			u.Layers++
			u.LayerBytes += n
			if !m.chains[e.Name()] {
				u.ReclaimableBytes += n
			}
		}
	}
	snaps, _ := s.Snapshots()
	u.Snapshots = len(snaps)
	for _, sn := range snaps {
		u.SnapshotBytes += size(s.UpperDir(sn.Key))
	}
	return u, nil
}
