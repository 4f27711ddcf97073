package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// buildBerth builds the CLI as users run it.
func buildBerth(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "berth")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/berth")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..")
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/go/bin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	return bin
}

// bigRootfs is a busybox rootfs plus enough files that an import takes a
// while to kill in the middle of.
func bigRootfs(t *testing.T) string {
	dir := busyboxRootfs(t)
	junk := make([]byte, 64<<10)
	for i := range 300 {
		d := filepath.Join(dir, "data", fmt.Sprint(i%10))
		os.MkdirAll(d, 0o755)
		rand.Read(junk)
		os.WriteFile(filepath.Join(d, fmt.Sprint(i)), junk, 0o644)
	}
	return dir
}

// checkConsistent asserts the store invariants a crash must not break:
// every blob matches its name, every reference resolves to an image whose
// blobs are all present, and the CLI still lists images.
func checkConsistent(t *testing.T, bin, root string) {
	t.Helper()
	if out, err := exec.Command(bin, "--root", root, "image", "ls").CombinedOutput(); err != nil {
		t.Fatalf("berth image ls after kill: %v\n%s", err, out)
	}
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range readDir(s.path("blobs", "sha256")) {
		f, err := os.Open(filepath.Join(s.path("blobs", "sha256"), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		d, err := digest.SHA256.FromReader(f)
		f.Close()
		if err != nil || d.Encoded() != e.Name() {
			t.Fatalf("blob %s holds %s after kill", e.Name(), d)
		}
	}
	idx, err := s.readRefs()
	if err != nil {
		t.Fatalf("refs.json after kill: %v", err)
	}
	for name := range idx {
		img, err := s.Resolve(name)
		if err != nil {
			t.Fatalf("ref %s after kill: %v", name, err)
		}
		for _, l := range img.Layers {
			if !s.Has(l.Digest) {
				t.Fatalf("ref %s: layer %s missing after kill", name, l.Digest)
			}
		}
	}
	for _, e := range readDir(s.path("layers")) {
		if _, err := os.Stat(filepath.Join(s.path("layers"), e.Name(), "diffid")); err != nil {
			t.Fatalf("layer dir %s incomplete after kill", e.Name())
		}
	}
}

func randomDelay(max time.Duration) time.Duration {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(max)))
	return time.Duration(n.Int64())
}

func TestKillAtRandomPoints(t *testing.T) {
	needRoot(t)
	bin := buildBerth(t)
	root := t.TempDir()
	rootfs := bigRootfs(t)
	s, _ := Open(root)
	ctx := context.Background()
	if _, err := s.ImportRootfs(ctx, rootfs, "seed", ocispec.ImageConfig{}); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "seed.tar")
	f, _ := os.Create(archive)
	if err := s.Save(ctx, f, FormatDocker, "seed"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var pullRef string
	if _, err := exec.LookPath("docker-registry"); err == nil {
		pullRef = startRegistry(t) + "/crash/seed:1"
		if err := s.Push(ctx, "seed", pullRef, RegistryOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ops := [][]string{
		{"image", "import", rootfs, "imp"},
		{"image", "load", "-i", archive},
		{"image", "prune", "-a"},
	}
	if pullRef != "" {
		ops = append(ops, []string{"pull", "-q", pullRef})
	}
	for i := range 12 {
		op := ops[i%len(ops)]
		if op[1] == "prune" {
			// Something to collect, and an unpacked layer for it to remove.
			os.WriteFile(filepath.Join(rootfs, "etc", "gen"), []byte(fmt.Sprint(i)), 0o644)
			s.ImportRootfs(ctx, rootfs, "", ocispec.ImageConfig{})
		}
		cmd := exec.Command(bin, append([]string{"--root", root}, op...)...)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(randomDelay(300 * time.Millisecond))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		checkConsistent(t, bin, root)
	}
	// Everything still works, and GC reclaims the partial data.
	for _, op := range ops {
		if op[1] == "prune" {
			continue
		}
		if out, err := exec.Command(bin, append([]string{"--root", root}, op...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v after kills: %v\n%s", op, err, out)
		}
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"ingest", "tmp"} {
		if ents := readDir(s.path(d)); len(ents) != 0 {
			t.Errorf("%s not reclaimed: %d entries", d, len(ents))
		}
	}
	checkConsistent(t, bin, root)
	if out, _ := exec.Command(bin, "--root", root, "image", "ls").CombinedOutput(); !strings.Contains(string(out), "imp") {
		t.Errorf("imported image missing:\n%s", out)
	}
}
