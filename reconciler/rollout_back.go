package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// PlanRollback plans the rollback of the named services after a rollout
// under failure_action rollback failed: every replica is put back on the
// container it had before the rollout. It reads only the machine, so it
// finds by itself which batches got through: a rollout keeps the replaced
// containers aside (stopped, renamed) until every batch is done, so a
// replica with an older container aside is rolled back to it and a
// successor not yet in place is removed. The rollback is paced by the
// service's rollback_config: parallelism (0: all at once), delay between
// batches, order (start-first starts the old container and waits for it
// before stopping the new one) and failure_action (pause, the default,
// stops at a failed batch; continue goes on).
//
// before, the machine as observed before the rollout, tells which old
// containers have a healthcheck (only running ones report health): a
// start-first rollback waits for those to be healthy, others to run.
func PlanRollback(desired *state.Desired, observed, before *state.Observed, services []string) (*Plan, error) {
	if desired == nil || observed == nil {
		return nil, fmt.Errorf("no desired or observed state")
	}
	p := &planner{d: desired, obs: observed}
	healthy := map[string]bool{}
	if before != nil {
		for _, c := range before.Containers {
			if c.Health != "" {
				healthy[c.ID] = true
			}
		}
	}
	byService := map[string][]*state.Container{}
	for i := range observed.Containers {
		if c := &observed.Containers[i]; !c.OneOff {
			byService[c.Service] = append(byService[c.Service], c)
		}
	}
	names := append([]string(nil), services...)
	sort.Strings(names)
	for _, name := range names {
		svc := desired.Services[name]
		if svc == nil {
			continue
		}
		p.rollBackService(svc, sortedContainers(byService[name]), healthy)
	}
	ops, err := p.b.finish()
	if err != nil {
		return nil, err
	}
	return &Plan{Project: desired.Project, Ops: ops}, nil
}

// rollBackService plans one service's rollback: per replica number, the
// container holding the replica's name (cur) and the others.
func (p *planner) rollBackService(svc *state.Service, cs []*state.Container, healthy map[string]bool) {
	var swaps []*replica
	for i := 0; i < len(cs); {
		j := i
		for j < len(cs) && cs[j].Number == cs[i].Number {
			j++
		}
		if r := p.rollBackReplica(svc, cs[i:j], healthy); r != nil {
			swaps = append(swaps, r)
		}
		i = j
	}
	// Pace the swaps by rollback_config, in replica order.
	rb := rollbackConfig(svc)
	size := rb.Parallelism
	if size <= 0 {
		size = len(swaps)
	}
	soft := rb.FailureAction == FailureContinue
	for start := size; start < len(swaps); start += size {
		var prev []int
		for _, r := range swaps[start-size : start] {
			prev = append(prev, r.done)
		}
		if rb.Delay > 0 {
			d := &Op{Kind: Delay, Object: "service:" + svc.Name, Duration: rb.Delay,
				Reason: rb.Delay.String() + " before rollback batch " + strconv.Itoa(start/size+1)}
			prev = []int{p.add(d, soft, prev)}
		}
		for _, r := range swaps[start:min(start+size, len(swaps))] {
			p.link(r.entry, soft, prev)
		}
	}
}

// rollBackReplica plans the rollback of one replica number and returns
// the swap back to an older container (nil when there is none: what is
// left then only needs removing or starting, at once).
func (p *planner) rollBackReplica(svc *state.Service, group []*state.Container, healthy map[string]bool) *replica {
	name := p.replicaName(svc, group[0].Number)
	var cur, prev *state.Container
	for _, c := range group {
		if c.Name == name {
			cur = c
		}
	}
	for _, c := range group {
		// The newest container older than cur (or older than every
		// other, when none holds the name) is the one replaced.
		if c != cur && (cur == nil || c.Created.Before(cur.Created)) && (prev == nil || c.Created.After(prev.Created)) {
			prev = c
		}
	}
	if cur == nil && prev == nil {
		return nil
	}
	if prev == nil { // cur is the old container: remove failed successors
		for _, c := range group {
			if c != cur {
				p.removeContainer(*c, "rollback", p.stopTimeout(svc))
			}
		}
		if !isUp(*cur) {
			p.b.add(&Op{Kind: StartContainer, Object: objectOf(svc.Name, cur.Number, ""), Reason: "rollback", ContainerID: cur.ID})
		}
		return nil
	}
	// Everything else of this number goes: the new container once prev
	// is back, any other leftover at once.
	for _, c := range group {
		if c != cur && c != prev {
			p.removeContainer(*c, "rollback", p.stopTimeout(svc))
		}
	}
	r := &replica{number: prev.Number}
	obj := objectOf(svc.Name, prev.Number, "")
	cond := driver.WaitRunning
	if healthy[prev.ID] {
		cond = driver.WaitHealthy
	}
	start := func(deps ...int) int {
		return p.b.add(&Op{Kind: StartContainer, Object: obj, Reason: "rollback", ContainerID: prev.ID}, deps...)
	}
	watch := func(after int) int {
		w := p.b.add(&Op{Kind: WaitContainer, Object: obj, Reason: "rollback", ContainerID: prev.ID, Condition: cond}, after)
		if svc.Rollback.Monitor > 0 {
			w = p.b.add(&Op{Kind: Monitor, Object: obj, Reason: "rollback", ContainerID: prev.ID,
				Duration: svc.Rollback.Monitor}, w)
		}
		return w
	}
	rename := func(deps ...int) int {
		if prev.Name == name {
			return firstOf(deps...)
		}
		return p.b.add(&Op{Kind: RenameContainer, Object: obj, Reason: "rollback", ContainerID: prev.ID, Name: name}, deps...)
	}
	if cur == nil { // nobody holds the name: prev takes it back
		r.entry = rename()
		r.done = watch(start(r.entry))
		r.entry = firstOf(r.entry, r.done)
		return r
	}
	if rollbackConfig(svc).Order == state.OrderStartFirst {
		// The old container runs again (under its aside name it joins
		// published ports only once the wait says it is ready) before
		// the new one stops.
		r.entry = start()
		ready := watch(r.entry)
		_, rm := p.removeContainer(*cur, "rollback", p.stopTimeout(svc), ready)
		r.done = rename(rm)
		return r
	}
	stop, rm := p.removeContainer(*cur, "rollback", p.stopTimeout(svc))
	r.entry = firstOf(stop, rm)
	r.done = watch(start(rename(rm)))
	return r
}

