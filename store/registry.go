package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// RegistryOptions tune Pull and Push.
type RegistryOptions struct {
	Platform string    // os/arch[/variant]; "" is DefaultPlatform
	Insecure bool      // plain HTTP (always on for loopback registries)
	Progress io.Writer // one line per layer event; nil for silence
	TTY      bool      // Progress is a terminal: also redraw a byte count
	Keychain authn.Keychain
	Jobs     int // parallel layer transfers (default 4)
}

func (o RegistryOptions) jobs() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return 4
}

// remoteRef turns a berth reference into go-containerregistry's, plain
// HTTP for loopback registries.
func remoteRef(r Reference, insecure bool) (name.Reference, error) {
	var opts []name.Option
	if insecure || isLoopback(r.Domain) {
		opts = append(opts, name.Insecure)
	}
	s := r.Name()
	if r.Domain == DefaultDomain {
		s = "index.docker.io/" + r.Path
	}
	if r.Digest != "" {
		return name.NewDigest(s+"@"+r.Digest.String(), opts...)
	}
	return name.NewTag(s+":"+r.Tag, opts...)
}

func isLoopback(domain string) bool {
	host := domain
	if h, _, err := net.SplitHostPort(domain); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (o RegistryOptions) remote(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain // ~/.docker/config.json, credential helpers
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithJobs(o.jobs())}
}

func (o RegistryOptions) printf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Pull fetches ref's manifest for the platform, its config and the layers
// the store lacks, verifying each against its digest, and tags ref.
func (s *Store) Pull(ctx context.Context, ref string, o RegistryOptions) (*Image, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	p, err := ParsePlatform(o.Platform)
	if err != nil {
		return nil, err
	}
	rr, err := remoteRef(r, o.Insecure)
	if err != nil {
		return nil, err
	}
	release, err := s.lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ropts := append(o.remote(ctx), remote.WithPlatform(v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}))
	desc, err := remote.Get(rr, ropts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Familiar(), err)
	}
	rimg, err := desc.Image() // selects the platform from an index
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Familiar(), err)
	}
	raw, err := rimg.RawManifest()
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("pull %s: manifest: %w", r.Familiar(), err)
	}
	pp := newPullProgress(o, "Downloading")
	for _, l := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if !s.Has(l.Digest) {
			pp.total.Add(l.Size)
		}
	}
	bf, err := newBlobFetcher(ctx, rr.Context(), o)
	if err == nil {
		err = s.pullBlob(ctx, rr, m.Config, bf, pp)
	}
	if err == nil {
		err = s.pullLayers(ctx, rr, m.Layers, bf, pp, o.jobs())
	}
	pp.close()
	if err != nil {
		return nil, err
	}
	md := digest.FromBytes(raw)
	if r.Digest != "" && r.Digest != md && r.Digest != digest.Digest(desc.Digest.String()) {
		return nil, fmt.Errorf("pull %s: registry sent manifest %s: %w", r.Familiar(), md, ErrDigest)
	}
	if err := s.Ingest(ctx, md, bytes.NewReader(raw)); err != nil {
		return nil, err
	}
	if err := s.SetRef(ctx, r.String(), md); err != nil {
		return nil, err
	}
	o.printf("Digest: %s", desc.Digest)
	return s.Resolve(r.String())
}

func (s *Store) pullLayers(ctx context.Context, rr name.Reference, layers []ocispec.Descriptor, bf *blobFetcher, pp *pullProgress, jobs int) error {
	sem := make(chan struct{}, jobs)
	errs := make([]error, len(layers))
	var wg sync.WaitGroup
	for i, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = s.pullBlob(ctx, rr, l, bf, pp)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Store) pullBlob(ctx context.Context, rr name.Reference, d ocispec.Descriptor, bf *blobFetcher, pp *pullProgress) error {
	short := d.Digest.Encoded()[:12]
	if s.Has(d.Digest) {
		pp.printf("%s: Already exists", short)
		return nil
	}
	h, err := v1.NewHash(d.Digest.String())
	if err != nil {
		return err
	}
	fetch := func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
		rc, start, err := bf.get(ctx, h.String(), off)
		if err != nil {
			return nil, 0, err
		}
		pp.done.Add(start)
		return readCloser{counter{rc, &pp.done}, rc}, start, nil
	}
	if err := s.IngestResumable(ctx, d.Digest, fetch); err != nil {
		return fmt.Errorf("fetch %s: %w", d.Digest, err)
	}
	s.recordSource(d.Digest, rr.Context().String())
	pp.printf("%s: Pull complete", short)
	return nil
}

// recordSource remembers a repository a blob came from, so a push to
// another repository of the same registry can mount it instead of
// uploading it.
func (s *Store) recordSource(d digest.Digest, repo string) {
	os.MkdirAll(s.path("sources"), 0o700)
	writeFileAtomic(s.path("sources", d.Encoded()), []byte(repo))
}

func (s *Store) source(d digest.Digest) string {
	b, _ := os.ReadFile(s.path("sources", d.Encoded()))
	return string(b)
}

