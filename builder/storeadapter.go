package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-dev/berth/store"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// LayerStore adapts berth's layer store to what the builder consumes. Each
// step's rootfs is a store snapshot whose overlay is mounted under
// <store root>/builder-mnt while the step runs.
type LayerStore struct {
	S        *store.Store
	Progress io.Writer // pull progress
}

// Image implements Store.
func (l *LayerStore) Image(ctx context.Context, ref string) (*BaseImage, error) {
	img, err := l.S.Resolve(ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return l.base(img)
}

// Pull implements Store.
func (l *LayerStore) Pull(ctx context.Context, ref string) (*BaseImage, error) {
	img, err := l.S.Pull(ctx, ref, store.RegistryOptions{Progress: l.Progress})
	if err != nil {
		return nil, err
	}
	return l.base(img)
}

func (l *LayerStore) base(img *store.Image) (*BaseImage, error) {
	cfg, err := l.S.ReadBlob(img.ConfigDigest)
	if err != nil {
		return nil, err
	}
	bi := &BaseImage{ID: img.ConfigDigest, Config: cfg}
	for i, d := range img.Layers {
		bi.Layers = append(bi.Layers, Layer{Digest: d.Digest, DiffID: img.DiffIDs()[i], Size: d.Size, MediaType: d.MediaType})
	}
	return bi, nil
}

// WriteLayer implements LayerWriter: the tar stream is stored as an
// uncompressed layer.
func (l *LayerStore) WriteLayer(ctx context.Context, write func(io.Writer) error) (*Layer, error) {
	sl, err := l.S.WriteLayer(ctx, write)
	if err != nil {
		return nil, err
	}
	return &Layer{Digest: sl.Descriptor.Digest, DiffID: sl.DiffID, Size: sl.Descriptor.Size, MediaType: sl.Descriptor.MediaType}, nil
}

// HasLayer implements Store.
func (l *LayerStore) HasLayer(ctx context.Context, layer Layer) bool { return l.S.Has(layer.Digest) }

// PutImage implements Store. The config is stored byte for byte (it carries
// Docker's Healthcheck, OnBuild and Shell, which ocispec.Image lacks).
func (l *LayerStore) PutImage(ctx context.Context, config []byte, layers []Layer, tags []string) (digest.Digest, error) {
	md, _, err := l.writeManifest(ctx, config, layers)
	if err != nil {
		return "", err
	}
	for _, t := range tags {
		if img, err := l.S.Resolve(t); err == nil && img.ManifestDigest == md {
			continue
		}
		if err := l.S.SetRef(ctx, t, md); err != nil {
			return "", fmt.Errorf("tag %s: %w", t, err)
		}
	}
	return digest.FromBytes(config), nil
}

func (l *LayerStore) writeManifest(ctx context.Context, config []byte, layers []Layer) (digest.Digest, *ocispec.Manifest, error) {
	cd, err := l.writeBlob(ctx, config)
	if err != nil {
		return "", nil, err
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(config))}}
	m.SchemaVersion = 2
	m.Layers = []ocispec.Descriptor{}
	for _, ly := range layers {
		if !l.S.Has(ly.Digest) {
			return "", nil, fmt.Errorf("layer %s is missing from the store", ly.Digest)
		}
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ly.MediaType, Digest: ly.Digest, Size: ly.Size})
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return "", nil, err
	}
	md, err := l.writeBlob(ctx, mb)
	return md, &m, err
}

// writeBlob skips blobs the store has: a cached rebuild writes nothing.
func (l *LayerStore) writeBlob(ctx context.Context, b []byte) (digest.Digest, error) {
	if d := digest.FromBytes(b); l.S.Has(d) {
		return d, nil
	}
	return l.S.WriteBlob(ctx, b)
}

// Prepare implements Store: a snapshot over layers, mounted for the builder.
func (l *LayerStore) Prepare(ctx context.Context, layers []Layer) (Rootfs, error) {
	cfg := ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}}}
	cfg.OS, cfg.Architecture = "linux", store.DefaultPlatform().Architecture
	for _, ly := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, ly.DiffID)
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	md, m, err := l.writeManifest(ctx, cb, layers)
	if err != nil {
		return nil, err
	}
	img := &store.Image{ManifestDigest: md, ConfigDigest: m.Config.Digest, Manifest: *m, Config: cfg, Layers: m.Layers}
	var rnd [8]byte
	rand.Read(rnd[:])
	key := buildKeyPrefix + hex.EncodeToString(rnd[:])
	lock, err := lockBuildKey(l.S, key, 0)
	if err != nil {
		return nil, err
	}
	mounts, err := l.S.Prepare(ctx, key, img)
	if err != nil {
		unlockBuildKey(l.S, key, lock)
		return nil, err
	}
	rf := &storeRootfs{s: l.S, key: key, mounts: mounts, lock: lock}
	if err := rf.mount(); err != nil {
		rf.Release(ctx)
		return nil, err
	}
	return rf, nil
}

