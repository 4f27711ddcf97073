package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCreateInspectListRemove(t *testing.T) {
	ctx := context.Background()
	m := New(t.TempDir())
	v, err := m.Create(ctx, Spec{Name: "proj_data", Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, Spec{Name: "proj_data"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: got %v, want ErrExists", err)
	}
	got, err := m.Inspect(ctx, "proj_data")
	if err != nil || got.Labels["a"] != "b" || got.Mountpoint != v.Mountpoint {
		t.Fatalf("inspect: %+v %v", got, err)
	}
	// A temporary directory left by a crash is not a volume.
	if err := os.MkdirAll(filepath.Join(m.dir, ".tmp-x-1", "_data"), 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := m.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "proj_data" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := m.Remove(ctx, "proj_data"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, "proj_data"); err != nil {
		t.Fatalf("removing a missing volume: %v", err)
	}
	if _, err := m.Inspect(ctx, "proj_data"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inspect after remove: %v", err)
	}
	if _, err := os.Stat(v.Mountpoint); !os.IsNotExist(err) {
		t.Fatalf("content survived removal: %v", err)
	}
}

func TestInvalidNamesAndOptions(t *testing.T) {
	ctx := context.Background()
	m := New(t.TempDir())
	for _, n := range []string{"", "../x", "a/b", "-x", ".hidden"} {
		if _, err := m.Create(ctx, Spec{Name: n}); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
	if _, err := m.Create(ctx, Spec{Name: "v", DriverOpts: map[string]string{"bogus": "1"}}); err == nil {
		t.Error("unknown driver option accepted")
	}
	if _, err := m.Create(ctx, Spec{Name: "v", Driver: "nfs-magic"}); err == nil {
		t.Error("unknown driver accepted")
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	m := New(t.TempDir())
	for _, n := range []string{"a", "b", "c"} {
		if _, err := m.Create(ctx, Spec{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := m.Prune(ctx, func(v Volume) bool { return v.Name == "b" })
	if err != nil || len(removed) != 2 {
		t.Fatalf("prune: %v %v", removed, err)
	}
	list, _ := m.List(ctx)
	if len(list) != 1 || list[0].Name != "b" {
		t.Fatalf("left: %+v", list)
	}
}

func TestResolveBind(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	got, err := ResolveBind(filepath.Join(dir, "link", "new", "deeper"), true)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(real, "new", "deeper")
	if got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
		t.Fatalf("missing source not created: %v", err)
	}
	// A dangling link must not make the directory where it points.
	outside := filepath.Join(dir, "outside-target")
	if err := os.Symlink(outside, filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveBind(filepath.Join(dir, "dangling"), true); err == nil {
		t.Fatal("dangling symlink accepted")
	}
	if _, err := os.Lstat(outside); !os.IsNotExist(err) {
		t.Fatal("directory created through a dangling symlink")
	}
	if _, err := ResolveBind("relative/path", true); err == nil {
		t.Fatal("relative source accepted")
	}
	if _, err := ResolveBind(filepath.Join(dir, "absent"), false); err == nil {
		t.Fatal("missing source accepted without create")
	}
}

func TestCopyTreeKeepsLinksAndModes(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "f"), []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	// A link pointing out of the tree is copied as a link, never followed.
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "pw")); err != nil {
		t.Fatal(err)
	}
	if err := CopyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "sub", "f"))
	if err != nil || string(b) != "hello" {
		t.Fatalf("file: %q %v", b, err)
	}
	fi, _ := os.Stat(filepath.Join(dst, "sub", "f"))
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	di, _ := os.Stat(filepath.Join(dst, "sub"))
	if di.Mode().Perm() != 0o750 {
		t.Fatalf("dir mode %v", di.Mode())
	}
	l, err := os.Readlink(filepath.Join(dst, "pw"))
	if err != nil || l != "/etc/passwd" {
		t.Fatalf("link: %q %v", l, err)
	}
}

func TestDriverOptsBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a bind device")
	}
	ctx := context.Background()
	m := New(t.TempDir())
	dev := t.TempDir()
	if err := os.WriteFile(filepath.Join(dev, "marker"), []byte("m"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, Spec{Name: "bound", DriverOpts: map[string]string{"type": "none", "o": "bind", "device": dev}}); err != nil {
		t.Fatal(err)
	}
	p, err := m.Path(ctx, "bound")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p, "marker")); err != nil {
		t.Fatalf("device content not visible: %v", err)
	}
	if p2, err := m.Path(ctx, "bound"); err != nil || p2 != p {
		t.Fatalf("second Path: %s %v", p2, err)
	}
	if err := m.Remove(ctx, "bound"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dev, "marker")); err != nil {
		t.Fatalf("removing the volume removed the bound device's content: %v", err)
	}
}

// Containers that mount one new volume and start together fill it once:
// the others find it filled (two managers stand for two berth processes).
func TestPopulateOnce(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	m1, m2 := New(root), New(root)
	if _, err := m1.Create(ctx, Spec{Name: "proj_ticks"}); err != nil {
		t.Fatal(err)
	}
	var fills atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		m := m1
		if i%2 == 1 {
			m = m2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- m.Populate(ctx, "proj_ticks", func(path string) error {
				fills.Add(1)
				time.Sleep(20 * time.Millisecond) // a copy takes a while
				return os.WriteFile(filepath.Join(path, "from-image"), []byte("x"), 0o644)
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := fills.Load(); n != 1 {
		t.Fatalf("filled %d times, want once", n)
	}
	v, err := m2.Inspect(ctx, "proj_ticks")
	if err != nil || !v.Populated {
		t.Fatalf("after Populate: %+v, %v", v, err)
	}
	if _, err := os.Stat(filepath.Join(v.Mountpoint, "from-image")); err != nil {
		t.Fatal(err)
	}
}
