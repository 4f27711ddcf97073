package main

import (
	"context"
	"path/filepath"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

// earlyObserve takes a project's lock and observes it while the compose
// files are still loading: an edited file is loaded again in full (~30
// ms for 50 services, one CPU busy), and the observation (~7 ms) needs only
// the project's name, which the files' last load gives (compose.Options
// OnStale). The pass uses both when the files still name that project;
// the lock was held from before the observation on, so the plan is made
// from state observed under the lock, as always.
type earlyObserve struct {
	project string
	done    chan struct{}
	unlock  func()
	obs     *state.Observed
	err     error
}

func startEarlyObserve(ctx context.Context, project string) *earlyObserve {
	e := &earlyObserve{project: project, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		if machineDriver == nil {
			return
		}
		d, err := machineDriver(ctx)
		if err != nil {
			return
		}
		unlock, err := projectLock(project).Lock(ctx)
		if err != nil {
			return
		}
		e.unlock = unlock
		e.obs, e.err = d.Observe(ctx, project)
		if e.err == nil {
			anticipate(ctx, d, e.obs)
		}
	}()
	return e
}

// anticipator is a driver that can start ahead what a create of a
// container like a given one needs (the native driver's spare init).
type anticipator interface {
	Anticipate(ctx context.Context, id string) error
}

// anticipate asks the driver to get ready for a create like one of the
// project's running containers: an edited file usually recreates one, and
// the runtime's spare init (10 to 20 ms to start) is then ready by the
// time the load and the plan are done, instead of starting at the old
// container's stop, a few ms before the create that waits for it.
func anticipate(ctx context.Context, d driver.Driver, obs *state.Observed) {
	a, ok := d.(anticipator)
	if !ok {
		return
	}
	for _, c := range obs.Containers {
		if c.Status == state.StatusRunning && !c.OneOff {
			a.Anticipate(ctx, c.ID) // best effort: a create without it starts its own init
			return
		}
	}
}

func projectLock(project string) reconciler.Locker {
	return reconciler.FileLock(filepath.Join(global.root, "projects", project+".lock"))
}

// take waits for the observation and hands it over with the lock when it
// is of project; otherwise it lets the lock go and returns nil.
func (e *earlyObserve) take(project string) *earlyObserve {
	if e == nil {
		return nil
	}
	<-e.done
	if e.project == project && e.unlock != nil && e.err == nil {
		return e
	}
	e.release()
	return nil
}

// release lets the lock go unless it was handed over.
func (e *earlyObserve) release() {
	if e == nil {
		return
	}
	<-e.done
	if e.unlock != nil {
		e.unlock()
		e.unlock = nil
	}
}

// Lock implements reconciler.Locker with the lock already held.
func (e *earlyObserve) Lock(context.Context) (func(), error) {
	unlock := e.unlock
	e.unlock = nil
	return unlock, nil
}

// observedOnce serves the early observation to the pass's first Observe.
type observedOnce struct {
	driver.Driver
	e *earlyObserve
}

func (o *observedOnce) Observe(ctx context.Context, project string) (*state.Observed, error) {
	if e := o.e; e != nil && project == e.project {
		o.e = nil
		return e.obs, nil
	}
	return o.Driver.Observe(ctx, project)
}
