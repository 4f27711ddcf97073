package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/opencontainers/go-digest"
)

// ErrDigest is returned when content does not match its digest.
var ErrDigest = errors.New("digest mismatch")

func (s *Store) blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil || d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("invalid digest %q", d)
	}
	return s.path("blobs", "sha256", d.Encoded()), nil
}

// Has reports whether the blob is stored.
func (s *Store) Has(d digest.Digest) bool {
	p, err := s.blobPath(d)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// BlobSize is the stored blob's size.
func (s *Store) BlobSize(d digest.Digest) (int64, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// OpenBlob opens a stored blob. Its content was verified when it was
// ingested; readers that need to guard against on-disk corruption verify
// as they read (unpack does).
func (s *Store) OpenBlob(d digest.Digest) (*os.File, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	return f, err
}

// VerifiedBlob opens a blob for streaming whose reader fails at the end,
// instead of returning EOF, if the content no longer matches its digest:
// a consumer (save, push) never finishes with silently corrupted data.
func (s *Store) VerifiedBlob(d digest.Digest) (io.ReadCloser, error) {
	f, err := s.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	return &verifier{f: f, want: d, h: digest.SHA256.Digester()}, nil
}

type verifier struct {
	f    *os.File
	want digest.Digest
	h    digest.Digester
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Hash().Write(p[:n])
	if err == io.EOF && v.h.Digest() != v.want {
		return n, fmt.Errorf("blob %s: %w", v.want, ErrDigest)
	}
	return n, err
}

func (v *verifier) Close() error { return v.f.Close() }

// ReadBlob reads a small blob (manifest, config) and verifies it.
func (s *Store) ReadBlob(d digest.Digest) ([]byte, error) {
	f, err := s.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(b) != d {
		return nil, fmt.Errorf("blob %s: %w", d, ErrDigest)
	}
	return b, nil
}

// Ingest stores r's content as blob expected. The blob becomes visible only
// once complete and verified; on any error nothing is left but scratch that
// GC reclaims. Concurrent ingests of one digest are safe: each writes its
// own temp file and the renames replace identical content.
func (s *Store) Ingest(ctx context.Context, expected digest.Digest, r io.Reader) error {
	if _, err := s.blobPath(expected); err != nil {
		return err
	}
	release, err := s.lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	got, _, err := s.ingest(ctx, r, expected)
	if err == nil && got != expected {
		err = fmt.Errorf("blob %s: got %s: %w", expected, got, ErrDigest)
	}
	return err
}

// IngestAny stores r's content under whatever digest it has.
func (s *Store) IngestAny(ctx context.Context, r io.Reader) (digest.Digest, int64, error) {
	release, err := s.lease(ctx)
	if err != nil {
		return "", 0, err
	}
	defer release()
	return s.ingest(ctx, r, "")
}

// WriteBlob stores a small in-memory blob.
func (s *Store) WriteBlob(ctx context.Context, b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	if s.Has(d) {
		return d, nil
	}
	return d, s.Ingest(ctx, d, bytes.NewReader(b))
}

// ingest writes r to a temp file and renames it into blobs/ if its digest
// is expected (or expected is empty). The caller holds a lease.
func (s *Store) ingest(ctx context.Context, r io.Reader, expected digest.Digest) (digest.Digest, int64, error) {
	f, err := os.CreateTemp(s.path("ingest"), "blob-*")
	if err != nil {
		return "", 0, err
	}
	tmp := f.Name()
	keep := false
	defer func() {
		if !keep {
			f.Close()
			os.Remove(tmp)
		}
	}()
	dg := digest.SHA256.Digester()
	n, err := io.CopyBuffer(io.MultiWriter(f, dg.Hash()), ctxReader{ctx, r}, make([]byte, 1<<20))
	if err != nil {
		return "", n, err
	}
	got := dg.Digest()
	if expected != "" && got != expected {
		return got, n, fmt.Errorf("blob %s: got %s: %w", expected, got, ErrDigest)
	}
	if err := f.Sync(); err != nil {
		return "", n, err
	}
	if err := f.Close(); err != nil {
		return "", n, err
	}
	dst, _ := s.blobPath(got)
	if err := os.Rename(tmp, dst); err != nil {
		return "", n, err
	}
	keep = true
	return got, n, nil
}

// ctxReader stops a long copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
