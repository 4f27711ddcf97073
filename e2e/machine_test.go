package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/e2e/berthtest"
)

// repoRoot is the repository (the demo and scripts live there).
var repoRoot = berthtest.Repo

var eventually = berthtest.Eventually

func TestMain(m *testing.M) { berthtest.Main(m) }

// machine is one test's berth installation (berthtest.Machine): its own
// state roots, its own network namespace standing for the host, and a
// busybox image.
type machine struct {
	*berthtest.Machine
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
	bm := berthtest.New(t, berthtest.Options{RunPrefix: "berth-e2e-", Netns: true, Tools: []string{"nft"},
		Image: "localhost/busybox:e2e"})
	m := &machine{Machine: bm, t: t, bin: bm.Bin, root: bm.Root, run: bm.Run, netns: bm.Netns}
	// Registered after berthtest's sweep, so it runs before it.
	t.Cleanup(func() {
		for _, p := range m.projects {
			p.berth("down", "-v", "-t", "0")
		}
	})
	return m
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
	return p.m.Command(ctx, p.dir, args...)
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
