package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const imagesCompose = `
name: imgs
services:
  web:
    image: localhost/busybox:test
    command: ["sleep", "3600"]
    init: true
    deploy:
      replicas: 2
  worker:
    image: localhost/other:v2
    command: ["sleep", "3600"]
    init: true
`

// TestComposeImages: `berth images` is docker compose's per-project list
// (one line per container, compose's columns and JSON fields, -q unique
// IDs, service filter), and the store's list stays as `berth image ls`.
func TestComposeImages(t *testing.T) {
	m := newMachine(t)
	// Two images told apart by their config (the same rootfs alone gives
	// one image ID), and one no container uses.
	dir := m.t.TempDir()
	for _, d := range []string{"bin", "etc"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	bb, _ := exec.LookPath("busybox")
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "bin", "busybox"), b, 0o755)
	os.Symlink("busybox", filepath.Join(dir, "bin", "sleep"))
	otherID := strings.TrimSpace(m.must("image", "import", "--cmd", "sleep", dir, "localhost/other:v2"))
	m.must("image", "import", "--cmd", "true", dir, "localhost/unused:1")
	var insp []struct{ Id string }
	if err := json.Unmarshal([]byte(m.must("image", "inspect", "localhost/busybox:test")), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("image inspect: %v", err)
	}
	busyboxID := insp[0].Id
	if otherID == busyboxID || !strings.HasPrefix(otherID, "sha256:") || !strings.HasPrefix(busyboxID, "sha256:") {
		t.Fatalf("image ids: %q %q", otherID, busyboxID)
	}
	m.writeCompose(imagesCompose)
	m.must("up", "-d")

	table := strings.Split(strings.TrimRight(m.must("images"), "\n"), "\n")
	if len(table) != 4 || strings.Join(strings.Fields(table[0]), " ") != "CONTAINER REPOSITORY TAG PLATFORM IMAGE ID SIZE CREATED" {
		t.Fatalf("images table:\n%s", strings.Join(table, "\n"))
	}
	want := [][]string{
		{"imgs-web-1", "localhost/busybox", "test", "linux/", busyboxID[7:19]},
		{"imgs-web-2", "localhost/busybox", "test", "linux/", busyboxID[7:19]},
		{"imgs-worker-1", "localhost/other", "v2", "linux/", otherID[7:19]},
	}
	for i, w := range want {
		f := strings.Fields(table[i+1])
		if len(f) < 6 || f[0] != w[0] || f[1] != w[1] || f[2] != w[2] || !strings.HasPrefix(f[3], w[3]) || f[4] != w[4] {
			t.Errorf("images line %d = %q, want %v", i+1, table[i+1], w)
		}
	}

	var rows []map[string]any
	if err := json.Unmarshal([]byte(m.must("images", "--format", "json")), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("images --format json: %v %v", rows, err)
	}
	for _, k := range []string{"ID", "ContainerName", "Repository", "Tag", "Platform", "Size"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("images json has no %s field: %v", k, rows[0])
		}
	}
	if rows[2]["ContainerName"] != "imgs-worker-1" || rows[2]["ID"] != otherID || rows[2]["Size"].(float64) <= 0 {
		t.Errorf("images json worker row: %v", rows[2])
	}

	if q := m.must("images", "-q"); q != busyboxID[7:]+"\n"+otherID[7:]+"\n" {
		t.Errorf("images -q = %q, want the two ids once each", q)
	}
	if w := m.must("images", "worker"); strings.Contains(w, "imgs-web") || !strings.Contains(w, "imgs-worker-1") {
		t.Errorf("images worker:\n%s", w)
	}
	if r := m.berth("images", "nosuch"); r.code == 0 {
		t.Errorf("images nosuch succeeded: %s", r.stdout)
	}
	// The store's own list has what no container uses, in docker image ls's shape.
	ls := m.must("image", "ls")
	if !strings.HasPrefix(strings.Join(strings.Fields(strings.SplitN(ls, "\n", 2)[0]), " "), "REPOSITORY TAG IMAGE ID") ||
		!strings.Contains(ls, "localhost/unused") {
		t.Errorf("image ls:\n%s", ls)
	}
	if strings.Contains(m.must("images"), "unused") {
		t.Errorf("images lists an image no container uses")
	}
}
