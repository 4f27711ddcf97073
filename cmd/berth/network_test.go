package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/state"
)

// TestNetworkCommands drives `berth network ls|inspect|rm|prune` and the
// re-executed `berth network dns-server` with the real binary, inside a
// throwaway namespace standing in for the host.
func TestNetworkCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and bridges")
	}
	bin := filepath.Join(t.TempDir(), "berth")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ns := fmt.Sprintf("berth-cmd%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	root, runRoot := t.TempDir(), t.TempDir()
	berth := func(args ...string) (string, error) {
		full := append([]string{"netns", "exec", ns, bin, "--root", root, "--run-root", runRoot}, args...)
		out, err := exec.Command("ip", full...).CombinedOutput()
		return string(out), err
	}
	m, err := network.New(network.Options{Root: root, RunRoot: runRoot, HostNetns: "/run/netns/" + ns,
		DNSCommand: func(stateDir, runDir string) *exec.Cmd {
			return exec.Command(bin, "network", "dns-server", "--state-dir", stateDir, "--run-dir", runDir)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() { m.Set(ctx, network.Config{}); m.Close() })
	for _, n := range []string{"demo_default", "demo_spare"} {
		if _, err := m.EnsureNetwork(ctx, state.NetworkSpec{Name: n, Project: "demo"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Attach(ctx, network.Endpoint{ID: "c1", Name: "demo-web-1", Project: "demo", Service: "web",
		Networks: []state.NetworkAttachment{{Network: "demo_default"}}}); err != nil {
		t.Fatal(err)
	}
	out, err := berth("network", "ls")
	if err != nil || !strings.Contains(out, "demo_default") || !strings.Contains(out, "10.213.") {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	out, err = berth("network", "inspect", "demo_default")
	if err != nil || !strings.Contains(out, `"c1"`) || !strings.Contains(out, `"name": "demo-web-1"`) {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	if out, err = berth("network", "rm", "demo_default"); err == nil {
		t.Fatalf("rm of a network in use succeeded: %s", out)
	}
	out, err = berth("network", "prune")
	if err != nil || !strings.Contains(out, "demo_spare") || strings.Contains(out, "demo_default") {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	// The responder is the re-executed binary.
	pid, _ := os.ReadFile(filepath.Join(runRoot, "network", "dns.pid"))
	cmdline, _ := os.ReadFile("/proc/" + string(pid) + "/cmdline")
	if !strings.Contains(string(cmdline), "dns-server") {
		t.Fatalf("dns responder pid %q runs %q", pid, cmdline)
	}
	if err := m.RemoveSandbox(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if out, err = berth("network", "rm", "demo_default"); err != nil {
		t.Fatalf("rm: %v\n%s", err, out)
	}
	deadline := time.Now().Add(3 * time.Second)
	for procExists("/proc/"+string(pid)+"/cmdline") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if procExists("/proc/" + string(pid) + "/cmdline") {
		if st, _ := os.ReadFile("/proc/" + string(pid) + "/stat"); !strings.Contains(string(st), ") Z") {
			t.Errorf("dns responder still running after the last network went")
		}
	}
	if out, _ := berth("network", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("networks left: %s", out)
	}
}

func procExists(p string) bool { _, err := os.Stat(p); return err == nil }
