// Package berthtest is the test harness shared by the packages whose tests
// run the built berth binary as a user would (e2e, cmd/berth, gitops): it
// builds the binary once per test run, gives each test a machine of its
// own (a state root, a run root, optionally a network namespace standing
// for the host, a busybox image) and sweeps what a failed test leaves.
//
// Only tests import it (as net/http/httptest); the berth binary never
// links it.
package berthtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Repo is the repository's root directory (scripts/ and the demo live
// there).
var Repo = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}()

var binDir string // the directory Binary built into, for RemoveBinary

// Binary builds cmd/berth once per test run (with -race when
// BERTH_TEST_RACE is set); BERTH_E2E_BINARY names a binary to test instead.
var Binary = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv("BERTH_E2E_BINARY"); bin != "" {
		return filepath.Abs(bin)
	}
	dir, err := os.MkdirTemp("", "berth-test-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "berth")
	// The binary users get (scripts/build.sh links it statically where it
	// can); -race needs a plain build.
	cmd := exec.Command(filepath.Join(Repo, "scripts", "build.sh"), bin)
	if os.Getenv("BERTH_TEST_RACE") != "" {
		cmd = exec.Command("go", "build", "-race", "-o", bin, "./cmd/berth")
	}
	cmd.Dir = Repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build berth: %v\n%s", err, out)
	}
	return bin, nil
})

// Main runs a package's tests and then removes the binary Binary built,
// if it built one: a package's TestMain is berthtest.Main(m).
func Main(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Options shape a machine.
type Options struct {
	// RunPrefix names the run root: /run/<RunPrefix><random>.
	RunPrefix string
	// Netns gives the machine a network namespace of its own that stands
	// for the host (named after the run root): Command and Host run in it.
	Netns bool
	// Tools are needed besides busybox (and nsenter and ip with Netns);
	// the test is skipped without them.
	Tools []string
	// Image is imported with scripts/busybox-image.sh; "" imports nothing.
	Image string
}

// Machine is one test's berth installation. It is skipped unless the test
// runs as root. At cleanup it kills the processes naming its roots,
// unmounts what is mounted under them and removes the namespace and the
// run root; cleanups the caller registers after New (bringing projects
// down) run before that sweep.
type Machine struct {
	T     testing.TB
	Bin   string
	Root  string
	Run   string
	Netns string // name under /run/netns; "" without Options.Netns
}

// New makes a machine.
func New(t testing.TB, o Options) *Machine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containers")
	}
	tools := []string{"busybox"}
	if o.Netns {
		tools = append(tools, "nsenter", "ip")
	}
	for _, tool := range append(tools, o.Tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	run, err := os.MkdirTemp("/run", o.RunPrefix)
	if err != nil {
		t.Fatal(err)
	}
	m := &Machine{T: t, Bin: bin, Root: t.TempDir(), Run: run}
	t.Cleanup(m.sweep)
	if o.Netns {
		m.Netns = filepath.Base(run)
		if out, err := exec.Command("ip", "netns", "add", m.Netns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v %s", err, out)
		}
		m.Host("ip", "link", "set", "lo", "up")
	}
	if o.Image != "" {
		start := time.Now()
		if out, err := m.Script("busybox-image.sh", o.Image); err != nil {
			t.Fatalf("busybox-image.sh: %v\n%s", err, out)
		}
		t.Logf("busybox image imported in %v", time.Since(start).Round(time.Millisecond))
	}
	return m
}

// Env is the environment berth runs with: the test's, the machine's roots
// and no colours.
func (m *Machine) Env() []string {
	return append(os.Environ(), "BERTH_ROOT="+m.Root, "BERTH_RUN_ROOT="+m.Run, "NO_COLOR=1")
}

// Command is berth ARGS in dir, in the machine's namespace if it has one.
func (m *Machine) Command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, m.Bin, args...)
	if m.Netns != "" {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + m.Netns, "--", m.Bin}, args...)...)
	}
	cmd.Dir = dir
	cmd.Env = m.Env()
	return cmd
}

// Host runs a command in the namespace that plays the host (on the host
// itself without one).
func (m *Machine) Host(args ...string) (string, error) {
	cmd := exec.Command(args[0], args[1:]...)
	if m.Netns != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + m.Netns, "--"}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Get fetches a URL from the host namespace (busybox wget; its -T
// crashes, so timeout(1) bounds it).
func (m *Machine) Get(url string) (string, error) {
	return m.Host("timeout", "5", "busybox", "wget", "-q", "-O", "-", url)
}

// Script runs one of scripts/ against this machine's roots and binary.
func (m *Machine) Script(name string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(Repo, "scripts", name), args...)
	cmd.Env = append(m.Env(), "BERTH="+m.Bin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sweep removes what a failed test may have left: processes of this
// machine's roots, mounts under them, the namespace, the run root.
func (m *Machine) sweep() {
	for _, pid := range m.Pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, mnt := range m.Mounts() {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
	}
	if m.Netns != "" {
		exec.Command("ip", "netns", "del", m.Netns).Run()
	}
	os.RemoveAll(m.Run)
}

// Pids are the processes whose command line or environment names this
// machine's roots (monitor, DNS responder, berth itself).
func (m *Machine) Pids() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.Contains(b, []byte(m.Run)) || bytes.Contains(b, []byte(m.Root)) ||
			bytes.Contains(env, []byte("BERTH_RUN_ROOT="+m.Run+"\x00")) {
			out = append(out, pid)
		}
	}
	return out
}

// Mounts are the mount points under this machine's roots, deepest first.
func (m *Machine) Mounts() []string {
	b, _ := os.ReadFile("/proc/self/mounts")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		if strings.HasPrefix(f[1], m.Root+"/") || strings.HasPrefix(f[1], m.Run+"/") {
			out = append([]string{f[1]}, out...)
		}
	}
	return out
}

// Eventually retries fn every 100 ms until it returns nil, and fails the
// test when d passes first.
func Eventually(t testing.TB, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
