package kernel

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReleaseAtLeast(t *testing.T) {
	for _, c := range []struct {
		release string
		want    bool
	}{
		{"5.10.0", true}, {"5.9.16", false}, {"6.1.0-18-amd64", true}, {"4.19.0", false},
		{"5.10", true}, {"5.15.0-1034-gcp", true}, {"5.4.0-150-generic", false},
		{"10.0.0", true}, {"5", false}, {"x.y", false}, {"5.10rc1", true}, {"", false},
	} {
		if got := ReleaseAtLeast(c.release, 5, 10); got != c.want {
			t.Errorf("ReleaseAtLeast(%q, 5, 10) = %v, want %v", c.release, got, c.want)
		}
	}
}

// The running kernel is at least the version its release names, and not
// the next major one.
func TestAtLeastRunningKernel(t *testing.T) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	var major, minor int
	if _, err := fmt.Sscanf(rel, "%d.%d", &major, &minor); err != nil {
		t.Skipf("release %q: %v", rel, err)
	}
	if !AtLeast(major, minor) || AtLeast(major+1, 0) {
		t.Fatalf("release %s: AtLeast(%d, %d) = %v, AtLeast(%d, 0) = %v", rel, major, minor, AtLeast(major, minor), major+1, AtLeast(major+1, 0))
	}
}