// Push uploads the image ref names to its registry (or to dest when
// given): blobs the registry has are skipped, blobs another repository of
// the same registry has are mounted.
func (s *Store) Push(ctx context.Context, ref, dest string, o RegistryOptions) error {
	img, err := s.Resolve(ref)
	if err != nil {
		return err
	}
	release, err := s.lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	if img, err = s.compressedForPush(ctx, img); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	if dest == "" {
		dest = ref
	}
	r, err := ParseReference(dest)
	if err != nil {
		return err
	}
	rr, err := remoteRef(r, o.Insecure)
	if err != nil {
		return err
	}
	si, err := s.remoteImage(img, rr, o.Insecure)
	if err != nil {
		return err
	}
	ropts := o.remote(ctx)
	pp := newPullProgress(o, "Pushing")
	if o.Progress != nil {
		ch := make(chan v1.Update, 16)
		ropts = append(ropts, remote.WithProgress(ch))
		pp.wg.Add(1)
		go func() {
			defer pp.wg.Done()
			for u := range ch {
				pp.total.Store(u.Total)
				pp.done.Store(u.Complete)
			}
		}()
	}
	err = remote.Write(rr, si, ropts...)
	pp.close()
	if err != nil {
		return fmt.Errorf("push %s: %w", r.Familiar(), err)
	}
	o.printf("%s: digest: %s", r.Familiar(), img.ManifestDigest)
	return nil
}

// compressedForPush returns img with its uncompressed layers (the
// builder stores its layers so) gzipped, as registries and older pullers
// expect: the gzip blobs go into the store (the compression is
// deterministic, so pushing again reuses them) under a manifest of their
// own; the config, so the image ID, is the same.
func (s *Store) compressedForPush(ctx context.Context, img *Image) (*Image, error) {
	out := *img
	out.Layers = append([]ocispec.Descriptor(nil), img.Layers...)
	changed := false
	for i, l := range out.Layers {
		if l.MediaType != ocispec.MediaTypeImageLayer {
			continue
		}
		gz, err := s.writeLayer(ctx, true, func(w io.Writer) error {
			r, err := s.VerifiedBlob(l.Digest)
			if err != nil {
				return err
			}
			defer r.Close()
			_, err = io.Copy(w, r)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("compress layer %s: %w", l.Digest, err)
		}
		if gz.DiffID != l.Digest {
			return nil, fmt.Errorf("compress layer %s: read %s", l.Digest, gz.DiffID)
		}
		out.Layers[i] = gz.Descriptor
		changed = true
	}
	if !changed {
		return img, nil
	}
	out.Manifest.Layers = out.Layers
	raw, err := json.Marshal(out.Manifest)
	if err != nil {
		return nil, err
	}
	if out.ManifestDigest = digest.FromBytes(raw); !s.Has(out.ManifestDigest) {
		if _, err := s.WriteBlob(ctx, raw); err != nil {
			return nil, err
		}
	}
	return &out, nil
}

// storeImage presents a stored image to go-containerregistry.
type storeImage struct {
	v1.Image
	layers []v1.Layer
}

func (i *storeImage) Layers() ([]v1.Layer, error) { return i.layers, nil }

type storeCore struct {
	s   *Store
	img *Image
}

func (c *storeCore) RawConfigFile() ([]byte, error) { return c.s.ReadBlob(c.img.ConfigDigest) }
func (c *storeCore) RawManifest() ([]byte, error)   { return c.s.ReadBlob(c.img.ManifestDigest) }
func (c *storeCore) MediaType() (types.MediaType, error) {
	if c.img.Manifest.MediaType != "" {
		return types.MediaType(c.img.Manifest.MediaType), nil
	}
	return types.OCIManifestSchema1, nil
}

func (c *storeCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for i, l := range c.img.Layers {
		if l.Digest.String() == h.String() {
			return &storeLayer{s: c.s, desc: l, diffID: c.img.DiffIDs()[i]}, nil
		}
	}
	if h.String() == c.img.ConfigDigest.String() {
		return &storeLayer{s: c.s, desc: c.img.Manifest.Config}, nil
	}
	return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
}

type storeLayer struct {
	s      *Store
	desc   ocispec.Descriptor
	diffID digest.Digest
}

func (l *storeLayer) Digest() (v1.Hash, error)           { return v1.NewHash(l.desc.Digest.String()) }
func (l *storeLayer) DiffID() (v1.Hash, error)           { return v1.NewHash(l.diffID.String()) }
func (l *storeLayer) Size() (int64, error)               { return l.desc.Size, nil }
func (l *storeLayer) Compressed() (io.ReadCloser, error) { return l.s.VerifiedBlob(l.desc.Digest) }
func (l *storeLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}

func (s *Store) remoteImage(img *Image, dest name.Reference, insecure bool) (v1.Image, error) {
	core := &storeCore{s: s, img: img}
	vi, err := partial.CompressedToImage(core)
	if err != nil {
		return nil, err
	}
	si := &storeImage{Image: vi}
	for i, l := range img.Layers {
		cl, _ := partial.CompressedToLayer(&storeLayer{s: s, desc: l, diffID: img.DiffIDs()[i]})
		var layer v1.Layer = cl
		if src := s.source(l.Digest); src != "" && src != dest.Context().String() {
			if from, err := sourceRef(src, insecure); err == nil && from.Context().RegistryStr() == dest.Context().RegistryStr() {
				layer = &remote.MountableLayer{Layer: cl, Reference: from}
			}
		}
		si.layers = append(si.layers, layer)
	}
	return si, nil
}

func sourceRef(repo string, insecure bool) (name.Reference, error) {
	var opts []name.Option
	if insecure || isLoopback(strings.SplitN(repo, "/", 2)[0]) {
		opts = append(opts, name.Insecure)
	}
	return name.NewTag(repo+":latest", opts...)
}
