package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/e2e/berthtest"
)

// The tests of this file's siblings (exec_test.go, run_test.go...) run the
// built berth binary as a user would, as root, each on its own machine
// (berthtest.Machine): fresh state roots and a network namespace standing
// for the host, so bridges and nftables rules never touch the real host's.

var repoDir = berthtest.Repo

// builtBerth builds cmd/berth once per test run; BERTH_E2E_BINARY names a
// binary to test instead (as in e2e/).
var builtBerth = berthtest.Binary

var eventually = berthtest.Eventually

func TestMain(m *testing.M) { berthtest.Main(m) }

type cliMachine struct {
	*berthtest.Machine
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
	bm := berthtest.New(t, berthtest.Options{RunPrefix: "berth-cli-", Netns: true, Image: "localhost/busybox:cli"})
	m := &cliMachine{Machine: bm, t: t, bin: bm.Bin, root: bm.Root, run: bm.Run, netns: bm.Netns, dir: t.TempDir()}
	// Registered after berthtest's sweep, so it runs before it.
	t.Cleanup(func() {
		start := time.Now()
		m.berth("", "down", "-v", "-t", "0", "--remove-orphans")
		m.t.Logf("down at cleanup took %v", time.Since(start).Round(time.Millisecond))
	})
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
	return m
}

// writeCompose replaces the project's compose file.
func (m *cliMachine) writeCompose(content string) {
	m.t.Helper()
	if err := os.WriteFile(filepath.Join(m.dir, "compose.yaml"), []byte(content), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

// command is berth ARGS in the project directory, in the host namespace.
func (m *cliMachine) command(ctx context.Context, args ...string) *exec.Cmd {
	return m.Command(ctx, m.dir, args...)
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
