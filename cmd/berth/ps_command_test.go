package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// ps shows the command a container runs, image defaults merged, as compose
// does: a service that sets no command runs its image's CMD.
func TestPsCommandFromImage(t *testing.T) {
	m := newMachine(t)
	m.writeCompose(`
name: pscmd
services:
  app:
    build:
      context: .
      dockerfile_inline: |
        FROM localhost/busybox:test
        CMD ["sleep", "3600"]
`)
	m.must("up", "-d", "--build")
	out := strings.TrimSpace(m.must("ps", "--format", "json"))
	var e map[string]any
	if err := json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &e); err != nil {
		t.Fatalf("ps json %q: %v", out, err)
	}
	if e["Command"] != `"sleep 3600"` {
		t.Errorf("ps Command = %v, want the image's CMD", e["Command"])
	}
}
