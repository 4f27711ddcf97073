package store

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/berth-dev/berth/store/archive"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotation docker and containerd put the full image name in.
const annotationImageName = "io.containerd.image.name"

// dockerManifest is one entry of a docker-archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// loadedArchive is what one pass over an archive found: every file's blob
// digest, links between names, and the small metadata files.
type loadedArchive struct {
	blobs map[string]digest.Digest
	links map[string]string
	meta  map[string][]byte
}

var metaFiles = map[string]bool{"manifest.json": true, "index.json": true, "oci-layout": true, "repositories": true}

const maxMetaSize = 16 << 20

// Load reads a docker-archive (docker save) or an OCI image layout archive
// (oci-archive) from r in one pass, stores its content verified, and tags
// the images it names. It returns the images loaded.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]*Image, error) {
	release, err := s.lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	zr, _, err := archive.Decompress(r)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	a, err := s.readArchive(ctx, zr)
	if err != nil {
		return nil, err
	}
	if b, ok := a.meta["manifest.json"]; ok {
		return s.loadDocker(ctx, a, b)
	}
	if b, ok := a.meta["index.json"]; ok {
		return s.loadOCI(ctx, a, b)
	}
	return nil, errors.New("load: neither a docker-archive (manifest.json) nor an OCI layout (index.json)")
}

func (s *Store) readArchive(ctx context.Context, r io.Reader) (*loadedArchive, error) {
	a := &loadedArchive{blobs: map[string]digest.Digest{}, links: map[string]string{}, meta: map[string][]byte{}}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return a, nil
		}
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			a.links[name] = path.Join(path.Dir(name), hdr.Linkname)
		case tar.TypeLink:
			a.links[name] = path.Clean(hdr.Linkname)
		case tar.TypeReg, tar.TypeRegA:
			if metaFiles[name] || strings.HasSuffix(name, "/json") || strings.HasSuffix(name, "/VERSION") {
				if hdr.Size > maxMetaSize {
					return nil, fmt.Errorf("load: %s too large", name)
				}
				b, err := io.ReadAll(tr)
				if err != nil {
					return nil, err
				}
				a.meta[name] = b
				continue
			}
			d, _, err := s.ingest(ctx, tr, "")
			if err != nil {
				return nil, fmt.Errorf("load %s: %w", name, err)
			}
			a.blobs[name] = d
		}
	}
}

func (a *loadedArchive) blob(name string) (digest.Digest, error) {
	name = path.Clean(name)
	for range 16 {
		if d, ok := a.blobs[name]; ok {
			return d, nil
		}
		next, ok := a.links[name]
		if !ok {
			break
		}
		name = next
	}
	return "", fmt.Errorf("load: archive lacks %s", name)
}

func (s *Store) loadDocker(ctx context.Context, a *loadedArchive, b []byte) ([]*Image, error) {
	var entries []dockerManifest
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("load: manifest.json: %w", err)
	}
	var out []*Image
	for _, e := range entries {
		img, err := s.loadDockerImage(ctx, a, e)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

func (s *Store) loadDockerImage(ctx context.Context, a *loadedArchive, e dockerManifest) (*Image, error) {
	cd, err := a.blob(e.Config)
	if err != nil {
		return nil, err
	}
	cb, err := s.ReadBlob(cd)
	if err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, fmt.Errorf("load: config %s: %w", e.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		return nil, fmt.Errorf("load: %d layers but %d diff IDs", len(e.Layers), len(cfg.RootFS.DiffIDs))
	}
	var layers []ocispec.Descriptor
	for i, name := range e.Layers {
		d, err := a.blob(name)
		if err != nil {
			return nil, err
		}
		l := Layer{Descriptor: ocispec.Descriptor{Digest: d}, DiffID: cfg.RootFS.DiffIDs[i]}
		if l.Descriptor.Size, err = s.BlobSize(d); err != nil {
			return nil, err
		}
		// The config names each layer's content: check the archive agrees.
		if _, err := s.scanLayer(ctx, &l); err != nil {
			return nil, fmt.Errorf("load: layer %s: %w", name, err)
		}
		layers = append(layers, l.Descriptor)
	}
	var names []string
	for _, t := range e.RepoTags {
		n, err := NormalizeRef(t)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		names = append(names, n)
	}
	config := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cb))}
	return s.writeManifest(ctx, config, layers, names)
}

func (s *Store) loadOCI(ctx context.Context, a *loadedArchive, b []byte) ([]*Image, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("load: index.json: %w", err)
	}
	for name, d := range a.blobs {
		if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && hex != d.Encoded() {
			return nil, fmt.Errorf("load: %s holds %s: %w", name, d, ErrDigest)
		}
	}
	var out []*Image
	for _, desc := range idx.Manifests {
		if !s.Has(desc.Digest) {
			return nil, fmt.Errorf("load: manifest %s missing from archive", desc.Digest)
		}
		img, err := s.imageAt(desc.Digest, DefaultPlatform())
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		for _, l := range img.Layers {
			if !s.Has(l.Digest) {
				return nil, fmt.Errorf("load: layer %s missing from archive", l.Digest)
			}
		}
		name := ociImageName(desc.Annotations)
		err = s.updateRefs(ctx, func(idx refIndex) error {
			if name != "" {
				setRef(idx, name, desc.Digest)
			} else if len(idx.names(desc.Digest)) == 0 {
				idx[desc.Digest.String()] = refRecord{Target: desc.Digest}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if name != "" {
			img.Ref, img.Names = name, []string{name}
		}
		out = append(out, img)
	}
	return out, nil
}

// ociImageName finds a usable full name: containerd's annotation, else a
// ref.name that is a reference rather than a bare tag.
func ociImageName(ann map[string]string) string {
	if n, err := NormalizeRef(ann[annotationImageName]); err == nil && ann[annotationImageName] != "" {
		return n
	}
	rn := ann[ocispec.AnnotationRefName]
	if strings.ContainsAny(rn, "/:") {
		if n, err := NormalizeRef(rn); err == nil {
			return n
		}
	}
	return ""
}
