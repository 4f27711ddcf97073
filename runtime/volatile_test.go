package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A rootfs overlay mounted "volatile" is mounted again by every restart and
// by the next container on the same layers: the kernel refuses that while
// the mark of the previous mount is in the work directory, so the runtime
// must clear it (ClearVolatile). The upper layer keeps what each run wrote.
func TestVolatileOverlayMountsAgain(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 60*time.Second)
	dir := t.TempDir()
	upper, work, mnt := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs")
	for _, d := range []string{upper, work, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rootfs := []specs.Mount{{Type: "overlay", Source: "overlay", Destination: "/", Options: []string{
		"lowerdir=" + busyboxRootfs(t), "upperdir=" + upper, "workdir=" + work, "volatile"}}}
	spec := func() *specs.Spec {
		s := DefaultSpec([]string{"sh", "-c", "echo run >> /runs; exit 1"})
		s.Root = &specs.Root{Path: mnt}
		return s
	}
	if _, err := r.Run(ctx, "vol", CreateOptions{Spec: spec(), RootfsMounts: rootfs, Restart: RestartPolicy{Name: "on-failure", MaxRetries: 2}}); err != nil {
		t.Fatal(err)
	}
	waitRestarted(t, r, "vol", 2) // each restart mounts the rootfs again
	if err := r.Delete(ctx, "vol", true); err != nil {
		t.Fatal(err)
	}
	if st := runToEnd(t, r, "vol2", CreateOptions{Spec: spec(), RootfsMounts: rootfs}); st.ExitCode != 1 {
		t.Fatalf("second container: exit %d", st.ExitCode)
	}
	b, err := os.ReadFile(filepath.Join(upper, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "run\n"); n != 4 {
		t.Fatalf("the upper layer holds %d runs, want 4 (3 of the first container, 1 of the second)", n)
	}
}
