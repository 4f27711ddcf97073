package reconciler

import (
	"context"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

const proj = "demo"

// svc builds a service literal the way the compose loader would.
func svc(name, image, hash string, replicas int, mods ...func(*state.Service)) *state.Service {
	s := &state.Service{
		Name: name, Replicas: replicas, ConfigHash: hash,
		Image: state.ImageSpec{Ref: image, PullPolicy: "missing"},
		Container: state.ContainerSpec{
			Project: proj, Image: image,
			Networks: []state.NetworkAttachment{{Network: proj + "_default", Aliases: []string{name}}},
		},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func dependsOn(dep, cond string) func(*state.Service) {
	return func(s *state.Service) {
		if s.DependsOn == nil {
			s.DependsOn = map[string]state.Dependency{}
		}
		s.DependsOn[dep] = state.Dependency{Condition: cond, Required: true}
	}
}

func optionalDep(dep, cond string) func(*state.Service) {
	return func(s *state.Service) {
		if s.DependsOn == nil {
			s.DependsOn = map[string]state.Dependency{}
		}
		s.DependsOn[dep] = state.Dependency{Condition: cond}
	}
}

func healthcheck(s *state.Service) {
	s.Container.Healthcheck = &state.Healthcheck{Test: []string{"CMD", "check"}, Interval: time.Second}
}

func command(cmd ...string) func(*state.Service) {
	return func(s *state.Service) { s.Container.Command = cmd }
}

func volumeMount(vol, target string) func(*state.Service) {
	return func(s *state.Service) {
		s.Container.Mounts = append(s.Container.Mounts, state.Mount{Type: state.MountVolume, Source: proj + "_" + vol, Target: target})
	}
}

func startFirst(s *state.Service) { s.Update.Order = state.OrderStartFirst }

func desired(services ...*state.Service) *state.Desired {
	d := &state.Desired{
		Project:  proj,
		Services: map[string]*state.Service{},
		Networks: map[string]state.NetworkSpec{"default": {Name: proj + "_default", Key: "default", Project: proj, Hash: "net1"}},
		Volumes:  map[string]state.VolumeSpec{},
	}
	for _, s := range services {
		d.Services[s.Name] = s
		for _, m := range s.Container.Mounts {
			if m.Type == state.MountVolume {
				key := m.Source[len(proj)+1:]
				d.Volumes[key] = state.VolumeSpec{Name: m.Source, Key: key, Project: proj, Hash: "vol1"}
			}
		}
	}
	return d
}

// converge plans and executes on the fake driver until the plan is empty,
// failing the test when it takes more than max passes.
func converge(t *testing.T, d *fake.Driver, want *state.Desired, o Options, max int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; ; i++ {
		obs, err := d.Observe(ctx, proj)
		if err != nil {
			t.Fatal(err)
		}
		p, err := PlanUp(want, obs, o)
		if err != nil {
			t.Fatal(err)
		}
		if p.Empty() {
			return
		}
		if i == max {
			t.Fatalf("not converged after %d passes; next plan:\n%s", max, p)
		}
		if err := Execute(ctx, d, p, ExecOptions{Parallel: 4}); err != nil {
			t.Fatalf("pass %d: %v\nplan:\n%s", i+1, err, p)
		}
	}
}

func plan(t *testing.T, d *fake.Driver, want *state.Desired, o Options) *Plan {
	t.Helper()
	obs, err := d.Observe(context.Background(), proj)
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanUp(want, obs, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
