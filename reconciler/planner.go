package reconciler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/state"
)

// Options change what Plan does, as docker compose up's flags do.
type Options struct {
	// Services are the targets (berth up web): these and, unless NoDeps,
	// what they depend on. Empty means every service.
	Services      []string
	NoDeps        bool
	ForceRecreate bool
	NoRecreate    bool
	NoStart       bool
	RemoveOrphans bool
	// RefreshImages ensures the images whose pull policy asks for it on
	// every up (always; build with policy build) even when present.
	RefreshImages bool
	// StartCompleted starts containers that exited 0 under restart policy
	// no/on-failure too (one berth up, as docker compose up does); a loop
	// must leave it false or it reruns finished jobs on every pass.
	StartCompleted bool
	// Timeout, when set, overrides every service's stop_grace_period.
	Timeout *time.Duration
	// Hold maps services to the HoldKey of a desired state that was rolled
	// back: while a service's desired state still has that key, its
	// containers are not updated to it again (swarm's "the service stays
	// rolled back until its spec changes"). Loop fills it.
	Hold map[string]string
}

// DefaultStopTimeout is used when neither Options nor the service say.
const DefaultStopTimeout = 10 * time.Second

type imageState struct {
	op     int
	digest string // known digest; "" while an EnsureImage op is pending
}

type planner struct {
	d   *state.Desired
	obs *state.Observed
	o   Options
	b   builder

	storeImages map[string]string // ref -> digest in the store
	images      map[string]*imageState
	netOp       map[string]int // network name -> the op that creates it
	volOp       map[string]int
	netRemove   map[string]int                // recreated network -> its RemoveNetwork op
	byService   map[string][]*state.Container // pointers into observed
	deps        map[string][]string           // service -> services it needs (depends_on and namespaces)
	scope       map[string]bool
	svcs        map[string]*svcState
	dupRemoved  map[int][]int // the service being planned: number -> removals of duplicates
	warnings    []string
}

type svcState struct {
	svc       *state.Service
	replicas  []*replica
	recreated bool
	newFirst  bool  // its first replica (the one namespaces join) is new in this plan
	stops     []int // stop-first stops of its old containers; dependents stop before them
	creates   []int
	dones     []int // renames ending start-first replacements
	paced     int   // recreates planned so far (rollout batches)
}

type replica struct {
	number int
	obs    *state.Container // the container kept as is (nil when created)
	id     string
	create int
	start  int
	waits  map[string]int
	suffix string // "+next" while a start-first replacement runs
	// entry and done bound a recreate for rollout pacing: the first op
	// of the replacement and the op that ends it.
	entry, done int
	// old is the container a rollout under failure_action rollback keeps
	// aside (stopped, renamed) until every batch of the service is done.
	old string
}

// PlanUp compares desired with observed state and returns the operations
// that converge the machine (berth up). It does no I/O. (It cannot be named
// Plan: that is the type it returns.)
func PlanUp(desired *state.Desired, observed *state.Observed, o Options) (*Plan, error) {
	if desired == nil {
		return nil, fmt.Errorf("no desired state")
	}
	if observed == nil {
		observed = &state.Observed{Project: desired.Project}
	}
	p := &planner{
		d: desired, obs: observed, o: o,
		storeImages: make(map[string]string, len(observed.Images)),
		images:      map[string]*imageState{},
		netOp:       map[string]int{},
		volOp:       map[string]int{},
		netRemove:   map[string]int{},
		byService:   make(map[string][]*state.Container, len(desired.Services)),
		svcs:        make(map[string]*svcState, len(desired.Services)),
	}
	for _, im := range observed.Images {
		p.storeImages[im.Ref] = im.Digest
	}
	for i := range observed.Containers {
		if c := &observed.Containers[i]; !c.OneOff {
			p.byService[c.Service] = append(p.byService[c.Service], c)
		}
	}
	order, err := p.dependencyOrder()
	if err != nil {
		return nil, err
	}
	if err := p.computeScope(); err != nil {
		return nil, err
	}
	forced := p.planNetworks()
	p.planVolumes()
	for _, name := range order {
		if p.scope[name] || forced[name] || p.dependencyRecreated(name) != "" {
			if err := p.planService(desired.Services[name]); err != nil {
				return nil, err
			}
		}
	}
	p.planOrphans()
	ops, err := p.b.finish()
	if err != nil {
		return nil, err
	}
	return &Plan{Project: desired.Project, Ops: ops, Warnings: p.warnings}, nil
}

func (p *planner) warn(format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
}

