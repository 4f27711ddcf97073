// Package drivertest is the contract suite every driver.Driver must pass:
// idempotency, the error contract, Observe reflecting every mutation, labels
// round-tripping, and concurrent calls. A driver's own test calls Run.
package drivertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// Suite describes how to drive one implementation.
type Suite struct {
	// New returns a driver on a clean machine; cleanup is the caller's
	// (t.Cleanup), though the suite removes what it creates.
	New func(t *testing.T) driver.Driver
	// Image is an image the driver can ensure without the network.
	Image state.ImageSpec
	// Serve is a command that keeps running until stopped; Succeed exits 0
	// at once; Fail exits non-zero at once.
	Serve, Succeed, Fail []string
	// Project names the objects the suite creates; it must not be in use.
	Project string
}

// Run runs the suite with defaults that suit an image made from
// busybox-static (and the fake driver).
func Run(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	RunSuite(t, Suite{New: newDriver})
}

// RunSuite runs the suite as s describes.
func RunSuite(t *testing.T, s Suite) {
	if s.Image.Ref == "" {
		s.Image = state.ImageSpec{Ref: "drivertest/busybox:latest", PullPolicy: "missing"}
	}
	if s.Serve == nil {
		s.Serve = []string{"sleep", "3600"}
	}
	if s.Succeed == nil {
		s.Succeed = []string{"true"}
	}
	if s.Fail == nil {
		s.Fail = []string{"false"}
	}
	if s.Project == "" {
		s.Project = "drivertest"
	}
	tests := []struct {
		name string
		f    func(*testing.T, *env)
	}{
		{"Image", testImage},
		{"Network", testNetwork},
		{"Volume", testVolume},
		{"ContainerLifecycle", testContainerLifecycle},
		{"ContainerErrors", testContainerErrors},
		{"Rename", testRename},
		{"Wait", testWait},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			e := &env{Suite: s, d: s.New(t), ctx: ctx}
			t.Cleanup(func() { e.cleanup(t) })
			tc.f(t, e)
		})
	}
}

type env struct {
	Suite
	d   driver.Driver
	ctx context.Context
}

