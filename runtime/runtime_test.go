package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var busybox struct {
	once sync.Once
	dir  string
	err  error
}

// busyboxRootfs builds (once per test binary) a rootfs of the static
// busybox and its applet symlinks, with minimal passwd/group files.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	busybox.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-rootfs-")
		if err != nil {
			busybox.err = err
			return
		}
		os.Chmod(dir, 0o755)
		for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app"} {
			os.MkdirAll(filepath.Join(dir, d), 0o755)
		}
		os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
		b, err := os.ReadFile("/bin/busybox")
		if err != nil {
			busybox.err = err
			return
		}
		os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755)
		out, err := exec.Command("/bin/busybox", "--list").Output()
		if err != nil {
			busybox.err = err
			return
		}
		for _, app := range strings.Fields(string(out)) {
			os.Symlink("busybox", filepath.Join(dir, "bin", app))
		}
		os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n"), 0o644)
		busybox.dir = dir
	})
	if busybox.err != nil {
		t.Fatalf("busybox rootfs: %v", busybox.err)
	}
	return busybox.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if busybox.dir != "" {
		os.RemoveAll(busybox.dir)
	}
	if probeBin.path != "" {
		os.RemoveAll(filepath.Dir(probeBin.path))
	}
	os.Exit(code)
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates namespaces, mounts and cgroups")
	}
}

// newTestRuntime gives a test its own state root; at the end every
// container is deleted and the monitor is left to exit on its own.
func newTestRuntime(t *testing.T) *Runtime {
	t.Helper()
	needRoot(t)
	root, err := os.MkdirTemp("/run", "berth-rt-test-")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		list, _ := r.List()
		for _, s := range list {
			if err := r.Delete(ctx, s.ID, true); err != nil {
				t.Errorf("cleanup delete %s: %v", s.ID, err)
			}
		}
		os.RemoveAll(root)
	})
	return r
}

// testSpec is the default spec over the busybox rootfs running args.
func testSpec(t *testing.T, args ...string) *specs.Spec {
	s := DefaultSpec(args)
	s.Root = &specs.Root{Path: busyboxRootfs(t)}
	return s
}

func runToEnd(t *testing.T, r *Runtime, id string, o CreateOptions) *State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.Run(ctx, id, o); err != nil {
		t.Fatalf("run %s: %v", id, err)
	}
	s, err := r.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	return s
}

func logText(t *testing.T, r *Runtime, id string) string {
	t.Helper()
	var b strings.Builder
	err := r.Logs(context.Background(), id, LogOptions{}, func(e LogEntry) error {
		b.WriteString(e.Log)
		return nil
	})
	if err != nil {
		t.Fatalf("logs %s: %v", id, err)
	}
	return b.String()
}

func TestRunEchoLogsAndExitCode(t *testing.T) {
	r := newTestRuntime(t)
	s := runToEnd(t, r, "echo", CreateOptions{Spec: testSpec(t, "sh", "-c", "echo hello; echo oops >&2; exit 3")})
	if s.ExitCode != 3 {
		t.Fatalf("exit code %d, want 3", s.ExitCode)
	}
	out := logText(t, r, "echo")
	if out != "hello\noops\n" && out != "oops\nhello\n" {
		t.Fatalf("log %q", out)
	}
}
