package native

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/store"
)

// StartContainer makes what a container runs in (rootfs snapshot, network
// sandbox and endpoints, mounts) and starts it. A running container is left
// alone; a stopped one is started again from its spec, keeping its rootfs.
func (d *Driver) StartContainer(ctx context.Context, id string) error {
	r, err := d.readRecord(id)
	if err != nil {
		return err
	}
	if st, err := d.rt.State(id); err == nil {
		if stopping(st) {
			if st, err = d.rt.Wait(ctx, id); err != nil {
				return fmt.Errorf("start %s: waiting for its stop: %w", r.Name, err)
			}
		}
		switch st.Status {
		case runtime.StatusRunning, runtime.StatusPaused:
			return d.undrain(ctx, r)
		case runtime.StatusCreated:
			// A create whose start never came (berth killed in
			// between) may not start any more; it never ran, so
			// nothing is lost by making it again below.
			if d.start(ctx, id) == nil {
				return d.postStart(ctx, r)
			}
		}
		if err := d.rt.Delete(ctx, id, true); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			return fmt.Errorf("start %s: clearing the previous run: %w", r.Name, err)
		}
	}
	if err := d.setMarker(id, markDrained, false); err != nil {
		return err
	}
	opts, err := d.createOptions(ctx, r)
	if err != nil {
		return fmt.Errorf("start %s: %w", r.Name, err)
	}
	if _, err := d.rt.Create(ctx, id, opts); err != nil {
		return fmt.Errorf("start %s: %w", r.Name, err)
	}
	// That it ran once is a marker, not a record rewrite: the record's
	// fsync costs milliseconds per container on a busy disk, and a
	// marker lost to a power cut only makes the container read as
	// created, which the next up starts all the same.
	if !d.started(r) {
		if err := d.setMarker(id, markStarted, true); err != nil {
			return err
		}
	}
	if err := d.start(ctx, id); err != nil {
		return fmt.Errorf("start %s: %w", r.Name, err)
	}
	d.event(r, "start", "")
	return d.postStart(ctx, r)
}

