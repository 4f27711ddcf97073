package store

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// benchLayer writes (once per run) a gzip layer of about 100 MB in 5,000
// files, compressible like real binaries and text.
func benchLayer(b *testing.B) string {
	dir := filepath.Join(os.TempDir(), "berth-bench-layer")
	tgz := dir + ".tar.gz"
	if _, err := os.Stat(tgz); err == nil {
		return tgz
	}
	rng := rand.New(rand.NewSource(1))
	words := make([][]byte, 512)
	for i := range words {
		words[i] = make([]byte, 3+rng.Intn(12))
		rng.Read(words[i])
	}
	src := filepath.Join(dir, "rootfs")
	for i := range 5000 {
		d := filepath.Join(src, fmt.Sprintf("d%02d/s%02d", i%50, i%37))
		os.MkdirAll(d, 0o755)
		var body []byte
		for len(body) < 20<<10 {
			body = append(body, words[rng.Intn(len(words))]...)
		}
		os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d", i)), body, 0o644)
	}
	if out, err := exec.Command("tar", "-czf", tgz, "-C", src, ".").CombinedOutput(); err != nil {
		b.Fatalf("tar: %v %s", err, out)
	}
	return tgz
}

// BenchmarkUnpackLayer compares store.Unpack (verify digests, extract
// safely, rename) with tar -xzf of the same file. Each iteration runs both,
// in alternating order, so that machine noise hits both alike; it reports
// seconds per unpack for each and their ratio. Nothing is deleted while the
// clock runs (the filesystem may be mounted with discard).
func BenchmarkUnpackLayer(b *testing.B) {
	tgz := benchLayer(b)
	s, _ := Open(b.TempDir())
	ctx := context.Background()
	f, _ := os.Open(tgz)
	d, n, err := s.IngestAny(ctx, f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	l := Layer{Descriptor: ocispec.Descriptor{Digest: d, Size: n}}
	if _, err := s.scanLayer(ctx, &l); err != nil {
		b.Fatal(err)
	}
	img, err := s.WriteImage(ctx, ocispec.Image{RootFS: ocispec.RootFS{DiffIDs: []digest.Digest{l.DiffID}}}, []ocispec.Descriptor{l.Descriptor}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	trash := b.TempDir()
	var berthT, tarT time.Duration
	berth := func(i int) {
		start := time.Now()
		if err := s.Unpack(ctx, img); err != nil {
			b.Fatal(err)
		}
		berthT += time.Since(start)
		os.Rename(s.layerDir(img.ChainIDs()[0]), filepath.Join(trash, fmt.Sprint("b", i)))
	}
	tarx := func(i int) {
		dst := filepath.Join(trash, fmt.Sprint("t", i))
		os.Mkdir(dst, 0o755)
		start := time.Now()
		if out, err := exec.Command("tar", "-xzf", tgz, "-C", dst).CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
		tarT += time.Since(start)
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			berth(i)
			tarx(i)
		} else {
			tarx(i)
			berth(i)
		}
	}
	b.ReportMetric(berthT.Seconds()/float64(b.N), "berth-s/op")
	b.ReportMetric(tarT.Seconds()/float64(b.N), "tar-s/op")
	b.ReportMetric(berthT.Seconds()/tarT.Seconds(), "berth/tar")
}
