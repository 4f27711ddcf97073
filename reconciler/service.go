package reconciler

import (
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/state"
)

// candidate is a kept container and why it must be recreated ("" if not).
type candidate struct {
	c      *state.Container
	reason string
}

// planService converges the replicas of one service: removes duplicates
// and surplus, recreates outdated containers, starts stopped ones and
// creates missing ones. Its dependencies were planned before it.
func (p *planner) planService(svc *state.Service) error {
	st := &svcState{svc: svc}
	p.svcs[svc.Name] = st
	forcedReason := p.dependencyRecreated(svc.Name)
	g := gate{p: p, svc: svc}
	if p.o.RefreshImages && refreshes(svc.Image) {
		p.image(svc)
	}
	primaries, used := p.dedupe(svc)
	cands := make([]candidate, len(primaries))
	for i, c := range primaries {
		cands[i] = candidate{c, p.outdated(svc, *c, forcedReason)}
	}
	for _, k := range p.scaleDown(svc, cands) {
		if k.reason != "" {
			p.recreate(st, &g, *k.c, k.reason)
		} else {
			p.keep(st, &g, k.c)
		}
	}
	p.pace(st)
	p.commit(st)
	for n := 1; len(st.replicas) < svc.Replicas; n++ {
		if used(n) {
			continue
		}
		r := &replica{number: n}
		r.create = p.create(svc, n, "", "missing", &g)
		r.start = p.start(svc, n, "", r.create)
		st.replicas = append(st.replicas, r)
		st.creates = append(st.creates, r.create)
	}
	if len(st.replicas) > 1 {
		sort.Slice(st.replicas, func(i, j int) bool { return st.replicas[i].number < st.replicas[j].number })
	}
	st.newFirst = len(st.replicas) > 0 && st.replicas[0].obs == nil
	return nil
}

// scaleDown removes the surplus, outdated containers first, then the
// highest numbers, and returns the candidates that stay.
func (p *planner) scaleDown(svc *state.Service, cands []candidate) []candidate {
	surplus := len(cands) - svc.Replicas
	if surplus <= 0 {
		return cands
	}
	byRemoval := append([]candidate(nil), cands...)
	sort.SliceStable(byRemoval, func(i, j int) bool {
		oi, oj := byRemoval[i].reason != "", byRemoval[j].reason != ""
		if oi != oj {
			return oi
		}
		return byRemoval[i].c.Number > byRemoval[j].c.Number
	})
	gone := map[string]bool{}
	for _, k := range byRemoval[:surplus] {
		stop, _ := p.removeContainer(*k.c, "scale down", p.stopTimeout(svc))
		p.orderStop(svc.Name, stop)
		gone[k.c.ID] = true
	}
	kept := cands[:0]
	for _, k := range cands {
		if !gone[k.c.ID] {
			kept = append(kept, k)
		}
	}
	return kept
}

// keep plans what an up-to-date container needs: its name back after an
// interrupted replacement, and a start when it should run.
func (p *planner) keep(st *svcState, g *gate, c *state.Container) {
	svc := st.svc
	r := &replica{number: c.Number, obs: c, id: c.ID}
	if want := p.replicaName(svc, c.Number); c.Name != want {
		p.b.add(&Op{Kind: RenameContainer, Object: objectOf(svc.Name, c.Number, ""),
			Reason: "finish replacement of " + want, ContainerID: c.ID, Name: want})
	}
	if p.shouldStart(svc, *c) {
		r.start = p.b.add(&Op{Kind: StartContainer, Object: objectOf(svc.Name, c.Number, ""),
			Reason: startReason(*c), ContainerID: c.ID})
		g.apply(r.start)
	}
	st.replicas = append(st.replicas, r)
}

