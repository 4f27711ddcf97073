package reconciler

import (
	"fmt"
	"testing"

	"github.com/berth-dev/berth/state"
)

// FuzzPlanUp builds small desired and observed states from the input and
// checks that planning never panics and always yields a well-formed DAG:
// dependencies point backwards, results come from the right kind of op.
func FuzzPlanUp(f *testing.F) {
	f.Add([]byte{3, 1, 2, 0, 5, 7, 1, 2, 9, 4, 4, 0, 1})
	f.Add([]byte{8, 200, 17, 33, 91, 5, 5, 5, 5, 250, 1, 0, 0, 3, 2, 77})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := byteReader{data: data}
		want, obs, o := fuzzStates(&r)
		p, err := PlanUp(want, obs, o)
		if err != nil {
			return
		}
		checkDAG(t, p)
		p, err = PlanDown(obs, DownOptions{Volumes: r.next()%2 == 0, Desired: want})
		if err != nil {
			return
		}
		checkDAG(t, p)
	})
}

type byteReader struct {
	data []byte
	i    int
}

func (r *byteReader) next() int {
	if r.i >= len(r.data) {
		return 0
	}
	r.i++
	return int(r.data[r.i-1])
}

func fuzzStates(r *byteReader) (*state.Desired, *state.Observed, Options) {
	conds := []string{state.ConditionStarted, state.ConditionHealthy, state.ConditionCompletedSuccessfully}
	statuses := []string{state.StatusRunning, state.StatusExited, state.StatusCreated, state.StatusDead, state.StatusPaused}
	n := 1 + r.next()%6
	var services []*state.Service
	for i := range n {
		name := fmt.Sprint("s", i)
		mods := []func(*state.Service){}
		if r.next()%2 == 0 {
			mods = append(mods, healthcheck)
		}
		if r.next()%3 == 0 {
			mods = append(mods, startFirst)
		}
		if i > 0 {
			dep := fmt.Sprint("s", r.next()%i)
			switch r.next() % 4 {
			case 0:
				mods = append(mods, dependsOn(dep, conds[r.next()%3]))
			case 1:
				mods = append(mods, optionalDep(dep, conds[r.next()%3]))
			case 2:
				mods = append(mods, func(s *state.Service) { s.Container.NetworkMode, s.Container.Networks = "service:"+dep, nil })
			}
		}
		services = append(services, svc(name, fmt.Sprint("img", r.next()%3, ":1"), fmt.Sprint("h", r.next()%2), r.next()%4, mods...))
	}
	want := desired(services...)
	obs := observed()
	if r.next()%4 == 0 {
		obs.Networks[0].Hash = "changed"
	}
	if r.next()%3 == 0 {
		obs.Images = obs.Images[:1]
	}
	for c := r.next() % 10; c > 0; c-- {
		service := fmt.Sprint("s", r.next()%(n+1)) // s<n> is an orphan
		num := 1 + r.next()%4
		obs.Containers = append(obs.Containers, ctr(service, num, fmt.Sprint("h", r.next()%2), func(k *state.Container) {
			k.Status = statuses[r.next()%len(statuses)]
			k.ExitCode = r.next() % 2
			k.ID = fmt.Sprint(k.ID, "-", c)
			if r.next()%5 == 0 {
				k.Name = k.ID + "_" + k.Name
			}
		}))
	}
	flags := r.next()
	o := Options{ForceRecreate: flags&1 != 0, NoRecreate: flags&2 != 0 && flags&1 == 0, NoStart: flags&4 != 0,
		RemoveOrphans: flags&8 != 0, NoDeps: flags&16 != 0, RefreshImages: flags&32 != 0}
	if flags&64 != 0 {
		o.Services = []string{fmt.Sprint("s", r.next()%n)}
	}
	return want, obs, o
}

func checkDAG(t *testing.T, p *Plan) {
	t.Helper()
	for i, op := range p.Ops {
		if op.ID != i+1 {
			t.Fatalf("op %d has id %d", i+1, op.ID)
		}
		for _, d := range append(append([]int(nil), op.Deps...), op.After...) {
			if d <= 0 || d >= op.ID {
				t.Fatalf("op %s depends on #%d", op, d)
			}
		}
		if op.IDFrom != 0 && (op.IDFrom >= op.ID || p.Ops[op.IDFrom-1].Kind != CreateContainer) {
			t.Fatalf("op %s takes its id from %v", op, p.Ops[op.IDFrom-1])
		}
		if op.DigestFrom != 0 && (op.DigestFrom >= op.ID || p.Ops[op.DigestFrom-1].Kind != EnsureImage) {
			t.Fatalf("op %s takes its digest from #%d", op, op.DigestFrom)
		}
		needsID := op.Kind == StartContainer || op.Kind == StopContainer || op.Kind == RemoveContainer ||
			op.Kind == RenameContainer || op.Kind == WaitContainer
		if needsID && op.ContainerID == "" && op.IDFrom == 0 {
			t.Fatalf("op %s acts on no container", op)
		}
		if op.IDFrom != 0 && !hasDep(p, op, op.IDFrom) {
			t.Fatalf("op %s does not wait for the op that creates its container", op)
		}
	}
}

// hasDep reports whether op waits, through hard deps, for op id.
func hasDep(p *Plan, op *Op, id int) bool {
	seen := map[int]bool{}
	stack := append([]int(nil), op.Deps...)
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if d == id {
			return true
		}
		if !seen[d] {
			seen[d] = true
			stack = append(stack, p.Ops[d-1].Deps...)
		}
	}
	return false
}
