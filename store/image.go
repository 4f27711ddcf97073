package store

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker schema 2 media types, read as their OCI equivalents.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// Image is a resolved image: its manifest, config and layers.
type Image struct {
	Ref            string        // the normalised reference it was resolved by ("" for an ID)
	Names          []string      // every reference pointing at it
	ManifestDigest digest.Digest // the platform manifest (not an index)
	ConfigDigest   digest.Digest // docker's image ID
	Manifest       ocispec.Manifest
	Config         ocispec.Image
	Layers         []ocispec.Descriptor
	Created        time.Time // when the reference was last set
}

// ID is the image ID as docker prints it.
func (i *Image) ID() digest.Digest { return i.ConfigDigest }

// DiffIDs are the digests of the uncompressed layers.
func (i *Image) DiffIDs() []digest.Digest { return i.Config.RootFS.DiffIDs }

// ChainIDs identify each layer together with everything below it.
func (i *Image) ChainIDs() []digest.Digest {
	return identity.ChainIDs(append([]digest.Digest(nil), i.DiffIDs()...))
}

// Size is the stored size: config plus compressed layers.
func (i *Image) Size() int64 {
	n := i.Manifest.Config.Size
	for _, l := range i.Layers {
		n += l.Size
	}
	return n
}

// manifestOrIndex holds either document, as both arrive untyped.
type manifestOrIndex struct {
	MediaType string               `json:"mediaType"`
	Config    *ocispec.Descriptor  `json:"config"`
	Layers    []ocispec.Descriptor `json:"layers"`
	Manifests []ocispec.Descriptor `json:"manifests"`
}

func isIndex(b []byte) bool {
	var m manifestOrIndex
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	return m.Manifests != nil || m.MediaType == ocispec.MediaTypeImageIndex || m.MediaType == MediaTypeDockerManifestList
}

