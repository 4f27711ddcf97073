package gitops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPollWithoutMachine drives the poller alone (no loop, no driver): an
// unreachable remote is recorded once and cleared, a revision that loads
// becomes the candidate under an "applying" entry, and one that does not
// load is recorded as failed and not retried.
func TestPollWithoutMachine(t *testing.T) {
	u := newUpstream(t)
	hidden := u.bare + ".away"
	if err := os.Rename(u.bare, hidden); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := New(Options{URL: u.bare, Ref: "main", Path: "p", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.poll(ctx)
	r, _ := LoadRecord(dir)
	if r.FetchError == "" || r.URL != u.bare {
		t.Fatalf("unreachable remote not recorded: %+v", r)
	}

	os.Rename(hidden, u.bare)
	c1 := u.commit("one", map[string]string{"p/compose.yaml": "name: t\nservices:\n  a:\n    image: busybox\n"})
	c.poll(ctx)
	r, _ = LoadRecord(dir)
	if r.FetchError != "" || r.Head != c1 || r.Last() == nil || r.Last().Revision != c1 || r.Last().Result != ResultApplying {
		t.Fatalf("after the remote came back: %+v", r)
	}
	if c.cand == nil || c.target == nil || c.target.desired.Project != "t" {
		t.Fatalf("no candidate")
	}
	// pretend the apply succeeded
	c.accept(c.cand)

	c2 := u.commit("broken", map[string]string{"p/compose.yaml": "services: [\n"})
	c.poll(ctx)
	r, _ = LoadRecord(dir)
	if r.Failed != c2 || r.Applied != c1 || !strings.Contains(r.LastError, c2[:12]) || r.State() != Degraded {
		t.Fatalf("broken revision: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(c.repo.WorkDir(), "p", "compose.yaml")); !strings.Contains(string(b), "busybox") {
		t.Fatalf("working tree not put back to the applied revision: %q", b)
	}
	n := len(r.History)
	c.poll(ctx)
	if r, _ = LoadRecord(dir); len(r.History) != n {
		t.Fatalf("a failed revision was retried without a new commit")
	}
	// a project renamed by a commit is refused rather than orphaning the old one
	c3 := u.commit("rename", map[string]string{"p/compose.yaml": "name: other\nservices:\n  a:\n    image: busybox\n"})
	c.poll(ctx)
	if r, _ = LoadRecord(dir); r.Failed != c3 || !strings.Contains(r.LastError, "project name changed") {
		t.Fatalf("renamed project: %+v", r)
	}
}

func TestOneControllerPerSync(t *testing.T) {
	dir := t.TempDir()
	release, err := holdController(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holdController(dir); err == nil || !strings.Contains(err.Error(), "another berth sync") {
		t.Fatalf("second controller: %v", err)
	}
	release()
	release, err = holdController(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	release()
}
