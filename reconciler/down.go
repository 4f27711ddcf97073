package reconciler

import (
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/state"
)

// DownOptions are berth down's flags.
type DownOptions struct {
	Volumes       bool // -v: remove the project's named volumes too
	RemoveOrphans bool
	Timeout       *time.Duration
	// Desired, when known, says which services the project has: containers
	// of other services are orphans, kept unless RemoveOrphans. Without it
	// (berth down -p NAME from anywhere) every container of the project
	// goes. Its stop_grace_period and depends_on are used when present;
	// otherwise the depends_on label of each container orders the stops.
	Desired *state.Desired
}

// PlanDown returns the reverse of up: dependents stop before what they
// depend on, containers are removed, then the networks and, with Volumes,
// the volumes. It does no I/O.
func PlanDown(observed *state.Observed, o DownOptions) (*Plan, error) {
	if observed == nil {
		observed = &state.Observed{}
	}
	var b builder
	var warnings []string
	dependents := map[string][]string{} // service -> services that depend on it
	for _, c := range observed.Containers {
		for _, dep := range downDependsOn(c, o.Desired) {
			dependents[dep] = append(dependents[dep], c.Service)
		}
	}
	all := make([]*state.Container, len(observed.Containers))
	for i := range observed.Containers {
		all[i] = &observed.Containers[i]
	}
	cs := sortedContainers(all)
	stops := map[string][]int{}
	var kept []state.Container
	var removed []int
	type pending struct {
		c    state.Container
		stop int
	}
	var todo []pending
	for _, c := range cs {
		c := *c
		if o.Desired != nil && !c.OneOff && !o.RemoveOrphans {
			if _, ok := o.Desired.Services[c.Service]; !ok {
				warnings = append(warnings, "orphan container "+c.Name+" kept; remove it with --remove-orphans")
				kept = append(kept, c)
				continue
			}
		}
		stop := 0
		if isUp(c) {
			stop = b.add(&Op{Kind: StopContainer, Object: objectOf(c.Service, c.Number, oneOffSuffix(c)),
				Reason: "down", ContainerID: c.ID, Timeout: downTimeout(c, o)})
			stops[c.Service] = append(stops[c.Service], stop)
		}
		todo = append(todo, pending{c, stop})
	}
	for _, t := range todo {
		for _, dependent := range dependents[t.c.Service] {
			if t.stop != 0 && dependent != t.c.Service {
				b.dep(t.stop, stops[dependent]...)
			}
		}
		rm := b.add(&Op{Kind: RemoveContainer, Object: objectOf(t.c.Service, t.c.Number, oneOffSuffix(t.c)),
			Reason: "down", ContainerID: t.c.ID}, t.stop)
		removed = append(removed, rm)
	}
	for _, n := range observed.Networks {
		if o.Desired != nil && externalNetwork(o.Desired, n.Name) {
			continue
		}
		if user := firstAttached(kept, n.Name); user != "" {
			warnings = append(warnings, "network "+n.Name+" kept: container "+user+" uses it")
			continue
		}
		b.add(&Op{Kind: RemoveNetwork, Object: "network:" + n.Name, Reason: "down", Name: n.Name}, removed...)
	}
	if o.Volumes {
		for _, v := range observed.Volumes {
			if len(kept) > 0 {
				warnings = append(warnings, "volume "+v.Name+" kept: orphan containers remain")
				continue
			}
			b.add(&Op{Kind: RemoveVolume, Object: "volume:" + v.Name, Reason: "down -v", Name: v.Name}, removed...)
		}
	}
	ops, err := b.finish()
	if err != nil {
		return nil, err
	}
	return &Plan{Project: observed.Project, Ops: ops, Warnings: warnings}, nil
}

func oneOffSuffix(c state.Container) string {
	if c.OneOff {
		return "+run:" + c.Name
	}
	return ""
}

// downDependsOn lists the services c's service depends on: from the desired
// state when it has the service, else from compose's depends_on label
// ("svc:condition:restart,...").
func downDependsOn(c state.Container, d *state.Desired) []string {
	if d != nil {
		if svc, ok := d.Services[c.Service]; ok {
			var out []string
			for dep := range svc.DependsOn {
				out = append(out, dep)
			}
			for _, mode := range []string{svc.Container.NetworkMode, svc.Container.IPC, svc.Container.PID} {
				if dep, ok := strings.CutPrefix(mode, "service:"); ok {
					out = append(out, dep)
				}
			}
			sort.Strings(out)
			return out
		}
	}
	var out []string
	for _, e := range strings.Split(c.Labels[state.LabelDependsOn], ",") {
		if name, _, _ := strings.Cut(e, ":"); name != "" {
			out = append(out, name)
		}
	}
	return out
}

func downTimeout(c state.Container, o DownOptions) time.Duration {
	if o.Timeout != nil {
		return *o.Timeout
	}
	if o.Desired != nil {
		if svc, ok := o.Desired.Services[c.Service]; ok && svc.Container.StopGracePeriod > 0 {
			return svc.Container.StopGracePeriod
		}
	}
	return DefaultStopTimeout
}

func externalNetwork(d *state.Desired, name string) bool {
	for _, n := range d.Networks {
		if n.Name == name && n.External {
			return true
		}
	}
	return false
}

func firstAttached(cs []state.Container, network string) string {
	for _, c := range cs {
		if attached(c, network) {
			return c.Name
		}
	}
	return ""
}
