package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lifecycleCompose is a project that exercises what a user relies on:
// db becomes healthy only after a delay, app waits for that
// (service_healthy) and then fetches db's page by service name and counts
// its starts in a named volume and in an anonymous one, web publishes the
// named volume's content on 127.0.0.1, crasher restarts after a crash,
// oneshot does not, follower is recreated with app (restart: true).
const lifecycleCompose = `
name: e2elife
x-base: &base
  image: localhost/busybox:e2e
  pull_policy: never
  stop_grace_period: 1s
services:
  db:
    <<: *base
    command: ["sh", "-c", "mkdir -p /www && echo db-content > /www/index.html && sleep 2 && touch /tmp/ready && exec httpd -f -p 80 -h /www"]
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ready"]
      interval: 500ms
      retries: 20
  app:
    <<: *base
    command: ["sh", "/scripts/app.sh"]
    environment: {MARK: "one"}
    depends_on:
      db: {condition: service_healthy}
    volumes:
      - data:/data
      - /cache
      - ./scripts:/scripts:ro
  web:
    <<: *base
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    ports: ["127.0.0.1:18080:80"]
    volumes: ["data:/data:ro"]
  crasher:
    <<: *base
    restart: always
    command: ["sh", "-c", "echo crasher-start; exec sleep 3600"]
  oneshot:
    <<: *base
    restart: "no"
    command: ["sleep", "3600"]
  follower:
    <<: *base
    command: ["sleep", "3600"]
    depends_on:
      app: {condition: service_started, restart: true}
volumes:
  data:
`

// appScript fetches db by name (it fails when db is not serving yet, i.e.
// when the start order is wrong) and appends one line per start.
const appScript = `#!/bin/sh
page=$(timeout 5 wget -q -O - http://db/ 2>&1) || page="FAILED"
echo "start $MARK $page" >> /data/starts
cp /data/starts /data/index.html
echo x >> /cache/starts
wc -l < /cache/starts > /data/anon
exec sleep 3600
`

func TestLifecycle(t *testing.T) {
	m := newMachine(t)
	p := m.project(lifecycleCompose, map[string]string{"scripts/app.sh": appScript})
	before := m.netSnapshot()
	p.must("up", "-d")

	// Healthcheck-gated order and service-to-service names: app's first
	// fetch of db succeeded. The volume is served on the published port.
	eventually(t, 10*time.Second, "web serves app's record", func() error {
		s, err := m.Get("http://127.0.0.1:18080/")
		if err != nil {
			return err
		}
		if s != "start one db-content\n" {
			return fmt.Errorf("page %q", s)
		}
		return nil
	})
	first := p.ids()
	if len(first) != 6 {
		t.Fatalf("containers %v, want 6", first)
	}

	// A second up -d with nothing changed touches nothing.
	out := p.must("up", "-d")
	if strings.Contains(out, "done") {
		t.Errorf("no-op up -d acted:\n%s", out)
	}
	if again := p.ids(); !sameMap(again, first) {
		t.Errorf("no-op up -d changed containers: %v -> %v", first, again)
	}

	// A stopped container publishes nothing; started again, it does.
	p.must("stop", "-t", "1", "web")
	if s, err := m.Get("http://127.0.0.1:18080/"); err == nil {
		t.Errorf("stopped web still answers: %q", s)
	}
	p.must("start", "web")
	eventually(t, 5*time.Second, "web answers after start", func() error {
		_, err := m.Get("http://127.0.0.1:18080/")
		return err
	})

	// A crash from outside: restart: always brings it back, "no" does not.
	crasher, oneshot := first["e2elife-crasher-1"], first["e2elife-oneshot-1"]
	killed := m.killContainer(crasher)
	m.killContainer(oneshot)
	eventually(t, 10*time.Second, "crasher restarted", func() error {
		s, err := m.runtimeState(crasher)
		if err != nil {
			return err
		}
		if s.Status != "running" || s.Pid == killed || s.Restarts < 1 {
			return fmt.Errorf("state %+v", s)
		}
		return nil
	})
	eventually(t, 5*time.Second, "oneshot exited", func() error {
		for _, e := range p.ps() {
			if e.ID == oneshot && e.State != "exited" {
				return fmt.Errorf("oneshot is %s", e.State)
			}
		}
		return nil
	})
	if logs := p.must("logs", "--no-log-prefix", "crasher"); strings.Count(logs, "crasher-start") != 2 {
		t.Errorf("crasher logs after a restart:\n%s", logs)
	}

	// Changing one service recreates it and the dependent that asks for it
	// (depends_on restart: true), nothing else; its volumes survive.
	compose, _ := os.ReadFile(filepath.Join(p.dir, "compose.yaml"))
	p.write("compose.yaml", strings.Replace(string(compose), `MARK: "one"`, `MARK: "two"`, 1))
	p.must("up", "-d")
	now := p.ids()
	for name, id := range first {
		changed := name == "e2elife-app-1" || name == "e2elife-follower-1"
		switch {
		case changed && now[name] == id:
			t.Errorf("%s was not recreated", name)
		case name == "e2elife-oneshot-1":
			// exited with restart "no": up -d starts it again, same container
			if now[name] != id {
				t.Errorf("oneshot was recreated")
			}
		case !changed && now[name] != id:
			t.Errorf("%s was recreated (%s -> %s)", name, id[:12], now[name][:12])
		}
	}
	eventually(t, 10*time.Second, "volume kept across recreate", func() error {
		s, err := m.Get("http://127.0.0.1:18080/")
		if err != nil {
			return err
		}
		if s != "start one db-content\nstart two db-content\n" {
			return fmt.Errorf("page %q", s)
		}
		return nil
	})

	// The anonymous volume came over to the new app container, as in
	// compose: it counted both starts.
	if s, err := m.Get("http://127.0.0.1:18080/anon"); err != nil || strings.TrimSpace(s) != "2" {
		t.Errorf("anonymous volume across recreate: %v %q", err, s)
	}

	ids := p.allIDs()
	p.must("down", "-v")
	if left := p.ps(); len(left) != 0 {
		t.Fatalf("containers after down: %v", left)
	}
	m.assertNoResidue(before, append(ids, values(first)...))
}

// killContainer SIGKILLs a container's process from outside berth and
// returns its pid.
func (m *machine) killContainer(id string) int {
	m.t.Helper()
	s, err := m.runtimeState(id)
	if err != nil || s.Pid == 0 {
		m.t.Fatalf("container %s: no pid: %v %+v", id[:12], err, s)
	}
	if err := syscall.Kill(s.Pid, syscall.SIGKILL); err != nil {
		m.t.Fatal(err)
	}
	return s.Pid
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
