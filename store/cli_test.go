package store

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageCommands drives the image commands of the built binary as a
// user would.
func TestImageCommands(t *testing.T) {
	bin := buildBerth(t)
	root := t.TempDir()
	berth := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--root", root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("berth %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	id := strings.TrimSpace(berth("image", "import", "--cmd", "sh", busyboxRootfs(t), "busybox"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("import printed %q", id)
	}
	berth("image", "tag", "busybox", "localhost:5000/bb:v1")
	if q := berth("image", "ls", "-q"); strings.TrimSpace(q) != id[7:19] {
		t.Errorf("images -q = %q", q)
	}
	var rows []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(berth("image", "ls", "--format", "json")), "\n") {
		var r map[string]string
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("images --format json line %q: %v", line, err)
		}
		rows = append(rows, r)
	}
	if len(rows) != 2 || rows[0]["ID"] != id[7:19] {
		t.Errorf("images json = %v", rows)
	}
	if table := berth("image", "ls", "--digests", "busybox"); !strings.Contains(table, "DIGEST") || strings.Contains(table, "localhost:5000") {
		t.Errorf("images --digests busybox:\n%s", table)
	}
	var inspect []map[string]any
	if err := json.Unmarshal([]byte(berth("image", "inspect", "busybox")), &inspect); err != nil || inspect[0]["Id"] != id {
		t.Errorf("inspect: %v %v", err, inspect)
	}
	for _, format := range []string{"docker-archive", "oci-archive"} {
		archive := filepath.Join(t.TempDir(), "bb.tar")
		berth("image", "save", "--format", format, "-o", archive, "busybox")
		berth("image", "rm", "localhost:5000/bb:v1")
		out := berth("image", "rm", "busybox")
		if !strings.Contains(out, "Deleted: "+id) {
			t.Errorf("rm: %s", out)
		}
		if out := berth("image", "ls", "-q"); out != "" {
			t.Errorf("images after rm: %q", out)
		}
		if out := berth("image", "load", "-i", archive); !strings.Contains(out, "Loaded image: busybox:latest") {
			t.Errorf("load %s: %s", format, out)
		}
		berth("image", "tag", "busybox", "localhost:5000/bb:v1")
	}
	if df := berth("system", "df"); !strings.Contains(df, "Images") {
		t.Errorf("system df:\n%s", df)
	}
	berth("image", "rm", "localhost:5000/bb:v1")
	berth("image", "rm", "busybox")
	if out := berth("image", "prune", "-a"); !strings.Contains(out, "Total reclaimed space") {
		t.Errorf("prune: %s", out)
	}
	if out, err := exec.Command(bin, "--root", root, "image", "inspect", "nothere").CombinedOutput(); err == nil || !strings.Contains(string(out), "not found") {
		t.Errorf("inspect of a missing image: %v %s", err, out)
	}
}