// dedupe keeps one container per replica number (the one with the
// replica's name, else the newest) and removes the others: leftovers of a
// start-first replacement that was interrupted. Two holding the name (a
// rename aside lost to a power cut: it is not flushed) leave the newest.
// It returns the kept containers and which numbers are in use.
func (p *planner) dedupe(svc *state.Service) ([]*state.Container, func(int) bool) {
	cs := sortedContainers(p.byService[svc.Name])
	used := func(n int) bool {
		for _, c := range cs {
			if c.Number == n {
				return true
			}
		}
		return false
	}
	p.dupRemoved = nil
	out := make([]*state.Container, 0, len(cs))
	for i := 0; i < len(cs); {
		j := i
		for j < len(cs) && cs[j].Number == cs[i].Number {
			j++
		}
		group := cs[i:j]
		keep := 0
		want := p.replicaName(svc, cs[i].Number)
		better := func(c, than *state.Container) bool {
			if (c.Name == want) != (than.Name == want) {
				return c.Name == want
			}
			return c.Created.After(than.Created)
		}
		for k, c := range group {
			if better(c, group[keep]) {
				keep = k
			}
		}
		for k, c := range group {
			if k != keep {
				stop, rm := p.removeContainer(*c, "duplicate of replica "+strconv.Itoa(c.Number), p.stopTimeout(svc))
				p.orderStop(svc.Name, stop)
				if p.dupRemoved == nil {
					p.dupRemoved = map[int][]int{}
				}
				p.dupRemoved[c.Number] = append(p.dupRemoved[c.Number], rm)
			}
		}
		out = append(out, group[keep])
		i = j
	}
	return out, used
}

// outdated returns why container c must be recreated, or "".
func (p *planner) outdated(svc *state.Service, c state.Container, forcedReason string) string {
	if c.Status == state.StatusDead {
		return "dead"
	}
	for _, n := range c.Networks {
		if p.netRemove[n] != 0 {
			return "network " + n + " recreated"
		}
	}
	switch {
	case p.o.NoRecreate:
		return ""
	case p.held(svc):
		return ""
	case p.o.ForceRecreate && p.scope[svc.Name]:
		return "forced"
	case c.ConfigHash != svc.ConfigHash:
		return "config changed"
	}
	if c.Image != "" && c.Image != imageRef(svc) {
		return "image changed" // another ref: no need to wait for its digest
	}
	if digest := p.knownDigest(svc); digest != "" && c.ImageDigest != digest {
		return "image changed"
	}
	if forcedReason != "" {
		return forcedReason
	}
	return p.joinedStale(svc, c)
}

// joinedStale notices, level-triggered, a container that joined the
// namespace of a container since recreated by an earlier pass that did not
// finish: the dependency's first replica (the one joined) is newer.
func (p *planner) joinedStale(svc *state.Service, c state.Container) string {
	if c.Created.IsZero() {
		return ""
	}
	for _, dep := range p.deps[svc.Name] {
		if !sharesNamespace(svc, dep) {
			continue
		}
		var first *state.Container
		for _, dc := range p.byService[dep] {
			if first == nil || dc.Number < first.Number {
				first = dc
			}
		}
		if first != nil && first.Created.After(c.Created) {
			return "dependency " + dep + " recreated"
		}
	}
	return ""
}

// dependencyRecreated says why a service must be recreated because a
// service it shares a namespace with, or declares restart: true on, is.
func (p *planner) dependencyRecreated(name string) string {
	if p.o.NoRecreate {
		return ""
	}
	svc := p.d.Services[name]
	for _, dep := range p.deps[name] {
		st := p.svcs[dep]
		if st == nil || !(st.recreated || st.newFirst) {
			continue
		}
		if st.recreated && svc.DependsOn[dep].Restart {
			return "dependency " + dep + " recreated"
		}
		if sharesNamespace(svc, dep) {
			return "dependency " + dep + " recreated"
		}
	}
	return ""
}

func sharesNamespace(svc *state.Service, dep string) bool {
	m := "service:" + dep
	return svc.Container.NetworkMode == m || svc.Container.IPC == m || svc.Container.PID == m
}

