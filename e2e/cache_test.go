package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// TestDownRemovesCache: up caches the project's desired state under the
// root; down -v leaves none of it, while another project's entry stays.
func TestDownRemovesCache(t *testing.T) {
	m := newMachine(t)
	const svc = `
  a:
    image: localhost/busybox:e2e
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 0s
`
	p := m.project("name: e2ecache\nservices:"+svc, nil)
	other := m.project("name: e2ecacheother\nservices:"+svc, nil)
	entries := func() []string {
		left, _ := filepath.Glob(filepath.Join(m.root, "cache", "compose", "*.gob"))
		return left
	}
	// A file changed within the loader's racy window is not cached.
	time.Sleep(200 * time.Millisecond)
	p.must("up", "-d")
	other.must("config", "--services") // loads (and caches) the other project only
	other.must("ps")
	if n := len(entries()); n != 2 {
		t.Fatalf("%d cache entries after up and ps of two projects, want 2: %v", n, entries())
	}
	p.must("down", "-v", "-t", "0")
	if n := len(entries()); n != 1 {
		t.Errorf("%d cache entries after down -v, want 1 (the other project's): %v", n, entries())
	}
}