type storeRootfs struct {
	s       *store.Store
	key     string
	mounts  []specs.Mount
	dir     string
	mounted bool
	lock    *os.File // held while the snapshot is in use, see Cleanup
}

const buildKeyPrefix = "build-"

func mntDir(s *store.Store) string { return filepath.Join(s.Root(), "builder-mnt") }

// lockBuildKey takes the lock that marks snapshot key as in use by this
// process; flock locks die with their process, so a snapshot whose lock
// can be taken belongs to a build that was killed.
func lockBuildKey(s *store.Store, key string, how int) (*os.File, error) {
	if err := os.MkdirAll(mntDir(s), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(mntDir(s), key+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func unlockBuildKey(s *store.Store, key string, f *os.File) {
	os.Remove(filepath.Join(mntDir(s), key+".lock"))
	f.Close()
}

// Cleanup removes what builds killed mid-step left: their mounts and
// snapshots. Builds running in other processes hold their locks and are
// left alone.
func (l *LayerStore) Cleanup(ctx context.Context) error {
	snaps, err := l.S.Snapshots()
	if err != nil {
		return err
	}
	var errs []error
	for _, sn := range snaps {
		if !strings.HasPrefix(sn.Key, buildKeyPrefix) {
			continue
		}
		lock, err := lockBuildKey(l.S, sn.Key, unix.LOCK_NB)
		if err != nil {
			continue // in use
		}
		dir := filepath.Join(mntDir(l.S), sn.Key)
		unix.Unmount(dir, unix.MNT_DETACH)
		os.Remove(dir)
		errs = append(errs, l.S.RemoveSnapshot(ctx, sn.Key))
		unlockBuildKey(l.S, sn.Key, lock)
	}
	return errors.Join(errs...)
}

func (r *storeRootfs) mount() error {
	r.dir = filepath.Join(mntDir(r.s), r.key)
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		return err
	}
	for _, m := range r.mounts {
		if m.Destination != "/" {
			return fmt.Errorf("unexpected snapshot mount at %s", m.Destination)
		}
		opts := m.Options
		if m.Type == "overlay" && !slices.Contains(opts, "volatile") {
			// a step's upper dir is thrown away after a crash anyway:
			// volatile skips the sync of the whole upper filesystem
			// that unmounting an overlay otherwise costs (the store
			// asks for it itself where the kernel has it)
			opts = append(slices.Clone(opts), "volatile")
		}
		err := unix.Mount(m.Source, r.dir, m.Type, 0, strings.Join(opts, ","))
		if err == unix.EINVAL && m.Type == "overlay" {
			plain := slices.DeleteFunc(slices.Clone(opts), func(o string) bool { return o == "volatile" })
			err = unix.Mount(m.Source, r.dir, m.Type, 0, strings.Join(plain, ","))
		}
		if err != nil {
			return fmt.Errorf("mount %s rootfs: %w", m.Type, err)
		}
		r.mounted = true
	}
	return nil
}

func (r *storeRootfs) Path() string          { return r.dir }
func (r *storeRootfs) Mounts() []specs.Mount { return r.mounts }

func (r *storeRootfs) unmount() error {
	if !r.mounted {
		return nil
	}
	if err := unix.Unmount(r.dir, 0); err != nil {
		if err := unix.Unmount(r.dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", r.dir, err)
		}
	}
	r.mounted = false
	return nil
}

// Commit unmounts the overlay (so its upper directory is settled) and
// stores the upper directory as a layer; an empty upper is no layer.
func (r *storeRootfs) Commit(ctx context.Context) (*Layer, error) {
	if err := r.unmount(); err != nil {
		return nil, err
	}
	names, err := readDirNames(r.s.UpperDir(r.key))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, nil
	}
	sl, err := r.s.Commit(ctx, r.key)
	if err != nil {
		return nil, err
	}
	return &Layer{Digest: sl.Descriptor.Digest, DiffID: sl.DiffID, Size: sl.Descriptor.Size, MediaType: sl.Descriptor.MediaType}, nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// Release implements Rootfs.
func (r *storeRootfs) Release(ctx context.Context) error {
	err := r.unmount()
	if r.dir != "" && err == nil {
		os.Remove(r.dir)
	}
	err = errors.Join(err, r.s.RemoveSnapshot(ctx, r.key))
	if err == nil && r.lock != nil {
		unlockBuildKey(r.s, r.key, r.lock)
		r.lock = nil
	}
	return err
}
