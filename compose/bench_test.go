package compose

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// generated writes a project of n services shaped like real ones: image,
// environment, ports, a volume, a network, a healthcheck, a dependency.
func generated(b *testing.B, n int) string {
	var y strings.Builder
	y.WriteString("services:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&y, `  svc%d:
    image: registry.test/app%d:1.0
    command: ["serve", "--port", "80"]
    environment:
      INDEX: "%d"
      MODE: production
    ports: ["%d:80"]
    volumes: ["data%d:/data", "./conf:/conf:ro"]
    networks: [front, back]
    healthcheck:
      test: ["CMD", "true"]
      interval: 5s
    deploy:
      resources: {limits: {memory: 64m}}
`, i, i, i, 20000+i, i)
		if i > 0 {
			fmt.Fprintf(&y, "    depends_on: [svc%d]\n", i-1)
		}
	}
	y.WriteString("networks:\n  front:\n  back:\nvolumes:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&y, "  data%d:\n", i)
	}
	dir := b.TempDir()
	writeTree(b, dir, map[string]string{"proj/compose.yaml": y.String()})
	return dir
}

func benchLoad(b *testing.B, n int) {
	dir := generated(b, n)
	o := Options{Dir: filepath.Join(dir, "proj"), Environ: []string{}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := Load(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Desired(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad50 is a full load and conversion of 50 services (no cache).
func BenchmarkLoad50(b *testing.B) { benchLoad(b, 50) }

// BenchmarkLoad500 is a full load and conversion of 500 services.
func BenchmarkLoad500(b *testing.B) { benchLoad(b, 500) }

// BenchmarkCachedLoad50 is what a no-op `berth up` pays to get its desired
// state: key, read, validate, decode.
func BenchmarkCachedLoad50(b *testing.B) {
	dir := generated(b, 50)
	o := Options{Dir: filepath.Join(dir, "proj"), Environ: []string{}, CacheDir: filepath.Join(dir, "cache")}
	settle()
	if _, err := LoadDesired(context.Background(), o); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := LoadDesired(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		if !l.Cached {
			b.Fatal("not served from the cache")
		}
	}
}
