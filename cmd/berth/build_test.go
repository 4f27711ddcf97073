package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildExample builds examples/build as its README says, twice: the
// second run is fully cached and yields the same image.
func TestBuildExample(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay mounts and namespaces")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs busybox-static (scripts/install-deps.sh installs it)")
	}
	root, runRoot := t.TempDir(), t.TempDir()
	dir, _ := filepath.Abs("../../examples/build")
	args := []string{"--root", root, "--run-root", runRoot, "build"}
	first := run(t, dir, "", args...)
	if first.code != 0 {
		t.Fatalf("berth build: %d\n%s", first.code, first.stderr)
	}
	for _, want := range []string{"[base 2/4] COPY --from=hostbin busybox /bin/busybox", "naming to localhost/berth-build-example:latest"} {
		if !strings.Contains(first.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, first.stderr)
		}
	}
	q1 := run(t, dir, "", append(args, "-q")...)
	q2 := run(t, dir, "", append(args, "-q", "web")...)
	if q1.code != 0 || q2.code != 0 || !strings.HasPrefix(q1.stdout, "sha256:") || q1.stdout != q2.stdout {
		t.Errorf("cached rebuilds: %q (%d) vs %q (%d)\n%s%s", q1.stdout, q1.code, q2.stdout, q2.code, q1.stderr, q2.stderr)
	}
	bad := run(t, dir, "", append(args, "nosuch")...)
	if bad.code == 0 || !strings.Contains(bad.stderr, "no such service") {
		t.Errorf("unknown service: %d %s", bad.code, bad.stderr)
	}
}
