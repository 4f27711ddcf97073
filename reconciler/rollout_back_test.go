package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

// TestPlanRollbackOrder: after batch 2 of a rollout failed, replica 1 runs
// the new container with the old one aside and replica 2 still runs its
// old one beside a successor that never took its name. The rollback puts
// replica 1 back on its old container in rollback_config's order and
// removes replica 2's successor; replica 3 is untouched.
func TestPlanRollbackOrder(t *testing.T) {
	at := func(c state.Container, sec int) state.Container {
		c.Created = time.Unix(int64(1000+sec), 0)
		return c
	}
	old1 := at(ctr("web", 1, "h1", health(state.HealthHealthy)), 1)
	old1.Name, old1.Status, old1.Health = shortID(old1.ID)+"_demo-web-1", state.StatusExited, ""
	new1 := at(ctr("web", 1, "h2", health(state.HealthHealthy)), 10)
	new1.ID = "new1"
	old2 := at(ctr("web", 2, "h1", health(state.HealthHealthy)), 2)
	next2 := at(ctr("web", 2, "h2", health(state.HealthUnhealthy)), 11)
	next2.ID, next2.Name = "next2", "next_"+shortID(old2.ID)+"_demo-web-2"
	old3 := at(ctr("web", 3, "h1", health(state.HealthHealthy)), 3)
	after := observed(old1, new1, old2, next2, old3)
	before := running3("h1")

	cases := []struct {
		name string
		rb   state.UpdateConfig
		plan string
	}{
		{"start-first", state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1}, `
[] -> #1 service:web:1 StartContainer (rollback)
[1] -> #2 service:web:1 WaitContainer (rollback)
[2] -> #3 service:web:1 StopContainer (rollback)
[3] -> #4 service:web:1 RemoveContainer (rollback)
[4] -> #5 service:web:1 RenameContainer (rollback)
[] -> #6 service:web:2 StopContainer (rollback)
[6] -> #7 service:web:2 RemoveContainer (rollback)
`},
		{"stop-first, monitored", state.UpdateConfig{Order: state.OrderStopFirst, Monitor: time.Second}, `
[] -> #1 service:web:1 StopContainer (rollback)
[1] -> #2 service:web:1 RemoveContainer (rollback)
[2] -> #3 service:web:1 RenameContainer (rollback)
[3] -> #4 service:web:1 StartContainer (rollback)
[4] -> #5 service:web:1 WaitContainer (rollback)
[5] -> #6 service:web:1 Monitor (rollback)
[] -> #7 service:web:2 StopContainer (rollback)
[7] -> #8 service:web:2 RemoveContainer (rollback)
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := desired(svc("web", "app:1", "h2", 3, healthcheck, func(s *state.Service) {
				s.Update = state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1, FailureAction: FailureRollback}
				s.Rollback = tc.rb
			}))
			p, err := PlanRollback(want, after, before, []string{"web"})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := p.String(), strings.TrimPrefix(tc.plan, "\n"); got != want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, want)
			}
			// The old container had a healthcheck: the rollback waits
			// for it to be healthy again.
			for _, op := range p.Ops {
				if op.Kind == WaitContainer && op.Condition != "healthy" {
					t.Errorf("%s waits until %s, want healthy", op, op.Condition)
				}
			}
		})
	}
}

// TestRollbackPacing: rollback_config's parallelism batches the swaps
// back, its delay separates the batches, and failure_action pause (the
// default) makes a batch hard-depend on the previous one.
func TestRollbackPacing(t *testing.T) {
	var cs []state.Container
	for n := 1; n <= 4; n++ {
		old := ctr("web", n, "h1")
		old.Name, old.Status, old.Created = shortID(old.ID)+"_demo-web-"+fmt.Sprint(n), state.StatusExited, time.Unix(int64(n), 0)
		cur := ctr("web", n, "h2")
		cur.ID, cur.Created = fmt.Sprintf("new%d", n), time.Unix(int64(100+n), 0)
		cs = append(cs, old, cur)
	}
	want := desired(svc("web", "app:1", "h2", 4, func(s *state.Service) {
		s.Update.FailureAction = FailureRollback
		s.Rollback = state.UpdateConfig{Order: state.OrderStopFirst, Parallelism: 2, Delay: 3 * time.Second}
	}))
	p, err := PlanRollback(want, observed(cs...), nil, []string{"web"})
	if err != nil {
		t.Fatal(err)
	}
	got := p.String()
	// Replicas 1 and 2 at once; the delay after both; 3 and 4 after it.
	for _, line := range []string{
		"[] -> #1 service:web:1 StopContainer (rollback)",
		"[] -> #6 service:web:2 StopContainer (rollback)",
		"[5 10] -> #11 service:web Delay (3s before rollback batch 2)",
		"[11] -> #12 service:web:3 StopContainer (rollback)",
		"[11] -> #17 service:web:4 StopContainer (rollback)",
		"[15] -> #16 service:web:3 WaitContainer (rollback)",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("no %q in\n%s", line, got)
		}
	}
	// Without a healthcheck seen before, the wait is for running.
	if strings.Contains(got, "healthy") {
		t.Errorf("waits for healthy without a healthcheck:\n%s", got)
	}
}

// rolloutN brings up web with n replicas and a healthcheck on the fake
// driver and returns the desired state and the containers' ids.
func rolloutN(t *testing.T, d *fake.Driver, n int, u, rb state.UpdateConfig) (*state.Desired, []string) {
	t.Helper()
	want := desired(svc("web", "app:1", "h1", n, healthcheck, update(u), func(s *state.Service) { s.Rollback = rb }))
	converge(t, d, want, Options{}, 3)
	var ids []string
	for i := 1; i <= n; i++ {
		c, ok := d.Container(fmt.Sprintf("demo-web-%d", i))
		if !ok || c.Status != state.StatusRunning {
			t.Fatalf("demo-web-%d: %+v", i, c)
		}
		ids = append(ids, c.ID)
	}
	return want, ids
}

// TestLoopRollsBackEveryBatch: a rollout whose batch 2 fails is rolled
// back whole (batch 1 too) through the Loop, whatever the update order
// and parallelism; every replica runs its very old container again, under
// its name, and nothing else is left. The next pass with the same desired
// state changes nothing (the service stays rolled back), a new change is
// applied.
func TestLoopRollsBackEveryBatch(t *testing.T) {
	cases := []struct {
		name       string
		replicas   int
		u, rb      state.UpdateConfig
		failing    func(old []string) (method, object string)
		rolledBack []int // replicas whose containers went through a swap back
	}{
		{"start-first, parallelism 1, start-first rollback", 3,
			state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1, FailureAction: FailureRollback},
			state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1},
			func(old []string) (string, string) {
				return "WaitContainer", "next_" + shortID(old[1]) + "_demo-web-2"
			}, []int{1}},
		{"start-first, parallelism 2, stop-first rollback", 4,
			state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 2, FailureAction: FailureRollback},
			state.UpdateConfig{Parallelism: 2},
			func(old []string) (string, string) {
				return "WaitContainer", "next_" + shortID(old[2]) + "_demo-web-3"
			}, []int{1, 2, 4}},
		{"start-first, rollback_config unset: rolled back as updated", 3,
			state.UpdateConfig{Order: state.OrderStartFirst, Parallelism: 1, FailureAction: FailureRollback},
			state.UpdateConfig{Order: state.OrderStopFirst},
			func(old []string) (string, string) {
				return "WaitContainer", "next_" + shortID(old[1]) + "_demo-web-2"
			}, []int{1}},
		{"stop-first, parallelism 1", 3,
			state.UpdateConfig{Parallelism: 1, FailureAction: FailureRollback},
			state.UpdateConfig{Order: state.OrderStartFirst},
			func(old []string) (string, string) { return "WaitContainer", "demo-web-2" }, []int{1}},
		{"stop-first, parallelism 2", 4,
			state.UpdateConfig{Parallelism: 2, FailureAction: FailureRollback},
			state.UpdateConfig{Parallelism: 1},
			func(old []string) (string, string) { return "StartContainer", "demo-web-4" }, []int{1, 2, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := fake.New()
			want, old := rolloutN(t, d, tc.replicas, tc.u, tc.rb)
			method, object := tc.failing(old)
			d.FailOnce(method, object, nil)
			want.Services["web"].ConfigHash = "h2"
			d.ResetCalls()
			l := &Loop{Driver: d, Project: proj, Desired: func(context.Context) (*state.Desired, error) { return want, nil },
				Exec: ExecOptions{Parallel: 4}}
			res := l.Pass(context.Background())
			var xe *ExecError
			if res.Err == nil || !errors.As(res.Err, &xe) || !strings.Contains(res.Err.Error(), "rolled back web") {
				t.Fatalf("pass: %v, want the failed rollout, rolled back", res.Err)
			}
			checkOld(t, d, old)
			// The swaps back ran in rollback_config's order.
			calls := d.Calls()
			last := func(method, object string) int {
				for i := len(calls) - 1; i >= 0; i-- {
					if calls[i] == (fake.Call{Method: method, Object: object}) {
						return i
					}
				}
				return -1
			}
			order := rollbackConfig(&state.Service{Update: tc.u, Rollback: tc.rb}).Order
			for _, n := range tc.rolledBack {
				name := fmt.Sprintf("demo-web-%d", n)
				// The old container starts under its aside name
				// (start-first) or its own (stop-first); the new one is
				// the last stopped under the replica's name.
				start := last("StartContainer", name)
				if order == state.OrderStartFirst {
					start = last("StartContainer", shortID(old[n-1])+"_"+name)
				}
				stop := last("StopContainer", name)
				if start < 0 || stop < 0 {
					t.Errorf("replica %d: no start of the old container or stop of the new one in %v", n, calls)
				} else if first := order == state.OrderStartFirst; first != (start < stop) {
					t.Errorf("replica %d: old started at call %d, new stopped at %d (rollback order %q)", n, start, stop, order)
				}
			}

			// Held: the same desired state is not tried again.
			d.ResetCalls()
			if res := l.Pass(context.Background()); res.Err != nil || len(res.Plans) != 0 {
				t.Errorf("pass after the rollback: %v, plans %v", res.Err, res.Plans)
			}
			checkOld(t, d, old)
			// A new change is applied.
			want.Services["web"].ConfigHash = "h3"
			if res := l.Pass(context.Background()); res.Err != nil {
				t.Fatalf("pass with a new change: %v", res.Err)
			}
			obs, _ := d.Observe(context.Background(), proj)
			if len(obs.Containers) != tc.replicas {
				t.Errorf("%d containers after the new update, want %d", len(obs.Containers), tc.replicas)
			}
			for _, c := range obs.Containers {
				if c.ConfigHash != "h3" || c.Status != state.StatusRunning || slices.Contains(old, c.ID) {
					t.Errorf("after the new update: %s %s %s", c.Name, c.ConfigHash, c.Status)
				}
			}
		})
	}
}

// checkOld asserts that exactly the old containers run, under their names.
func checkOld(t *testing.T, d *fake.Driver, old []string) {
	t.Helper()
	obs, _ := d.Observe(context.Background(), proj)
	if len(obs.Containers) != len(old) {
		var names []string
		for _, c := range obs.Containers {
			names = append(names, c.Name+"("+c.Status+")")
		}
		t.Errorf("%d containers %v, want the %d old ones", len(obs.Containers), names, len(old))
	}
	for i, id := range old {
		c, ok := d.Container(fmt.Sprintf("demo-web-%d", i+1))
		if !ok || c.ID != id || c.Status != state.StatusRunning || c.ConfigHash != "h1" {
			t.Errorf("demo-web-%d: %+v, want the old container %s running", i+1, c, id)
		}
	}
}
