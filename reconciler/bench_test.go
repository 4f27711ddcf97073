package reconciler

import (
	"fmt"
	"testing"

	"github.com/berth-dev/berth/state"
)

// project500 is 500 services in chains of ten (each depends on the one
// before it, healthy), with env, labels and a volume each, and what the
// machine has when it is up.
func project500() (*state.Desired, *state.Observed) {
	var services []*state.Service
	obs := observed()
	for i := range 500 {
		name := fmt.Sprintf("svc%03d", i)
		mods := []func(*state.Service){func(s *state.Service) {
			s.Container.Env = []string{"A=1", "B=2", "NAME=" + name}
			s.Container.Labels = map[string]string{"team": "x", "tier": "y"}
		}, volumeMount("v"+name, "/data"), healthcheck}
		if i%10 != 0 {
			mods = append(mods, dependsOn(fmt.Sprintf("svc%03d", i-1), state.ConditionHealthy))
		}
		services = append(services, svc(name, "app:1", "h"+name, 1, mods...))
		obs.Containers = append(obs.Containers, ctr(name, 1, "h"+name, health(state.HealthHealthy)))
		obs.Volumes = append(obs.Volumes, state.Volume{Name: proj + "_v" + name, Hash: "vol1"})
	}
	return desired(services...), obs
}

func BenchmarkPlanNoop500(b *testing.B) {
	want, obs := project500()
	b.ReportAllocs()
	for b.Loop() {
		p, err := PlanUp(want, obs, Options{})
		if err != nil || !p.Empty() {
			b.Fatalf("%v\n%s", err, p)
		}
	}
}

func BenchmarkPlanCreate500(b *testing.B) {
	want, _ := project500()
	empty := &state.Observed{Project: proj}
	b.ReportAllocs()
	for b.Loop() {
		p, err := PlanUp(want, empty, Options{})
		if err != nil || len(p.Ops) < 1500 {
			b.Fatalf("%v: %d ops", err, len(p.Ops))
		}
	}
}
