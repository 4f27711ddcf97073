package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPlatformSelection(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	amd, err := s.ImportRootfs(ctx, busyboxRootfs(t), "", ocispec.ImageConfig{Cmd: []string{"amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	arm, err := s.ImportRootfs(ctx, busyboxRootfs(t), "", ocispec.ImageConfig{Cmd: []string{"arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageManifest, Digest: arm.ManifestDigest, Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: amd.ManifestDigest, Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
	}}
	idx.SchemaVersion = 2
	b, _ := json.Marshal(idx)
	d, err := s.WriteBlob(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRef(ctx, "multi:1", d); err != nil {
		t.Fatal(err)
	}
	got, err := s.ResolvePlatform("multi:1", ocispec.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil || got.ManifestDigest != amd.ManifestDigest {
		t.Fatalf("amd64: %v %v", got, err)
	}
	got, err = s.ResolvePlatform("multi:1", ocispec.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil || got.ManifestDigest != arm.ManifestDigest {
		t.Fatalf("arm64: %v %v", got, err)
	}
	if _, err := s.ResolvePlatform("multi:1", ocispec.Platform{OS: "linux", Architecture: "s390x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("s390x: %v", err)
	}
	// The dangling single-platform images go; the index keeps both alive.
	if _, _, err := s.Prune(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, img := range []*Image{amd, arm} {
		if !s.Has(img.ManifestDigest) || !s.Has(img.Layers[0].Digest) {
			t.Errorf("gc dropped %s, reachable from the index", img.ManifestDigest)
		}
	}
}
