package gitops

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// waitHealthy returns once every replica of every service is up: healthy
// when it has a healthcheck, running (or finished with status 0, a job)
// otherwise. It fails as soon as one cannot get there, or when ctx ends.
func waitHealthy(ctx context.Context, d driver.Driver, want *state.Desired) error {
	obs, err := d.Observe(ctx, want.Project)
	if err != nil {
		return err
	}
	for _, name := range want.ServiceNames() {
		svc := want.Services[name]
		var cs []state.Container
		for _, c := range obs.Containers {
			if c.Service == name && !c.OneOff {
				cs = append(cs, c)
			}
		}
		if len(cs) < svc.Replicas {
			return fmt.Errorf("service %s: %d of %d replicas exist", name, len(cs), svc.Replicas)
		}
		for _, c := range cs {
			if err := waitContainer(ctx, d, svc, c); err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					err = errors.New("not healthy within --health-timeout")
				}
				return fmt.Errorf("service %s: %s: %w", name, c.Name, err)
			}
		}
	}
	// a container without a healthcheck that crashed right after
	// starting is only visible once more
	obs, err = d.Observe(ctx, want.Project)
	if err != nil {
		return err
	}
	for _, c := range obs.Containers {
		if _, ok := want.Services[c.Service]; ok && !c.OneOff && failed(c) {
			return fmt.Errorf("service %s: %s exited with status %d", c.Service, c.Name, c.ExitCode)
		}
	}
	return nil
}

func waitContainer(ctx context.Context, d driver.Driver, svc *state.Service, c state.Container) error {
	if hasHealthcheck(svc.Container.Healthcheck) {
		return d.WaitContainer(ctx, c.ID, driver.WaitHealthy)
	}
	return d.WaitContainer(ctx, c.ID, driver.WaitRunning)
}

func hasHealthcheck(h *state.Healthcheck) bool {
	return h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE"
}

func failed(c state.Container) bool {
	return c.Status == state.StatusDead || (c.Status == state.StatusExited && c.ExitCode != 0)
}