// shouldStart says whether a kept, up-to-date container must be started.
// A container that exited 0 under restart policy no or on-failure has
// completed (docker's own reading of those policies): it is started again
// only by a recreate or with StartCompleted, or a loop would rerun a
// one-shot job forever. A stopped server killed by the stop signal exits
// non-zero and is started.
func (p *planner) shouldStart(svc *state.Service, c state.Container) bool {
	if p.o.NoStart || isUp(c) {
		return false
	}
	if c.Status == state.StatusExited && c.ExitCode == 0 && !p.o.StartCompleted {
		switch r := svc.Container.Restart; {
		case r == "" || r == "no" || strings.HasPrefix(r, "on-failure"):
			return false
		}
	}
	return true
}

func startReason(c state.Container) string {
	if c.Status == state.StatusExited {
		return "exited (" + strconv.Itoa(c.ExitCode) + ")"
	}
	return c.Status
}

// recreate replaces container c, stop-first by default or start-first as
// the service's update order says when the old one is up.
func (p *planner) recreate(st *svcState, g *gate, c state.Container, reason string) {
	svc := st.svc
	st.recreated = true
	// A network being recreated needs every container on it gone first:
	// those recreates are not paced (and always stop-first).
	netRecreate := strings.HasPrefix(reason, "network ")
	late := !netRecreate && p.lateBatch(st)
	r := &replica{number: c.Number}
	name := p.replicaName(svc, c.Number)
	startFirst := svc.Update.Order == state.OrderStartFirst && isUp(c) && !p.o.NoStart && !netRecreate
	switch {
	case !startFirst && svc.Update.FailureAction == FailureRollback && !netRecreate:
		p.setAside(st, g, r, c, reason, late)
	case startFirst && svc.Update.FailureAction == FailureRollback:
		p.replaceKeeping(st, g, r, c, reason)
	case !startFirst:
		var aside, stop, free int
		if netRecreate {
			// the network waits for the removal, and the create for it
			stop, free = p.removeContainer(c, reason, p.stopTimeout(svc))
		} else {
			// Set aside first (only its name stands in the way), the
			// old container is stopped, its network sandbox kept for
			// the successor (the driver parks the sandbox of a stopped
			// container set aside), and it goes while the successor
			// starts.
			aside = p.setAsideOp(c, name, asideReason+": "+reason)
			if isUp(c) {
				stop = p.stopOp(c, reason, p.stopTimeout(svc), aside)
			}
			free = firstOf(stop, aside)
		}
		if !late {
			p.orderStop(svc.Name, stop)
			if stop != 0 {
				// its dependents' stops come first, and before its
				// rename too: a running container is not renamed long
				// before it stops
				st.stops = append(st.stops, firstOf(aside, stop))
			}
		}
		r.create = p.create(svc, c.Number, "", reason, g, free)
		if !netRecreate {
			if stop != 0 && !p.o.NoStart {
				p.b.ops[r.create-1].Container.Labels[state.LabelSandboxFrom] = c.ID
			}
			// After the create, whatever its outcome: it adopts the
			// sandbox, and its fsync would otherwise flush the
			// removal's unlinks too (a journal commits all before it).
			rm := p.removeStopped(c, reason, free)
			p.b.soft(rm, r.create)
		}
		r.start = p.start(svc, c.Number, "", r.create)
		// a later rollout batch waits from its first op: the rename
		r.entry, r.done = firstOf(aside, stop, free, r.create), firstOf(r.start, r.create)
		if r.start != 0 {
			r.done = p.monitor(svc, c.Number, "", r.create, r.done)
		}
	default:
		wait, watched := p.startSuccessor(svc, g, r, c, shortID(c.ID)+"_"+name, reason)
		_, rm := p.removeContainer(c, "replaced", p.stopTimeout(svc), watched)
		r.entry = r.create
		r.done = p.b.add(&Op{Kind: RenameContainer, Object: objectOf(svc.Name, c.Number, successorSuffix), Reason: "replaces " + c.Name,
			IDFrom: r.create, Name: name}, rm)
		st.dones = append(st.dones, r.done)
		p.rollback(svc, c.Number, r.create, r.start, wait, watched)
	}
	if netRecreate {
		r.entry = 0
	}
	st.creates = append(st.creates, r.create)
	st.replicas = append(st.replicas, r)
}

