package builder

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/store"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// benchEnv is the benchmark: FROM busybox, RUN, COPY of 200 files
// (10 MB), ENV, CMD.
func benchEnv(b *testing.B) (*Builder, string, string) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: overlay mounts and namespaces")
	}
	root := b.TempDir()
	s, err := store.Open(root)
	if err != nil {
		b.Fatal(err)
	}
	base := filepath.Join(root, "base")
	busyboxRootfs(b, base)
	if _, err := s.ImportRootfs(context.Background(), base, "busybox:bench", ocispec.ImageConfig{}); err != nil {
		b.Fatal(err)
	}
	bld, err := New(filepath.Join(root, "builder"), &LayerStore{S: s}, NamespaceRunner{})
	if err != nil {
		b.Fatal(err)
	}
	ctxDir := filepath.Join(root, "ctx")
	writeFiles(b, ctxDir, map[string]string{"Dockerfile": "FROM busybox:bench\nRUN echo hi > /hello\nCOPY data/ /data/\nENV A=1\nCMD [\"sh\"]\n"})
	os.MkdirAll(filepath.Join(ctxDir, "data"), 0o755)
	for i := 0; i < 200; i++ {
		writeRandom(b, filepath.Join(ctxDir, "data", fmt.Sprintf("f%d", i)))
	}
	return bld, ctxDir, root
}

func writeRandom(b testing.TB, name string) {
	buf := make([]byte, 10<<20/200)
	rand.Read(buf)
	if err := os.WriteFile(name, buf, 0o644); err != nil {
		b.Fatal(err)
	}
}

func benchBuild(b *testing.B, before func(ctxDir, root string)) {
	bld, ctxDir, root := benchEnv(b)
	o := Options{ContextDir: ctxDir, Tags: []string{"bench:build"}}
	if _, err := bld.Build(context.Background(), o); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		before(ctxDir, root)
		b.StartTimer()
		if _, err := bld.Build(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildCold(b *testing.B) {
	benchBuild(b, func(ctxDir, root string) {
		os.RemoveAll(filepath.Join(root, "builder", "cache"))
		os.MkdirAll(filepath.Join(root, "builder", "cache"), 0o700)
	})
}

func BenchmarkBuildCached(b *testing.B) {
	benchBuild(b, func(string, string) {})
}

func BenchmarkBuildOneFileChanged(b *testing.B) {
	benchBuild(b, func(ctxDir, root string) { writeRandom(b, filepath.Join(ctxDir, "data", "f7")) })
}
