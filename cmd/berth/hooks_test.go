package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const hooksProject = `
name: hooktest
services:
  web:
    image: localhost/busybox:test
    command: ["sleep", "3600"]
    init: true
    stop_grace_period: 5s
    environment: {GREETING: hello}
    volumes: ["./out:/out"]
    post_start:
      - command: ["sh", "-c", "echo \"$$GREETING $$HOOK_VAR $$(pwd)\" > /out/post_start"]
        environment: {HOOK_VAR: from-hook}
        working_dir: /tmp
    pre_stop:
      - command: ["sh", "-c", "echo stopping > /out/pre_stop; exit 3"]
`

// TestLifecycleHooks runs post_start and pre_stop through the binary: the
// hooks run inside the container (its env and mounts, the hook's own env
// and working dir), a failing pre_stop does not stop the stop, and a
// failing post_start fails the start.
func TestLifecycleHooks(t *testing.T) {
	m := newMachine(t)
	out := filepath.Join(m.dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	m.writeCompose(hooksProject)
	m.must("up", "-d")
	b, err := os.ReadFile(filepath.Join(out, "post_start"))
	if err != nil {
		t.Fatalf("post_start did not run: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != "hello from-hook /tmp" {
		t.Errorf("post_start wrote %q, want the container's env, the hook's env and working dir", got)
	}
	if _, err := os.Stat(filepath.Join(out, "pre_stop")); err == nil {
		t.Fatal("pre_stop ran before any stop")
	}
	m.must("stop", "web")
	if b, err := os.ReadFile(filepath.Join(out, "pre_stop")); err != nil || strings.TrimSpace(string(b)) != "stopping" {
		t.Fatalf("pre_stop: %q, %v", b, err)
	}
	if ps := m.must("ps", "-a", "--format", "json"); !strings.Contains(ps, `"State":"exited"`) {
		t.Errorf("after a failing pre_stop the container is %q, want exited", ps)
	}
	// The failure is logged as an event (the driver's event log).
	if ev, _ := os.ReadFile(filepath.Join(m.root, "events.jsonl")); !strings.Contains(string(ev), `"action":"hook","detail":"pre_stop hook 1 (sh -c echo stopping \u003e /out/pre_stop; exit 3): exit status 3"`) {
		t.Errorf("no event for the failed pre_stop hook:\n%s", ev)
	}

	m.writeCompose(strings.Replace(hooksProject, `"echo \"$$GREETING $$HOOK_VAR $$(pwd)\" > /out/post_start"`, `"echo failing >&2; exit 7"`, 1))
	r := m.berth("up", "-d")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "post_start hook 1") || !strings.Contains(r.stdout+r.stderr, "exit status 7: failing") {
		t.Fatalf("up with a failing post_start: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if ps := m.must("ps", "-a", "--format", "json"); strings.Contains(ps, `"State":"running"`) {
		t.Errorf("a container whose post_start failed is left running")
	}
}