// orderStop makes the stops of the service's dependencies wait for stop:
// dependents go down before what they depend on.
func (p *planner) orderStop(service string, stop int) {
	if stop == 0 {
		return
	}
	for _, dep := range p.deps[service] {
		if st := p.svcs[dep]; st != nil {
			for _, s := range st.stops {
				p.b.dep(s, stop)
			}
		}
	}
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func hasHealthcheck(svc *state.Service) bool {
	hc := svc.Container.Healthcheck
	return hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE"
}

// replicaName is the name state.Service.Replica gives replica n, without
// building the whole spec.
func (p *planner) replicaName(svc *state.Service, n int) string {
	if svc.Container.Name != "" && svc.Replicas <= 1 && n <= 1 {
		return svc.Container.Name
	}
	return state.ContainerName(p.project(svc), svc.Name, n)
}

func (p *planner) project(svc *state.Service) string {
	if svc.Container.Project != "" {
		return svc.Container.Project
	}
	return p.d.Project
}

// create adds the CreateContainer op of replica n (under name when not
// empty), after its image, networks, volumes, dependencies and deps.
func (p *planner) create(svc *state.Service, n int, name, reason string, g *gate, deps ...int) int {
	spec := svc.Replica(n)
	if spec.Project == "" {
		spec.Project = p.d.Project
		spec.Labels[state.LabelProject] = p.d.Project
		if svc.Container.Name == "" || svc.Replicas > 1 || n > 1 {
			spec.Name = state.ContainerName(spec.Project, svc.Name, n)
		}
	}
	suffix := ""
	if name != "" {
		spec.Name = name
		suffix = successorSuffix
	}
	op := &Op{Kind: CreateContainer, Object: objectOf(svc.Name, n, suffix), Reason: reason, Container: &spec}
	img := p.image(svc)
	if img.digest != "" {
		spec.ImageDigest = img.digest
		spec.Labels[state.LabelImage] = img.digest
	} else {
		op.DigestFrom = img.op
	}
	id := p.b.add(op, deps...)
	p.b.dep(id, img.op)
	p.b.dep(id, p.dupRemoved[n]...) // a leftover may hold the name
	for _, a := range spec.Networks {
		p.b.dep(id, p.netOp[a.Network])
	}
	for _, m := range spec.Mounts {
		if m.Type == state.MountVolume {
			p.b.dep(id, p.volOp[m.Source])
		}
	}
	g.apply(id)
	return id
}

func (p *planner) start(svc *state.Service, n int, suffix string, create int) int {
	if p.o.NoStart {
		return 0
	}
	return p.b.add(&Op{Kind: StartContainer, Object: objectOf(svc.Name, n, suffix), Reason: "created", IDFrom: create}, create)
}

// knownDigest is the digest the service's containers should run, when the
// store already has it and no refresh is planned; "" when unknown until an
// EnsureImage runs (the next pass compares then).
func (p *planner) knownDigest(svc *state.Service) string {
	ref := imageRef(svc)
	if im := p.images[ref]; im != nil {
		return im.digest
	}
	if p.o.RefreshImages && refreshes(svc.Image) {
		return p.image(svc).digest
	}
	return p.storeImages[ref]
}

// image returns the service image's state, planning an EnsureImage when
// the store lacks it or its policy refreshes it.
func (p *planner) image(svc *state.Service) *imageState {
	ref := imageRef(svc)
	if im := p.images[ref]; im != nil {
		return im
	}
	im := &imageState{}
	dg, ok := p.storeImages[ref]
	switch {
	case ok && !(p.o.RefreshImages && refreshes(svc.Image)):
		im.digest = dg
	default:
		spec := svc.Image
		spec.Ref = ref
		reason := "missing"
		if ok {
			reason = "refresh"
		}
		im.op = p.b.add(&Op{Kind: EnsureImage, Object: "image:" + ref, Reason: reason, Image: &spec})
	}
	p.images[ref] = im
	return im
}

func imageRef(svc *state.Service) string {
	if svc.Image.Ref != "" {
		return svc.Image.Ref
	}
	return svc.Container.Image
}

func refreshes(s state.ImageSpec) bool {
	return s.PullPolicy == "always" || (s.Build != nil && s.PullPolicy == "build")
}