// rolledBack names the services an Execute error calls for a rollback of:
// those under failure_action rollback with a container operation that
// failed. (A failed image pull changed nothing; it is retried.)
func rolledBack(want *state.Desired, err error) []string {
	xe, ok := err.(*ExecError)
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range xe.Failed {
		rest, ok := strings.CutPrefix(f.Op.Object, "service:")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, ":")
		svc := want.Services[name]
		if svc == nil || svc.Update.FailureAction != FailureRollback || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// HoldKey identifies the desired state of a service a rollback was made
// from: while a Loop holds a service at that key (Options.Hold), its
// containers are not updated to it again; any change of the service
// (configuration, image, digest in the store, replicas) ends the hold.
func HoldKey(svc *state.Service, obs *state.Observed) string {
	ref := imageRef(svc)
	digest := ""
	if obs != nil {
		for _, im := range obs.Images {
			if im.Ref == ref {
				digest = im.Digest
			}
		}
	}
	return svc.ConfigHash + "|" + ref + "|" + digest + "|" + strconv.Itoa(svc.Replicas)
}

// held says whether svc is held at its current desired state (see
// Options.Hold).
func (p *planner) held(svc *state.Service) bool {
	key, ok := p.o.Hold[svc.Name]
	return ok && key == HoldKey(svc, p.obs)
}

// rollBack finishes the rollback of services whose rollout failed under
// failure_action rollback (PlanRollback: every batch back on its old
// container, paced by rollback_config) and holds them at the desired
// state that failed (recorded in the Loop's HoldStore before the rollback
// runs, so that a controller killed midway still holds them), so that
// neither the next retry, the next resync nor the next controller updates
// them to it again; a change of the service ends the hold. The error says
// the update failed and was rolled back.
func (l *Loop) rollBack(ctx context.Context, want *state.Desired, before *state.Observed, names []string, failed error, res *PassResult) error {
	obs, err := l.Driver.Observe(ctx, l.Project)
	if err != nil {
		return errors.Join(failed, fmt.Errorf("observe for the rollback: %w", err))
	}
	rb, err := PlanRollback(want, obs, before, names)
	if err != nil {
		return errors.Join(failed, fmt.Errorf("plan the rollback: %w", err))
	}
	list := strings.Join(names, ", ")
	if err := l.hold(want, obs, names); err != nil {
		failed = errors.Join(failed, fmt.Errorf("record the hold of %s: %w", list, err))
	}
	if !rb.Empty() {
		res.Plans = append(res.Plans, rb)
		if err := Execute(ctx, l.Driver, rb, l.Exec); err != nil {
			return errors.Join(failed, fmt.Errorf("rollback of %s: %w", list, err))
		}
	}
	return fmt.Errorf("%w; rolled back %s", failed, list)
}

// rollbackConfig is the service's rollback_config, or, when it sets
// nothing (compose leaves it at the defaults: stop-first, parallelism 0),
// update_config's order, parallelism and delay: a service updated one
// replica at a time, start-first, is rolled back the same way rather than
// every replica stopped at once.
func rollbackConfig(svc *state.Service) state.UpdateConfig {
	rb := svc.Rollback
	if (rb == state.UpdateConfig{} || rb == state.UpdateConfig{Order: state.OrderStopFirst}) {
		return state.UpdateConfig{Order: svc.Update.Order, Parallelism: svc.Update.Parallelism, Delay: svc.Update.Delay}
	}
	return rb
}
