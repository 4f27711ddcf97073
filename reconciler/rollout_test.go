package reconciler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

func update(u state.UpdateConfig) func(*state.Service) {
	return func(s *state.Service) { s.Update = u }
}

func running3(hash string) *state.Observed {
	return observed(ctr("web", 1, hash, health(state.HealthHealthy)), ctr("web", 2, hash, health(state.HealthHealthy)),
		ctr("web", 3, hash, health(state.HealthHealthy)))
}

func TestPlanRollout(t *testing.T) {
	cases := []struct {
		name string
		want *state.Desired
		obs  *state.Observed
		plan string
	}{
		{
			name: "start-first, one at a time, a delay between batches",
			want: desired(svc("web", "app:1", "h2", 3, healthcheck,
				update(state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1, Delay: 5 * time.Second}))),
			obs: running3("h1"),
			plan: `
[] -> #1 service:web:1+next CreateContainer (config changed)
[1] -> #2 service:web:1+next StartContainer (created)
[2] -> #3 service:web:1+next WaitContainer (until healthy)
[3] -> #4 service:web:1 StopContainer (replaced)
[4] -> #5 service:web:1 RemoveContainer (replaced)
[5] -> #6 service:web:1+next RenameContainer (replaces demo-web-1)
[6] -> #7 service:web Delay (5s before batch 2)
[7] -> #8 service:web:2+next CreateContainer (config changed)
[8] -> #9 service:web:2+next StartContainer (created)
[9] -> #10 service:web:2+next WaitContainer (until healthy)
[10] -> #11 service:web:2 StopContainer (replaced)
[11] -> #12 service:web:2 RemoveContainer (replaced)
[12] -> #13 service:web:2+next RenameContainer (replaces demo-web-2)
[13] -> #14 service:web Delay (5s before batch 3)
[14] -> #15 service:web:3+next CreateContainer (config changed)
[15] -> #16 service:web:3+next StartContainer (created)
[16] -> #17 service:web:3+next WaitContainer (until healthy)
[17] -> #18 service:web:3 StopContainer (replaced)
[18] -> #19 service:web:3 RemoveContainer (replaced)
[19] -> #20 service:web:3+next RenameContainer (replaces demo-web-3)
`,
		},
		{
			name: "stop-first, two at a time, continue past a failed batch, monitored",
			want: desired(svc("web", "app:1", "h2", 3,
				update(state.UpdateConfig{Parallelism: 2, Monitor: 2 * time.Second, FailureAction: FailureContinue}))),
			obs: running3("h1"),
			plan: `
[] -> #1 service:web:1 RenameContainer (set aside: config changed)
[1] -> #2 service:web:1 StopContainer (config changed)
[2] -> #3 service:web:1 CreateContainer (config changed)
[2 3?] -> #4 service:web:1 RemoveContainer (config changed)
[3] -> #5 service:web:1 StartContainer (created)
[5] -> #6 service:web:1 Monitor (for 2s)
[] -> #7 service:web:2 RenameContainer (set aside: config changed)
[7] -> #8 service:web:2 StopContainer (config changed)
[8] -> #9 service:web:2 CreateContainer (config changed)
[8 9?] -> #10 service:web:2 RemoveContainer (config changed)
[9] -> #11 service:web:2 StartContainer (created)
[11] -> #12 service:web:2 Monitor (for 2s)
[6? 12?] -> #13 service:web:3 RenameContainer (set aside: config changed)
[13] -> #14 service:web:3 StopContainer (config changed)
[14] -> #15 service:web:3 CreateContainer (config changed)
[14 15?] -> #16 service:web:3 RemoveContainer (config changed)
[15] -> #17 service:web:3 StartContainer (created)
[17] -> #18 service:web:3 Monitor (for 2s)
`,
		},
		{
			name: "start-first with monitor and rollback",
			want: desired(svc("web", "app:1", "h2", 1, healthcheck,
				update(state.UpdateConfig{Order: state.OrderStartFirst, Monitor: time.Second, FailureAction: FailureRollback}))),
			obs: observed(ctr("web", 1, "h1", health(state.HealthHealthy))),
			plan: `
[] -> #1 service:web:1+next CreateContainer (config changed)
[1] -> #2 service:web:1+next StartContainer (created)
[2] -> #3 service:web:1+next WaitContainer (until healthy)
[3] -> #4 service:web:1+next Monitor (for 1s)
[4] -> #5 service:web:1 StopContainer (replaced)
[5] -> #6 service:web:1 RenameContainer (set aside for rollback)
[6] -> #7 service:web:1+next RenameContainer (replaces demo-web-1)
[1 2? 3? 4?] -> #8 service:web:1+next StopContainer (rollback) if any of #2 #3 #4 fails
[8] -> #9 service:web:1+next RemoveContainer (rollback)
[7] -> #10 service:web:1 RemoveContainer (replaced)
`,
		},
		{
			name: "stop-first with rollback sets the old container aside",
			want: desired(svc("web", "app:1", "h2", 1, update(state.UpdateConfig{FailureAction: FailureRollback}))),
			obs:  observed(ctr("web", 1, "h1")),
			plan: `
[] -> #1 service:web:1 StopContainer (config changed)
[1] -> #2 service:web:1 RenameContainer (set aside for rollback)
[1 2] -> #3 service:web:1 CreateContainer (config changed)
[3] -> #4 service:web:1 StartContainer (created)
[4] -> #5 service:web:1 WaitContainer (until running)
[3 4? 5?] -> #6 service:web:1 StopContainer (rollback) if any of #4 #5 fails
[6] -> #7 service:web:1 RemoveContainer (rollback)
[1 2 3? 4? 5? 7?] -> #8 service:web:1 RenameContainer (rollback) if any of #3 #4 #5 fails
[8] -> #9 service:web:1 StartContainer (rollback)
[5] -> #10 service:web:1 RemoveContainer (replaced)
`,
		},
		{
			name: "parallelism 0 updates every replica at once",
			want: desired(svc("web", "app:1", "h2", 2,
				update(state.UpdateConfig{Delay: time.Second}))),
			obs: observed(ctr("web", 1, "h1"), ctr("web", 2, "h1")),
			plan: `
[] -> #1 service:web:1 RenameContainer (set aside: config changed)
[1] -> #2 service:web:1 StopContainer (config changed)
[2] -> #3 service:web:1 CreateContainer (config changed)
[2 3?] -> #4 service:web:1 RemoveContainer (config changed)
[3] -> #5 service:web:1 StartContainer (created)
[] -> #6 service:web:2 RenameContainer (set aside: config changed)
[6] -> #7 service:web:2 StopContainer (config changed)
[7] -> #8 service:web:2 CreateContainer (config changed)
[7 8?] -> #9 service:web:2 RemoveContainer (config changed)
[8] -> #10 service:web:2 StartContainer (created)
`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanUp(tc.want, tc.obs, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := p.String(), strings.TrimPrefix(tc.plan, "\n"); got != want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// rolloutSetup brings up web (2 replicas, start-first, one at a time)
// on the fake driver and returns the ids of its containers.
func rolloutSetup(t *testing.T, d *fake.Driver, u state.UpdateConfig) (*state.Desired, []string) {
	t.Helper()
	want := desired(svc("web", "app:1", "h1", 2, healthcheck, update(u)))
	converge(t, d, want, Options{}, 3)
	return want, webIDs(t, d)
}

func webIDs(t *testing.T, d *fake.Driver) []string {
	t.Helper()
	var ids []string
	for _, name := range []string{"demo-web-1", "demo-web-2"} {
		c, ok := d.Container(name)
		if !ok || c.Status != state.StatusRunning {
			t.Fatalf("%s: %+v, want it running", name, c)
		}
		ids = append(ids, c.ID)
	}
	return ids
}

func TestExecuteRolloutDelayPacesBatches(t *testing.T) {
	d := fake.New()
	want, _ := rolloutSetup(t, d, state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1, Delay: 150 * time.Millisecond})
	want.Services["web"].ConfigHash = "h2"
	p := plan(t, d, want, Options{})
	var renamed, created2 time.Time
	begin := time.Now()
	err := Execute(context.Background(), d, p, ExecOptions{Parallel: 4, OnEvent: func(e Event) {
		switch {
		case e.Phase == Succeeded && e.Op.Kind == RenameContainer && e.Op.Object == "service:web:1+next":
			renamed = time.Now()
		case e.Phase == Started && e.Op.Kind == CreateContainer && e.Op.Object == "service:web:2+next":
			created2 = time.Now()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if renamed.IsZero() || created2.Sub(renamed) < 150*time.Millisecond {
		t.Errorf("replica 2 created %v after replica 1 finished, want at least the 150ms delay", created2.Sub(renamed))
	}
	if time.Since(begin) > 5*time.Second {
		t.Errorf("rollout took %v", time.Since(begin))
	}
	if p := plan(t, d, want, Options{}); !p.Empty() {
		t.Errorf("not converged:\n%s", p)
	}
}

func TestExecuteRolloutRollsBackAFailingBatch(t *testing.T) {
	d := fake.New()
	want, old := rolloutSetup(t, d, state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1, FailureAction: FailureRollback})
	web := want.Services["web"]
	web.ConfigHash = "h2"
	web.Container.Healthcheck = &state.Healthcheck{Test: []string{"CMD", "false"}} // never healthy
	p := plan(t, d, want, Options{})
	d.ResetCalls()
	err := Execute(context.Background(), d, p, ExecOptions{Parallel: 4})
	var xe *ExecError
	if !errors.As(err, &xe) || len(xe.Failed) != 1 || xe.Failed[0].Op.Kind != WaitContainer {
		t.Fatalf("err = %v, want the failed wait of batch 1 only", err)
	}
	if got := webIDs(t, d); got[0] != old[0] || got[1] != old[1] {
		t.Errorf("containers %v after rollback, want the old ones %v", got, old)
	}
	obs, _ := d.Observe(context.Background(), proj)
	if len(obs.Containers) != 2 {
		t.Errorf("%d containers after rollback, want the 2 old ones (successor removed)", len(obs.Containers))
	}
	for _, c := range d.Calls() {
		if c.Method == "CreateContainer" && strings.HasSuffix(c.Object, "_demo-web-2") {
			t.Errorf("batch 2 ran after batch 1 failed: %v", c)
		}
	}
}

func TestExecuteRolloutMonitorCatchesUnhealthy(t *testing.T) {
	old := monitorEvery
	monitorEvery = 10 * time.Millisecond
	defer func() { monitorEvery = old }()
	d := fake.New()
	want, ids := rolloutSetup(t, d, state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1,
		Monitor: 2 * time.Second, FailureAction: FailureRollback})
	want.Services["web"].ConfigHash = "h2"
	p := plan(t, d, want, Options{})
	begin := time.Now()
	err := Execute(context.Background(), d, p, ExecOptions{Parallel: 4, OnEvent: func(e Event) {
		if e.Phase == Started && e.Op.Kind == Monitor {
			go func() { // turns unhealthy inside the window
				time.Sleep(50 * time.Millisecond)
				_ = d.SetHealth("next_"+shortID(ids[0])+"_demo-web-1", state.HealthUnhealthy)
			}()
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "turned unhealthy within the monitor window") {
		t.Fatalf("err = %v, want the monitor to fail", err)
	}
	if took := time.Since(begin); took > 1500*time.Millisecond {
		t.Errorf("monitor failed after %v, want soon after the container turned unhealthy", took)
	}
	if got := webIDs(t, d); got[0] != ids[0] || got[1] != ids[1] {
		t.Errorf("containers %v, want the old ones %v kept", got, ids)
	}
}

func TestExecuteRollbackNotNeeded(t *testing.T) {
	d := fake.New()
	want, _ := rolloutSetup(t, d, state.UpdateConfig{Order: state.OrderStartFirst, FailureAction: FailureRollback})
	want.Services["web"].ConfigHash = "h2"
	p := plan(t, d, want, Options{})
	var rolledBack bool
	err := Execute(context.Background(), d, p, ExecOptions{OnEvent: func(e Event) {
		if e.Op.Reason == "rollback" {
			rolledBack = true
		}
	}})
	if err != nil || rolledBack {
		t.Fatalf("err = %v, rollback events seen = %v; want a quiet success", err, rolledBack)
	}
	if p := plan(t, d, want, Options{}); !p.Empty() {
		t.Errorf("not converged:\n%s", p)
	}
}

func TestExecuteStopFirstRollbackRestoresOld(t *testing.T) {
	d := fake.New()
	want, old := rolloutSetup(t, d, state.UpdateConfig{Parallelism: 1, FailureAction: FailureRollback})
	web := want.Services["web"]
	web.ConfigHash = "h2"
	web.Container.Healthcheck = &state.Healthcheck{Test: []string{"CMD", "false"}} // never healthy
	p := plan(t, d, want, Options{})
	d.ResetCalls()
	err := Execute(context.Background(), d, p, ExecOptions{Parallel: 4})
	var xe *ExecError
	if !errors.As(err, &xe) || len(xe.Failed) != 1 || xe.Failed[0].Op.Kind != WaitContainer {
		t.Fatalf("err = %v, want the failed wait of batch 1 only\n%s", err, p)
	}
	if got := webIDs(t, d); got[0] != old[0] || got[1] != old[1] {
		t.Errorf("containers %v after rollback, want the old ones %v running under their names", got, old)
	}
	obs, _ := d.Observe(context.Background(), proj)
	if len(obs.Containers) != 2 {
		t.Errorf("%d containers after rollback, want the 2 old ones", len(obs.Containers))
	}

	// The good update goes through, and the old containers are removed.
	web.Container.Healthcheck = &state.Healthcheck{Test: []string{"CMD", "check"}}
	converge(t, d, want, Options{}, 2)
	if got := webIDs(t, d); got[0] == old[0] || got[1] == old[1] {
		t.Errorf("containers %v after the update, want new ones", got)
	}
	obs, _ = d.Observe(context.Background(), proj)
	if len(obs.Containers) != 2 {
		t.Errorf("%d containers after the update, want 2", len(obs.Containers))
	}
}

// TestSetAsideInterrupted: a pass that died after setting the old
// container aside is finished level-triggered by the next ones.
func TestSetAsideInterrupted(t *testing.T) {
	d := fake.New()
	want, old := rolloutSetup(t, d, state.UpdateConfig{FailureAction: FailureRollback})
	want.Services["web"].ConfigHash = "h2"
	ctx := context.Background()
	if err := d.StopContainer(ctx, old[0], 0); err != nil {
		t.Fatal(err)
	}
	if err := d.RenameContainer(ctx, old[0], shortID(old[0])+"_demo-web-1"); err != nil {
		t.Fatal(err)
	}
	converge(t, d, want, Options{}, 3)
	obs, _ := d.Observe(ctx, proj)
	if len(obs.Containers) != 2 {
		t.Errorf("%d containers, want 2", len(obs.Containers))
	}
	for _, c := range obs.Containers {
		if c.ConfigHash != "h2" || c.Status != state.StatusRunning {
			t.Errorf("%s: hash %s, %s", c.Name, c.ConfigHash, c.Status)
		}
	}
}
