package native

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/store"
)

// Observe reads the project's containers, networks, volumes and the store's
// images fresh from disk and the runtime: nothing is cached between calls.
func (d *Driver) Observe(ctx context.Context, project string) (*state.Observed, error) {
	o := &state.Observed{Project: project}
	gen := d.peekNamesGen()
	recs, err := d.listRecords(true)
	if err != nil {
		return nil, err
	}
	d.seedNames(gen, recs)
	var mine []*record
	for _, r := range recs {
		if r.Spec.Project == project {
			mine = append(mine, r)
		}
	}
	o.Containers = make([]state.Container, len(mine))
	inParallel(len(mine), func(i int) { o.Containers[i] = d.observeContainer(mine[i]) })
	nets, err := d.net.Networks(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if n.Spec.Project != project || n.Spec.External {
			continue
		}
		o.Networks = append(o.Networks, state.Network{Name: n.Spec.Name, ID: n.Bridge, Hash: n.Spec.Hash, Labels: n.Spec.Labels})
	}
	vols, err := d.vols.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, v := range vols {
		// Anonymous volumes are observed too, so that down -v removes
		// them; the planner never removes a volume on up.
		if v.Labels[state.LabelProject] != project {
			continue
		}
		o.Volumes = append(o.Volumes, state.Volume{Name: v.Name, Hash: v.Labels[labelVolumeHash], Labels: v.Labels, Mountpoint: v.Mountpoint})
	}
	imgs, err := d.store.List()
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		for _, n := range img.Names {
			for _, ref := range refForms(n) {
				o.Images = append(o.Images, state.ImageRef{Ref: ref, Digest: img.ID().String()})
			}
		}
	}
	return o, nil
}

// lostExitCode is the exit code of a run whose status nobody recorded.
const lostExitCode = 255

// observeContainer merges a record with the runtime's view of it.
func (d *Driver) observeContainer(r *record) state.Container {
	c := state.Container{
		ID: r.ID, Name: r.Name, Project: r.Spec.Project, Service: r.Spec.Service,
		Number: r.Spec.Number, OneOff: r.Spec.OneOff, ConfigHash: r.Spec.ConfigHash,
		ImageDigest: r.Spec.ImageDigest, Image: r.Spec.Image, Labels: r.Spec.Labels,
		Created: r.Created, Status: state.StatusCreated,
	}
	if n, err := strconv.Atoi(r.Spec.Labels[state.LabelNumber]); err == nil {
		c.Number = n
	}
	for _, a := range r.Spec.Networks {
		c.Networks = append(c.Networks, a.Network)
	}
	st, err := d.rt.State(r.ID)
	if errors.Is(err, runtime.ErrNotFound) || err != nil {
		if d.started(r) {
			// The run is gone (a removal or stop killed half-way, a
			// reboot emptied the run root): its exit status is lost.
			// 255, as the monitor records a lost status, and never 0,
			// which the planner reads as a job that completed and
			// must not be started again.
			c.Status, c.ExitCode = state.StatusExited, lostExitCode
		}
		return c
	}
	c.Pid, c.StartedAt, c.FinishedAt, c.ExitCode = st.Pid, st.Started, st.Finished, st.ExitCode
	switch {
	case stopping(st):
		// A stop is under way (asked by a berth that may be gone): the
		// container is on its way out, and StartContainer waits for
		// that before starting it again.
		c.Status, c.ExitCode = state.StatusExited, lostExitCode
	case st.Status == runtime.StatusRunning:
		c.Status = state.StatusRunning
	case st.Status == runtime.StatusPaused:
		c.Status = state.StatusPaused
	case st.Status == runtime.StatusStopped:
		c.Status = state.StatusExited
		if restarting(st) {
			c.Status = state.StatusRestarting
		}
	}
	if (c.Status == state.StatusRunning || c.Status == state.StatusPaused) && d.hasMarker(r.ID, markDrained) {
		// Drained for a stop that never came (berth killed in between):
		// not up as asked, so the planner starts it, which publishes
		// its ports again.
		c.Status, c.ExitCode = state.StatusExited, lostExitCode
	}
	if st.Health != nil && c.Status == state.StatusRunning {
		c.Health = st.Health.Status
	}
	return c
}

// stopping tells whether the monitor is stopping a live container.
func stopping(st *runtime.State) bool {
	return st.StoppedByUser && (st.Status == runtime.StatusRunning || st.Status == runtime.StatusPaused)
}

// restarting tells whether the monitor will start a stopped container
// again by its restart policy, so the reconciler leaves it to the monitor.
func restarting(st *runtime.State) bool {
	if st.StoppedByUser {
		return false
	}
	p := st.Options.Restart
	switch p.Name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return st.ExitCode != 0 && (p.MaxRetries == 0 || st.Restarts < p.MaxRetries)
	}
	return false
}

// refForms lists the spellings a compose file may use for a stored name:
// the normal form, the familiar one, and the familiar one without :latest,
// so that the planner can match references without knowing the rules.
func refForms(name string) []string {
	r, err := store.ParseReference(name)
	if err != nil {
		return []string{name}
	}
	forms := []string{r.String()}
	if f := r.Familiar(); f != forms[0] {
		forms = append(forms, f)
	}
	if short, ok := strings.CutSuffix(r.Familiar(), ":latest"); ok && r.Digest == "" {
		forms = append(forms, short)
		if full, ok := strings.CutSuffix(r.String(), ":latest"); ok && full != short {
			forms = append(forms, full)
		}
	}
	return forms
}
