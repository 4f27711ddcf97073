package gitops

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSyncKilledMidApply SIGKILLs berth sync at different points of an
// apply (during the pass, during the health wait), restarts it, and checks
// that it resumes from the record: every revision applied once, one
// container per service, nothing lost. Then it pins an older revision with
// berth sync rollback and unpins it.
func TestSyncKilledMidApply(t *testing.T) {
	m := newMachine(t, "k")
	u := newUpstream(t)
	// each revision changes web's healthcheck, so each apply recreates web
	// and waits for it to become healthy
	compose := func(i int) map[string]string {
		return map[string]string{
			"compose.yaml":   strings.Replace(project(m.project, fmt.Sprint(i), true), "retries: 3", fmt.Sprintf("retries: %d", 3+i), 1),
			"www/index.html": "hi\n",
		}
	}
	revs := []string{u.commit("rev 0", compose(0))}
	args := []string{"file://" + u.bare, "--ref", "main", "--interval", "200ms", "--health-timeout", "30s"}
	ctl := m.startSync(args...)
	m.waitStatus(ctl, "first revision", func(s *Status) bool { return s.Applied == revs[0] && s.State == Synced })
	var dir string
	if match, _ := filepath.Glob(filepath.Join(m.root, "gitops", "*", recordFile)); len(match) == 1 {
		dir = filepath.Dir(match[0])
	} else {
		t.Fatalf("records: %v", match)
	}

	for i := 1; i <= 3; i++ {
		rev := u.commit(fmt.Sprintf("rev %d", i), compose(i))
		revs = append(revs, rev)
		deadline := time.Now().Add(30 * time.Second)
		for {
			r, err := LoadRecord(dir)
			if err != nil {
				t.Fatal(err) // a torn record would show here
			}
			if last := r.Last(); last != nil && last.Revision == rev && last.Result == ResultApplying {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("revision %d never started applying:\n%s", i, ctl.output())
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(i-1) * 400 * time.Millisecond)
		ctl.stop(syscall.SIGKILL)
		ctl = m.startSync(args...)
		m.waitStatus(ctl, fmt.Sprintf("revision %d after the kill", i), func(s *Status) bool {
			return s.Applied == rev && s.State == Synced && healthOf(s, "web") == "healthy"
		})
	}

	check := func() *Record {
		t.Helper()
		r, err := LoadRecord(dir)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range r.History {
			seen[e.Revision]++
			if e.Result != ResultHealthy {
				t.Errorf("revision %s: %s %s", e.Revision[:12], e.Result, e.Error)
			}
		}
		for i, rev := range revs {
			if seen[rev] != 1 {
				t.Errorf("revision %d is in the history %d times", i, seen[rev])
			}
		}
		for _, svc := range []string{"web", "worker"} {
			if ids := m.ids(svc); ids == "" || strings.Contains(ids, ",") {
				t.Errorf("%s containers: %q", svc, ids)
			}
		}
		return r
	}
	before := check()

	// a restart with nothing new applies nothing
	ctl.stop(syscall.SIGKILL)
	ctl = m.startSync(args...)
	time.Sleep(1500 * time.Millisecond)
	if after := check(); len(after.History) != len(before.History) {
		t.Errorf("a restart added history entries: %d -> %d", len(before.History), len(after.History))
	}

	// rollback pins an older revision until --unpin
	if out, err := m.berth("sync", "rollback", revs[0][:10]); err != nil {
		t.Fatal(err, out)
	}
	s := m.waitStatus(ctl, "pinned revision", func(s *Status) bool {
		return s.Applied == revs[0] && s.Pinned && s.State == Synced && healthOf(s, "web") == "healthy"
	})
	if s.Last.Result != ResultRolledBack || !s.Last.Pinned {
		t.Errorf("pinned entry: %+v", s.Last)
	}
	if env := m.env("worker"); !strings.Contains(env, `"V=0"`) {
		t.Errorf("worker after the rollback: %s", env)
	}
	if out, err := m.berth("sync", "rollback", "--unpin"); err != nil {
		t.Fatal(err, out)
	}
	m.waitStatus(ctl, "unpinned", func(s *Status) bool {
		return s.Applied == revs[3] && !s.Pinned && s.State == Synced
	})

	// drift between commits is repaired: a container stopped by hand runs again
	worker := m.ids("worker")
	repairs := strings.Count(ctl.output(), "repaired drift")
	if out, err := m.berth("stop", "-p", m.project, "worker"); err != nil {
		t.Fatal(err, out)
	}
	m.waitStatus(ctl, "drift repaired", func(s *Status) bool {
		return healthOf(s, "worker") == "running" && strings.Count(ctl.output(), "repaired drift") > repairs
	})
	if m.ids("worker") != worker {
		t.Errorf("drift repair recreated the worker instead of starting it")
	}

	// a service deleted from the repository keeps running without --prune
	// (as announced), and is removed with it
	noWorker := compose(9)
	noWorker["compose.yaml"] = noWorker["compose.yaml"][:strings.Index(noWorker["compose.yaml"], "  worker:")]
	last := u.commit("drop worker", noWorker)
	m.waitStatus(ctl, "worker dropped from the repository", func(s *Status) bool { return s.Applied == last })
	if m.ids("worker") == "" || !strings.Contains(ctl.output(), "--prune is off") {
		t.Errorf("without --prune the worker was removed, or nobody said so:\n%s", ctl.output())
	}
	ctl.stop(syscall.SIGTERM)
	ctl = m.startSync(append(args, "--prune")...)
	deadline := time.Now().Add(30 * time.Second)
	for m.ids("worker") != "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if m.ids("worker") != "" || m.ids("web") == "" {
		t.Errorf("--prune: worker %q web %q\n%s", m.ids("worker"), m.ids("web"), ctl.output())
	}
}
