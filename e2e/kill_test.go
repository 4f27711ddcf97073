package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// killCompose has a bit of everything a pass creates: two networks, a
// named and an anonymous volume, a published port, a healthcheck that
// gates a dependent, a tmpfs.
const killCompose = `
name: e2ekill
x-base: &base
  image: localhost/busybox:e2e
  pull_policy: never
  stop_grace_period: 0s
services:
  front:
    <<: *base
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    environment: {MARK: "mark-0"}
    ports: ["127.0.0.1:18081:80"]
    networks: [edge, back]
    volumes: ["data:/data"]
    depends_on:
      store: {condition: service_healthy}
  store:
    <<: *base
    command: ["sh", "-c", "echo ok > /data/index.html; exec sleep 3600"]
    networks: [back]
    volumes: ["data:/data", "/scratch"]
    tmpfs: ["/run/t"]
    healthcheck:
      test: ["CMD", "test", "-f", "/data/index.html"]
      interval: 200ms
  worker:
    <<: *base
    command: ["sleep", "3600"]
    networks: [back]
    depends_on: [store]
networks:
  edge: {}
  back: {}
volumes:
  data: {}
`

var killServices = []string{"front", "store", "worker"}

// TestKill SIGKILLs berth at random moments of up -d from nothing, of an
// up -d that recreates one service, and of down -v, then checks that the
// next up -d converges exactly (one running container per service, the
// recreated one with the file's config, the page served) and that down -v
// removes everything.
func TestKill(t *testing.T) {
	m := newMachine(t)
	p := m.project(killCompose, nil)
	before := m.netSnapshot()
	trials := 16
	if n, err := strconv.Atoi(os.Getenv("BERTH_E2E_KILL_TRIALS")); err == nil {
		trials = n
	}
	budget := time.Now().Add(2 * time.Minute)

	// The durations of an undisturbed up and down bound the kill moments.
	t0 := time.Now()
	p.must("up", "-d")
	upTime := time.Since(t0)
	p.assertConverged("the first up")
	seen := map[string]bool{}
	for _, id := range p.allIDs() {
		seen[id] = true
	}
	p.setMark(1)
	t0 = time.Now()
	p.must("up", "-d", "-t", "0")
	recreateTime := time.Since(t0)
	p.assertConverged("a recreate")
	p.setMark(0)
	p.must("up", "-d", "-t", "0")
	t0 = time.Now()
	p.must("down", "-v", "-t", "0")
	downTime := time.Since(t0)
	t.Logf("undisturbed: up -d %v, recreate of front %v, down -v %v", upTime, recreateTime, downTime)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	done := 0
	for i := 0; i < trials && time.Now().Before(budget); i++ {
		at := time.Duration(rng.Int64N(int64(upTime)))
		out := p.killAt(at, "up", "-d")
		p.mustAfterKill(out, "up", "-d")
		p.assertConverged(out)
		for _, id := range p.allIDs() {
			seen[id] = true
		}
		// A recreate of one service (front: its port moves to the new
		// container) killed half-way: the next up finishes it, once.
		p.setMark(i + 1)
		at = time.Duration(rng.Int64N(int64(recreateTime)))
		out = p.killAt(at, "up", "-d", "-t", "0")
		p.mustAfterKill(out, "up", "-d", "-t", "0")
		p.assertConverged(out)
		p.assertHash(out, "front")
		for _, id := range p.allIDs() {
			seen[id] = true
		}
		p.setMark(0)

		at = time.Duration(rng.Int64N(int64(downTime)))
		out = p.killAt(at, "down", "-v", "-t", "0")
		if i%2 == 1 {
			// Converge up from a half-done down, then take it down.
			p.mustAfterKill(out, "up", "-d")
			p.assertConverged(out)
			for _, id := range p.allIDs() {
				seen[id] = true
			}
		}
		p.mustAfterKill(out, "down", "-v", "-t", "0")
		if left := p.ps(); len(left) != 0 {
			t.Fatalf("trial %d: containers after down -v: %v", i, left)
		}
		if s := m.netSnapshot(); !sameSnapshot(s, before) {
			t.Fatalf("trial %d: host network after down -v differs: %v", i, s)
		}
		done++
	}
	t.Logf("%d trials", done)
	var ids []string
	for id := range seen {
		ids = append(ids, id)
	}
	m.assertNoResidue(before, ids)
}

// setMark rewrites front's MARK, which changes its config hash alone.
func (p *project) setMark(n int) {
	p.write("compose.yaml", strings.Replace(killCompose, `MARK: "mark-0"`, fmt.Sprintf(`MARK: "mark-%d"`, n), 1))
}

// assertHash checks that the service's container carries the config hash
// of the file as it is now.
func (p *project) assertHash(what, service string) {
	p.m.t.Helper()
	want := strings.Fields(p.must("config", "--hash", service))
	got := p.must("ps", "--format", "json", service)
	if len(want) != 2 || !strings.Contains(got, "config-hash="+want[1]) {
		p.m.t.Fatalf("after %s:\n%s is not the file's (%v): %s", what, service, want, got)
	}
}

// killAt starts berth, SIGKILLs it after d and returns what it printed.
func (p *project) killAt(d time.Duration, args ...string) string {
	p.m.t.Helper()
	var buf strings.Builder
	cmd := p.command(context.Background(), args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		p.m.t.Fatal(err)
	}
	time.Sleep(d)
	cmd.Process.Kill()
	cmd.Wait()
	return fmt.Sprintf("berth %s killed after %v:\n%s", strings.Join(args, " "), d, buf.String())
}

// mustAfterKill runs berth and fails with the killed run's output too.
func (p *project) mustAfterKill(killed string, args ...string) {
	p.m.t.Helper()
	if out, err := p.berth(args...); err != nil {
		p.m.t.Fatalf("%s\nthen berth %s: %v\n%s", killed, strings.Join(args, " "), err, out)
	}
}

// assertConverged checks one running container per service, no more, and
// the published page.
func (p *project) assertConverged(what string) {
	p.m.t.Helper()
	list := p.ps()
	defer func() {
		if p.m.t.Failed() {
			table, _ := p.berth("ps", "-a")
			p.m.t.Logf("after %s:\n%s", what, table)
			p.m.t.FailNow()
		}
	}()
	count := map[string]int{}
	for _, e := range list {
		count[e.Service]++
		if e.State != "running" {
			log, _ := os.ReadFile(p.m.run + "/runtime/monitor.log")
			p.m.t.Errorf("%s (%.12s) is %s (exit %d); monitor log:\n%s", e.Name, e.ID, e.State, e.ExitCode, log)
		}
	}
	for _, s := range killServices {
		if count[s] != 1 {
			p.m.t.Errorf("service %s has %d containers", s, count[s])
		}
	}
	if len(list) != len(killServices) {
		p.m.t.Fatalf("containers: %+v", list)
	}
	// front has no healthcheck: httpd may still be on its way to listen.
	eventually(p.m.t, 5*time.Second, "published page", func() error {
		if page, err := p.m.Get("http://127.0.0.1:18081/"); err != nil || page != "ok\n" {
			return fmt.Errorf("%v %q", err, page)
		}
		return nil
	})
}

func sameSnapshot(a, b netSnapshot) bool {
	for k := range a {
		if len(minus(a[k], b[k])) > 0 || len(minus(b[k], a[k])) > 0 {
			return false
		}
	}
	return true
}
