package gitops

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSyncOverHTTP follows a repository served by git http-backend on
// 127.0.0.1, pushed to over HTTP, with every fetch after the first
// triggered by a signed webhook delivery (the poll interval is an hour).
func TestSyncOverHTTP(t *testing.T) {
	m := newMachine(t, "h")
	u := newUpstream(t)
	u.git(u.bare, "config", "http.receivepack", "true")
	url := gitHTTP(t, filepath.Dir(u.bare)) + "/" + filepath.Base(u.bare)
	push := func(msg string, files map[string]string) string {
		t.Helper()
		for p, c := range files {
			full := filepath.Join(u.work, p)
			os.MkdirAll(filepath.Dir(full), 0o755)
			if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		u.git(u.work, "add", "-A")
		u.git(u.work, "commit", "-q", "-m", msg)
		u.git(u.work, "push", "-q", url, "HEAD:refs/heads/main")
		return u.git(u.work, "rev-parse", "HEAD")
	}
	c1 := push("one", map[string]string{
		"deploy/compose.yaml":   project(m.project, "1", true),
		"deploy/www/index.html": "hello\n",
		"docs/notes.md":         "unrelated\n",
	})
	secret := []byte("s3cret")
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, append(secret, '\n'), 0o600)
	hook := "127.0.0.1:" + freePort(t)
	ctl := m.startSync(url, "--ref", "main", "--path", "deploy", "--interval", "1h", "--health-timeout", "20s",
		"--webhook-listen", hook, "--webhook-secret-file", secretFile)
	hookURL := "http://" + hook + "/hooks/push"

	m.waitStatus(ctl, "first revision applied", func(s *Status) bool {
		return s.Applied == c1 && s.State == Synced && healthOf(s, "web") == "healthy" && healthOf(s, "worker") == "running"
	})
	web1, worker1 := m.ids("web"), m.ids("worker")
	if strings.Contains(web1, ",") || worker1 == "" {
		t.Fatalf("containers: web %q worker %q", web1, worker1)
	}

	// an unsigned or wrongly signed delivery is refused
	if code := deliver(t, hookURL, []byte("wrong"), "github"); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: HTTP %d", code)
	}

	// one service changes: only it is recreated
	c2 := push("worker v2", map[string]string{"deploy/compose.yaml": project(m.project, "2", true)})
	if code := deliver(t, hookURL, secret, "github"); code != http.StatusAccepted {
		t.Fatalf("delivery: HTTP %d", code)
	}
	s := m.waitStatus(ctl, "worker change applied", func(s *Status) bool {
		return s.Applied == c2 && s.State == Synced && healthOf(s, "worker") == "running"
	})
	if m.ids("web") != web1 {
		t.Errorf("web was recreated by a change to worker only")
	}
	worker2 := m.ids("worker")
	if worker2 == worker1 || strings.Contains(worker2, ",") {
		t.Errorf("worker not recreated once: %q -> %q", worker1, worker2)
	}
	if s.Last == nil || s.Last.Revision != c2 || s.Last.Result != ResultHealthy ||
		!slices.ContainsFunc(s.Last.Changes, func(l string) bool { return strings.Contains(l, "service:worker:1 CreateContainer") }) ||
		slices.ContainsFunc(s.Last.Changes, func(l string) bool { return strings.Contains(l, "service:web") }) {
		t.Errorf("history entry: %+v", s.Last)
	}

	// a commit outside the project's inputs changes nothing
	c3 := push("docs", map[string]string{"docs/notes.md": "still unrelated\n"})
	deliver(t, hookURL, secret, "gitea")
	m.waitStatus(ctl, "unrelated commit seen", func(s *Status) bool {
		return s.Wanted == c3 && s.Applied == c2 && s.State == Synced
	})
	if m.ids("web") != web1 || m.ids("worker") != worker2 {
		t.Errorf("an unrelated commit recreated containers")
	}

	// a file that does not load: nothing changes, status says why
	c4 := push("broken", map[string]string{"deploy/compose.yaml": "services: [oops\n"})
	deliver(t, hookURL, secret, "github")
	s = m.waitStatus(ctl, "broken revision refused", func(s *Status) bool {
		return s.Wanted == c4 && s.State == Degraded && strings.Contains(s.LastError, c4[:12])
	})
	if s.Applied != c2 || !strings.Contains(s.LastError, "yaml") {
		t.Errorf("after a broken commit: applied %s, error %q", s.Applied, s.LastError)
	}
	if m.ids("web") != web1 || m.ids("worker") != worker2 {
		t.Errorf("a broken commit touched containers")
	}

	// a service that never becomes healthy: rolled back to c2
	c5 := push("never healthy", map[string]string{"deploy/compose.yaml": project(m.project, "3", false)})
	deliver(t, hookURL, secret, "github")
	s = m.waitStatus(ctl, "unhealthy revision rolled back", func(s *Status) bool {
		return s.Wanted == c5 && s.State == Degraded && strings.Contains(s.LastError, c5[:12]) &&
			strings.Contains(ctl.output(), "rolled back to "+c2[:12]) && healthOf(s, "web") == "healthy"
	})
	if s.Applied != c2 || !strings.Contains(s.LastError, "web") {
		t.Errorf("after an unhealthy commit: applied %s, error %q", s.Applied, s.LastError)
	}
	if env := m.env("worker"); !strings.Contains(env, "V=2") {
		t.Errorf("worker does not run revision %s's environment after the rollback: %s", c2[:12], env)
	}

	// an image that does not build: rolled back the same way
	badBuild := strings.Replace(project(m.project, "5", true), "  worker:\n    <<: *base\n",
		"  worker:\n    <<: *base\n    image: localhost/gitops-bad:1\n    pull_policy: build\n    build: ./bad\n", 1)
	c55 := push("bad build", map[string]string{"deploy/compose.yaml": badBuild,
		"deploy/bad/Dockerfile": "FROM localhost/busybox:demo\nRUN exit 3\n"})
	deliver(t, hookURL, secret, "github")
	s = m.waitStatus(ctl, "failed build rolled back", func(s *Status) bool {
		return s.Wanted == c55 && s.State == Degraded && strings.Contains(s.LastError, c55[:12])
	})
	if s.Applied != c2 || !strings.Contains(s.LastError, "EnsureImage") {
		t.Errorf("after a failed build: applied %s, error %q", s.Applied, s.LastError)
	}
	t.Logf("failed build: %s", s.LastError)
	m.waitStatus(ctl, "worker back after the failed build", func(s *Status) bool { return healthOf(s, "worker") == "running" })
	if env := m.env("worker"); !strings.Contains(env, "V=2") {
		t.Errorf("worker after the failed build: %s", env)
	}

	// the fix converges
	c6 := push("fix", map[string]string{"deploy/compose.yaml": project(m.project, "4", true)})
	deliver(t, hookURL, secret, "gitea")
	s = m.waitStatus(ctl, "fix applied", func(s *Status) bool {
		return s.Applied == c6 && s.State == Synced && healthOf(s, "web") == "healthy"
	})
	if s.LastError != "" {
		t.Errorf("error left after the fix: %s", s.LastError)
	}
	if env := m.env("worker"); !strings.Contains(env, "V=4") {
		t.Errorf("worker environment after the fix: %s", env)
	}

	// history: every applied revision once, the failures with their errors
	out, err := m.berth("sync", "history")
	if err != nil {
		t.Fatal(err, out)
	}
	for _, want := range []string{c1[:12] + "  ", c2[:12], c4[:12], c5[:12], c55[:12], c6[:12], "failed", "healthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, c3[:12]) {
		t.Errorf("history lists the unrelated commit:\n%s", out)
	}

	resp, err := http.Get("http://" + hook + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`berth_sync_state{state="Synced"} 1`, `berth_sync_applies_total{result="failed"} 3`,
		`berth_sync_applies_total{result="healthy"} 3`, `applied="` + c6 + `"`, "berth_sync_apply_duration_seconds_count 6"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
