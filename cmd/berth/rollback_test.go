package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const stopFirstRollback = `
name: sfrollback
services:
  web:
    image: localhost/busybox:test
    command: ["sh", "-c", "echo $$VERSION > /www/index.html; exec httpd -f -p 8080 -h /www"]
    init: true
    environment:
      VERSION: v1
    ports: ["127.0.0.1:18093:8080"]
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        failure_action: rollback
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1"]
      interval: 500ms
      timeout: 2s
      retries: 2
`

// psIDs maps container names to ids (ps -a --format json).
func psIDs(t *testing.T, m *machine) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(m.must("ps", "-a", "--format", "json")), "\n") {
		var e struct{ ID, Name, State string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("ps json %q: %v", line, err)
		}
		if e.State != "running" {
			t.Errorf("%s is %s", e.Name, e.State)
		}
		out[e.Name] = e.ID
	}
	return out
}

// TestStopFirstRollback: under failure_action rollback a stop-first update
// whose first replica never turns healthy puts the very same old container
// back (set aside, not removed), leaves replica 2 alone, and serves the old
// version; the next, good, update replaces both.
func TestStopFirstRollback(t *testing.T) {
	m := newMachine(t)
	m.writeCompose(stopFirstRollback)
	m.must("up", "-d", "--wait")
	url := "http://127.0.0.1:18093/"
	before := psIDs(t, m)

	broken := strings.Replace(stopFirstRollback, "VERSION: v1", "VERSION: v2", 1)
	broken = strings.Replace(broken, "http://127.0.0.1:8080/ || exit 1", "http://127.0.0.1:9/ || exit 1", 1)
	m.writeCompose(broken)
	r := m.berth("up", "-d")
	out := r.stdout + r.stderr
	if r.code == 0 || !strings.Contains(out, "sfrollback-web-1  Rolled back: started") || strings.Contains(out, "sfrollback-web-2  Stopping") {
		t.Fatalf("broken update: exit %d\n%s", r.code, out)
	}
	if after := psIDs(t, m); len(after) != 2 || after["sfrollback-web-1"] != before["sfrollback-web-1"] || after["sfrollback-web-2"] != before["sfrollback-web-2"] {
		t.Errorf("after the rollback %v, want the old containers %v", after, before)
	}
	if got := httpGet(t, url); got != "v1\n" {
		t.Errorf("after the rollback: %q", got)
	}
	// The service is held (for controllers), but a berth up typed again
	// is a new request: it tries the update once more.
	holds := filepath.Join(m.root, "projects", "sfrollback.holds.json")
	if b, err := os.ReadFile(holds); err != nil || !strings.Contains(string(b), `"web"`) {
		t.Errorf("holds record after the rollback: %q %v", b, err)
	}
	r = m.berth("up", "-d")
	if out := r.stdout + r.stderr; r.code == 0 || !strings.Contains(out, "sfrollback-web-1  Rolled back: started") {
		t.Fatalf("broken update typed again: exit %d, want it tried and rolled back again\n%s", r.code, out)
	}

	m.writeCompose(strings.Replace(stopFirstRollback, "VERSION: v1", "VERSION: v2", 1))
	m.must("up", "-d", "--wait")
	after := psIDs(t, m)
	if len(after) != 2 || after["sfrollback-web-1"] == before["sfrollback-web-1"] || after["sfrollback-web-2"] == before["sfrollback-web-2"] {
		t.Errorf("after the good update %v, want two new containers", after)
	}
	if got := httpGet(t, url); got != "v2\n" {
		t.Errorf("after the update: %q", got)
	}
	if _, err := os.Stat(holds); !os.IsNotExist(err) {
		t.Errorf("holds record after the good update: %v", err)
	}
}

const batchRollback = `
name: batchrb
services:
  web:
    image: localhost/busybox:test
    command: ["sh", "-c", "echo $$VERSION > /www/index.html; exec httpd -f -p 8080 -h /www"]
    init: true
    environment:
      VERSION: v1
    ports: ["127.0.0.1:18097:8080"]
    volumes: ["./shared:/shared"]
    deploy:
      replicas: 3
      update_config:
        order: start-first
        parallelism: 1
        failure_action: rollback
      rollback_config:
        order: start-first
        parallelism: 1
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1"]
      interval: 300ms
      timeout: 2s
      retries: 2
`

