package reconciler

import (
	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// gate is what a service's creates and starts wait for: its dependencies
// created, and ready as each depends_on condition says. It is computed on
// first use so that a service with nothing to do adds no waits.
type gate struct {
	p          *planner
	svc        *state.Service
	done       bool
	hard, soft []int
}

func (g *gate) apply(id int) {
	if id == 0 {
		return
	}
	if !g.done {
		g.compute()
		g.done = true
	}
	g.p.b.dep(id, g.hard...)
	g.p.b.soft(id, g.soft...)
}

func (g *gate) compute() {
	p := g.p
	for _, dep := range p.deps[g.svc.Name] {
		st := p.svcs[dep]
		if st == nil {
			continue // not planned (out of scope): taken as it is
		}
		cond, required := state.ConditionStarted, true
		if dc, ok := g.svc.DependsOn[dep]; ok {
			required = dc.Required
			if dc.Condition != "" {
				cond = dc.Condition
			}
		}
		ops := append(append([]int(nil), st.creates...), st.dones...)
		ops = append(ops, p.ready(st, cond)...)
		if required {
			g.hard = append(g.hard, ops...)
		} else {
			g.soft = append(g.soft, ops...)
		}
	}
}

// ready returns the ops after which the service's replicas meet cond.
func (p *planner) ready(st *svcState, cond string) []int {
	if p.o.NoStart {
		return nil
	}
	var ops []int
	for _, r := range st.replicas {
		up := r.obs != nil && isUp(*r.obs)
		switch cond {
		case state.ConditionHealthy:
			if r.start != 0 || (up && r.obs.Health != state.HealthHealthy) {
				ops = append(ops, p.wait(st.svc, r, driver.WaitHealthy))
			}
		case state.ConditionCompletedSuccessfully:
			if r.start != 0 || up {
				ops = append(ops, p.wait(st.svc, r, driver.WaitExitedSuccessfully))
			}
		default:
			if r.start != 0 {
				ops = append(ops, r.start)
			}
		}
	}
	return ops
}

// wait returns the op that waits for replica r to meet cond, shared by
// every dependent.
func (p *planner) wait(svc *state.Service, r *replica, cond string) int {
	if id := r.waits[cond]; id != 0 {
		return id
	}
	op := &Op{Kind: WaitContainer, Object: objectOf(svc.Name, r.number, r.suffix), Reason: "until " + cond,
		ContainerID: r.id, Condition: cond}
	if r.id == "" {
		op.IDFrom = r.create
	}
	id := p.b.add(op, r.start)
	if r.waits == nil {
		r.waits = map[string]int{}
	}
	r.waits[cond] = id
	return id
}
