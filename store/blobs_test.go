package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// slowReader hands out data in small pieces so concurrent writers overlap.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 4096)]) }

func TestConcurrentIngestSameBlob(t *testing.T) {
	s := openStore(t)
	data := make([]byte, 1<<20)
	rand.Read(data)
	d := digest.FromBytes(data)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Ingest(context.Background(), d, slowReader{bytes.NewReader(data)})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadBlob(d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob after concurrent ingests: %v", err)
	}
	if ents := readDir(s.path("ingest")); len(ents) != 0 {
		t.Errorf("ingest scratch left: %d", len(ents))
	}
}

func TestIngestMismatchLeavesNothing(t *testing.T) {
	s := openStore(t)
	want := digest.FromString("something else")
	err := s.Ingest(context.Background(), want, bytes.NewReader([]byte("hostile")))
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("err = %v, want ErrDigest", err)
	}
	if s.Has(want) || s.Has(digest.FromString("hostile")) {
		t.Error("mismatched content became visible")
	}
	if ents := readDir(s.path("ingest")); len(ents) != 0 {
		t.Errorf("ingest scratch left: %d", len(ents))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Ingest(ctx, want, bytes.NewReader([]byte("x"))); err == nil {
		t.Error("ingest with a cancelled context succeeded")
	}
}

func TestReferenceNormalisation(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                          "docker.io/library/busybox:latest",
		"busybox:1.36":                     "docker.io/library/busybox:1.36",
		"user/app":                         "docker.io/user/app:latest",
		"index.docker.io/library/alpine:3": "docker.io/library/alpine:3",
		"localhost:5000/a/b":               "localhost:5000/a/b:latest",
		"127.0.0.1:5000/a:v1":              "127.0.0.1:5000/a:v1",
		"ghcr.io/o/r@sha256:" + digest.FromString("x").Encoded(): "ghcr.io/o/r@sha256:" + digest.FromString("x").Encoded(),
	} {
		got, err := NormalizeRef(in)
		if err != nil || got != want {
			t.Errorf("NormalizeRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"Upper", "docker.io/Upper", "a b", "x:", "x@sha256:zz", ""} {
		if _, err := NormalizeRef(bad); err == nil {
			t.Errorf("NormalizeRef(%q) accepted", bad)
		}
	}
	r, _ := ParseReference("docker.io/library/busybox:latest")
	if r.Familiar() != "busybox:latest" {
		t.Errorf("familiar = %q", r.Familiar())
	}
}
