package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/berth-dev/berth/store/archive"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const shortLen = 12

func (s *Store) layerDir(chain digest.Digest) string { return s.path("layers", chain.Encoded()) }
func (s *Store) flatDir(chain digest.Digest) string  { return s.path("flat", chain.Encoded()) }

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// Unpack makes every layer of img available as a read-only directory,
// unpacking (in parallel) those no other image has unpacked yet.
func (s *Store) Unpack(ctx context.Context, img *Image) error {
	release, err := s.lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	chains, diffIDs := img.ChainIDs(), img.DiffIDs()
	var wg sync.WaitGroup
	errs := make([]error, len(chains))
	sem := make(chan struct{}, 3)
	for i, c := range chains {
		if exists(filepath.Join(s.layerDir(c), "fs")) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, errs[i], _ = s.unpacking.Do(c.String(), func() (any, error) {
				return nil, s.unpackLayer(ctx, img.Layers[i], diffIDs[i], c)
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, c := range chains {
		if err := s.shortLink(c.Encoded(), filepath.Join("..", "layers", c.Encoded(), "fs")); err != nil {
			return err
		}
	}
	return nil
}

// unpackStarted, when set (by tests), is called as each extraction of a
// layer starts.
var unpackStarted func(chain digest.Digest)

func (s *Store) unpackLayer(ctx context.Context, desc ocispec.Descriptor, diffID, chain digest.Digest) error {
	if unpackStarted != nil {
		unpackStarted(chain)
	}
	tmp, err := os.MkdirTemp(s.path("tmp"), "layer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := s.applyBlob(ctx, dir, desc, diffID, archive.Overlay); err != nil {
		return fmt.Errorf("unpack layer %s: %w", desc.Digest, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "diffid"), []byte(diffID), 0o600); err != nil {
		return err
	}
	return renameInto(tmp, s.layerDir(chain))
}

// renameInto renames the new tree into place; losing the race to another
// unpacker of the same chain is success. Unpacked trees are not fsynced
// (syncfs would flush every other writer's data on the filesystem too):
// they are a cache that a kill cannot tear, because they appear by rename,
// and that can be rebuilt from the verified blobs.
func renameInto(tmp, dst string) error {
	err := os.Rename(tmp, dst)
	if err != nil && exists(dst) {
		return nil
	}
	return err
}

// applyBlob extracts a stored layer blob into dir, verifying the blob's
// digest and the uncompressed diff ID as it reads.
func (s *Store) applyBlob(ctx context.Context, dir string, desc ocispec.Descriptor, diffID digest.Digest, mode archive.Mode) error {
	f, err := s.OpenBlob(desc.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	blobHash, diffHash := digest.SHA256.Digester(), digest.SHA256.Digester()
	zr, _, err := archive.Decompress(io.TeeReader(f, blobHash.Hash()))
	if err != nil {
		return err
	}
	defer zr.Close()
	// Hash in the prefetch goroutine, then drain: tar stops before the
	// end-of-archive padding, and the diff ID covers it.
	src := archive.Prefetch(io.TeeReader(zr, diffHash.Hash()), 256<<10, 8)
	defer src.Close()
	if _, err := archive.Extract(ctx, dir, src, archive.Options{Mode: mode}); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, f); err != nil {
		return err
	}
	if blobHash.Digest() != desc.Digest {
		return fmt.Errorf("layer blob %s: %w", desc.Digest, ErrDigest)
	}
	if diffHash.Digest() != diffID {
		return fmt.Errorf("layer %s: diff ID %s, config says %s: %w", desc.Digest, diffHash.Digest(), diffID, ErrDigest)
	}
	return nil
}

// shortLink makes l/<name[:12]> point at target, so that overlay option
// strings stay short.
func (s *Store) shortLink(name, target string) error {
	link := s.path("l", name[:shortLen])
	if cur, err := os.Readlink(link); err == nil {
		if cur == target {
			return nil
		}
		return fmt.Errorf("short layer name %s taken by %s", link, cur)
	}
	// A private temp name per call: goroutines of one process may race
	// here for the same layer.
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := fmt.Sprintf("%s.tmp-%x", link, rnd)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// flatten applies layers [0, n) of img into one directory, for images too
// deep for one overlay mount.
func (s *Store) flatten(ctx context.Context, img *Image, n int) (string, error) {
	chain := img.ChainIDs()[n-1]
	name := "z" + chain.Encoded()[:shortLen-1] // "z" is not hex: never a layer's name
	if !exists(filepath.Join(s.flatDir(chain), "fs")) {
		_, err, _ := s.unpacking.Do("flat:"+chain.String(), func() (any, error) {
			return nil, s.flattenInto(ctx, img, n, s.flatDir(chain))
		})
		if err != nil {
			return "", err
		}
	}
	return name, s.shortLink(name, filepath.Join("..", "flat", chain.Encoded(), "fs"))
}

func (s *Store) flattenInto(ctx context.Context, img *Image, n int, dst string) error {
	tmp, err := os.MkdirTemp(s.path("tmp"), "flat-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for i := range n {
		if err := s.applyBlob(ctx, dir, img.Layers[i], img.DiffIDs()[i], archive.Flatten); err != nil {
			return fmt.Errorf("flatten layer %d: %w", i, err)
		}
	}
	return renameInto(tmp, dst)
}

// removeTree moves dir into tmp/ (atomic) and deletes it; a crash leaves
// only scratch. It is renamed to a random name there rather than into a
// new temporary directory: on an ext4 with many files freed lately (every
// recreate frees dozens) each new inode costs the allocator a scan.
func (s *Store) removeTree(dir string) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	gone := s.path("tmp", fmt.Sprintf("rm-%x", rnd))
	if err := os.Rename(dir, gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(gone)
}