// start starts a created container. A berth killed while asking the
// monitor to start it leaves the monitor finishing that start: a second
// start then fails (its exec fifo is consumed) although the container
// runs, so a failure is checked against the state before it is reported.
func (d *Driver) start(ctx context.Context, id string) error {
	err := d.rt.Start(ctx, id)
	if err == nil {
		return nil
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		st, serr := d.rt.State(id)
		if serr != nil {
			break
		}
		if !st.Started.IsZero() || st.Status == runtime.StatusRunning || st.Status == runtime.StatusPaused {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return err
}

// started tells whether the container ran once (records written before
// the marker existed carry it in Started).
func (d *Driver) started(r *record) bool {
	return r.Started || d.hasMarker(r.ID, markStarted)
}

// undrain publishes a live container's ports again when a stop drained
// them and never came (berth killed between the two): otherwise the
// container would run on, unreachable on its ports, for good.
func (d *Driver) undrain(ctx context.Context, r *record) error {
	if !d.hasMarker(r.ID, markDrained) {
		return nil
	}
	if err := d.setMarker(r.ID, markDrained, false); err != nil {
		return err
	}
	_, err := d.attach(ctx, r)
	return wrap(err, "start %s: publish ports", r.Name)
}

// createOptions prepares everything the runtime needs for one run.
func (d *Driver) createOptions(ctx context.Context, r *record) (runtime.CreateOptions, error) {
	c := r.Spec
	img, err := d.image(c)
	if err != nil {
		return runtime.CreateOptions{}, err
	}
	rootfs, err := d.store.Mounts(r.ID)
	if errors.Is(err, store.ErrNotFound) {
		rootfs, err = d.store.Prepare(ctx, r.ID, img)
	}
	if err != nil {
		return runtime.CreateOptions{}, fmt.Errorf("rootfs: %w", err)
	}
	att, err := d.attach(ctx, r)
	if err != nil && d.repairNetworks(ctx, r) {
		att, err = d.attach(ctx, r)
	}
	if err != nil {
		return runtime.CreateOptions{}, fmt.Errorf("network: %w", err)
	}
	mounts, err := d.mounts(ctx, r, rootfs, att)
	if err != nil {
		return runtime.CreateOptions{}, err
	}
	in := specInput{Container: c, Image: img.Config.Config, ID: r.ID, Hostname: hostname(r), NetNS: att.NetnsPath, Mounts: mounts}
	if in.PIDNS, err = d.sharedNamespace(c, c.PID, "pid"); err != nil {
		return runtime.CreateOptions{}, err
	}
	if in.IPCNS, err = d.sharedNamespace(c, c.IPC, "ipc"); err != nil {
		return runtime.CreateOptions{}, err
	}
	spec, err := buildSpec(in)
	if err != nil {
		return runtime.CreateOptions{}, err
	}
	return runtime.CreateOptions{
		Bundle: d.containerDir(r.ID),
		// The log lives with the record, not the runtime state: it
		// survives restarts of the container and of the machine.
		LogPath:         filepath.Join(d.containerDir(r.ID), "container.log"),
		Spec:            spec,
		RootfsMounts:    rootfs,
		Restart:         restartPolicy(c.Restart),
		NoHealthRestart: c.NoHealthRestart,
		Healthcheck:     healthcheck(c.Healthcheck),
		Init:            c.Init,
		User:            firstOf(c.User, img.Config.Config.User),
	}, nil
}

// repairNetworks converges the container's networks again from their
// records when an attach failed: a removal killed between deleting a
// bridge and forgetting it leaves a network that is recorded but has no
// link. It reports whether anything was repaired, so the caller retries.
func (d *Driver) repairNetworks(ctx context.Context, r *record) bool {
	repaired := false
	for _, a := range r.Spec.Networks {
		info, err := d.net.Network(ctx, a.Network)
		if err != nil {
			continue
		}
		if _, err := d.net.EnsureNetwork(ctx, info.Spec); err == nil {
			repaired = true
		}
	}
	return repaired
}

func hostname(r *record) string {
	if r.Spec.Hostname != "" {
		return r.Spec.Hostname
	}
	return shortID(r.ID)
}

// attach converges the container's network endpoints and returns its
// namespace and files; service:/container: modes join another container's.
func (d *Driver) attach(ctx context.Context, r *record) (network.Attachment, error) {
	c := r.Spec
	mode := c.NetworkMode
	if target, ok := strings.CutPrefix(mode, "service:"); ok {
		other, err := d.serviceContainer(c.Project, target)
		if err != nil {
			return network.Attachment{}, err
		}
		mode = "container:" + other.ID
	} else if target, ok := strings.CutPrefix(mode, "container:"); ok {
		other, err := d.lookup(target)
		if err != nil {
			return network.Attachment{}, err
		}
		mode = "container:" + other.ID
	}
	return d.net.Attach(ctx, network.Endpoint{
		ID: r.ID, Name: r.Name, Project: c.Project, Service: endpointService(c),
		Hostname: hostname(r), Domainname: c.Domainname, NetworkMode: mode,
		Networks: c.Networks, Ports: d.publishedPorts(r), ExtraHosts: c.ExtraHosts,
		DNS: c.DNS, DNSSearch: c.DNSSearch, DNSOpt: c.DNSOpt, MacAddress: c.MacAddress,
	})
}

// serviceContainer finds a running container of a service of the project,
// the lowest-numbered first, for service: namespace sharing.
func (d *Driver) serviceContainer(project, service string) (*record, error) {
	recs, err := d.records()
	if err != nil {
		return nil, err
	}
	var best *record
	for _, r := range recs {
		if r.Spec.Project != project || r.Spec.Service != service || r.Spec.OneOff {
			continue
		}
		if st, err := d.rt.State(r.ID); err != nil || st.Status != runtime.StatusRunning {
			continue
		}
		if best == nil || r.Spec.Number < best.Spec.Number {
			best = r
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no running container of service %s: %w", service, driver.ErrNotFound)
	}
	return best, nil
}

// sharedNamespace resolves pid:/ipc: "service:X" and "container:X" to the
// namespace path of that container's process.
func (d *Driver) sharedNamespace(c state.ContainerSpec, mode, kind string) (string, error) {
	var other *record
	var err error
	if target, ok := strings.CutPrefix(mode, "service:"); ok {
		other, err = d.serviceContainer(c.Project, target)
	} else if target, ok := strings.CutPrefix(mode, "container:"); ok {
		other, err = d.lookup(target)
	} else {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s namespace %s: %w", kind, mode, err)
	}
	st, err := d.rt.State(other.ID)
	if err != nil || st.Pid == 0 {
		return "", fmt.Errorf("%s namespace %s: container is not running: %w", kind, mode, driver.ErrNotFound)
	}
	return filepath.Join("/proc", strconv.Itoa(st.Pid), "ns", kind), nil
}

func restartPolicy(s string) runtime.RestartPolicy {
	name, max, _ := strings.Cut(s, ":")
	n, _ := strconv.Atoi(max)
	if name == "" {
		name = "no"
	}
	return runtime.RestartPolicy{Name: name, MaxRetries: n}
}

func healthcheck(h *state.Healthcheck) *runtime.Healthcheck {
	if h == nil || h.Disable || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil
	}
	return &runtime.Healthcheck{
		Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod,
		StartInterval: h.StartInterval, Retries: h.Retries,
	}
}

// StopContainer stops a running container with its stop signal and grace
// period, then releases its network endpoints; stopping a stopped or
// missing container is a no-op.
func (d *Driver) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	r, err := d.readRecord(id)
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	stopped := false
	if st, err := d.rt.State(id); err == nil && (st.Status == runtime.StatusRunning || st.Status == runtime.StatusPaused || st.Status == runtime.StatusCreated) {
		stopped = true
		sig, err := stopSignal(r)
		if err != nil {
			return err
		}
		d.preStop(ctx, r, timeout)
		if err := d.drain(ctx, r); err != nil {
			return fmt.Errorf("stop %s: unpublish ports: %w", r.Name, err)
		}
		d.finishConnections(ctx, r, timeout)
		if err := d.rt.Stop(ctx, id, sig, timeout); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			return fmt.Errorf("stop %s: %w", r.Name, err)
		}
	}
	// A container set aside is replaced: its sandbox is kept for its
	// successor (network/handover.go), and removed with it otherwise.
	sandbox := d.net.RemoveSandbox
	if aside(r) {
		sandbox = d.net.Park
	}
	if err := sandbox(ctx, id); err != nil {
		return fmt.Errorf("stop %s: network: %w", r.Name, err)
	}
	if stopped { // a no-op stop of a stopped container is no event
		d.event(r, "stop", "")
	}
	return nil
}

