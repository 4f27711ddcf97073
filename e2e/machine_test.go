package e2e

import (
	"bytes"
	"context"
	"encoding/json"
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

// repoRoot is the repository (the demo and scripts live there).
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}()

// berthBinary builds cmd/berth once per test run; BERTH_E2E_BINARY names
// a binary to test instead.
var berthBinary = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv("BERTH_E2E_BINARY"); bin != "" {
		return filepath.Abs(bin)
	}
	dir, err := os.MkdirTemp("", "berth-e2e-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "berth")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/berth")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// machine is one test's berth installation: its own state roots, its own
// network namespace standing for the host, and a busybox image.
type machine struct {
	t     *testing.T
	bin   string
	root  string
	run   string
	netns string // name under /run/netns
	// projects are brought down (-v) at cleanup, whatever the test did.
	projects []*project
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containers")
	}
	for _, tool := range []string{"busybox", "nsenter", "ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	bin, err := berthBinary()
	if err != nil {
		t.Fatal(err)
	}
	run, err := os.MkdirTemp("/run", "berth-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	m := &machine{t: t, bin: bin, root: t.TempDir(), run: run, netns: filepath.Base(run)}
	if out, err := exec.Command("ip", "netns", "add", m.netns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	m.host("ip", "link", "set", "lo", "up")
	t.Cleanup(m.cleanup)
	if out, err := runScript(m, "busybox-image.sh", "localhost/busybox:e2e"); err != nil {
		t.Fatalf("busybox-image.sh: %v\n%s", err, out)
	}
	return m
}

// runScript runs one of scripts/ against this machine's roots.
func runScript(m *machine, name string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", name), args...)
	cmd.Env = append(m.env(), "BERTH="+m.bin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (m *machine) env() []string {
	return append(os.Environ(), "BERTH_ROOT="+m.root, "BERTH_RUN_ROOT="+m.run, "NO_COLOR=1")
}

// cleanup brings every project down and removes what a failed test may
// have left: processes of this machine's roots, mounts under them, the
// namespace.
func (m *machine) cleanup() {
	for _, p := range m.projects {
		p.berth("down", "-v", "-t", "0")
	}
	for _, pid := range m.pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, mnt := range m.mounts() {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
	}
	exec.Command("ip", "netns", "del", m.netns).Run()
	os.RemoveAll(m.run)
}

// host runs a command in the namespace that plays the host.
func (m *machine) host(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + m.netns, "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// get fetches a URL from inside the host namespace (busybox wget; its -T
// crashes, so timeout(1) bounds it).
func (m *machine) get(url string) (string, error) {
	return m.host("timeout", "5", "busybox", "wget", "-q", "-O", "-", url)
}

// eventually retries fn until it returns nil or d passes.
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

// pids are the processes whose command line or cwd names this machine's
// roots (monitor, DNS responder, berth itself).
func (m *machine) pids() []int {
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

// mounts are the mount points under this machine's roots, deepest first.
func (m *machine) mounts() []string {
	b, _ := os.ReadFile("/proc/self/mounts")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		if strings.HasPrefix(f[1], m.root+"/") || strings.HasPrefix(f[1], m.run+"/") {
			out = append([]string{f[1]}, out...)
		}
	}
	return out
}

// project is a compose project directory on a machine.
type project struct {
	m   *machine
	dir string
}

// project writes a compose file (and any extra files) into a new directory.
func (m *machine) project(compose string, files map[string]string) *project {
	m.t.Helper()
	dir := m.t.TempDir()
	p := &project{m: m, dir: dir}
	p.write("compose.yaml", compose)
	for name, content := range files {
		p.write(name, content)
	}
	m.projects = append(m.projects, p)
	return p
}

// at is an existing directory as a project (the demo).
func (m *machine) at(dir string) *project {
	p := &project{m: m, dir: dir}
	m.projects = append(m.projects, p)
	return p
}

func (p *project) write(name, content string) {
	p.m.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.m.t.Fatal(err)
	}
	mode := os.FileMode(0o644)
	if strings.HasSuffix(name, ".sh") {
		mode = 0o755
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		p.m.t.Fatal(err)
	}
}

// berth runs the binary in the project directory, inside the host namespace.
func (p *project) berth(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := p.command(ctx, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *project) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + p.m.netns, "--", p.m.bin}, args...)...)
	cmd.Dir = p.dir
	cmd.Env = p.m.env()
	return cmd
}

// must runs berth and fails the test when it fails.
func (p *project) must(args ...string) string {
	p.m.t.Helper()
	out, err := p.berth(args...)
	if err != nil {
		p.m.t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// psEntry is one line of `berth ps --format json`.
type psEntry struct {
	ID, Name, Service, State, Health string
	ExitCode                         int
}

// ps lists the project's containers (all of them, -a).
func (p *project) ps() []psEntry {
	p.m.t.Helper()
	out := p.must("ps", "-a", "--format", "json")
	var list []psEntry
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var e psEntry
		if err := dec.Decode(&e); err != nil {
			p.m.t.Fatalf("ps json: %v\n%s", err, out)
		}
		list = append(list, e)
	}
	return list
}

// ids maps each container name to its id.
func (p *project) ids() map[string]string {
	out := map[string]string{}
	for _, e := range p.ps() {
		out[e.Name] = e.ID
	}
	return out
}

// runtimeState reads a container's runtime state as the monitor wrote it.
type runtimeState struct {
	Status   string    `json:"status"`
	Pid      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Restarts int       `json:"restarts"`
}

func (m *machine) runtimeState(id string) (runtimeState, error) {
	var s runtimeState
	b, err := os.ReadFile(filepath.Join(m.run, "runtime", id, "state.json"))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}
