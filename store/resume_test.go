package store

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestPullResumes cuts the first download of a layer halfway; the next
// pull asks only for the rest.
func TestPullResumes(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	s := openStore(t)
	rootfs := busyboxRootfs(t)
	big := make([]byte, 4<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(rootfs, "big"), big, 0o644)
	img, err := s.ImportRootfs(ctx, rootfs, "bb", ocispec.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Push(ctx, "bb", reg+"/resume/bb:1", RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	layer := img.Layers[0].Digest.String()
	target, _ := url.Parse("http://" + reg)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var ranges []string
	cut := true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+layer) {
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			first := cut
			cut = false
			mu.Unlock()
			if first {
				resp, err := http.Get("http://" + reg + r.URL.Path)
				if err != nil {
					panic(http.ErrAbortHandler)
				}
				defer resp.Body.Close()
				for k, v := range resp.Header {
					w.Header()[k] = v
				}
				w.WriteHeader(resp.StatusCode)
				io.CopyN(w, resp.Body, 1<<20)
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler) // the connection drops mid-blob
			}
		}
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	defer srv.Close()
	ref := l.Addr().String() + "/resume/bb:1"

	s2 := openStore(t)
	if _, err := s2.Pull(ctx, ref, RegistryOptions{}); err == nil {
		t.Fatal("pull through a dropped connection succeeded")
	}
	if s2.Has(img.Layers[0].Digest) {
		t.Fatal("a partial layer became visible")
	}
	got, err := s2.Pull(ctx, ref, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ManifestDigest != img.ManifestDigest {
		t.Errorf("pulled %s, want %s", got.ManifestDigest, img.ManifestDigest)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
		t.Errorf("blob requests' ranges = %q, want a resumed second request", ranges)
	}
	if ents := readDir(s2.path("ingest")); len(ents) != 0 {
		t.Errorf("ingest left %d files", len(ents))
	}
}