// dependencyOrder sorts services so that each comes after what it needs
// (ties by name), and fails on a cycle or a required dependency that does
// not exist.
func (p *planner) dependencyOrder() ([]string, error) {
	names := p.d.ServiceNames()
	p.deps = make(map[string][]string, len(names))
	for _, n := range names {
		svc := p.d.Services[n]
		var ds []string
		for dep, dc := range svc.DependsOn {
			if _, ok := p.d.Services[dep]; !ok {
				if dc.Required {
					return nil, fmt.Errorf("service %s depends on undefined service %s", n, dep)
				}
				continue
			}
			ds = append(ds, dep)
		}
		for _, mode := range []string{svc.Container.NetworkMode, svc.Container.IPC, svc.Container.PID} {
			if dep, ok := strings.CutPrefix(mode, "service:"); ok {
				if _, ok := p.d.Services[dep]; !ok {
					return nil, fmt.Errorf("service %s shares a namespace with undefined service %s", n, dep)
				}
				ds = append(ds, dep)
			}
		}
		sort.Strings(ds)
		p.deps[n] = ds
	}
	const (
		unvisited = iota
		visiting
		done
	)
	mark := make(map[string]int, len(names))
	order := make([]string, 0, len(names))
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		switch mark[n] {
		case visiting:
			return fmt.Errorf("dependency cycle: %s -> %s", strings.Join(path, " -> "), n)
		case done:
			return nil
		}
		mark[n] = visiting
		for _, dep := range p.deps[n] {
			if err := visit(dep, append(path[:len(path):len(path)], n)); err != nil {
				return err
			}
		}
		mark[n] = done
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func (p *planner) computeScope() error {
	p.scope = make(map[string]bool, len(p.d.Services))
	if len(p.o.Services) == 0 {
		for n := range p.d.Services {
			p.scope[n] = true
		}
		return nil
	}
	var add func(n string)
	add = func(n string) {
		if p.scope[n] {
			return
		}
		p.scope[n] = true
		if !p.o.NoDeps {
			for _, dep := range p.deps[n] {
				add(dep)
			}
		}
	}
	for _, n := range p.o.Services {
		if _, ok := p.d.Services[n]; !ok {
			return fmt.Errorf("no such service: %s", n)
		}
		add(n)
	}
	return nil
}

// planNetworks creates missing networks and recreates changed ones. It
// returns the services whose containers must be recreated because their
// network is.
func (p *planner) planNetworks() map[string]bool {
	forced := map[string]bool{}
	have := make(map[string]state.Network, len(p.obs.Networks))
	for _, n := range p.obs.Networks {
		have[n.Name] = n
	}
	keys := make([]string, 0, len(p.d.Networks))
	for k := range p.d.Networks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		spec := p.d.Networks[k]
		if spec.External {
			continue
		}
		obj := "network:" + spec.Name
		cur, ok := have[spec.Name]
		if !ok {
			p.netOp[spec.Name] = p.b.add(&Op{Kind: CreateNetwork, Object: obj, Reason: "missing", Network: &spec})
			continue
		}
		if spec.Hash == "" || cur.Hash == spec.Hash {
			continue
		}
		if !p.canRecreateNetwork(spec.Name) {
			continue
		}
		for _, c := range p.obs.Containers {
			if attached(c, spec.Name) {
				forced[c.Service] = true
			}
		}
		rm := p.b.add(&Op{Kind: RemoveNetwork, Object: obj, Reason: "config changed", Name: spec.Name})
		p.netRemove[spec.Name] = rm
		p.netOp[spec.Name] = p.b.add(&Op{Kind: CreateNetwork, Object: obj, Reason: "config changed", Network: &spec}, rm)
	}
	return forced
}

// canRecreateNetwork says whether every container on the network will be
// removed by this plan, which the network's removal needs.
func (p *planner) canRecreateNetwork(name string) bool {
	if p.o.NoRecreate {
		p.warn("network %s changed but is not recreated (no-recreate)", name)
		return false
	}
	for _, c := range p.obs.Containers {
		if !attached(c, name) {
			continue
		}
		_, known := p.d.Services[c.Service]
		if c.OneOff || (!known && !p.o.RemoveOrphans) {
			p.warn("network %s changed but is not recreated: container %s uses it", name, c.Name)
			return false
		}
	}
	return true
}

func attached(c state.Container, network string) bool {
	for _, n := range c.Networks {
		if n == network {
			return true
		}
	}
	return false
}

