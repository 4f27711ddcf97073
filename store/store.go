// Package store is berth's layer store: digest-addressed blobs, an index of
// image references, layers unpacked once per chain ID, overlayfs snapshots
// for containers, archive import/export, registry pull/push and garbage
// collection. Everything lives under <root>/store:
//
//	blobs/sha256/<hex>   verified content (manifests, configs, layers)
//	refs.json            reference → manifest digest, replaced atomically
//	layers/<chain hex>/  one unpacked layer (fs/), read-only once renamed in
//	flat/<chain hex>/    layers 1..n applied into one directory (deep images)
//	l/<short>            short symlinks to layer dirs, for overlay options
//	snapshots/<key>/     a container's upper/ and work/ plus meta.json
//	ingest/, tmp/        scratch: anything there is garbage unless an
//	                     operation holding the shared GC lock is running
//
// Every mutation holds the GC lock shared; GC holds it exclusively, so
// whatever it finds unreferenced, and everything in the scratch dirs, is
// garbage. Files and directories appear by rename only, so a process killed
// at any instant leaves either the old or the new state plus scratch.
package store

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/sync/singleflight"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/topdir"
)

// Store is an open layer store. It is safe for concurrent use by several
// goroutines and several processes.
type Store struct {
	root string // <state root>/store
	// unpacking makes the goroutines of one process that need the same
	// layer (fifty containers of one image on a first up) wait for one
	// extraction instead of each extracting its own copy and throwing
	// it away at the rename. Other processes still race, harmlessly.
	unpacking singleflight.Group
}

// ErrNotFound is returned for unknown references, digests and snapshots.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when creating something that already exists.
var ErrExists = errors.New("already exists")

var storeDirs = []string{"blobs/sha256", "layers", "flat", "l", "snapshots", "ingest", "tmp"}

// Open opens (creating if needed) the store under stateRoot.
func Open(stateRoot string) (*Store, error) {
	root := filepath.Join(stateRoot, "store")
	for _, d := range storeDirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
		if d == "snapshots" || d == "tmp" {
			// one directory per snapshot (made in tmp, renamed in)
			topdir.Mark(filepath.Join(root, d))
		}
	}
	return &Store{root: root}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// lock takes an flock on one of the store's lock files, waiting until ctx
// is done. Each call opens its own file description, so goroutines of one
// process exclude each other like processes do.
func (s *Store) lock(ctx context.Context, name string, how int) (func(), error) {
	f, err := os.OpenFile(s.path(name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for delay := time.Millisecond; ; delay = min(delay*2, 100*time.Millisecond) {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// lease marks an operation in flight: GC waits until it ends, so blobs and
// directories the operation has written but not yet referenced survive.
func (s *Store) lease(ctx context.Context) (func(), error) {
	return s.lock(ctx, "gc.lock", unix.LOCK_SH)
}

// writeFileAtomic replaces name with data: temp file, fsync, rename.
func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