func stopSignal(r *record) (syscall.Signal, error) {
	if r.Spec.StopSignal == "" {
		return syscall.SIGTERM, nil
	}
	sig, err := runtime.ParseSignal(r.Spec.StopSignal)
	if err != nil {
		return 0, fmt.Errorf("container %s: stop signal: %v: %w", r.Name, err, driver.ErrInvalid)
	}
	return sig, nil
}

// WaitContainer polls the runtime's state until the condition holds or can
// no longer hold (see driver.Driver).
func (d *Driver) WaitContainer(ctx context.Context, id, condition string) error {
	r, err := d.readRecord(id)
	if err != nil {
		return err
	}
	if condition == driver.WaitHealthy && healthcheck(r.Spec.Healthcheck) == nil {
		return fmt.Errorf("container %s has no healthcheck: %w", r.Name, driver.ErrInvalid)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	// The state file is written by the monitor; one that died (killed,
	// OOM) updates nothing until a request starts another, which adopts
	// the container. Pinging now and then is that request.
	nextPing := time.Now().Add(time.Second)
	for {
		if time.Now().After(nextPing) {
			if err := d.rt.Ping(ctx); err != nil {
				return fmt.Errorf("wait for %s: %w", r.Name, err)
			}
			nextPing = time.Now().Add(time.Second)
		}
		st, err := d.rt.State(id)
		if err == nil {
			done, err := reached(r, st, condition)
			if done && err == nil && st.Status == runtime.StatusRunning {
				err = d.publish(ctx, r)
			}
			if done || err != nil {
				return err
			}
		} else if !errors.Is(err, runtime.ErrNotFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func reached(r *record, st *runtime.State, condition string) (bool, error) {
	// The monitor records the exit status just after the process ends:
	// until Finished is set, the exit code is not known yet.
	exited := st.Status == runtime.StatusStopped && !st.Finished.IsZero() && !restarting(st)
	switch condition {
	case driver.WaitRunning:
		if st.Status == runtime.StatusRunning || !st.Started.IsZero() {
			return true, nil
		}
	case driver.WaitHealthy:
		if st.Health != nil && st.Health.Status == state.HealthHealthy && st.Status == runtime.StatusRunning {
			return true, nil
		}
		if st.Health != nil && st.Health.Status == state.HealthUnhealthy {
			return false, fmt.Errorf("container %s is unhealthy", r.Name)
		}
		if exited {
			return false, fmt.Errorf("container %s exited (%d) before becoming healthy", r.Name, st.ExitCode)
		}
	case driver.WaitExitedSuccessfully:
		if exited && st.ExitCode == 0 {
			return true, nil
		}
		if exited {
			return false, fmt.Errorf("container %s exited with code %d", r.Name, st.ExitCode)
		}
	default:
		return false, fmt.Errorf("unknown wait condition %q: %w", condition, driver.ErrInvalid)
	}
	return false, nil
}
