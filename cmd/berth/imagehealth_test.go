package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageHealthcheck: a Dockerfile's HEALTHCHECK is the service's when
// the compose file sets none, so depends_on service_healthy and ps see it.
func TestImageHealthcheck(t *testing.T) {
	m := newMachine(t)
	os.WriteFile(filepath.Join(m.dir, "Dockerfile"), []byte(`FROM localhost/busybox:test
HEALTHCHECK --interval=300ms --timeout=2s CMD ["cat", "/etc/passwd"]
CMD ["sleep", "3600"]
`), 0o644)
	m.writeCompose(`
name: imghc
services:
  app:
    build: .
    init: true
  after:
    image: localhost/busybox:test
    command: ["sleep", "3600"]
    init: true
    depends_on:
      app:
        condition: service_healthy
`)
	m.must("up", "-d", "--wait")
	out := m.must("ps", "--format", "json", "app")
	if !strings.Contains(out, `"Health":"healthy"`) {
		t.Fatalf("app should be healthy by its image's HEALTHCHECK: %s", out)
	}
	if out := m.must("ps", "-q", "after"); strings.TrimSpace(out) == "" {
		t.Fatal("the dependent of a healthy service did not start")
	}
}
