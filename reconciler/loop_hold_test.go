package reconciler

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

// heldRollback rolls a 2-replica start-first rollout of web (h1 -> h2)
// back through a Loop over lock, and returns the desired state that
// failed and the old containers' ids.
func heldRollback(t *testing.T, d *fake.Driver, lock Locker) (*state.Desired, []string) {
	t.Helper()
	want, old := rolloutN(t, d, 2,
		state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1, FailureAction: FailureRollback},
		state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1})
	d.FailOnce("WaitContainer", "next_"+shortID(old[1])+"_demo-web-2", nil)
	want.Services["web"].ConfigHash = "h2"
	l := &Loop{Driver: d, Project: proj, Locker: lock, Exec: ExecOptions{Parallel: 4},
		Desired: func(context.Context) (*state.Desired, error) { return want, nil }}
	if res := l.Pass(context.Background()); res.Err == nil || !strings.Contains(res.Err.Error(), "rolled back web") {
		t.Fatalf("pass: %v, want the failed rollout, rolled back", res.Err)
	}
	checkOld(t, d, old)
	return want, old
}

// TestHoldSurvivesNewLoop: the hold of a rolled-back service is kept with
// the project (beside its lock), so a new Loop — a restarted controller —
// does not try the failed desired state again (the injected failure was
// consumed: a retry would succeed and replace the old containers); a
// change of the service ends the hold and is applied, and the record goes.
func TestHoldSurvivesNewLoop(t *testing.T) {
	d := fake.New()
	path := filepath.Join(t.TempDir(), "projects", proj+".lock")
	want, old := heldRollback(t, d, FileLock(path))
	rec := filepath.Join(filepath.Dir(path), proj+".holds.json")
	if _, err := os.Stat(rec); err != nil {
		t.Fatalf("no holds record after the rollback: %v", err)
	}
	for i := 0; i < 3; i++ { // a new controller, passes on retry and resync
		l := &Loop{Driver: d, Project: proj, Locker: FileLock(path),
			Desired: func(context.Context) (*state.Desired, error) { return want, nil }}
		if res := l.Pass(context.Background()); res.Err != nil || len(res.Plans) != 0 {
			t.Fatalf("pass %d of a new loop while held: %v, plans %v", i, res.Err, res.Plans)
		}
	}
	checkOld(t, d, old)

	want.Services["web"].ConfigHash = "h3"
	l := &Loop{Driver: d, Project: proj, Locker: FileLock(path),
		Desired: func(context.Context) (*state.Desired, error) { return want, nil }}
	if res := l.Pass(context.Background()); res.Err != nil || len(res.Plans) == 0 {
		t.Fatalf("pass with a new change: %v, plans %v", res.Err, res.Plans)
	}
	obs, _ := d.Observe(context.Background(), proj)
	if len(obs.Containers) != 2 {
		t.Errorf("%d containers after the new change, want 2", len(obs.Containers))
	}
	for _, c := range obs.Containers {
		if c.ConfigHash != "h3" || c.Status != state.StatusRunning {
			t.Errorf("after the new change: %s %s %s", c.Name, c.ConfigHash, c.Status)
		}
	}
	if _, err := os.Stat(rec); !os.IsNotExist(err) {
		t.Errorf("holds record still there once the hold ended: %v", err)
	}
}

// TestExplicitPassRetriesHeld: an explicit request (berth up) plans past
// the hold and ends it; a controller's pass after it has nothing held.
func TestExplicitPassRetriesHeld(t *testing.T) {
	d := fake.New()
	path := filepath.Join(t.TempDir(), "projects", proj+".lock")
	want, old := heldRollback(t, d, FileLock(path))
	up := &Loop{Driver: d, Project: proj, Locker: FileLock(path), Explicit: true,
		Desired: func(context.Context) (*state.Desired, error) { return want, nil }}
	if res := up.Pass(context.Background()); res.Err != nil || len(res.Plans) == 0 {
		t.Fatalf("explicit pass: %v, plans %v", res.Err, res.Plans)
	}
	for i := 1; i <= 2; i++ {
		c, _ := d.Container("demo-web-" + string(rune('0'+i)))
		if c.ConfigHash != "h2" || c.ID == old[i-1] {
			t.Errorf("demo-web-%d after the explicit retry: %s %s", i, c.ID, c.ConfigHash)
		}
	}
	if h, err := FileLock(path).(HoldStore).LoadHolds(); err != nil || len(h) != 0 {
		t.Errorf("holds after the explicit retry: %v %v", h, err)
	}
}

// TestRemoveLockFileRemovesHolds: berth down of a whole project leaves no
// holds record behind.
func TestRemoveLockFileRemovesHolds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.lock")
	h := FileLock(path).(HoldStore)
	if err := h.SaveHolds(map[string]string{"web": "k"}); err != nil {
		t.Fatal(err)
	}
	if got, err := h.LoadHolds(); err != nil || got["web"] != "k" {
		t.Fatalf("load: %v %v", got, err)
	}
	if err := RemoveLockFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(holdFile(path)); !os.IsNotExist(err) {
		t.Errorf("holds record after RemoveLockFile: %v", err)
	}
}
