package main

import (
	"context"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/driver/fake"
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
