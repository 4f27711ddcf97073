package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/state"
)

// develop runs the develop.watch actions a batch of changed paths asks for,
// service by service.
func (c *Controller) develop(ctx context.Context, l *loaded, paths []string) {
	for _, w := range assign(l.rules, paths) {
		start := time.Now()
		n, err := c.serviceWork(ctx, l, w)
		what := describeWork(w, n)
		if err != nil {
			c.printf("berth: watch: %s: %s failed after %s: %v\n", w.Service, what, time.Since(start).Round(time.Millisecond), err)
			continue
		}
		c.printf("berth: watch: %s: %s in %s\n", w.Service, what, time.Since(start).Round(time.Millisecond))
	}
}

func describeWork(w *serviceWork, files int) string {
	var parts []string
	if w.Rebuild {
		parts = append(parts, "rebuilt")
	}
	if len(w.Sync) > 0 {
		parts = append(parts, fmt.Sprintf("synced %d paths", files))
	}
	if len(w.Exec) > 0 {
		parts = append(parts, "ran exec")
	}
	if w.Restart {
		parts = append(parts, "restarted")
	}
	return strings.Join(parts, ", ")
}

// serviceWork runs one service's actions under the project lock (a
// restart must not interleave with a pass). It returns the number of
// paths synced.
func (c *Controller) serviceWork(ctx context.Context, l *loaded, w *serviceWork) (int, error) {
	svc := l.desired.Services[w.Service]
	if svc == nil {
		return 0, fmt.Errorf("no such service")
	}
	if w.Rebuild {
		return 0, c.rebuild(ctx, svc)
	}
	if c.o.Locker != nil {
		unlock, err := c.o.Locker.Lock(ctx)
		if err != nil {
			return 0, err
		}
		defer unlock()
	}
	cs, err := c.running(ctx, w.Service)
	if err != nil {
		return 0, err
	}
	n := 0
	for r, paths := range w.Sync {
		for _, p := range paths {
			if err := syncPath(cs, p, r.targetOf(p)); err != nil {
				return n, err
			}
			n++
		}
	}
	for _, r := range w.Exec {
		if err := c.exec(ctx, cs, r); err != nil {
			return n, err
		}
	}
	if w.Restart {
		return n, c.restart(ctx, svc, cs)
	}
	return n, nil
}

// running lists the service's running containers.
func (c *Controller) running(ctx context.Context, service string) ([]state.Container, error) {
	obs, err := c.o.Driver.Observe(ctx, c.Project())
	if err != nil {
		return nil, err
	}
	var out []state.Container
	for _, ct := range obs.Containers {
		if ct.Service == service && !ct.OneOff && ct.Status == state.StatusRunning && ct.Pid > 0 {
			out = append(out, ct)
		}
	}
	return out, nil
}

// syncPath mirrors one host path into every container: copied when it
// exists, removed when it does not.
func syncPath(cs []state.Container, hostPath, target string) error {
	_, statErr := os.Lstat(hostPath)
	var errs []error
	for _, ct := range cs {
		fs, err := openContainerFS(ct.Pid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if statErr != nil {
			err = fs.Remove(target)
		} else {
			err = fs.Put(hostPath, target)
		}
		fs.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", ct.Name, target, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) exec(ctx context.Context, cs []state.Container, r *rule) error {
	if c.o.Exec == nil {
		return errors.New("sync+exec is not available here")
	}
	h := state.Hook{Command: r.Exec.Command, User: r.Exec.User, Privileged: r.Exec.Privileged, WorkingDir: r.Exec.WorkingDir}
	for k, v := range r.Exec.Environment {
		if v != nil {
			h.Env = append(h.Env, k+"="+*v)
		}
	}
	for _, ct := range cs {
		code, err := c.o.Exec(ctx, ct.ID, h)
		if err != nil {
			return fmt.Errorf("exec in %s: %w", ct.Name, err)
		}
		if code != 0 {
			return fmt.Errorf("exec in %s: %v exited with %d", ct.Name, h.Command, code)
		}
	}
	return nil
}

// restart stops and starts the containers in place (their synced files
// survive, unlike a recreate).
func (c *Controller) restart(ctx context.Context, svc *state.Service, cs []state.Container) error {
	timeout := svc.Container.StopGracePeriod
	if c.o.Reconcile.Timeout != nil {
		timeout = *c.o.Reconcile.Timeout
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	for _, ct := range cs {
		if err := c.o.Driver.StopContainer(ctx, ct.ID, timeout); err != nil {
			return err
		}
		if err := c.o.Driver.StartContainer(ctx, ct.ID); err != nil {
			return err
		}
	}
	return nil
}

// rebuild builds the service's image again; the pass it kicks sees the new
// digest and recreates the service's containers.
func (c *Controller) rebuild(ctx context.Context, svc *state.Service) error {
	if svc.Image.Build == nil {
		return fmt.Errorf("rebuild: service %s has no build section", svc.Name)
	}
	spec := svc.Image
	spec.PullPolicy = "build"
	if c.o.Locker != nil {
		unlock, err := c.o.Locker.Lock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	if _, err := c.o.Driver.EnsureImage(ctx, spec); err != nil {
		return err
	}
	c.ensureLoop()
	c.loop.Kick("service " + svc.Name + " rebuilt")
	return nil
}

// initialSync copies the whole tree of every initial_sync rule into each
// container of its service that has not had it yet: at start, and after
// every pass, so that a recreated container gets the files too.
func (c *Controller) initialSync(ctx context.Context) {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	if c.synced == nil {
		c.synced = map[string]bool{}
	}
	for _, r := range c.current().rules {
		if !r.Initial || !r.syncs() {
			continue
		}
		cs, err := c.running(ctx, r.Service)
		var fresh []state.Container
		for _, ct := range cs {
			if !c.synced[ct.ID+"\x00"+r.Path+"\x00"+r.Target] {
				fresh = append(fresh, ct)
			}
		}
		if err == nil && len(fresh) == 0 {
			continue
		}
		if err == nil {
			err = initialTree(fresh, r)
		}
		if err != nil {
			c.printf("berth: watch: %s: initial sync of %s failed: %v\n", r.Service, r.Path, err)
			continue
		}
		for _, ct := range fresh {
			c.synced[ct.ID+"\x00"+r.Path+"\x00"+r.Target] = true
		}
		c.printf("berth: watch: %s: initial sync of %s to %s\n", r.Service, c.relNames([]string{r.Path}), r.Target)
	}
}
