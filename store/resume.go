package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Fetcher returns a blob's content from offset on. A source that cannot
// seek returns the whole content and start 0.
type Fetcher func(ctx context.Context, offset int64) (rc io.ReadCloser, start int64, err error)

// IngestResumable stores blob expected like Ingest, keeping what arrived
// in ingest/<hex>.partial when the transfer fails, so that the next
// attempt (before a GC) asks fetch only for the rest. The partial file is
// never visible as a blob; a digest mismatch discards it.
func (s *Store) IngestResumable(ctx context.Context, expected digest.Digest, fetch Fetcher) error {
	if _, err := s.blobPath(expected); err != nil {
		return err
	}
	release, err := s.lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	partial := s.path("ingest", expected.Encoded()+".partial")
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		// Another writer owns the partial: fetch independently.
		rc, _, err := fetch(ctx, 0)
		if err != nil {
			return err
		}
		defer rc.Close()
		got, _, err := s.ingest(ctx, rc, expected)
		if err == nil && got != expected {
			err = ErrDigest
		}
		return err
	}
	h := digest.SHA256.Digester()
	have, err := io.Copy(h.Hash(), f)
	if err != nil {
		return err
	}
	rc, start, err := fetch(ctx, have)
	if err != nil {
		return err
	}
	defer rc.Close()
	if start != have {
		if start != 0 {
			return fmt.Errorf("blob %s: source resumed at %d, asked %d", expected, start, have)
		}
		if err := f.Truncate(0); err != nil {
			return err
		}
		h = digest.SHA256.Digester()
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.CopyBuffer(io.MultiWriter(f, h.Hash()), ctxReader{ctx, rc}, make([]byte, 1<<20)); err != nil {
		return err // keep the partial for the next attempt
	}
	if got := h.Digest(); got != expected {
		os.Remove(partial)
		return fmt.Errorf("blob %s: got %s: %w", expected, got, ErrDigest)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	dst, _ := s.blobPath(expected)
	return os.Rename(partial, dst)
}

// errHTTP is a registry's refusal.
var errHTTP = errors.New("registry error")
