package reconciler

import (
	"context"
	"fmt"
	"time"

	"github.com/berth-dev/berth/state"
)

// notNeeded says whether op is a conditional op none of whose OnFailure
// ops failed, or hangs (hard) on one that was not needed: a rollback
// after a rollout that went well. Callers hold e.mu.
func (e *executor) notNeeded(op *Op) bool {
	for _, dep := range op.Deps {
		if e.idle[dep] {
			return true
		}
	}
	if len(op.OnFailure) == 0 {
		return false
	}
	for _, id := range op.OnFailure {
		if e.bad[id] {
			return false
		}
	}
	return true
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// monitorEvery is how often a Monitor op looks at its container. The
// driver has no "tell me when it changes" call for health, so it polls
// Observe; a quarter second is cheap for the native driver (it reads
// records) and far below any useful monitor window.
var monitorEvery = 250 * time.Millisecond

// monitor fails as soon as container id fails within window (exits
// non-zero, crashes into a restart, dies, reports unhealthy) and succeeds
// when the window passes, or at once when it exits 0: a one-shot job has
// completed, which is what its start asked for.
func (e *executor) monitor(ctx context.Context, id string, window time.Duration) error {
	end := time.Now().Add(window)
	for {
		done, err := e.check(ctx, id)
		if err != nil || done {
			return err
		}
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		if err := sleep(ctx, min(left, monitorEvery)); err != nil {
			return err
		}
	}
}

func (e *executor) check(ctx context.Context, id string) (completed bool, err error) {
	obs, err := e.d.Observe(ctx, e.p.Project)
	if err != nil {
		return false, err
	}
	for _, c := range obs.Containers {
		if c.ID != id {
			continue
		}
		switch {
		case c.Status == state.StatusExited && c.ExitCode == 0:
			return true, nil
		case c.Status == state.StatusExited || c.Status == state.StatusDead || c.Status == state.StatusRestarting:
			return false, fmt.Errorf("container %s is %s within the monitor window", c.Name, startReason(c))
		case c.Health == state.HealthUnhealthy:
			return false, fmt.Errorf("container %s turned unhealthy within the monitor window", c.Name)
		}
		return false, nil
	}
	return false, fmt.Errorf("container %s disappeared within the monitor window", shortID(id))
}
