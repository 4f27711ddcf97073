package store

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/berth-dev/berth/store/archive"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Archive formats for Save.
const (
	FormatDocker = "docker-archive" // docker save / docker load
	FormatOCI    = "oci-archive"    // an OCI image layout in a tar
)

// Save writes the images refs name to w as one archive in format.
func (s *Store) Save(ctx context.Context, w io.Writer, format string, refs ...string) error {
	var imgs []*Image
	for _, r := range refs {
		img, err := s.Resolve(r)
		if err != nil {
			return err
		}
		imgs = append(imgs, img)
	}
	release, err := s.lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	tw := tar.NewWriter(w)
	switch format {
	case FormatOCI, "oci":
		err = s.saveOCI(ctx, tw, imgs)
	case FormatDocker, "docker", "":
		err = s.saveDocker(ctx, tw, imgs)
	default:
		err = fmt.Errorf("unknown archive format %q (docker-archive, oci-archive)", format)
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

type tarFiles struct {
	tw   *tar.Writer
	seen map[string]bool
}

func (t *tarFiles) bytes(name string, b []byte) error {
	if t.seen[name] {
		return nil
	}
	t.seen[name] = true
	if err := t.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	_, err := t.tw.Write(b)
	return err
}

func (t *tarFiles) file(ctx context.Context, name string, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return t.stream(ctx, name, st.Size(), f)
}

func (t *tarFiles) stream(ctx context.Context, name string, size int64, r io.Reader) error {
	if t.seen[name] {
		return nil
	}
	t.seen[name] = true
	if err := t.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	_, err := io.Copy(t.tw, ctxReader{ctx, r})
	return err
}

func (t *tarFiles) dir(name string) error {
	if t.seen[name] {
		return nil
	}
	t.seen[name] = true
	return t.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)})
}

func (s *Store) saveOCI(ctx context.Context, tw *tar.Writer, imgs []*Image) error {
	t := &tarFiles{tw: tw, seen: map[string]bool{}}
	if err := t.bytes(ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := t.dir(d); err != nil {
			return err
		}
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	for _, img := range imgs {
		blobs := []digest.Digest{img.ManifestDigest, img.ConfigDigest}
		for _, l := range img.Layers {
			blobs = append(blobs, l.Digest)
		}
		for _, d := range blobs {
			if err := s.copyBlob(ctx, t, "blobs/sha256/"+d.Encoded(), d); err != nil {
				return err
			}
		}
		size, _ := s.BlobSize(img.ManifestDigest)
		desc := ocispec.Descriptor{MediaType: img.Manifest.MediaType, Digest: img.ManifestDigest, Size: size}
		if desc.MediaType == "" {
			desc.MediaType = ocispec.MediaTypeImageManifest
		}
		names := img.Names
		if img.Ref != "" {
			names = []string{img.Ref}
		}
		if len(names) == 0 {
			idx.Manifests = append(idx.Manifests, desc)
		}
		for _, n := range names {
			r, _ := ParseReference(n)
			d := desc
			d.Annotations = map[string]string{annotationImageName: n, ocispec.AnnotationRefName: r.Tag}
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return t.bytes("index.json", b)
}

func (s *Store) copyBlob(ctx context.Context, t *tarFiles, name string, d digest.Digest) error {
	if t.seen[name] {
		return nil
	}
	size, err := s.BlobSize(d)
	if err != nil {
		return err
	}
	r, err := s.VerifiedBlob(d)
	if err != nil {
		return err
	}
	defer r.Close()
	return t.stream(ctx, name, size, r)
}

// saveDocker writes docker's classic layout: <config hex>.json,
// <diff ID hex>/layer.tar (uncompressed, as docker load and skopeo expect)
// and manifest.json.
func (s *Store) saveDocker(ctx context.Context, tw *tar.Writer, imgs []*Image) error {
	t := &tarFiles{tw: tw, seen: map[string]bool{}}
	var manifest []dockerManifest
	for _, img := range imgs {
		cfgName := img.ConfigDigest.Encoded() + ".json"
		if err := s.copyBlob(ctx, t, cfgName, img.ConfigDigest); err != nil {
			return err
		}
		e := dockerManifest{Config: cfgName, RepoTags: []string{}}
		for i, l := range img.Layers {
			name := img.DiffIDs()[i].Encoded() + "/layer.tar"
			if err := t.dir(img.DiffIDs()[i].Encoded() + "/"); err != nil {
				return err
			}
			if err := s.saveLayerTar(ctx, t, name, l); err != nil {
				return err
			}
			e.Layers = append(e.Layers, name)
		}
		names := img.Names
		if img.Ref != "" {
			names = []string{img.Ref}
		}
		for _, n := range names {
			r, err := ParseReference(n)
			if err == nil && r.Tag != "" && r.Digest == "" {
				e.RepoTags = append(e.RepoTags, r.Familiar())
			}
		}
		manifest = append(manifest, e)
	}
	b, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	return t.bytes("manifest.json", b)
}

// saveLayerTar writes a layer uncompressed. Compressed blobs go through a
// scratch file first: a tar header needs the size up front.
func (s *Store) saveLayerTar(ctx context.Context, t *tarFiles, name string, l ocispec.Descriptor) error {
	if t.seen[name] {
		return nil
	}
	f, err := s.VerifiedBlob(l.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, comp, err := archive.Decompress(f)
	if err != nil {
		return err
	}
	defer zr.Close()
	if comp == archive.Uncompressed {
		return s.copyBlob(ctx, t, name, l.Digest)
	}
	tmp, err := os.CreateTemp(s.path("tmp"), "save-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, ctxReader{ctx, zr}); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, f); err != nil { // the digest check is at the end
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return t.file(ctx, name, tmp)
}
