package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestExampleRollingUpdate runs examples/rolling-update with the one
// command its README gives: a start-first update, one replica at a time,
// under a client loop on the published port, must drop no request. Then
// an update whose successors never turn healthy is rolled back: the old
// replicas stay, and the failed successor is gone.
func TestExampleRollingUpdate(t *testing.T) {
	m := newMachine(t)
	dir := filepath.Join(repoRoot, "examples", "rolling-update")
	p := m.at(dir)
	before := m.netSnapshot()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+m.netns, "--", "./run.sh")
	cmd.Dir = dir
	cmd.Env = append(m.Env(), "BERTH="+m.bin)
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("run.sh: %v\n%s", err, out)
	}
	res := regexp.MustCompile(`(?m)^(\d+) requests, (\d+) failed$`).FindStringSubmatch(out)
	if res == nil || res[2] != "0" {
		t.Fatalf("run.sh does not report 0 failed requests:\n%s", out)
	}
	if n, _ := strconv.Atoi(res[1]); n < 20 {
		t.Errorf("only %d requests during the update", n)
	}
	for _, want := range []string{"version 1\n", "version 2\n", "Monitoring for 2s", "Update delay 1s before batch 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("run.sh output lacks %q:\n%s", want, out)
		}
	}
	// One replica at a time: replica 2's successor is created only after
	// replica 1's replacement is renamed into place.
	if r1, c2 := strings.Index(out, "_rolling-update-web-1  Renamed"), strings.Index(out, "_rolling-update-web-2  Recreate"); r1 < 0 || c2 < r1 {
		t.Errorf("replicas not updated one at a time:\n%s", out)
	}
	ids := p.ids()

	// A broken update (successor never healthy) is rolled back.
	broken := filepath.Join(t.TempDir(), "compose.yaml")
	src, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(src), "http://127.0.0.1:8080/ || exit 1", "http://127.0.0.1:9/ || exit 1", 1)
	if err := os.WriteFile(broken, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = p.berth("-f", broken, "up", "-d")
	if err == nil || !strings.Contains(out, "_rolling-update-web-1  Rolled back: removed") || strings.Contains(out, "_rolling-update-web-2") {
		t.Errorf("a broken update succeeded, or its successor was not removed, or batch 2 ran: %v\n%s", err, out)
	}
	t.Logf("broken update:\n%s", out)
	after := p.ids()
	if len(after) != 2 || after["rolling-update-web-1"] != ids["rolling-update-web-1"] || after["rolling-update-web-2"] != ids["rolling-update-web-2"] {
		t.Errorf("containers after the rollback %v, want the two old ones %v only", after, ids)
	}
	if got, err := m.Get("http://127.0.0.1:8090/"); err != nil || !strings.HasPrefix(got, "version 2") {
		t.Errorf("after the rollback: %q, %v", got, err)
	}
	all := p.allIDs()
	p.must("down", "-v", "-t", "1")
	m.assertNoResidue(before, all)
}
