package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChildrenRunTheEmbeddedInit: the binary users get (scripts/build.sh)
// starts the containers' init children from the small init it embeds
// (runtime/initexe_linux.go), not from itself, and the exec children it
// starts the same way work: a healthcheck turns healthy, `berth exec`
// runs in the container. With `init: true` the init stays as the
// container's PID 1 (a reaper), a child of the monitor whose program shows.
func TestChildrenRunTheEmbeddedInit(t *testing.T) {
	if os.Getenv("BERTH_E2E_BINARY") != "" || os.Getenv("BERTH_TEST_RACE") != "" {
		t.Skip("a binary not built by scripts/build.sh may embed no init")
	}
	m := newMachine(t)
	p := m.project(`
name: e2einit
services:
  svc:
    image: localhost/busybox:e2e
    pull_policy: never
    init: true
    command: ["sleep", "3600"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 200ms
`, nil)
	p.must("up", "-d", "--wait")
	if out := p.must("exec", "-T", "svc", "sh", "-c", "echo in-$(hostname)"); !strings.HasPrefix(out, "in-") {
		t.Fatalf("exec printed %q", out)
	}
	monitor := 0
	for _, pid := range m.Pids() {
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.HasPrefix(string(cmd), "berth-monitor\x00") {
			monitor = pid
		}
	}
	if monitor == 0 {
		t.Fatal("no monitor among the machine's processes")
	}
	var children []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil || !strings.Contains(string(status), fmt.Sprintf("\nPPid:\t%d\n", monitor)) {
			continue
		}
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if strings.HasPrefix(exe, "/memfd:berth-init ") {
			return
		}
		children = append(children, exe)
	}
	t.Fatalf("no child of the monitor runs the embedded init; they run %q", children)
}
