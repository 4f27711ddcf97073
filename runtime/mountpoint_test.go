package runtime

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The statx walk finds the same mount point as mountinfo, for a path on /
// and for one under a mount made for the test.
func TestMountPointOf(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	check := func(p string) string {
		t.Helper()
		byID, ok := mountPointByID(p)
		if !ok {
			t.Skip("statx gives no mount ids here")
		}
		if info := mountPointFromInfo(p); byID != info {
			t.Fatalf("mount point of %s: statx walk %q, mountinfo %q", p, byID, info)
		}
		return byID
	}
	check(sub)
	if os.Geteuid() != 0 {
		return
	}
	mnt := filepath.Join(dir, "a")
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	os.MkdirAll(filepath.Join(mnt, "b", "c"), 0o755)
	if got := check(filepath.Join(mnt, "b", "c")); got != mnt {
		t.Fatalf("mount point under a new mount: %q, want %q", got, mnt)
	}
}
