package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/store/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// startRegistry runs Debian's docker-registry on a free loopback port and
// returns host:port.
func startRegistry(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("needs docker-registry (scripts/install-deps.sh installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o644)
	cmd := exec.Command("docker-registry", "serve", cfg)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 300 { // a loaded CI machine may take seconds to start it
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("registry did not start: %s", logs.String())
	return ""
}

// treeDigest hashes what a container would see from an image's layers.
func treeDigest(t testing.TB, s *Store, img *Image) string {
	h := sha256.New()
	for _, c := range img.ChainIDs() {
		if err := archive.WriteDir(context.Background(), h, filepath.Join(s.layerDir(c), "fs"), archive.WriteOptions{Whiteouts: true}); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestPushPullLoopbackRegistry(t *testing.T) {
	needRoot(t)
	addr := startRegistry(t)
	ctx := context.Background()
	s := openStore(t)
	img, err := s.ImportRootfs(ctx, busyboxRootfs(t), "bb", ocispec.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	// A second layer, so that the image is multi-layer.
	if _, err := s.Prepare(ctx, "w", img); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.UpperDir("w"), "hello"), []byte("hi"), 0o644)
	layer, err := s.Commit(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	cfg := img.Config
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs[:1:1], layer.DiffID)
	img, err = s.WriteImage(ctx, cfg, append(img.Layers[:1:1], layer.Descriptor), "bb:2")
	if err != nil {
		t.Fatal(err)
	}
	ref := addr + "/test/bb:v1"
	if err := s.Push(ctx, "bb:2", ref, RegistryOptions{}); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t)
	got, err := s2.Pull(ctx, ref, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// the committed layer is stored uncompressed; the push gzips it (a
	// manifest of its own), the config and so the image ID stay
	if layer.Descriptor.MediaType != ocispec.MediaTypeImageLayer {
		t.Errorf("committed layer is %s", layer.Descriptor.MediaType)
	}
	if got.ConfigDigest != img.ConfigDigest || len(got.Layers) != 2 || got.Layers[1].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Errorf("pulled config %s, pushed %s; layers %v", got.ConfigDigest, img.ConfigDigest, got.Layers)
	}
	if again, err := s.compressedForPush(ctx, img); err != nil || again.ManifestDigest != got.ManifestDigest {
		t.Errorf("pushing again would push %v (%v), pulled %s", again, err, got.ManifestDigest)
	}
	if err := s.Unpack(ctx, img); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Prepare(ctx, "c", got); err != nil {
		t.Fatal(err)
	}
	if a, b := treeDigest(t, s, img), treeDigest(t, s2, got); a != b {
		t.Errorf("pulled snapshot content %s differs from pushed %s", b, a)
	}

	var progress bytes.Buffer
	if _, err := s2.Pull(ctx, ref, RegistryOptions{Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(progress.String(), "Already exists") != 3 {
		t.Errorf("second pull fetched again:\n%s", progress.String())
	}
	// s2 knows where its blobs came from: pushing to another repository
	// mounts them instead of uploading (seen through a recording proxy).
	proxyAddr, requests := recordingProxy(t, addr)
	viaProxy := proxyAddr + "/test/bb:v1"
	s4 := openStore(t)
	if _, err := s4.Pull(ctx, viaProxy, RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s4.Push(ctx, viaProxy, proxyAddr+"/other/bb:v1", RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	mounts, uploads := 0, 0
	for _, r := range requests() {
		if strings.HasPrefix(r, "POST /v2/other/bb/blobs/uploads/") && strings.Contains(r, "mount=") {
			mounts++
		}
		if strings.HasPrefix(r, "PUT /v2/other/bb/blobs/uploads/") { // an upload's completion
			uploads++
		}
	}
	if mounts != 2 || uploads != 1 { // both layers mounted; only the config uploaded
		t.Errorf("cross-repository push: %d mounts, %d uploads:\n%s", mounts, uploads, strings.Join(requests(), "\n"))
	}
	s3 := openStore(t)
	if _, err := s3.Pull(ctx, addr+"/other/bb:v1", RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
}

// recordingProxy forwards to a registry and lists the requests it saw.
func recordingProxy(t *testing.T, registry string) (string, func() []string) {
	target, _ := url.Parse("http://" + registry)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var seen []string
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}