// cleanup removes whatever the project still has, so a failed test leaves
// nothing behind on a real machine.
func (e *env) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := e.d.Observe(ctx, e.Project)
	if err != nil {
		t.Errorf("cleanup: observe: %v", err)
		return
	}
	for _, c := range o.Containers {
		_ = e.d.StopContainer(ctx, c.ID, time.Second)
		if err := e.d.RemoveContainer(ctx, c.ID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	for _, n := range o.Networks {
		if err := e.d.RemoveNetwork(ctx, n.Name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	for _, v := range o.Volumes {
		if err := e.d.RemoveVolume(ctx, v.Name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

func (e *env) observe(t *testing.T) *state.Observed {
	t.Helper()
	o, err := e.d.Observe(e.ctx, e.Project)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return o
}

func (e *env) image(t *testing.T) string {
	t.Helper()
	ref, err := e.d.EnsureImage(e.ctx, e.Image)
	if err != nil {
		t.Fatalf("EnsureImage: %v", err)
	}
	return ref.Digest
}

func (e *env) network(name string) state.NetworkSpec {
	return state.NetworkSpec{
		Name: e.Project + "_" + name, Key: name, Project: e.Project, Hash: "nethash-" + name,
		Labels: map[string]string{state.LabelProject: e.Project, state.LabelNetwork: name, "test.label": "n-" + name},
	}
}

func (e *env) volume(name string) state.VolumeSpec {
	return state.VolumeSpec{
		Name: e.Project + "_" + name, Key: name, Project: e.Project, Hash: "volhash-" + name,
		Labels: map[string]string{state.LabelProject: e.Project, state.LabelVolume: name, "test.label": "v-" + name},
	}
}

func (e *env) container(digest, service string, n int, cmd []string) state.ContainerSpec {
	svc := &state.Service{
		Name: service, Replicas: 1, ConfigHash: "cfg-" + service,
		Container: state.ContainerSpec{
			Project: e.Project, Image: e.Image.Ref, Command: cmd, NetworkMode: "none",
			Labels: map[string]string{"test.label": "c-" + service},
		},
	}
	c := svc.Replica(n)
	c.ImageDigest = digest
	return c
}

func (e *env) findContainer(t *testing.T, name string) (state.Container, bool) {
	t.Helper()
	for _, c := range e.observe(t).Containers {
		if c.Name == name {
			return c, true
		}
	}
	return state.Container{}, false
}

func testImage(t *testing.T, e *env) {
	d1 := e.image(t)
	d2 := e.image(t)
	if d1 == "" || d1 != d2 {
		t.Fatalf("EnsureImage is not idempotent: %q then %q", d1, d2)
	}
	found := false
	for _, im := range e.observe(t).Images {
		if im.Ref == e.Image.Ref && im.Digest == d1 {
			found = true
		}
	}
	if !found {
		t.Errorf("Observe().Images lacks %s@%s", e.Image.Ref, d1)
	}
	_, err := e.d.EnsureImage(e.ctx, state.ImageSpec{Ref: "drivertest/absent:never", PullPolicy: "never"})
	if !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("EnsureImage of an absent image with pull_policy never: got %v, want ErrNotFound", err)
	}
}

func testNetwork(t *testing.T, e *env) {
	s := e.network("front")
	if err := e.d.CreateNetwork(e.ctx, s); err != nil {
		t.Fatalf("CreateNetwork: %v", err)
	}
	if err := e.d.CreateNetwork(e.ctx, s); !errors.Is(err, driver.ErrAlreadyExists) {
		t.Errorf("second CreateNetwork: got %v, want ErrAlreadyExists", err)
	}
	o := e.observe(t)
	if len(o.Networks) != 1 || o.Networks[0].Name != s.Name || o.Networks[0].Hash != s.Hash ||
		o.Networks[0].Labels["test.label"] != "n-front" || o.Networks[0].Labels[state.LabelProject] != e.Project {
		t.Errorf("Observe().Networks = %+v, want %s with hash and labels", o.Networks, s.Name)
	}
	for i := 0; i < 2; i++ {
		if err := e.d.RemoveNetwork(e.ctx, s.Name); err != nil {
			t.Errorf("RemoveNetwork #%d: %v", i+1, err)
		}
	}
	if o := e.observe(t); len(o.Networks) != 0 {
		t.Errorf("network still observed after removal: %+v", o.Networks)
	}
}

func testVolume(t *testing.T, e *env) {
	s := e.volume("data")
	if err := e.d.CreateVolume(e.ctx, s); err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	if err := e.d.CreateVolume(e.ctx, s); !errors.Is(err, driver.ErrAlreadyExists) {
		t.Errorf("second CreateVolume: got %v, want ErrAlreadyExists", err)
	}
	o := e.observe(t)
	if len(o.Volumes) != 1 || o.Volumes[0].Name != s.Name || o.Volumes[0].Hash != s.Hash ||
		o.Volumes[0].Labels["test.label"] != "v-data" {
		t.Errorf("Observe().Volumes = %+v, want %s with hash and labels", o.Volumes, s.Name)
	}
	for i := 0; i < 2; i++ {
		if err := e.d.RemoveVolume(e.ctx, s.Name); err != nil {
			t.Errorf("RemoveVolume #%d: %v", i+1, err)
		}
	}
	if o := e.observe(t); len(o.Volumes) != 0 {
		t.Errorf("volume still observed after removal: %+v", o.Volumes)
	}
}

func testContainerLifecycle(t *testing.T, e *env) {
	dg := e.image(t)
	spec := e.container(dg, "web", 1, e.Serve)
	id, err := e.d.CreateContainer(e.ctx, spec)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	c, ok := e.findContainer(t, spec.Name)
	if !ok {
		t.Fatalf("created container %s not observed", spec.Name)
	}
	if c.ID != id || c.Project != e.Project || c.Service != "web" || c.Number != 1 || c.OneOff ||
		c.ConfigHash != "cfg-web" || c.ImageDigest != dg || c.Status != state.StatusCreated {
		t.Errorf("observed %+v, want id %s, service web #1, hash cfg-web, digest %s, created", c, id, dg)
	}
	for k, v := range spec.Labels {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if _, err := e.d.CreateContainer(e.ctx, spec); !errors.Is(err, driver.ErrAlreadyExists) {
		t.Errorf("second CreateContainer: got %v, want ErrAlreadyExists", err)
	}
	for i := 0; i < 2; i++ {
		if err := e.d.StartContainer(e.ctx, id); err != nil {
			t.Fatalf("StartContainer #%d: %v", i+1, err)
		}
	}
	if c, _ := e.findContainer(t, spec.Name); c.Status != state.StatusRunning || c.StartedAt.IsZero() {
		t.Errorf("after start: status %q started %v, want running", c.Status, c.StartedAt)
	}
	for i := 0; i < 2; i++ {
		if err := e.d.StopContainer(e.ctx, id, time.Second); err != nil {
			t.Fatalf("StopContainer #%d: %v", i+1, err)
		}
	}
	if c, _ := e.findContainer(t, spec.Name); c.Status != state.StatusExited {
		t.Errorf("after stop: status %q, want exited", c.Status)
	}
	if err := e.d.StartContainer(e.ctx, id); err != nil {
		t.Fatalf("restart of a stopped container: %v", err)
	}
	if c, _ := e.findContainer(t, spec.Name); c.Status != state.StatusRunning {
		t.Errorf("after restart: status %q, want running", c.Status)
	}
	// Removal of a running container kills it first.
	for i := 0; i < 2; i++ {
		if err := e.d.RemoveContainer(e.ctx, id); err != nil {
			t.Fatalf("RemoveContainer #%d: %v", i+1, err)
		}
	}
	if _, ok := e.findContainer(t, spec.Name); ok {
		t.Errorf("container still observed after removal")
	}
}

func testContainerErrors(t *testing.T, e *env) {
	const missing = "drivertest-no-such-container"
	if err := e.d.StartContainer(e.ctx, missing); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("StartContainer(missing) = %v, want ErrNotFound", err)
	}
	if err := e.d.WaitContainer(e.ctx, missing, driver.WaitRunning); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("WaitContainer(missing) = %v, want ErrNotFound", err)
	}
	if err := e.d.RenameContainer(e.ctx, missing, "x"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("RenameContainer(missing) = %v, want ErrNotFound", err)
	}
	if err := e.d.StopContainer(e.ctx, missing, time.Second); err != nil {
		t.Errorf("StopContainer(missing) = %v, want nil", err)
	}
	if err := e.d.RemoveContainer(e.ctx, missing); err != nil {
		t.Errorf("RemoveContainer(missing) = %v, want nil", err)
	}
	dg := e.image(t)
	spec := e.container(dg, "web", 1, e.Serve)
	spec.NetworkMode = ""
	spec.Networks = []state.NetworkAttachment{{Network: e.Project + "_absent"}}
	if _, err := e.d.CreateContainer(e.ctx, spec); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("CreateContainer on a missing network = %v, want ErrNotFound", err)
	}
	if _, ok := e.findContainer(t, spec.Name); ok {
		t.Errorf("a failed CreateContainer left a container behind")
	}
}

func testRename(t *testing.T, e *env) {
	dg := e.image(t)
	a := e.container(dg, "web", 1, e.Serve)
	b := e.container(dg, "web", 2, e.Serve)
	ida, err := e.d.CreateContainer(e.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.CreateContainer(e.ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RenameContainer(e.ctx, ida, b.Name); !errors.Is(err, driver.ErrAlreadyExists) {
		t.Errorf("rename onto an existing name = %v, want ErrAlreadyExists", err)
	}
	newName := e.Project + "-web-9"
	for i := 0; i < 2; i++ {
		if err := e.d.RenameContainer(e.ctx, ida, newName); err != nil {
			t.Fatalf("RenameContainer #%d: %v", i+1, err)
		}
	}
	c, ok := e.findContainer(t, newName)
	if !ok || c.ID != ida || c.Labels["test.label"] != "c-web" {
		t.Errorf("renamed container observed as %+v (found %v)", c, ok)
	}
	if _, ok := e.findContainer(t, a.Name); ok {
		t.Errorf("old name %s still observed", a.Name)
	}
}

func testWait(t *testing.T, e *env) {
	dg := e.image(t)
	run := func(service string, cmd []string, hc *state.Healthcheck) string {
		spec := e.container(dg, service, 1, cmd)
		spec.Healthcheck = hc
		id, err := e.d.CreateContainer(e.ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.d.StartContainer(e.ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	wait := func(id, cond string) error {
		ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
		defer cancel()
		return e.d.WaitContainer(ctx, id, cond)
	}
	ok := run("ok", e.Succeed, nil)
	if err := wait(ok, driver.WaitExitedSuccessfully); err != nil {
		t.Errorf("wait exited-successfully on a job exiting 0: %v", err)
	}
	if err := wait(ok, driver.WaitRunning); err != nil {
		t.Errorf("wait running on a job that started and exited: %v", err)
	}
	bad := run("bad", e.Fail, nil)
	if err := wait(bad, driver.WaitExitedSuccessfully); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait exited-successfully on a failing job = %v, want an immediate error", err)
	}
	srv := run("srv", e.Serve, nil)
	if err := wait(srv, driver.WaitRunning); err != nil {
		t.Errorf("wait running: %v", err)
	}
	if err := wait(srv, driver.WaitHealthy); !errors.Is(err, driver.ErrInvalid) {
		t.Errorf("wait healthy without a healthcheck = %v, want ErrInvalid", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
	defer cancel()
	if err := e.d.WaitContainer(ctx, srv, driver.WaitExitedSuccessfully); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait exited on a server = %v, want the context's deadline", err)
	}
	done := make(chan error, 1)
	go func() { done <- wait(srv, driver.WaitExitedSuccessfully) }()
	time.Sleep(50 * time.Millisecond)
	if err := e.d.StopContainer(e.ctx, srv, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a stopped server (killed by a signal) satisfied exited-successfully or hung: %v", err)
	}
}

func testConcurrent(t *testing.T, e *env) {
	dg := e.image(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := 1; i <= n; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			spec := e.container(dg, "par", i, e.Serve)
			id, err := e.d.CreateContainer(e.ctx, spec)
			if err == nil {
				err = e.d.StartContainer(e.ctx, id)
			}
			if err != nil {
				errs <- fmt.Errorf("replica %d: %w", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := e.d.Observe(e.ctx, e.Project); err != nil {
				errs <- err
			}
		}()
	}
	// The same name created from several goroutines: exactly one wins.
	var won sync.WaitGroup
	wins := make(chan string, n)
	for i := 0; i < n; i++ {
		won.Add(1)
		go func() {
			defer won.Done()
			id, err := e.d.CreateContainer(e.ctx, e.container(dg, "race", 1, e.Serve))
			switch {
			case err == nil:
				wins <- id
			case !errors.Is(err, driver.ErrAlreadyExists):
				errs <- fmt.Errorf("racing create: %w", err)
			}
		}()
	}
	wg.Wait()
	won.Wait()
	close(errs)
	close(wins)
	for err := range errs {
		t.Error(err)
	}
	if len(wins) != 1 {
		t.Errorf("%d racing creates of one name succeeded, want 1", len(wins))
	}
	running := 0
	for _, c := range e.observe(t).Containers {
		if c.Service == "par" && c.Status == state.StatusRunning {
			running++
		}
	}
	if running != n {
		t.Errorf("%d of %d concurrently created containers running", running, n)
	}
}
