package native

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/driver/drivertest"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/store"
)

// berthBinary builds cmd/berth once: the network layer re-executes it as
// the DNS responder, which a test binary cannot stand in for.
var berthBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "berth-native-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "berth")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/berth-dev/berth/cmd/berth")
	cmd.Stderr = os.Stderr
	return bin, cmd.Run()
})

// busyboxRootfs makes a root filesystem of busybox-static and its applets.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox-static")
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "sleep", "true", "false", "cat", "echo", "ls", "wget", "httpd", "nc", "nslookup", "hostname", "id", "mkdir", "touch"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "data", "from-image"), []byte("seed"), 0o644)
	return dir
}

// newTestDriver gives a test a driver with its own roots, networking in a
// throwaway namespace standing for the host, and an imported busybox image.
func newTestDriver(t *testing.T, ref string) *Driver {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containers")
	}
	bin, err := berthBinary()
	if err != nil {
		t.Fatalf("building berth: %v", err)
	}
	root := t.TempDir()
	run, err := os.MkdirTemp("/run", "berth-native-test-")
	if err != nil {
		t.Fatal(err)
	}
	hostNS := "berth-nt-" + filepath.Base(run)[len("berth-native-test-"):]
	if out, err := exec.Command("ip", "netns", "add", hostNS).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	exec.Command("ip", "-n", hostNS, "link", "set", "lo", "up").Run()
	d, err := New(Options{Root: root, RunRoot: run, Network: network.Options{
		Root: root, RunRoot: run, HostNetns: "/run/netns/" + hostNS,
		DNSCommand: func(stateDir, runDir string) *exec.Cmd {
			return exec.Command("ip", "netns", "exec", hostNS, bin, "network", "dns-server", "--state-dir", stateDir, "--run-dir", runDir)
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		exec.Command("ip", "netns", "del", hostNS).Run()
		os.RemoveAll(run)
	})
	if _, err := d.store.ImportRootfs(context.Background(), busyboxRootfs(t), ref, ocispec.ImageConfig{Cmd: []string{"sh"}}); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDriverContract(t *testing.T) {
	ref := "drivertest/busybox:latest"
	drivertest.RunSuite(t, drivertest.Suite{
		New:   func(t *testing.T) driver.Driver { return newTestDriver(t, ref) },
		Image: state.ImageSpec{Ref: ref, PullPolicy: "never"},
	})
}

var _ = store.ErrNotFound
