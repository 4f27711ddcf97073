package main

import (
	"context"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

// The early observation holds the project's lock from before it observes
// until the pass that takes it is done; one of another project lets the
// lock go; the pass's first Observe is served from it, the next ones are
// not.
func TestEarlyObserve(t *testing.T) {
	savedGlobal, savedDriver := global, machineDriver
	t.Cleanup(func() { global, machineDriver = savedGlobal, savedDriver })
	global = globalOptions{root: t.TempDir(), runRoot: t.TempDir()}
	machine := fake.New()
	machineDriver = func(context.Context) (driver.Driver, error) { return machine, nil }
	ctx := context.Background()
	locked := func(project string) bool {
		c, cancel := context.WithTimeout(ctx, 60*time.Millisecond)
		defer cancel()
		unlock, err := projectLock(project).Lock(c)
		if err != nil {
			return true
		}
		unlock()
		return false
	}

	if e := startEarlyObserve(ctx, "old").take("new"); e != nil || locked("old") {
		t.Fatalf("an observation of another project was taken (%v) or kept its lock", e)
	}

	e := startEarlyObserve(ctx, "p").take("p")
	if e == nil || e.obs == nil || e.obs.Project != "p" || !locked("p") {
		t.Fatalf("take: %+v, lock held: %v", e, locked("p"))
	}
	machine.ResetCalls()
	d := &observedOnce{Driver: machine, e: e}
	for i := 0; i < 2; i++ {
		if obs, err := d.Observe(ctx, "p"); err != nil || obs.Project != "p" {
			t.Fatalf("observe %d: %v %v", i, obs, err)
		}
	}
	if calls := machine.Calls(); len(calls) != 1 {
		t.Errorf("two observes of the pass reached the driver %d times, want once (the second): %v", len(calls), calls)
	}
	unlock, _ := e.Lock(ctx) // the pass's Locker: the lock it already holds
	if !locked("p") {
		t.Fatal("the lock went before the pass let it go")
	}
	unlock()
	e.release() // handed over: nothing left to release
	if locked("p") {
		t.Fatal("the pass let the lock go, and it is still held")
	}
}

// recordingAnticipator is a driver that records what it is asked to
// anticipate.
type recordingAnticipator struct {
	driver.Driver
	ids []string
}

func (r *recordingAnticipator) Anticipate(_ context.Context, id string) error {
	r.ids = append(r.ids, id)
	return nil
}

// The early observation asks the driver to get ready for a create like a
// running service container of the project (not a one-off, not a stopped
// one), once, and only when the driver can.
func TestAnticipateRunningContainer(t *testing.T) {
	ctx := context.Background()
	obs := &state.Observed{Project: "p", Containers: []state.Container{
		{ID: "stopped", Status: state.StatusExited},
		{ID: "oneoff", Status: state.StatusRunning, OneOff: true},
		{ID: "web", Status: state.StatusRunning},
		{ID: "api", Status: state.StatusRunning},
	}}
	a := &recordingAnticipator{Driver: fake.New()}
	anticipate(ctx, a, obs)
	if len(a.ids) != 1 || a.ids[0] != "web" {
		t.Errorf("anticipated %v, want [web]", a.ids)
	}
	a.ids = nil
	anticipate(ctx, a, &state.Observed{Project: "p", Containers: obs.Containers[:2]})
	if len(a.ids) != 0 {
		t.Errorf("anticipated %v with no running service container", a.ids)
	}
	anticipate(ctx, fake.New(), obs) // a driver that cannot: nothing to do
}
