package reconciler

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

// convergenceStates is the table the convergence test applies in random
// orders: each exercises a part of the planner against the others.
func convergenceStates() []*state.Desired {
	withNet := func(hash string) func(*state.Desired) {
		return func(d *state.Desired) {
			n := d.Networks["default"]
			n.Hash = hash
			d.Networks["default"] = n
		}
	}
	sidecar := svc("sidecar", "app:1", "hside", 1, func(s *state.Service) {
		s.Container.NetworkMode, s.Container.Networks = "service:web", nil
	})
	worker := svc("worker", "app:1", "hwork", 2, func(s *state.Service) {
		s.DependsOn = map[string]state.Dependency{"db": {Condition: state.ConditionHealthy, Required: true, Restart: true}}
	})
	return []*state.Desired{
		stack(),
		stack(func(d *state.Desired) {
			d.Services["web"] = svc("web", "app:1", "hweb2", 3, startFirst, healthcheck, dependsOn("db", state.ConditionHealthy))
		}),
		stack(func(d *state.Desired) {
			d.Services["web"].Replicas = 1
			d.Services["db"].ConfigHash = "hdb2"
		}),
		stack(func(d *state.Desired) {
			d.Services["sidecar"], d.Services["worker"] = sidecar, worker
		}),
		stack(withNet("net2"), func(d *state.Desired) { d.Services["sidecar"] = sidecar }),
		desired(
			svc("db", "pg:16", "hdb", 1, healthcheck, volumeMount("data", "/data")),
			svc("web", "app:2", "hweb-app2", 2, startFirst, dependsOn("db", state.ConditionStarted)),
			worker,
		),
		stack(func(d *state.Desired) {
			d.Services["db"].ConfigHash = "hdb4"
			d.Services["web"] = svc("web", "app:1", "hweb4", 2, startFirst, healthcheck, dependsOn("db", state.ConditionHealthy))
			d.Services["sidecar"], d.Services["worker"] = sidecar, worker
		}),
		desired(svc("db", "pg:16", "hdb3", 1, healthcheck, volumeMount("data", "/data"), volumeMount("logs", "/logs"))),
		desired(),
	}
}

func TestConvergenceRandomOrder(t *testing.T) {
	states := convergenceStates()
	ctx := context.Background()
	seeds := int64(25)
	if testing.Short() {
		seeds = 5
	}
	if s := os.Getenv("BERTH_CONVERGE_SEEDS"); s != "" {
		seeds, _ = strconv.ParseInt(s, 10, 64)
	}
	for seed := int64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			d := fake.New()
			o := Options{RemoveOrphans: true}
			for step, i := range rng.Perm(len(states)) {
				want := states[i]
				p := plan(t, d, want, o)
				injected := ""
				if !p.Empty() && rng.Intn(2) == 0 {
					injected = inject(t, d, p, rng)
				}
				err := Execute(ctx, d, p, ExecOptions{Parallel: 1 + rng.Intn(4)})
				if injected == "" && err != nil {
					t.Fatalf("step %d (state %d): %v\nplan:\n%s", step, i, err, p)
				}
				if injected != "" {
					if err == nil || !strings.Contains(err.Error(), "injected failure") {
						t.Fatalf("step %d: injected %s, Execute returned %v", step, injected, err)
					}
					// The next pass repairs it.
					p = plan(t, d, want, o)
					if err := Execute(ctx, d, p, ExecOptions{}); err != nil {
						t.Fatalf("step %d (state %d): repair after %s: %v\nplan:\n%s", step, i, injected, err, p)
					}
				}
				if again := plan(t, d, want, o); !again.Empty() {
					t.Fatalf("step %d (state %d, injected %q): plan not empty after Execute:\n%s", step, i, injected, again)
				}
				checkMachine(t, d, want)
			}
		})
	}
}

// inject makes one random operation of p fail once, returning its name.
func inject(t *testing.T, d *fake.Driver, p *Plan, rng *rand.Rand) string {
	t.Helper()
	obs, err := d.Observe(context.Background(), proj)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, c := range obs.Containers {
		names[c.ID] = c.Name
	}
	op := p.Ops[rng.Intn(len(p.Ops))]
	var obj string
	switch {
	case op.Image != nil:
		obj = op.Image.Ref
	case op.Network != nil:
		obj = op.Network.Name
	case op.Volume != nil:
		obj = op.Volume.Name
	case op.Container != nil:
		obj = op.Container.Name
	case op.Kind == RemoveNetwork || op.Kind == RemoveVolume:
		obj = op.Name
	case op.ContainerID != "":
		obj = names[op.ContainerID]
		for _, o := range p.Ops { // renamed (set aside) before op acts on it
			if o.Kind == RenameContainer && o.ContainerID == op.ContainerID && waitsFor(p, op, o.ID) {
				obj = o.Name
			}
		}
	default:
		obj = p.Ops[op.IDFrom-1].Container.Name
	}
	d.FailOnce(string(op.Kind), obj, nil)
	return op.String()
}

// checkMachine compares the fake machine with the desired state directly,
// so a planner that is wrong in a way that plans nothing is caught too.
func checkMachine(t *testing.T, d *fake.Driver, want *state.Desired) {
	t.Helper()
	obs, err := d.Observe(context.Background(), proj)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, c := range obs.Containers {
		if c.Name != state.ContainerName(proj, c.Service, c.Number) {
			t.Errorf("container %s is replica %d of %s", c.Name, c.Number, c.Service)
		}
		got[c.Service] = append(got[c.Service], fmt.Sprintf("%s %s", c.ConfigHash, c.Status))
	}
	for name, s := range want.Services {
		var exp []string
		status := state.StatusRunning
		if len(s.Container.Command) == 1 && s.Container.Command[0] == "true" {
			status = state.StatusExited
		}
		for range s.Replicas {
			exp = append(exp, fmt.Sprintf("%s %s", s.ConfigHash, status))
		}
		sort.Strings(got[name])
		if strings.Join(got[name], "\n") != strings.Join(exp, "\n") {
			t.Errorf("service %s: machine has\n%s\nwant\n%s", name, strings.Join(got[name], "\n"), strings.Join(exp, "\n"))
		}
		delete(got, name)
	}
	for name, cs := range got {
		t.Errorf("containers of a service not in the project: %s %v", name, cs)
	}
	nets := map[string]string{}
	for _, n := range obs.Networks {
		nets[n.Name] = n.Hash
	}
	for _, n := range want.Networks {
		if nets[n.Name] != n.Hash {
			t.Errorf("network %s hash %q, want %q", n.Name, nets[n.Name], n.Hash)
		}
	}
}

// waitsFor tells whether op waits for op id, directly or not.
func waitsFor(p *Plan, op *Op, id int) bool {
	for _, d := range op.Deps {
		if d == id || waitsFor(p, p.Ops[d-1], id) {
			return true
		}
	}
	return false
}
