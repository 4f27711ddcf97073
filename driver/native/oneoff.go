package native

import (
	"context"
	"fmt"
	"os"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
)

// StartAttached starts a container that never ran with the caller's stdio
// as its fds 0, 1 and 2 instead of the log: `berth run` in the foreground.
// With spec.Tty the caller passes the slave side of a pty. The container
// is never restarted (a restart would have no terminal to write to); it
// is otherwise an ordinary container that Stop/Remove handle.
func (d *Driver) StartAttached(ctx context.Context, id string, stdio []*os.File) error {
	r, err := d.readRecord(id)
	if err != nil {
		return err
	}
	if _, err := d.rt.State(id); err == nil || d.started(r) {
		return fmt.Errorf("start %s attached: it has run already: %w", r.Name, driver.ErrInvalid)
	}
	opts, err := d.createOptions(ctx, r)
	if err != nil {
		return fmt.Errorf("start %s: %w", r.Name, err)
	}
	opts.Stdio = stdio
	opts.Restart = runtime.RestartPolicy{Name: "no"}
	if _, err := d.rt.Create(ctx, id, opts); err != nil {
		return fmt.Errorf("start %s: %w", r.Name, err)
	}
	r.Started = true
	if err := d.writeRecord(r); err != nil {
		return err
	}
	return wrap(d.rt.Start(ctx, id), "start %s", r.Name)
}

// WaitExit blocks until the container's process has ended and returns its
// exit code (128+N when signal N ended it, as the runtime records).
func (d *Driver) WaitExit(ctx context.Context, id string) (int, error) {
	st, err := d.rt.Wait(ctx, id)
	if err != nil {
		return -1, err
	}
	return st.ExitCode, nil
}

// endpointService is the service name the network layer answers for the
// container: none for a one-off, which compose's run keeps out of the
// service's DNS name (and its published-port sharing) so that it never
// receives the service's traffic.
func endpointService(c state.ContainerSpec) string {
	if c.OneOff {
		return ""
	}
	return c.Service
}
