package topdir

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMkdirAllMarks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("not made: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.EXT4_SUPER_MAGIC {
		t.Skipf("file system %#x: only ext4 is known to keep the flag", st.Type)
	}
	if !Marked(dir) {
		t.Fatal("not marked")
	}
	if Marked(filepath.Dir(dir)) {
		t.Error("the parent, made on the way, is marked too")
	}
	// idempotent, and other flags are kept
	Mark(dir)
	if !Marked(dir) {
		t.Fatal("a second Mark cleared it")
	}
}

func TestMarkMissingIsQuiet(t *testing.T) {
	Mark(filepath.Join(t.TempDir(), "missing")) // must not panic or create
	if Marked(filepath.Join(t.TempDir(), "missing")) {
		t.Fatal("a missing directory reads as marked")
	}
}
