package runtime

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// v1Hierarchies answers from a cache; a hierarchy unmounted since must make
// it read the mount table again.
func TestV1HierarchiesCache(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts a cgroup hierarchy)")
	}
	if isCgroupV2() {
		t.Skip("a v1 machine's test")
	}
	dir := t.TempDir()
	// A second mount of an existing hierarchy (v1 allows it with the same
	// options): it shows in mountinfo as one more mountpoint.
	if err := unix.Mount("cgroup", dir, "cgroup", 0, "pids"); err != nil {
		t.Skipf("cannot mount the pids hierarchy again: %v", err)
	}
	mounted := true
	defer func() {
		if mounted {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}()
	v1Cache.Lock()
	v1Cache.hs = nil
	v1Cache.Unlock()
	hs, err := v1Hierarchies()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := v1Hierarchies()
	if len(again) != len(hs) {
		t.Fatalf("cached answer differs: %v then %v", hs, again)
	}
	// Replace a cached mountpoint by a non-cgroup directory: the cache
	// must notice it is stale.
	fake := map[string]hierarchy{"pids": {mountpoint: dir, options: "pids", root: "/"}}
	if !stillCgroups(fake) {
		t.Fatal("a mounted hierarchy reads as gone")
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if stillCgroups(fake) {
		t.Fatal("an unmounted hierarchy still reads as a cgroup: v1Hierarchies would answer from a stale cache")
	}
}
