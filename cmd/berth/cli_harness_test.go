package main

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

// The tests of this file's siblings (exec_test.go, run_test.go...) run the
// built berth binary as a user would, as root, each on its own machine:
// fresh state roots and a network namespace standing for the host, so
// bridges and nftables rules never touch the real host's.

var repoDir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}()

// builtBerth builds cmd/berth once per test run; BERTH_E2E_BINARY names a
// binary to test instead (as in e2e/).
var builtBerth = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv("BERTH_E2E_BINARY"); bin != "" {
		return filepath.Abs(bin)
	}
	dir, err := os.MkdirTemp("", "berth-cli-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "berth")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/berth")
	cmd.Dir = repoDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

type cliMachine struct {
	t         *testing.T
	bin       string
	root, run string
	netns     string
	dir       string // the project directory
}

// newCLIMachine makes a machine with a busybox image and a project
// directory holding compose (and files).
func newCLIMachine(t *testing.T, compose string, files map[string]string) *cliMachine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containers")
	}
	for _, tool := range []string{"busybox", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	bin, err := builtBerth()
	if err != nil {
		t.Fatal(err)
	}
	run, err := os.MkdirTemp("/run", "berth-cli-")
	if err != nil {
		t.Fatal(err)
	}
	m := &cliMachine{t: t, bin: bin, root: t.TempDir(), run: run, netns: filepath.Base(run), dir: t.TempDir()}
	if out, err := exec.Command("ip", "netns", "add", m.netns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(m.cleanup)
	m.host("ip", "link", "set", "lo", "up")
	all := map[string]string{"compose.yaml": compose}
	for name, content := range files {
		all[name] = content
	}
	for name, content := range all {
		path := filepath.Join(m.dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := exec.Command(filepath.Join(repoDir, "scripts", "busybox-image.sh"), "localhost/busybox:cli")
	script.Env = append(m.env(), "BERTH="+bin)
	start := time.Now()
	if out, err := script.CombinedOutput(); err != nil {
		t.Fatalf("busybox-image.sh: %v\n%s", err, out)
	}
	t.Logf("busybox image imported in %v", time.Since(start).Round(time.Millisecond))
	return m
}

// writeCompose replaces the project's compose file.
func (m *cliMachine) writeCompose(content string) {
	m.t.Helper()
	if err := os.WriteFile(filepath.Join(m.dir, "compose.yaml"), []byte(content), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

func (m *cliMachine) env() []string {
	return append(os.Environ(), "BERTH_ROOT="+m.root, "BERTH_RUN_ROOT="+m.run, "NO_COLOR=1")
}

// command is berth ARGS in the project directory, in the host namespace.
func (m *cliMachine) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + m.netns, "--", m.bin}, args...)...)
	cmd.Dir = m.dir
	cmd.Env = m.env()
	return cmd
}

// berth runs berth and returns stdout, stderr and the exit code.
func (m *cliMachine) berth(stdin string, args ...string) (string, string, int) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := m.command(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	if d := time.Since(start); d > 300*time.Millisecond {
		m.t.Logf("berth %s took %v", strings.Join(args, " "), d.Round(time.Millisecond))
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		m.t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		m.t.Fatalf("berth %s: timed out\n%s\n%s", strings.Join(args, " "), out.String(), errOut.String())
	}
	return out.String(), errOut.String(), code
}

// must runs berth and fails the test unless it exits 0.
func (m *cliMachine) must(args ...string) string {
	m.t.Helper()
	out, errOut, code := m.berth("", args...)
	if code != 0 {
		m.t.Fatalf("berth %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (m *cliMachine) host(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + m.netns, "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// records are the container records on the machine (record.json text).
func (m *cliMachine) records() []string {
	paths, _ := filepath.Glob(filepath.Join(m.root, "containers", "*", "record.json"))
	var out []string
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// cleanup brings the project down and then removes whatever a failed test
// left: processes naming this machine's roots, mounts under them, the
// namespace.
func (m *cliMachine) cleanup() {
	defer func(start time.Time) { m.t.Logf("cleanup took %v", time.Since(start).Round(time.Millisecond)) }(time.Now())
	m.berth("", "down", "-v", "-t", "0", "--remove-orphans")
	for _, pid := range m.pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	lines := strings.Split(string(mounts), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 1 && (strings.HasPrefix(f[1], m.root+"/") || strings.HasPrefix(f[1], m.run+"/")) {
			syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
	exec.Command("ip", "netns", "del", m.netns).Run()
	os.RemoveAll(m.run)
}

func (m *cliMachine) pids() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.Contains(b, []byte(m.run)) || bytes.Contains(b, []byte(m.root)) ||
			bytes.Contains(env, []byte("BERTH_RUN_ROOT="+m.run+"\x00")) {
			out = append(out, pid)
		}
	}
	return out
}

// eventually retries fn for up to d.
func eventually(t *testing.T, d time.Duration, what string, fn func() error) {
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
