package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const volumeCompose = `
name: cliv
services:
  app:
    image: localhost/busybox:cli
    pull_policy: never
    init: true
    command: ["sleep", "3600"]
    volumes:
      - used:/used
      - /anon
volumes:
  used:
  spare:
`

// TestVolumeCommands runs berth volume ls/inspect/rm/prune through the
// binary and checks docker's output shapes and the in-use rules.
func TestVolumeCommands(t *testing.T) {
	m := newCLIMachine(t, volumeCompose, nil)
	m.must("up", "-d")

	ls := m.must("volume", "ls")
	lines := strings.Split(strings.TrimSpace(ls), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "DRIVER") || !strings.Contains(lines[0], "VOLUME NAME") {
		t.Fatalf("volume ls: want a header and three volumes:\n%s", ls)
	}
	if !strings.Contains(ls, "cliv_used") || !strings.Contains(ls, "cliv_spare") {
		t.Errorf("volume ls lacks the project's volumes:\n%s", ls)
	}
	names := strings.Fields(m.must("volume", "ls", "-q"))
	if len(names) != 3 {
		t.Errorf("volume ls -q: %q", names)
	}
	anon := ""
	for _, n := range names {
		if n != "cliv_used" && n != "cliv_spare" {
			anon = n
		}
	}
	// JSON lines with docker volume ls's fields.
	for _, l := range strings.Split(strings.TrimSpace(m.must("volume", "ls", "--format", "json")), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("volume ls --format json: %v: %s", err, l)
		}
		for _, k := range []string{"Driver", "Labels", "Mountpoint", "Name", "Scope", "Links"} {
			if _, ok := e[k]; !ok {
				t.Errorf("volume ls json lacks %s: %s", k, l)
			}
		}
	}
	if got := m.must("volume", "ls", "--format", "{{.Name}}:{{.Driver}}", "-p", "cliv"); !strings.Contains(got, "cliv_used:local\n") {
		t.Errorf("volume ls --format template: %q", got)
	}
	var inspect []map[string]any
	if err := json.Unmarshal([]byte(m.must("volume", "inspect", "cliv_used")), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("volume inspect: %v %v", err, inspect)
	}
	for _, k := range []string{"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"} {
		if _, ok := inspect[0][k]; !ok {
			t.Errorf("volume inspect lacks %s: %v", k, inspect[0])
		}
	}
	if labels, _ := inspect[0]["Labels"].(map[string]any); labels["com.docker.compose.project"] != "cliv" {
		t.Errorf("volume inspect labels: %v", inspect[0]["Labels"])
	}
	if _, _, code := m.berth("", "volume", "inspect", "nosuch"); code != 1 {
		t.Errorf("volume inspect nosuch: exit %d", code)
	}

	// In use: refused, kept. Unused: removed, its name printed.
	_, errOut, code := m.berth("", "volume", "rm", "cliv_used")
	if code == 0 || !strings.Contains(errOut, "in use") {
		t.Errorf("volume rm of a used volume: exit %d %s", code, errOut)
	}
	if out := m.must("volume", "rm", "cliv_spare"); out != "cliv_spare\n" {
		t.Errorf("volume rm printed %q", out)
	}
	if _, _, code := m.berth("", "volume", "rm", "cliv_spare"); code != 1 {
		t.Errorf("volume rm of a missing volume: exit %d", code)
	}
	m.must("volume", "rm", "--force", "cliv_spare")
	// prune keeps what containers use; once they are gone, -a removes
	// named volumes too.
	if out := m.must("volume", "prune", "-a"); strings.Contains(out, "cliv_used") || strings.Contains(out, anon) {
		t.Errorf("volume prune removed used volumes:\n%s", out)
	}
	m.must("rm", "-s", "-f")
	out := m.must("volume", "prune", "-a")
	if !strings.Contains(out, "cliv_used\n") || !strings.Contains(out, anon+"\n") || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("volume prune -a after rm:\n%s", out)
	}
	if left := m.must("volume", "ls", "-q"); left != "" {
		t.Errorf("volumes left after prune -a: %q", left)
	}
}
