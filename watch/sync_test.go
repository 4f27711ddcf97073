package watch

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// chrooted starts a process whose root is a fresh directory, standing in
// for a container: /proc/PID/root is that directory.
func chrooted(t *testing.T) (pid int, root string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chroot")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox-static")
	}
	root = t.TempDir()
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/busybox", "sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid, root
}

func TestContainerFSPutRemove(t *testing.T) {
	pid, root := chrooted(t)
	host := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(host, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt", "one", 0o644)
	write("tree/x/y.sh", "#!/bin/sh", 0o755)
	write("tree/.y.sh.swp", "swap", 0o644)
	os.Symlink("a.txt", filepath.Join(host, "link"))

	fs, err := openContainerFS(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	for _, p := range []struct{ src, dst string }{{"a.txt", "/app/deep/a.txt"}, {"tree", "/app/tree"}, {"link", "/app/link"}} {
		if err := fs.Put(filepath.Join(host, p.src), p.dst); err != nil {
			t.Fatalf("put %s: %v", p.src, err)
		}
	}
	check := func(rel, want string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || string(b) != want {
			t.Fatalf("%s in the container: %q, %v; want %q", rel, b, err, want)
		}
	}
	check("app/deep/a.txt", "one")
	check("app/tree/x/y.sh", "#!/bin/sh")
	if fi, _ := os.Stat(filepath.Join(root, "app/tree/x/y.sh")); fi == nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("mode not kept: %v", fi)
	}
	if _, err := os.Lstat(filepath.Join(root, "app/tree/.y.sh.swp")); err == nil {
		t.Fatal("editor swap file synced")
	}
	if l, _ := os.Readlink(filepath.Join(root, "app/link")); l != "a.txt" {
		t.Fatalf("symlink %q", l)
	}
	// a changed file replaces the old one; no temporary file is left
	write("a.txt", "two", 0o644)
	if err := fs.Put(filepath.Join(host, "a.txt"), "/app/deep/a.txt"); err != nil {
		t.Fatal(err)
	}
	check("app/deep/a.txt", "two")
	ents, _ := os.ReadDir(filepath.Join(root, "app/deep"))
	if len(ents) != 1 {
		t.Fatalf("app/deep holds %v", ents)
	}
	for _, dst := range []string{"/app/tree", "/app/deep/a.txt", "/app/never/existed"} {
		if err := fs.Remove(dst); err != nil {
			t.Fatalf("remove %s: %v", dst, err)
		}
	}
	for _, rel := range []string{"app/tree", "app/deep/a.txt"} {
		if _, err := os.Lstat(filepath.Join(root, rel)); err == nil {
			t.Fatalf("%s still there", rel)
		}
	}
}

// A symlink planted in the container must not carry a write to the host.
func TestContainerFSStaysInside(t *testing.T) {
	pid, root := chrooted(t)
	hostDir := t.TempDir()
	name := "berth-watch-escape-" + filepath.Base(hostDir)
	os.Symlink(hostDir, filepath.Join(root, "abs"))                      // absolute: the host's path
	os.Symlink("../../../../../../"+hostDir, filepath.Join(root, "rel")) // climbing out
	src := filepath.Join(t.TempDir(), "f")
	os.WriteFile(src, []byte("x"), 0o644)
	fs, err := openContainerFS(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	for _, dst := range []string{"/abs/" + name, "/rel/" + name, "/../../" + name} {
		_ = fs.Put(src, dst)
	}
	ents, _ := os.ReadDir(hostDir)
	if len(ents) != 0 {
		t.Fatalf("write escaped the container into %s: %v", hostDir, ents)
	}
	// the writes landed inside the container's root instead
	found := 0
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, name) {
			found++
		}
		return nil
	})
	if found == 0 {
		t.Fatal("nothing written inside the container")
	}
}
