package native

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/state"
)

// Published ports follow a container's readiness so that a start-first
// update drops no connection: a successor (labelled with the container it
// replaces) joins the port's load balancing only once the reconciler's wait
// on it succeeds, and a container leaves it before it is sent its stop
// signal. Both facts are marker files beside the record, so they survive a
// crash and are gone with the container.
const (
	markPublished = "published" // a successor has been seen ready
	markDrained   = "drained"   // the container is being stopped
)

func (d *Driver) marker(id, name string) string { return filepath.Join(d.containerDir(id), name) }

func (d *Driver) hasMarker(id, name string) bool {
	_, err := os.Stat(d.marker(id, name))
	return err == nil
}

func (d *Driver) setMarker(id, name string, on bool) error {
	if !on {
		if err := os.Remove(d.marker(id, name)); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	return os.WriteFile(d.marker(id, name), nil, 0o600)
}

// publishedPorts are the ports the container's endpoint carries now.
func (d *Driver) publishedPorts(r *record) []state.Port {
	if d.hasMarker(r.ID, markDrained) {
		return nil
	}
	if (r.Spec.Labels[state.LabelReplace] != "" || aside(r)) && !d.hasMarker(r.ID, markPublished) {
		return nil
	}
	return r.Spec.Ports
}

// aside tells a container the reconciler renamed out of the way to keep it
// for a rollback (its name is its own short id, "_", the replica's name):
// started again under that name by a start-first rollback, it must join
// the load balancing only once ready, as a successor does.
func aside(r *record) bool {
	return strings.HasPrefix(r.Name, shortID(r.ID)+"_")
}

// publish adds a ready successor's ports to the load balancing.
func (d *Driver) publish(ctx context.Context, r *record) error {
	if len(r.Spec.Ports) == 0 || d.hasMarker(r.ID, markPublished) {
		return nil
	}
	if err := d.setMarker(r.ID, markPublished, true); err != nil {
		return err
	}
	_, err := d.attach(ctx, r)
	return err
}

// drain takes a running container's ports out of the load balancing before
// it is stopped; connections already made carry on.
func (d *Driver) drain(ctx context.Context, r *record) error {
	if len(r.Spec.Ports) == 0 {
		return nil
	}
	if err := d.setMarker(r.ID, markDrained, true); err != nil {
		return err
	}
	_, err := d.attach(ctx, r)
	return err
}

// finishConnections waits, up to the stop's grace period, until the
// connections clients opened through a drained container's published
// ports are done, when a start-first successor serves those ports now:
// stopped at once, the old container cut the requests it was answering
// (TestStartFirstUpdateFinishesOpenRequests). Other stops (down, stop, a
// stop-first recreate) do not wait, as with compose. Best effort: without
// conntrack there is nothing to wait on.
func (d *Driver) finishConnections(ctx context.Context, r *record, timeout time.Duration) {
	if len(r.Spec.Ports) > 0 && timeout > 0 && d.replaced(r) {
		d.net.WaitConnections(ctx, r.ID, timeout)
	}
}

// replaced tells whether a published successor of r (a start-first
// update's new container, labelled with r's name) serves r's ports.
func (d *Driver) replaced(r *record) bool {
	recs, err := d.records()
	if err != nil {
		return false
	}
	for _, o := range recs {
		if o.ID != r.ID && o.Spec.Labels[state.LabelReplace] == r.Name && d.hasMarker(o.ID, markPublished) {
			return true
		}
	}
	return false
}
