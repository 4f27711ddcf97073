package store

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/berth-dev/berth/store/archive"
	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer is a stored layer blob and the digest of its uncompressed tar.
type Layer struct {
	Descriptor ocispec.Descriptor
	DiffID     digest.Digest
}

// Commit turns the snapshot's upper directory into a layer (OCI
// whiteouts for deletions) and stores it uncompressed
// (application/vnd.oci.image.layer.v1.tar): build layers are written often
// and read locally, so gzip would cost more than it saves. The builder
// appends it to its image with WriteImage.
func (s *Store) Commit(ctx context.Context, key string) (Layer, error) {
	if _, err := s.snapshot(key); err != nil {
		return Layer{}, err
	}
	upper := s.UpperDir(key)
	return s.writeLayer(ctx, false, func(w io.Writer) error {
		return archive.WriteDir(ctx, w, upper, archive.WriteOptions{Whiteouts: true})
	})
}

// WriteLayer stores the tar stream that write produces as an uncompressed
// layer, as Commit does: the builder writes COPY layers straight from their
// sources with it. The caller holds a lease until the layer is referenced.
func (s *Store) WriteLayer(ctx context.Context, write func(io.Writer) error) (Layer, error) {
	return s.writeLayer(ctx, false, write)
}

// writeLayer stores the tar stream produced by write as a layer, gzipped
// or not. The caller holds a lease until the layer is referenced.
func (s *Store) writeLayer(ctx context.Context, compress bool, write func(io.Writer) error) (Layer, error) {
	release, err := s.lease(ctx)
	if err != nil {
		return Layer{}, err
	}
	defer release()
	pr, pw := io.Pipe()
	diff := digest.SHA256.Digester()
	go func() {
		// large writes: the ingest writes what each read returns
		bw := bufio.NewWriterSize(pw, 1<<20)
		var err error
		if compress {
			zw := gzip.NewWriter(bw)
			err = write(io.MultiWriter(diff.Hash(), zw))
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		} else {
			err = write(bw)
		}
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
		pw.CloseWithError(err)
	}()
	d, n, err := s.ingest(ctx, pr, "")
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return Layer{}, err
	}
	l := Layer{Descriptor: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: n}, DiffID: d}
	if compress {
		l.Descriptor.MediaType, l.DiffID = ocispec.MediaTypeImageLayerGzip, diff.Digest()
	}
	return l, nil
}

// ImportRootfs makes a single-layer image from a root filesystem, a
// directory or a tarball (plain, gzip or zstd), as docker import does, and
// tags it ref. The image's creation time is its newest file's, so importing
// the same content twice yields the same image.
func (s *Store) ImportRootfs(ctx context.Context, src, ref string, cfg ocispec.ImageConfig) (*Image, error) {
	release, err := s.lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	var layer Layer
	if st.IsDir() {
		layer, err = s.writeLayer(ctx, true, func(w io.Writer) error {
			return archive.WriteDir(ctx, w, src, archive.WriteOptions{})
		})
	} else {
		layer, err = s.ingestTarFile(ctx, src)
	}
	if err != nil {
		return nil, err
	}
	newest, err := s.scanLayer(ctx, &layer)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	if cfg.Env == nil {
		cfg.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	p := DefaultPlatform()
	img := ocispec.Image{
		Created:  &newest,
		Platform: p,
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.DiffID}},
		History:  []ocispec.History{{Created: &newest, CreatedBy: "berth image import", Comment: "imported from " + st.Name()}},
	}
	var tags []string
	if ref != "" {
		tags = []string{ref}
	}
	return s.WriteImage(ctx, img, []ocispec.Descriptor{layer.Descriptor}, tags...)
}

// ingestTarFile stores a tarball as a layer blob as it is.
func (s *Store) ingestTarFile(ctx context.Context, name string) (Layer, error) {
	f, err := os.Open(name)
	if err != nil {
		return Layer{}, err
	}
	defer f.Close()
	d, n, err := s.ingest(ctx, f, "")
	if err != nil {
		return Layer{}, err
	}
	return Layer{Descriptor: ocispec.Descriptor{Digest: d, Size: n}}, nil
}

// scanLayer reads a stored layer through: it fills in the media type and
// diff ID when missing, checks the tar is well formed, and returns the
// newest modification time in it.
func (s *Store) scanLayer(ctx context.Context, l *Layer) (time.Time, error) {
	f, err := s.OpenBlob(l.Descriptor.Digest)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	zr, comp, err := archive.Decompress(f)
	if err != nil {
		return time.Time{}, err
	}
	defer zr.Close()
	diff := digest.SHA256.Digester()
	tr := tar.NewReader(io.TeeReader(zr, diff.Hash()))
	var newest time.Time
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("not a tar archive: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		if hdr.ModTime.After(newest) {
			newest = hdr.ModTime
		}
	}
	io.Copy(io.Discard, io.TeeReader(zr, diff.Hash()))
	if l.DiffID != "" && l.DiffID != diff.Digest() {
		return time.Time{}, ErrDigest
	}
	l.DiffID = diff.Digest()
	if l.Descriptor.MediaType == "" {
		l.Descriptor.MediaType = layerMediaType(comp)
	}
	return newest.UTC(), nil
}

func layerMediaType(c archive.Compression) string {
	switch c {
	case archive.Gzip:
		return ocispec.MediaTypeImageLayerGzip
	case archive.Zstd:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}
