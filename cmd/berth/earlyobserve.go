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
	}()
	return e
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
