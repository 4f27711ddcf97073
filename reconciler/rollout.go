package reconciler

import (
	"strconv"

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
	obj := objectOf(svc.Name, n, "+next")
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