// DefaultPlatform is what berth runs.
func DefaultPlatform() ocispec.Platform {
	return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// ParsePlatform reads os/arch[/variant]; "" is DefaultPlatform.
func ParsePlatform(s string) (ocispec.Platform, error) {
	if s == "" {
		return DefaultPlatform(), nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return ocispec.Platform{}, fmt.Errorf("invalid platform %q", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// SelectPlatform picks the manifest for p from an index's entries.
func SelectPlatform(manifests []ocispec.Descriptor, p ocispec.Platform) (ocispec.Descriptor, error) {
	for _, m := range manifests {
		if m.Platform == nil {
			continue
		}
		if m.Platform.OS == p.OS && m.Platform.Architecture == p.Architecture &&
			(p.Variant == "" || m.Platform.Variant == p.Variant) {
			return m, nil
		}
	}
	// An index without platforms (some single-image OCI layouts) means
	// "this one".
	if len(manifests) == 1 && manifests[0].Platform == nil {
		return manifests[0], nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s/%s: %w", p.OS, p.Architecture, ErrNotFound)
}

// imageAt reads the image whose manifest (or index, then platform) is d.
func (s *Store) imageAt(d digest.Digest, p ocispec.Platform) (*Image, error) {
	b, err := s.ReadBlob(d)
	if err != nil {
		return nil, err
	}
	var m manifestOrIndex
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	if isIndex(b) {
		desc, err := SelectPlatform(m.Manifests, p)
		if err != nil {
			return nil, err
		}
		return s.imageAt(desc.Digest, p)
	}
	if m.Config == nil {
		return nil, fmt.Errorf("manifest %s has no config", d)
	}
	img := &Image{ManifestDigest: d, ConfigDigest: m.Config.Digest, Layers: m.Layers}
	if err := json.Unmarshal(b, &img.Manifest); err != nil {
		return nil, err
	}
	cb, err := s.ReadBlob(m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", d, err)
	}
	if err := json.Unmarshal(cb, &img.Config); err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if len(img.Config.RootFS.DiffIDs) != len(img.Layers) {
		return nil, fmt.Errorf("image %s: %d layers but %d diff IDs", d, len(img.Layers), len(img.Config.RootFS.DiffIDs))
	}
	return img, nil
}

// Resolve finds an image by reference (busybox, busybox:1.36,
// name@sha256:…), by image ID or by a unique ID prefix of 4+ hex digits.
func (s *Store) Resolve(ref string) (*Image, error) {
	return s.ResolvePlatform(ref, DefaultPlatform())
}

// ResolvePlatform is Resolve for another platform of a multi-platform index.
func (s *Store) ResolvePlatform(ref string, p ocispec.Platform) (*Image, error) {
	idx, err := s.readRefs()
	if err != nil {
		return nil, err
	}
	if r, err := ParseReference(ref); err == nil {
		if rec, ok := idx[r.String()]; ok {
			return s.withNames(idx, r.String(), rec, p)
		}
		if r.Digest != "" && s.Has(r.Digest) {
			img, err := s.imageAt(r.Digest, p)
			if err == nil {
				img.Ref = r.String()
				img.Names = idx.names(r.Digest)
			}
			return img, err
		}
	}
	return s.resolveID(idx, ref, p)
}

func (s *Store) withNames(idx refIndex, name string, rec refRecord, p ocispec.Platform) (*Image, error) {
	img, err := s.imageAt(rec.Target, p)
	if err != nil {
		return nil, err
	}
	if !danglingKey(name) {
		img.Ref = name
	}
	img.Names = idx.names(rec.Target)
	img.Created = rec.Created
	return img, nil
}

func (s *Store) resolveID(idx refIndex, id string, p ocispec.Platform) (*Image, error) {
	hex := strings.TrimPrefix(id, "sha256:")
	if len(hex) < 4 || strings.Trim(hex, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("image %q: %w", id, ErrNotFound)
	}
	var found *Image
	for _, name := range sortedKeys(idx) {
		rec := idx[name]
		img, err := s.withNames(idx, name, rec, p)
		if err != nil {
			continue
		}
		if strings.HasPrefix(img.ConfigDigest.Encoded(), hex) || strings.HasPrefix(rec.Target.Encoded(), hex) {
			if found != nil && found.ManifestDigest != img.ManifestDigest {
				return nil, fmt.Errorf("image ID %q is ambiguous", id)
			}
			if found == nil {
				img.Ref = ""
				found = img
			}
		}
	}
	if found == nil {
		return nil, fmt.Errorf("image %q: %w", id, ErrNotFound)
	}
	return found, nil
}

func sortedKeys(idx refIndex) []string {
	keys := make([]string, 0, len(idx))
	for k := range idx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// List returns every image once (with all its names), newest first.
func (s *Store) List() ([]*Image, error) {
	idx, err := s.readRefs()
	if err != nil {
		return nil, err
	}
	seen := map[digest.Digest]*Image{}
	var out []*Image
	for _, name := range sortedKeys(idx) {
		rec := idx[name]
		if img, ok := seen[rec.Target]; ok {
			if rec.Created.After(img.Created) {
				img.Created = rec.Created
			}
			continue
		}
		img, err := s.withNames(idx, name, rec, DefaultPlatform())
		if err != nil {
			continue // another platform only, or damaged: GC's business
		}
		seen[rec.Target] = img
		out = append(out, img)
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Config.Created != nil && out[j].Config.Created != nil && out[i].Config.Created.After(*out[j].Config.Created)
	})
	return out, nil
}

// Tag points the reference name at the image ref resolves to.
func (s *Store) Tag(ctx context.Context, ref, name string) error {
	img, err := s.Resolve(ref)
	if err != nil {
		return err
	}
	n, err := NormalizeRef(name)
	if err != nil {
		return err
	}
	return s.updateRefs(ctx, func(idx refIndex) error {
		setRef(idx, n, img.ManifestDigest)
		return nil
	})
}

// SetRef points name directly at a stored manifest or index digest.
func (s *Store) SetRef(ctx context.Context, name string, target digest.Digest) error {
	n, err := NormalizeRef(name)
	if err != nil {
		return err
	}
	if !s.Has(target) {
		return fmt.Errorf("manifest %s: %w", target, ErrNotFound)
	}
	return s.updateRefs(ctx, func(idx refIndex) error {
		setRef(idx, n, target)
		return nil
	})
}

// Untag removes one reference. It returns the image's remaining names.
func (s *Store) Untag(ctx context.Context, name string) ([]string, error) {
	var rest []string
	err := s.updateRefs(ctx, func(idx refIndex) error {
		key := name
		if _, ok := idx[key]; !ok {
			n, err := NormalizeRef(name)
			if err != nil {
				return err
			}
			key = n
		}
		rec, ok := idx[key]
		if !ok {
			return fmt.Errorf("reference %q: %w", name, ErrNotFound)
		}
		delete(idx, key)
		rest = idx.names(rec.Target)
		return nil
	})
	return rest, err
}

// RemoveImage removes every reference to the image (by ID, or all names).
// Its content is reclaimed by the next GC unless a snapshot still uses it.
func (s *Store) RemoveImage(ctx context.Context, img *Image) error {
	return s.updateRefs(ctx, func(idx refIndex) error {
		for k, r := range idx {
			if r.Target == img.ManifestDigest {
				delete(idx, k)
			}
		}
		return nil
	})
}

// WriteImage stores config and a manifest for layers (already stored blobs)
// and points tags at it; with no tags the image is kept as dangling. The
// config's RootFS.DiffIDs must match layers.
func (s *Store) WriteImage(ctx context.Context, cfg ocispec.Image, layers []ocispec.Descriptor, tags ...string) (*Image, error) {
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("write image: %d layers but %d diff IDs", len(layers), len(cfg.RootFS.DiffIDs))
	}
	cfg.RootFS.Type = "layers"
	release, err := s.lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	for _, l := range layers {
		if !s.Has(l.Digest) {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, ErrNotFound)
		}
	}
	names := make([]string, len(tags))
	for i, t := range tags {
		n, err := NormalizeRef(t)
		if err != nil {
			return nil, err
		}
		names[i] = n
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cd, err := s.WriteBlob(ctx, cb)
	if err != nil {
		return nil, err
	}
	config := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cb))}
	return s.writeManifest(ctx, config, layers, names)
}

// writeManifest stores an OCI manifest for a stored config and layers and
// points the (normalised) names at it, or keeps it as dangling.
func (s *Store) writeManifest(ctx context.Context, config ocispec.Descriptor, layers []ocispec.Descriptor, names []string) (*Image, error) {
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: layers}
	m.SchemaVersion = 2
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	md, err := s.WriteBlob(ctx, mb)
	if err != nil {
		return nil, err
	}
	err = s.updateRefs(ctx, func(idx refIndex) error {
		for _, n := range names {
			setRef(idx, n, md)
		}
		if len(names) == 0 && len(idx.names(md)) == 0 {
			idx[md.String()] = refRecord{Target: md, Created: time.Now().UTC()}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	img, err := s.imageAt(md, DefaultPlatform())
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		img.Ref = names[0]
	}
	img.Names = names
	return img, nil
}
