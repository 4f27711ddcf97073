package fsroot

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRel(t *testing.T) {
	for in, want := range map[string]string{
		"": ".", "/": ".", ".": ".", "a": "a", "/a/b/": "a/b", "../../etc": "etc", "/a/../../b": "b",
	} {
		if got := Rel(in); got != want {
			t.Errorf("Rel(%q) = %q, want %q", in, got, want)
		}
	}
}

// A root holding links that point out of it (absolute, relative, through
// "..") must resolve each of them inside the root.
func TestOpenatStaysInRoot(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, outside), 0o755))
	must(t, os.WriteFile(filepath.Join(root, outside, "secret"), []byte("inside"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(root, "abs")))
	must(t, os.Symlink("../../../../../../.."+outside, filepath.Join(root, "rel")))
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(rfd)
	for _, name := range []string{"abs/secret", "rel/secret", "/../../.." + outside + "/secret"} {
		fd, err := Openat(rfd, name, unix.O_RDONLY, 0, 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		buf := make([]byte, 16)
		n, _ := unix.Read(fd, buf)
		unix.Close(fd)
		if string(buf[:n]) != "inside" {
			t.Errorf("%s read %q, want the root's own file", name, buf[:n])
		}
	}
	if _, err := Openat(rfd, "abs/secret", unix.O_RDONLY, 0, NoSymlinks); err != unix.ELOOP {
		t.Errorf("NoSymlinks through a link: err %v, want ELOOP", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
