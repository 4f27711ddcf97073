package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestGCKeepsReferencedAndSnapshotted(t *testing.T) {
	needRoot(t) // layers unpack with their owners
	s := openStore(t)
	ctx := context.Background()
	rootfs := busyboxRootfs(t)
	used, err := s.ImportRootfs(ctx, rootfs, "used", ocispec.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(rootfs, "etc/other"), []byte("x"), 0o644)
	gone, err := s.ImportRootfs(ctx, rootfs, "gone", ocispec.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.ImportRootfs(ctx, busyboxRootfs(t), "kept", ocispec.ImageConfig{Cmd: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "c", used); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpack(ctx, gone); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.path("ingest", "blob-crashed"), []byte("partial"), 0o600)
	os.Mkdir(s.path("tmp", "layer-crashed"), 0o700)
	for _, r := range []string{"used", "gone"} {
		if _, err := s.Untag(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs == 0 || st.Layers != 1 || st.Scratch != 2 {
		t.Errorf("gc stats %+v", st)
	}
	for _, img := range []*Image{used, kept} {
		for _, d := range append([]ocispec.Descriptor{img.Manifest.Config}, img.Layers...) {
			if !s.Has(d.Digest) {
				t.Errorf("gc removed %s", d.Digest)
			}
		}
		if img == used && !exists(s.layerDir(img.ChainIDs()[0])) {
			t.Errorf("gc removed layer dir of %s", img.ManifestDigest)
		}
	}
	if s.Has(gone.ManifestDigest) || exists(s.layerDir(gone.ChainIDs()[0])) {
		t.Errorf("gc kept the unreferenced image")
	}
	// A lease holds GC off.
	release, _ := s.lease(ctx)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.GC(short); err == nil {
		t.Errorf("gc ran during a lease")
	}
	release()
	s.RemoveSnapshot(ctx, "c")
	removed, _, err := s.Prune(ctx, true)
	if err != nil || len(removed) != 1 {
		t.Errorf("prune -a removed %v, %v", removed, err)
	}
	if u, _ := s.DiskUsage(); u.Images != 0 || u.Layers != 0 || u.ImageBytes != 0 {
		t.Errorf("after prune: %+v", u)
	}
}
