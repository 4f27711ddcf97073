package reconciler

import (
	"strconv"
	"strings"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// Failure actions of deploy.update_config.
const (
	FailurePause    = "pause"
	FailureContinue = "continue"
	FailureRollback = "rollback"
)

// pace orders the recreates of a service in batches of
// update_config.parallelism (0: one batch), each batch starting when the
// previous one is done (and monitored) plus update_config.delay. Under
// failure_action pause or rollback a failed batch stops the rollout: the
// next batches hard-depend on it and are skipped, so what runs stays; under
// continue they only wait for it to finish.
func (p *planner) pace(st *svcState) {
	u := st.svc.Update
	var reps []*replica
	for _, r := range st.replicas {
		if r.entry != 0 {
			reps = append(reps, r)
		}
	}
	size := u.Parallelism
	if size <= 0 || size >= len(reps) {
		return
	}
	soft := u.FailureAction == FailureContinue
	for start := size; start < len(reps); start += size {
		var prev []int
		for _, r := range reps[start-size : start] {
			prev = append(prev, r.done)
		}
		if u.Delay > 0 {
			d := &Op{Kind: Delay, Object: "service:" + st.svc.Name, Duration: u.Delay,
				Reason: u.Delay.String() + " before batch " + strconv.Itoa(start/size+1)}
			prev = []int{p.add(d, soft, prev)}
			soft = false
		}
		end := min(start+size, len(reps))
		for _, r := range reps[start:end] {
			p.link(r.entry, soft, prev)
		}
		soft = u.FailureAction == FailureContinue
	}
}

// add adds op after deps, hard or soft.
func (p *planner) add(op *Op, soft bool, deps []int) int {
	id := p.b.add(op)
	p.link(id, soft, deps)
	return id
}

func (p *planner) link(id int, soft bool, deps []int) {
	if soft {
		p.b.soft(id, deps...)
	} else {
		p.b.dep(id, deps...)
	}
}

// monitor adds, when update_config.monitor is set, a Monitor op watching
// the new container of replica n after op after, and returns it (else
// after): what comes next waits for the window to pass quietly.
func (p *planner) monitor(svc *state.Service, n int, suffix string, create, after int) int {
	if svc.Update.Monitor <= 0 {
		return after
	}
	return p.b.add(&Op{Kind: Monitor, Object: objectOf(svc.Name, n, suffix), Reason: "for " + svc.Update.Monitor.String(),
		IDFrom: create, Duration: svc.Update.Monitor}, after)
}

// rollback plans, under failure_action rollback, the removal of a
// start-first successor whose start, wait or monitor fails. The old
// container still runs then (its stop waits for them), so removing the
// successor is the whole rollback; the Loop's next pass would otherwise
// find the successor as a duplicate and remove it too, but only after
// the rollout is retried.
func (p *planner) rollback(svc *state.Service, n int, create int, gates ...int) {
	if svc.Update.FailureAction != FailureRollback {
		return
	}
	obj := objectOf(svc.Name, n, successorSuffix)
	gates = nonZero(gates)
	stop := p.b.add(&Op{Kind: StopContainer, Object: obj, Reason: "rollback", IDFrom: create,
		Timeout: p.stopTimeout(svc), OnFailure: gates}, create)
	p.b.soft(stop, gates...)
	p.b.add(&Op{Kind: RemoveContainer, Object: obj, Reason: "rollback", IDFrom: create}, stop)
}

func nonZero(ids []int) []int {
	out := make([]int, 0, len(ids))
	seen := map[int]bool{}
	for _, id := range ids {
		if id != 0 && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func firstOf(ids ...int) int {
	for _, id := range ids {
		if id != 0 {
			return id
		}
	}
	return 0
}

// setAside replaces container c stop-first so that a failure can be rolled
// back (failure_action rollback): the old container is stopped and renamed
// aside instead of removed, the new one is created, started and waited for
// (healthy, or running without a healthcheck) and monitored, and only then
// is the old one removed. When the new one fails, it is removed and the
// old one gets its name back and is started again.
//
// This stays level-triggered: the old container carries its own spec, so
// nothing needs remembering. A pass that dies midway leaves two containers
// with one number, and the next pass's dedupe keeps the one holding the
// replica's name (the new one once created, else the old one, renamed
// back), as for an interrupted start-first. Recreating the old container
// from its previous spec instead would need that spec, which observed
// state does not carry (only its hashes and labels).
func (p *planner) setAside(st *svcState, g *gate, r *replica, c state.Container, reason string, late bool) {
	svc := st.svc
	obj := objectOf(svc.Name, c.Number, "")
	name := p.replicaName(svc, c.Number)
	stop, aside := p.stopAside(c, name, reason, asideReason+" for rollback", p.stopTimeout(svc))
	if stop != 0 && !late {
		p.orderStop(svc.Name, stop)
		st.stops = append(st.stops, stop)
	}
	r.entry = firstOf(stop, aside)
	r.create = p.create(svc, c.Number, "", reason, g, aside, stop)
	r.start = p.start(svc, c.Number, "", r.create)
	r.entry = firstOf(r.entry, r.create)
	gates := []int{r.create, r.start}
	last := r.start
	if r.start != 0 {
		cond := waitCondition(svc)
		wait := p.b.add(&Op{Kind: WaitContainer, Object: obj, Reason: "until " + cond, IDFrom: r.create, Condition: cond}, r.start)
		r.waits = map[string]int{cond: wait}
		last = p.monitor(svc, c.Number, "", r.create, wait)
		gates = append(gates, wait, last)
	}
	// The old container stays aside until the whole rollout is done
	// (commit): a later batch that fails rolls this one back too.
	r.done, r.old = firstOf(last, r.create), c.ID
	// Rollback: the new container goes when its start, wait or monitor
	// fails; the old one comes back when anything from its create on does.
	gates = nonZero(gates)
	after := gates[1:]
	var rm int
	if len(after) > 0 {
		stopNew := p.b.add(&Op{Kind: StopContainer, Object: obj, Reason: "rollback", IDFrom: r.create,
			Timeout: p.stopTimeout(svc), OnFailure: after}, r.create)
		p.b.soft(stopNew, after...)
		rm = p.b.add(&Op{Kind: RemoveContainer, Object: obj, Reason: "rollback", IDFrom: r.create}, stopNew)
	}
	back := p.b.add(&Op{Kind: RenameContainer, Object: obj, Reason: "rollback", ContainerID: c.ID, Name: name, OnFailure: gates}, aside, stop)
	p.b.soft(back, append(gates, rm)...)
	if stop != 0 {
		p.b.add(&Op{Kind: StartContainer, Object: obj, Reason: "rollback", ContainerID: c.ID}, back)
	}
}

func waitCondition(svc *state.Service) string {
	if hasHealthcheck(svc) {
		return driver.WaitHealthy
	}
	return driver.WaitRunning
}

// lateBatch counts a recreate of the service and says whether it falls in
// a rollout batch after the first. Such a stop is not ordered against the
// service's dependents and dependencies ("dependents stop first"): a
// rolling update keeps the service up by design, and the order would
// cycle — a later batch stops after an earlier one started, which waits
// for every dependency started, whose stops would wait for it.
func (p *planner) lateBatch(st *svcState) bool {
	n := st.paced
	st.paced++
	par := st.svc.Update.Parallelism
	return par > 0 && n >= par
}

// asideReason starts the reason of every rename that sets a container
// aside (SetsAside).
const asideReason = "set aside"

// SetsAside tells a rename that moves a container out of its replica's
// name for a successor: a step of a recreate, not one a user asked for.
func (op *Op) SetsAside() bool {
	return op.Kind == RenameContainer && strings.HasPrefix(op.Reason, asideReason)
}

// asideName is the name a container kept for a rollback goes by: its own
// short id, "_", the replica's name. The native driver recognises it (a
// container started again under it joins published ports only once
// ready), and no successor can hold it: their temporary names start with
// the id of the container they replace, or with "next_".
func asideName(id, name string) string { return shortID(id) + "_" + name }

// replaceKeeping replaces up container c start-first under failure_action
// rollback: the successor is created under a temporary name, started,
// waited for and monitored; then c is stopped (it leaves the published
// ports first) and set aside, and the successor takes its name. c is
// removed only when every batch of the service is done (commit), so that
// a failure in a later batch can bring it back (PlanRollback). A failure
// of this replica's own successor removes the successor, c never stopped.
func (p *planner) replaceKeeping(st *svcState, g *gate, r *replica, c state.Container, reason string) {
	svc := st.svc
	name := p.replicaName(svc, c.Number)
	obj := objectOf(svc.Name, c.Number, "")
	wait, watched := p.startSuccessor(svc, g, r, c, "next_"+shortID(c.ID)+"_"+name, reason)
	stop := p.stopOp(c, "replaced", p.stopTimeout(svc), watched)
	aside := p.b.add(&Op{Kind: RenameContainer, Object: obj, Reason: asideReason + " for rollback", ContainerID: c.ID,
		Name: asideName(c.ID, name)}, stop)
	r.entry = r.create
	r.done = p.b.add(&Op{Kind: RenameContainer, Object: objectOf(svc.Name, c.Number, successorSuffix), Reason: "replaces " + c.Name,
		IDFrom: r.create, Name: name}, aside)
	r.old = c.ID
	st.dones = append(st.dones, r.done)
	p.rollback(svc, c.Number, r.create, r.start, wait, watched)
}

// successorSuffix marks a start-first successor's operations in the plan.
const successorSuffix = "+next"

// startSuccessor adds the start of c's start-first successor under the
// temporary name tmp: create, start, a wait for the service's condition
// and the monitor window. It returns the wait and the end of the window.
func (p *planner) startSuccessor(svc *state.Service, g *gate, r *replica, c state.Container, tmp, reason string) (wait, watched int) {
	r.create = p.create(svc, c.Number, tmp, reason, g)
	p.b.ops[r.create-1].Container.Labels[state.LabelReplace] = c.Name
	r.start = p.start(svc, c.Number, successorSuffix, r.create)
	cond := waitCondition(svc)
	wait = p.b.add(&Op{Kind: WaitContainer, Object: objectOf(svc.Name, c.Number, successorSuffix), Reason: "until " + cond,
		IDFrom: r.create, Condition: cond}, r.start)
	r.waits = map[string]int{cond: wait}
	r.suffix = successorSuffix
	return wait, p.monitor(svc, c.Number, successorSuffix, r.create, wait)
}

// commit removes the containers a rollout under failure_action rollback
// kept aside, once every replaced replica of the service is done: a batch
// that fails leaves them all for PlanRollback.
func (p *planner) commit(st *svcState) {
	var dones []int
	for _, r := range st.replicas {
		if r.old != "" {
			dones = append(dones, r.done)
		}
	}
	for _, r := range st.replicas {
		if r.old != "" {
			p.b.add(&Op{Kind: RemoveContainer, Object: objectOf(st.svc.Name, r.number, ""), Reason: "replaced",
				ContainerID: r.old}, dones...)
		}
	}
}
