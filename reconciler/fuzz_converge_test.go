package reconciler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

// FuzzConverge applies two fuzzed, satisfiable desired states in turn to
// the fake machine: after each Execute the next plan must be empty.
func FuzzConverge(f *testing.F) {
	f.Add([]byte{4, 1, 2, 0, 5, 7, 1, 2, 9, 4, 4, 0, 1, 3, 3, 8, 1, 0, 2, 6, 5})
	f.Add([]byte{6, 2, 1, 1, 1, 3, 0, 2, 2, 2, 5, 1, 9, 9, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := byteReader{data: data}
		d := fake.New()
		for step := range 2 {
			want, o := satisfiableState(&r)
			p := plan(t, d, want, o)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := Execute(ctx, d, p, ExecOptions{Parallel: 1 + r.next()%3})
			cancel()
			if err != nil {
				t.Fatalf("step %d: %v\nplan:\n%s", step, err, p)
			}
			if again := plan(t, d, want, o); !again.Empty() {
				t.Fatalf("step %d: not converged in one pass:\nfirst:\n%s\nthen:\n%s", step, p, again)
			}
		}
	})
}

// satisfiableState makes a desired state whose conditions can all be met:
// healthy only on healthchecked services, completed only on jobs, and
// namespaces only shared with running servers.
func satisfiableState(r *byteReader) (*state.Desired, Options) {
	const (
		server = iota
		checked
		job
	)
	n := 1 + r.next()%5
	kinds := make([]int, n)
	var services []*state.Service
	for i := range n {
		name := fmt.Sprint("s", i)
		kinds[i] = r.next() % 3
		replicas := r.next() % 3
		mods := []func(*state.Service){}
		switch kinds[i] {
		case checked:
			mods = append(mods, healthcheck)
		case job:
			mods = append(mods, command("true"))
		}
		if r.next()%3 == 0 {
			mods = append(mods, startFirst)
		}
		if k := r.next() % 4; k > 0 { // rollout pacing, with each failure action
			mods = append(mods, func(s *state.Service) {
				s.Update.Parallelism, s.Update.Delay, s.Update.Monitor = 1, time.Millisecond, time.Millisecond
				s.Update.FailureAction = []string{"", FailurePause, FailureContinue, FailureRollback}[k]
			})
		}
		if i > 0 {
			j := r.next() % i
			dep := fmt.Sprint("s", j)
			cond := state.ConditionStarted
			switch {
			case kinds[j] == checked && r.next()%2 == 0:
				cond = state.ConditionHealthy
			case kinds[j] == job && r.next()%2 == 0:
				cond = state.ConditionCompletedSuccessfully
			}
			switch r.next() % 4 {
			case 0:
				mods = append(mods, dependsOn(dep, cond))
			case 1:
				mods = append(mods, optionalDep(dep, cond))
			case 2:
				if kinds[j] != job && services[j].Replicas > 0 {
					mods = append(mods, func(s *state.Service) { s.Container.NetworkMode, s.Container.Networks = "service:"+dep, nil })
				}
			case 3:
				mods = append(mods, func(s *state.Service) {
					s.DependsOn = map[string]state.Dependency{dep: {Condition: cond, Required: true, Restart: true}}
				})
			}
		}
		// The hash covers what compose's does: the kind (healthcheck,
		// command) and the namespace; not depends_on nor replicas.
		s := svc(name, fmt.Sprint("img", r.next()%2, ":1"), "", replicas, mods...)
		s.ConfigHash = fmt.Sprint("h", r.next()%3, "-", kinds[i], "-", s.Container.NetworkMode)
		services = append(services, s)
	}
	want := desired(services...)
	if r.next()%3 == 0 {
		n := want.Networks["default"]
		n.Hash = "net2"
		want.Networks["default"] = n
	}
	flags := r.next()
	// NoRecreate is left out: keeping a container whose definition changed
	// (say, without the healthcheck a dependent now waits for) may rightly
	// fail.
	return want, Options{RemoveOrphans: true, NoStart: flags&2 != 0}
}
