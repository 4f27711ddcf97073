package native

import (
	"context"
	"errors"
	"sort"
	"syscall"

	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
)

// ContainerInfo is everything the commands show about a container.
type ContainerInfo struct {
	state.Container
	Spec    state.ContainerSpec
	Runtime *runtime.State // nil when it never ran or its run was cleared
	Ports   []network.PublishedPort
}

// Containers lists a project's containers ("" for every project), sorted
// by service and number.
func (d *Driver) Containers(ctx context.Context, project string) ([]ContainerInfo, error) {
	recs, err := d.records()
	if err != nil {
		return nil, err
	}
	var out []ContainerInfo
	for _, r := range recs {
		if project != "" && r.Spec.Project != project {
			continue
		}
		out = append(out, d.info(ctx, r))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Project != b.Project {
			return a.Project < b.Project
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Number != b.Number {
			return a.Number < b.Number
		}
		return a.Name < b.Name
	})
	return out, nil
}

// Inspect finds one container by id, id prefix or name.
func (d *Driver) Inspect(ctx context.Context, ref string) (*ContainerInfo, error) {
	r, err := d.lookup(ref)
	if err != nil {
		return nil, err
	}
	info := d.info(ctx, r)
	return &info, nil
}

func (d *Driver) info(ctx context.Context, r *record) ContainerInfo {
	info := ContainerInfo{Container: d.observeContainer(r), Spec: r.Spec}
	if st, err := d.rt.State(r.ID); err == nil {
		info.Runtime = st
	}
	seen := map[string]bool{}
	for _, a := range r.Spec.Networks {
		if seen[a.Network] {
			continue
		}
		seen[a.Network] = true
		eps, err := d.net.Endpoints(ctx, a.Network)
		if err != nil {
			continue
		}
		if att, ok := eps[r.ID]; ok {
			info.Ports = append(info.Ports, att.Ports...)
			break // published ports are per container, not per network
		}
	}
	return info
}

// Kill sends a signal to a running container.
func (d *Driver) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	r, err := d.readRecord(id)
	if err != nil {
		return err
	}
	d.event(r, "kill", sig.String())
	err = d.rt.Kill(ctx, id, sig, false)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil
	}
	return err
}

// Pause freezes a running container; Unpause thaws it.
func (d *Driver) Pause(ctx context.Context, id string) error   { return d.rt.Pause(ctx, id) }
func (d *Driver) Unpause(ctx context.Context, id string) error { return d.rt.Resume(ctx, id) }

// Logs streams a container's log.
func (d *Driver) Logs(ctx context.Context, id string, o runtime.LogOptions, fn func(runtime.LogEntry) error) error {
	err := d.rt.Logs(ctx, id, o, fn)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil // never ran: nothing logged
	}
	return err
}