// TestRollbackEveryBatch: a start-first update of 3 replicas, one at a
// time, whose second batch never turns healthy (only the first successor
// to start claims /shared/claim and passes its healthcheck) is rolled back
// whole: replica 1, already updated, goes back to its old container too,
// start-first as rollback_config says. A client hammering the published
// port meanwhile sees no failed request, and afterwards only the old
// version answers, from the very same three containers.
func TestRollbackEveryBatch(t *testing.T) {
	m := newMachine(t)
	m.writeCompose(batchRollback)
	m.must("up", "-d", "--wait")
	url := "http://127.0.0.1:18097/"
	before := psIDs(t, m)
	if len(before) != 3 {
		t.Fatalf("containers before: %v", before)
	}

	broken := strings.Replace(batchRollback, "VERSION: v1", "VERSION: v2", 1)
	broken = strings.Replace(broken, `"echo $$VERSION`, `"if mkdir /shared/claim; then touch /tmp/ok; fi; echo $$VERSION`, 1)
	broken = strings.Replace(broken, `"wget -q`, `"test -f /tmp/ok && wget -q`, 1)
	m.writeCompose(broken)
	ctx, cancel := context.WithCancel(context.Background())
	c := &client{bodies: map[string]int{}}
	done := make(chan struct{})
	go func() { c.run(ctx, url); close(done) }()
	time.Sleep(200 * time.Millisecond)
	r := m.berth("up", "-d", "--progress", "plain")
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-done
	out := r.stdout + r.stderr
	if r.code == 0 || !strings.Contains(out, "rolled back web") || !strings.Contains(out, "batchrb-web-1  Rolled back: renamed") ||
		strings.Contains(out, "batchrb-web-3  Stopping") {
		t.Errorf("update failing at batch 2: exit %d\n%s", r.code, out)
	}
	bodies, failures := c.snapshot()
	if len(failures) > 0 || bodies["v1"] == 0 {
		t.Errorf("during the update and its rollback: answers %v, %d failures %v", bodies, len(failures), failures)
	}
	if bodies["v2"] == 0 {
		t.Logf("no answer from the successor of batch 1 (it served %v)", bodies)
	}
	if after := psIDs(t, m); len(after) != 3 || after["batchrb-web-1"] != before["batchrb-web-1"] ||
		after["batchrb-web-2"] != before["batchrb-web-2"] || after["batchrb-web-3"] != before["batchrb-web-3"] {
		t.Errorf("after the rollback %v, want the old containers %v", after, before)
	}
	for i := 0; i < 30; i++ {
		if got := httpGet(t, url); got != "v1\n" {
			t.Fatalf("after the rollback, request %d: %q", i, got)
		}
	}
}

// TestWatchKeepsRollback: under a controller (berth watch) a rollout that
// fails and is rolled back is not tried again on the loop's retries or
// resyncs (the service stays rolled back while its configuration is the
// one that failed), nor by a restarted berth watch (the hold is kept with
// the project, not in the controller's memory); the next change of the
// service is applied.
func TestWatchKeepsRollback(t *testing.T) {
	m := newMachine(t)
	good := strings.NewReplacer("name: batchrb", "name: watchrb", "18097", "18098", "replicas: 3", "replicas: 2").Replace(batchRollback)
	m.writeCompose(good)
	m.must("up", "-d", "--wait")
	before := psIDs(t, m)
	// Only the first successor ever started claims /shared/claim and
	// turns healthy: a second try of this update fails again, with a
	// successor created (and rolled back) each time.
	broken := strings.Replace(good, "VERSION: v1", "VERSION: v2", 1)
	broken = strings.Replace(broken, `"echo $$VERSION`, `"if mkdir /shared/claim; then touch /tmp/ok; fi; echo $$VERSION`, 1)
	broken = strings.Replace(broken, `"wget -q`, `"test -f /tmp/ok && wget -q`, 1)
	m.writeCompose(broken)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	watch := func() (*syncBuffer, func()) {
		cmd := exec.CommandContext(ctx, berth(t), "watch")
		cmd.Dir = m.dir
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + m.dir, "BERTH_ROOT=" + m.root, "BERTH_RUN_ROOT=" + m.runRoot}
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cmd.Process.Signal(syscall.SIGINT)
				cmd.Wait()
			})
		}
		t.Cleanup(stop)
		return out, stop
	}
	out, stop := watch()
	eventually(t, 60*time.Second, "the rollback", func() error {
		if !strings.Contains(out.String(), "rolled back web") {
			return fmt.Errorf("no rollback yet:\n%s", out.String())
		}
		return nil
	})
	// The loop's retries (after 1 s, 2 s, 4 s without a hold) find
	// nothing to do: no successor is created again.
	time.Sleep(8 * time.Second)
	if n := strings.Count(out.String(), "+next CreateContainer"); n != 2 {
		t.Errorf("%d successors created, want the 2 of the failed rollout only:\n%s", n, out.String())
	}
	if after := psIDs(t, m); len(after) != 2 || after["watchrb-web-1"] != before["watchrb-web-1"] || after["watchrb-web-2"] != before["watchrb-web-2"] {
		t.Errorf("while held %v, want the old containers %v", after, before)
	}

	// A restarted controller holds the service too: its first pass (at
	// once) and the next ones create no successor.
	stop()
	out, _ = watch()
	eventually(t, 30*time.Second, "the restarted watch", func() error {
		if !strings.Contains(out.String(), "berth: watching project watchrb") {
			return fmt.Errorf("not watching yet:\n%s", out.String())
		}
		return nil
	})
	time.Sleep(8 * time.Second)
	if strings.Contains(out.String(), "CreateContainer") || strings.Contains(out.String(), "failed") {
		t.Errorf("the restarted watch tried the held update again:\n%s", out.String())
	}
	if after := psIDs(t, m); len(after) != 2 || after["watchrb-web-1"] != before["watchrb-web-1"] || after["watchrb-web-2"] != before["watchrb-web-2"] {
		t.Errorf("held under the restarted watch %v, want the old containers %v", after, before)
	}

	// A new change is applied, and ends the hold.
	m.writeCompose(strings.Replace(good, "VERSION: v1", "VERSION: v3", 1))
	eventually(t, 60*time.Second, "the new change", func() error {
		for i := 0; i < 10; i++ { // both replicas
			if got := httpGet(t, "http://127.0.0.1:18098/"); got != "v3\n" {
				return fmt.Errorf("answer %q\n%s", got, out.String())
			}
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(m.root, "projects", "watchrb.holds.json")); !os.IsNotExist(err) {
		t.Errorf("holds record after the new change: %v", err)
	}
}
