package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the root docker-compose.yml as the README says: its three
// images are built from demo/*/Dockerfile (the api's HEALTHCHECK from its
// image gates web's start), the web page answers on the published port,
// the web service reaches the API by its service name, the API sees the
// worker's counter in the shared volume, and down -v leaves nothing.
func TestDemo(t *testing.T) {
	m := newMachine(t)
	// The demo's Dockerfiles start FROM localhost/busybox:demo; import it.
	p := m.at(repoRoot)
	importImage(t, m, "localhost/busybox:demo")
	before := m.netSnapshot()
	out := p.must("up", "-d", "--build")
	for _, step := range []string{"COPY --chmod=0644 index.html /www/", "RUN --network=none sh -n worker.sh"} {
		if !strings.Contains(out, step) {
			t.Errorf("build output lacks %q:\n%s", step, out)
		}
	}
	for _, img := range []string{"berth-demo-web", "berth-demo-api", "berth-demo-worker"} {
		cfg := p.must("image", "inspect", img)
		if img == "berth-demo-api" && !strings.Contains(cfg, "cgi-bin/status") {
			t.Errorf("api image has no HEALTHCHECK: %s", cfg)
		}
	}
	ids := p.allIDs()
	if len(ids) != 3 {
		t.Fatalf("demo has %d containers, want 3: %v", len(ids), p.ps())
	}
	page, err := m.Get("http://127.0.0.1:8080/")
	if err != nil || !strings.Contains(page, "berth demo") {
		t.Fatalf("demo page: %v %q", err, page)
	}
	eventually(t, 15*time.Second, "web → api status with worker ticks", func() error {
		s, err := m.Get("http://127.0.0.1:8080/cgi-bin/status")
		if err != nil {
			return err
		}
		if !strings.Contains(s, `"greeting":"hello from the berth demo API"`) || strings.Contains(s, `"worker_ticks":0}`) {
			return fmt.Errorf("status %q", s)
		}
		return nil
	})
	for _, e := range p.ps() {
		if e.State != "running" {
			t.Errorf("%s is %s", e.Name, e.State)
		}
	}
	p.must("down", "-v")
	m.assertNoResidue(before, ids)
}

func importImage(t *testing.T, m *machine, ref string) {
	t.Helper()
	cmdOut, err := m.Script("busybox-image.sh", ref)
	if err != nil {
		t.Fatalf("busybox-image.sh %s: %v\n%s", ref, err, cmdOut)
	}
}
