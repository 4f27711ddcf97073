package store

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func needTool(t *testing.T, name string) {
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("needs %s (scripts/install-deps.sh installs it)", name)
	}
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return out
}

func saveTo(t *testing.T, s *Store, format, ref string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.Save(context.Background(), f, format, ref); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadFrom(t *testing.T, s *Store, p string) []*Image {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imgs, err := s.Load(context.Background(), f)
	if err != nil {
		t.Fatalf("load %s: %v", p, err)
	}
	return imgs
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s := openStore(t)
	img, err := s.ImportRootfs(context.Background(), busyboxRootfs(t), "bb:1", ocispec.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{FormatDocker, FormatOCI} {
		t.Run(format, func(t *testing.T) {
			s2 := openStore(t)
			imgs := loadFrom(t, s2, saveTo(t, s, format, "bb:1"))
			if len(imgs) != 1 {
				t.Fatalf("loaded %d images", len(imgs))
			}
			got, err := s2.Resolve("bb:1")
			if err != nil {
				t.Fatal(err)
			}
			if got.ConfigDigest != img.ConfigDigest {
				t.Errorf("image ID %s, want %s", got.ConfigDigest, img.ConfigDigest)
			}
			if got.Config.Config.Cmd[0] != "sh" {
				t.Errorf("config lost: %+v", got.Config.Config)
			}
		})
	}
}

func TestSkopeoReadsSavedArchives(t *testing.T) {
	needTool(t, "skopeo")
	s := openStore(t)
	img, err := s.ImportRootfs(context.Background(), busyboxRootfs(t), "bb:1", ocispec.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{"docker-archive", "oci-archive"} {
		p := saveTo(t, s, tr, "bb:1")
		cfg := run(t, "skopeo", "inspect", "--raw", "--config", tr+":"+p)
		if got := digest.FromBytes(cfg); got != img.ConfigDigest {
			t.Errorf("skopeo %s: config %s, want %s", tr, got, img.ConfigDigest)
		}
	}
}

func TestLoadSkopeoAndUmociArchives(t *testing.T) {
	needTool(t, "skopeo")
	needTool(t, "umoci")
	s := openStore(t)
	ctx := context.Background()
	img, err := s.ImportRootfs(ctx, busyboxRootfs(t), "bb:1", ocispec.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	src := saveTo(t, s, FormatDocker, "bb:1")
	dir := t.TempDir()

	// skopeo writes an oci-archive, berth loads it by the name given.
	ociTar := filepath.Join(dir, "skopeo-oci.tar")
	run(t, "skopeo", "--insecure-policy", "copy", "docker-archive:"+src, "oci-archive:"+ociTar+":example.com/bb:sk")
	s2 := openStore(t)
	loadFrom(t, s2, ociTar)
	got, err := s2.Resolve("example.com/bb:sk")
	if err != nil {
		t.Fatal(err)
	}
	if got.DiffIDs()[0] != img.DiffIDs()[0] {
		t.Errorf("skopeo round trip changed the layer: %s", got.DiffIDs()[0])
	}

	// umoci unpacks berth's OCI layout, adds a file and repacks it; berth
	// loads the result.
	layout := filepath.Join(dir, "layout")
	os.Mkdir(layout, 0o755)
	run(t, "tar", "-xf", saveTo(t, s, FormatOCI, "bb:1"), "-C", layout)
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--image", layout+":1", bundle)
	if _, err := os.Stat(filepath.Join(bundle, "rootfs/bin/busybox")); err != nil {
		t.Fatalf("umoci unpack of berth's layout: %v", err)
	}
	os.WriteFile(filepath.Join(bundle, "rootfs/etc/umoci"), []byte("hi"), 0o644)
	run(t, "umoci", "repack", "--image", layout+":2", bundle)
	umociTar := filepath.Join(dir, "umoci.tar")
	run(t, "tar", "-cf", umociTar, "-C", layout, ".")
	s3 := openStore(t)
	imgs := loadFrom(t, s3, umociTar)
	if len(imgs) != 2 {
		t.Fatalf("loaded %d images from umoci's layout, want 2", len(imgs))
	}
	var repacked *Image
	for _, i := range imgs {
		if len(i.Layers) == 2 {
			repacked = i
		}
	}
	if repacked == nil {
		t.Fatal("umoci's repacked image not loaded")
	}
	if names := tarNames(t, s3, repacked.Layers[1].Digest); !names["etc/umoci"] {
		t.Errorf("umoci's layer lacks etc/umoci: %v", names)
	}
}
