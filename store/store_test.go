package store

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/store/archive"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// busyboxRootfs makes a minimal root filesystem from Debian's busybox-static.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs busybox-static: ", err)
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "ls", "cat", "echo", "httpd", "wget"} {
		os.Symlink("busybox", filepath.Join(dir, "bin", l))
	}
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/hostname"), []byte("berth\n"), 0o644)
	return dir
}

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func needRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay mounts")
	}
}

// mountOverlay performs what the runtime will do with the store's mounts.
func mountOverlay(t testing.TB, ms []specs.Mount) string {
	t.Helper()
	if len(ms) != 1 || ms[0].Type != "overlay" || ms[0].Destination != "/" {
		t.Fatalf("mounts = %+v", ms)
	}
	target := t.TempDir()
	data := strings.Join(ms[0].Options, ",")
	if len(data) >= 4096 {
		t.Fatalf("overlay options are %d bytes", len(data))
	}
	if err := unix.Mount(ms[0].Source, target, ms[0].Type, 0, data); err != nil {
		t.Fatalf("mount overlay: %v (%d bytes)", err, len(data))
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	return target
}

func TestImportResolveTag(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	rootfs := busyboxRootfs(t)
	img, err := s.ImportRootfs(ctx, rootfs, "busybox", ocispec.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	if img.Ref != "docker.io/library/busybox:latest" {
		t.Errorf("ref = %q", img.Ref)
	}
	again, err := s.ImportRootfs(ctx, rootfs, "busybox:again", ocispec.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	if again.ManifestDigest != img.ManifestDigest {
		t.Errorf("importing the same rootfs twice made two images: %s %s", img.ManifestDigest, again.ManifestDigest)
	}
	for _, ref := range []string{"busybox", "docker.io/library/busybox:latest", "library/busybox", img.ConfigDigest.Encoded()[:12], img.ConfigDigest.String()} {
		got, err := s.Resolve(ref)
		if err != nil {
			t.Fatalf("resolve %s: %v", ref, err)
		}
		if got.ManifestDigest != img.ManifestDigest {
			t.Errorf("resolve %s = %s", ref, got.ManifestDigest)
		}
	}
	if err := s.Tag(ctx, "busybox", "localhost:5000/bb:v1"); err != nil {
		t.Fatal(err)
	}
	list, _ := s.List()
	if len(list) != 1 || len(list[0].Names) != 3 {
		t.Fatalf("list = %+v", list)
	}
	if _, err := s.Resolve("nothere"); !errors.Is(err, ErrNotFound) {
		t.Errorf("resolve missing: %v", err)
	}
}

func TestSnapshotCommitRoundTrip(t *testing.T) {
	needRoot(t)
	s := openStore(t)
	ctx := context.Background()
	img, err := s.ImportRootfs(ctx, busyboxRootfs(t), "bb", ocispec.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.Prepare(ctx, "c1", img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "c1", img); !errors.Is(err, ErrExists) {
		t.Errorf("second prepare: %v", err)
	}
	root := mountOverlay(t, ms)
	if _, err := os.Stat(filepath.Join(root, "bin/busybox")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc/new"), []byte("new"), 0o644)
	os.Remove(filepath.Join(root, "etc/hostname"))
	os.RemoveAll(filepath.Join(root, "tmp"))
	os.Mkdir(filepath.Join(root, "tmp"), 0o1777) // replaced: opaque
	os.WriteFile(filepath.Join(root, "tmp/x"), []byte("x"), 0o644)
	unix.Unmount(root, 0)

	layer, err := s.Commit(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, s, layer.Descriptor.Digest)
	for _, want := range []string{"etc/new", "etc/.wh.hostname", "tmp/", "tmp/.wh..wh..opq", "tmp/x"} {
		if !names[want] {
			t.Errorf("committed layer lacks %s: %v", want, names)
		}
	}
	cfg := img.Config
	cfg.RootFS.DiffIDs = append(append([]digest.Digest{}, cfg.RootFS.DiffIDs...), layer.DiffID)
	img2, err := s.WriteImage(ctx, cfg, append(append([]ocispec.Descriptor{}, img.Layers...), layer.Descriptor), "bb:2")
	if err != nil {
		t.Fatal(err)
	}
	ms2, err := s.Prepare(ctx, "c2", img2)
	if err != nil {
		t.Fatal(err)
	}
	root2 := mountOverlay(t, ms2)
	if b, _ := os.ReadFile(filepath.Join(root2, "etc/new")); string(b) != "new" {
		t.Errorf("etc/new = %q", b)
	}
	if _, err := os.Lstat(filepath.Join(root2, "etc/hostname")); err == nil {
		t.Errorf("etc/hostname survived its whiteout")
	}
	if _, err := os.Lstat(filepath.Join(root2, "etc/passwd")); err != nil {
		t.Errorf("etc/passwd: %v", err)
	}
	unix.Unmount(root2, 0)
	for _, k := range []string{"c1", "c2"} {
		if err := s.RemoveSnapshot(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if snaps, _ := s.Snapshots(); len(snaps) != 0 {
		t.Errorf("snapshots left: %v", snaps)
	}
}

func tarNames(t testing.TB, s *Store, d digest.Digest) map[string]bool {
	f, err := s.OpenBlob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, _, err := archive.Decompress(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
}

// deepImage stores an image of n one-file layers; layer i writes f<i> and
// whites out f<i-1>, so only the top file is visible.
func deepImage(t testing.TB, s *Store, n int) *Image {
	ctx := context.Background()
	var cfg ocispec.Image
	var layers []ocispec.Descriptor
	for i := range n {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		body := []byte{byte(i)}
		tw.WriteHeader(&tar.Header{Name: "d/f" + strconv.Itoa(i), Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
		tw.Write(body)
		if i > 0 {
			tw.WriteHeader(&tar.Header{Name: "d/.wh.f" + strconv.Itoa(i-1), Typeflag: tar.TypeReg})
		}
		tw.Close()
		d, size, err := s.IngestAny(ctx, &b)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: size})
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, d)
	}
	img, err := s.WriteImage(ctx, cfg, layers, "deep")
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestDeepImageFitsOnePage(t *testing.T) {
	needRoot(t)
	s := openStore(t)
	ctx := context.Background()
	img := deepImage(t, s, 150)
	ms, err := s.Prepare(ctx, "deep", img)
	if err != nil {
		t.Fatal(err)
	}
	root := mountOverlay(t, ms)
	ents, _ := os.ReadDir(filepath.Join(root, "d"))
	if len(ents) != 1 || ents[0].Name() != "f149" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("d/ = %v, want [f149]", names)
	}
	unix.Unmount(root, 0)
	s.RemoveSnapshot(ctx, "deep")
}