// planVolumes creates missing volumes; a changed volume holds data, so it is
// only reported.
func (p *planner) planVolumes() {
	have := make(map[string]state.Volume, len(p.obs.Volumes))
	for _, v := range p.obs.Volumes {
		have[v.Name] = v
	}
	keys := make([]string, 0, len(p.d.Volumes))
	for k := range p.d.Volumes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		spec := p.d.Volumes[k]
		if spec.External {
			continue
		}
		cur, ok := have[spec.Name]
		switch {
		case !ok:
			v := spec
			p.volOp[spec.Name] = p.b.add(&Op{Kind: CreateVolume, Object: "volume:" + spec.Name, Reason: "missing", Volume: &v})
		case spec.Hash != "" && cur.Hash != "" && cur.Hash != spec.Hash:
			p.warn("volume %s changed but is kept (its data would be lost); remove it with down -v to recreate it", spec.Name)
		}
	}
}

// planOrphans removes (with RemoveOrphans) or reports containers of
// services the project no longer has.
func (p *planner) planOrphans() {
	names := make([]string, 0)
	for n := range p.byService {
		if _, ok := p.d.Services[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		for _, c := range sortedContainers(p.byService[n]) {
			c := *c
			if !p.o.RemoveOrphans {
				p.warn("orphan container %s (service %s is not in the project); remove it with --remove-orphans", c.Name, n)
				continue
			}
			p.removeContainer(c, "orphan", p.stopTimeout(nil))
		}
	}
}

// removeContainer stops (when up) and removes an existing container,
// returning the stop (0 when not up) and remove op ids.
func (p *planner) removeContainer(c state.Container, reason string, timeout time.Duration, deps ...int) (int, int) {
	if isUp(c) {
		stop := p.stopOp(c, reason, timeout, deps...)
		return stop, p.removeStopped(c, reason, stop)
	}
	return 0, p.removeStopped(c, reason, deps...)
}

// removeStopped adds the removal of c after deps (its stop, when it ran);
// a network being recreated waits for it.
func (p *planner) removeStopped(c state.Container, reason string, deps ...int) int {
	rm := p.b.add(&Op{Kind: RemoveContainer, Object: objectOf(c.Service, c.Number, ""), Reason: reason, ContainerID: c.ID}, deps...)
	for _, n := range c.Networks {
		if op := p.netRemove[n]; op != 0 {
			p.b.dep(op, rm)
		}
	}
	return rm
}

// stopAside stops c when it is up and renames it aside (see asideName), so
// that its replica's name is free for a successor before c is removed. An
// interrupted pass may have set it aside already: then the rename is 0.
func (p *planner) stopAside(c state.Container, name, reason, asideReason string, timeout time.Duration) (stop, aside int) {
	if isUp(c) {
		stop = p.stopOp(c, reason, timeout)
	}
	return stop, p.setAsideOp(c, name, asideReason, stop)
}

// stopOp stops observed container c after deps.
func (p *planner) stopOp(c state.Container, reason string, timeout time.Duration, deps ...int) int {
	return p.b.add(&Op{Kind: StopContainer, Object: objectOf(c.Service, c.Number, ""), Reason: reason,
		ContainerID: c.ID, Timeout: timeout}, deps...)
}

// setAsideOp renames c aside after deps (0: c already is, an interrupted
// pass did it).
func (p *planner) setAsideOp(c state.Container, name, reason string, deps ...int) int {
	to := asideName(c.ID, name)
	if c.Name == to {
		return 0
	}
	aside := p.b.add(&Op{Kind: RenameContainer, Object: objectOf(c.Service, c.Number, ""), Reason: reason, ContainerID: c.ID, Name: to}, deps...)
	// an interrupted start-first successor of c holds that name
	p.b.dep(aside, p.dupRemoved[c.Number]...)
	return aside
}

func (p *planner) stopTimeout(svc *state.Service) time.Duration {
	switch {
	case p.o.Timeout != nil:
		return *p.o.Timeout
	case svc != nil && svc.Container.StopGracePeriod > 0:
		return svc.Container.StopGracePeriod
	}
	return DefaultStopTimeout
}

func objectOf(service string, n int, suffix string) string {
	return "service:" + service + ":" + itoa(n) + suffix
}

func isUp(c state.Container) bool {
	switch c.Status {
	case state.StatusRunning, state.StatusRestarting, state.StatusPaused:
		return true
	}
	return false
}

// sortedContainers orders by number then name, in a new slice (or cs
// itself when there is nothing to order: callers only read).
func sortedContainers(cs []*state.Container) []*state.Container {
	if len(cs) < 2 {
		return cs
	}
	out := append([]*state.Container(nil), cs...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Number != out[j].Number {
			return out[i].Number < out[j].Number
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
