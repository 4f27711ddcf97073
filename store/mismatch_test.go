package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func oneFileTar(name, body string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	return b.Bytes()
}

// An image whose config names other content than its layer holds never
// unpacks, and leaves no layer directory behind.
func TestUnpackDiffIDMismatchLeavesNothing(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	layer := oneFileTar("f", "real")
	d, n, err := s.IngestAny(ctx, bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	lie := digest.FromBytes(oneFileTar("f", "claimed"))
	img, err := s.WriteImage(ctx, ocispec.Image{RootFS: ocispec.RootFS{DiffIDs: []digest.Digest{lie}}},
		[]ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: n}}, "liar")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unpack(ctx, img); !errors.Is(err, ErrDigest) {
		t.Fatalf("unpack: %v, want ErrDigest", err)
	}
	if ents := readDir(s.path("layers")); len(ents) != 0 {
		t.Errorf("layer dirs after a mismatch: %d", len(ents))
	}
	if ents := readDir(s.path("tmp")); len(ents) != 0 {
		t.Errorf("scratch after a mismatch: %d", len(ents))
	}
}

// A docker-archive whose layer.tar does not match the config's diff_ids
// is refused and tags nothing.
func TestLoadMismatchRefused(t *testing.T) {
	s := openStore(t)
	cfg, _ := json.Marshal(ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("other")}}})
	manifest, _ := json.Marshal([]dockerManifest{{Config: "c.json", RepoTags: []string{"evil:1"}, Layers: []string{"l/layer.tar"}}})
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range []struct {
		name string
		body []byte
	}{{"c.json", cfg}, {"l/layer.tar", oneFileTar("f", "x")}, {"manifest.json", manifest}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		tw.Write(f.body)
	}
	tw.Close()
	if _, err := s.Load(context.Background(), &b); !errors.Is(err, ErrDigest) {
		t.Fatalf("load: %v, want ErrDigest", err)
	}
	if _, err := s.Resolve("evil:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("evil:1 was tagged: %v", err)
	}
}
