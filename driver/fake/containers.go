package fake

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// CreateContainer implements driver.Driver. The image digest must be in the
// store, every attached network and named volume must exist, and a
// service:X network mode needs a container of service X.
func (d *Driver) CreateContainer(ctx context.Context, s state.ContainerSpec) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("CreateContainer", s.Name); err != nil {
		return "", err
	}
	if s.Name == "" {
		return "", fmt.Errorf("container without a name: %w", driver.ErrInvalid)
	}
	if d.byName(s.Name) != nil {
		return "", fmt.Errorf("container %s: %w", s.Name, driver.ErrAlreadyExists)
	}
	if !d.hasDigest(s.ImageDigest) {
		return "", fmt.Errorf("container %s: image %q (%s): %w", s.Name, s.Image, s.ImageDigest, driver.ErrNotFound)
	}
	var nets []string
	for _, a := range s.Networks {
		if _, ok := d.networks[a.Network]; !ok {
			return "", fmt.Errorf("container %s: network %s: %w", s.Name, a.Network, driver.ErrNotFound)
		}
		nets = append(nets, a.Network)
	}
	for _, m := range s.Mounts {
		if m.Type != state.MountVolume || m.Source == "" {
			continue
		}
		if _, ok := d.volumes[m.Source]; !ok {
			return "", fmt.Errorf("container %s: volume %s: %w", s.Name, m.Source, driver.ErrNotFound)
		}
	}
	var joined string
	if svc, ok := strings.CutPrefix(s.NetworkMode, "service:"); ok {
		j := d.serviceContainer(s.Project, svc)
		if j == nil {
			return "", fmt.Errorf("container %s: network_mode %s: %w", s.Name, s.NetworkMode, driver.ErrNotFound)
		}
		joined = j.obs.ID
	}
	d.seq++
	id := fmt.Sprintf("c%011d", d.seq)
	labels := copyMap(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[state.LabelImage] = s.ImageDigest
	s.Labels = labels
	d.containers[id] = &container{
		spec:   s,
		joined: joined,
		obs: state.Container{
			ID: id, Name: s.Name, Project: s.Project, Service: s.Service, Number: s.Number,
			OneOff: s.OneOff, ConfigHash: s.ConfigHash, ImageDigest: s.ImageDigest, Image: s.Image,
			Labels: copyMap(labels), Status: state.StatusCreated, Created: d.tick(), Networks: nets,
		},
	}
	d.notify()
	return id, nil
}

func (d *Driver) hasDigest(dg string) bool {
	for _, im := range d.images {
		if im.Digest == dg {
			return true
		}
	}
	return false
}

func (d *Driver) serviceContainer(project, service string) *container {
	var best *container
	for _, c := range d.containers {
		if c.obs.Project == project && c.obs.Service == service && !c.obs.OneOff {
			up, bestUp := c.obs.Status == state.StatusRunning, best != nil && best.obs.Status == state.StatusRunning
			if best == nil || (up && !bestUp) || (up == bestUp && c.obs.Number < best.obs.Number) {
				best = c
			}
		}
	}
	return best
}

// StartContainer implements driver.Driver.
func (d *Driver) StartContainer(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("StartContainer", d.objectName(id)); err != nil {
		return err
	}
	c, ok := d.containers[id]
	if !ok {
		return fmt.Errorf("container %s: %w", id, driver.ErrNotFound)
	}
	if c.obs.Status == state.StatusRunning {
		return nil
	}
	if c.joined != "" {
		j, ok := d.containers[c.joined]
		if !ok || j.obs.Status != state.StatusRunning {
			return fmt.Errorf("container %s: the container whose network namespace it joins is not running", c.obs.Name)
		}
	}
	c.obs.Status = state.StatusRunning
	c.obs.StartedAt = d.tick()
	c.obs.FinishedAt = time.Time{}
	c.obs.ExitCode = 0
	c.obs.Pid = 1000 + d.seq
	c.obs.Health = state.HealthNone
	if hc := c.spec.Healthcheck; hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		switch {
		case len(hc.Test) == 2 && hc.Test[1] == "false":
			c.obs.Health = state.HealthUnhealthy
		case d.AutoHealthy:
			c.obs.Health = state.HealthHealthy
		default:
			c.obs.Health = state.HealthStarting
		}
	}
	if code, ok := exitsAtOnce(c.spec.Command); ok {
		d.exit(c, code)
	}
	d.notify()
	return nil
}

// exitsAtOnce recognises the commands that model one-shot jobs.
func exitsAtOnce(cmd []string) (int, bool) {
	switch {
	case len(cmd) == 1 && cmd[0] == "true":
		return 0, true
	case len(cmd) == 1 && cmd[0] == "false":
		return 1, true
	case len(cmd) == 3 && cmd[0] == "sh" && cmd[1] == "-c" && strings.HasPrefix(cmd[2], "exit "):
		n, err := strconv.Atoi(strings.TrimPrefix(cmd[2], "exit "))
		return n, err == nil
	}
	return 0, false
}

// exit ends the container's process. Callers hold d.mu.
func (d *Driver) exit(c *container, code int) {
	if c.obs.Status != state.StatusRunning {
		return
	}
	c.obs.Status = state.StatusExited
	c.obs.ExitCode = code
	c.obs.FinishedAt = d.tick()
	c.obs.Pid = 0
	d.notify()
}

// StopContainer implements driver.Driver: the container exits with 143, as
// a process killed by SIGTERM.
func (d *Driver) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("StopContainer", d.objectName(id)); err != nil {
		return err
	}
	c, ok := d.containers[id]
	if !ok {
		return nil
	}
	d.exit(c, 143)
	return nil
}

// RemoveContainer implements driver.Driver.
func (d *Driver) RemoveContainer(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("RemoveContainer", d.objectName(id)); err != nil {
		return err
	}
	if _, ok := d.containers[id]; !ok {
		return nil
	}
	delete(d.containers, id)
	d.notify()
	return nil
}

// RenameContainer implements driver.Driver.
func (d *Driver) RenameContainer(ctx context.Context, id, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("RenameContainer", d.objectName(id)); err != nil {
		return err
	}
	c, ok := d.containers[id]
	if !ok {
		return fmt.Errorf("container %s: %w", id, driver.ErrNotFound)
	}
	if c.obs.Name == name {
		return nil
	}
	if name == "" {
		return fmt.Errorf("empty container name: %w", driver.ErrInvalid)
	}
	if d.byName(name) != nil {
		return fmt.Errorf("container %s: %w", name, driver.ErrAlreadyExists)
	}
	c.obs.Name = name
	c.spec.Name = name
	d.notify()
	return nil
}

// WaitContainer implements driver.Driver.
func (d *Driver) WaitContainer(ctx context.Context, id, condition string) error {
	d.mu.Lock()
	err := d.call("WaitContainer", d.objectName(id))
	d.mu.Unlock()
	if err != nil {
		return err
	}
	for {
		d.mu.Lock()
		done, err := d.reached(id, condition)
		changed := d.changed
		d.mu.Unlock()
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// reached says whether the wait is over. Callers hold d.mu.
func (d *Driver) reached(id, condition string) (bool, error) {
	c, ok := d.containers[id]
	if !ok {
		return false, fmt.Errorf("container %s: %w", id, driver.ErrNotFound)
	}
	o := c.obs
	exited := o.Status == state.StatusExited || o.Status == state.StatusDead
	switch condition {
	case driver.WaitRunning:
		if o.Status == state.StatusRunning || !o.StartedAt.IsZero() {
			return true, nil
		}
	case driver.WaitHealthy:
		hc := c.spec.Healthcheck
		if hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
			return false, fmt.Errorf("container %s has no healthcheck: %w", o.Name, driver.ErrInvalid)
		}
		switch {
		case o.Health == state.HealthHealthy && o.Status == state.StatusRunning:
			return true, nil
		case o.Health == state.HealthUnhealthy:
			return false, fmt.Errorf("container %s is unhealthy", o.Name)
		case exited:
			return false, fmt.Errorf("container %s exited (%d) before it was healthy", o.Name, o.ExitCode)
		}
	case driver.WaitExitedSuccessfully:
		if exited && o.ExitCode == 0 {
			return true, nil
		}
		if exited {
			return false, fmt.Errorf("container %s exited with status %d", o.Name, o.ExitCode)
		}
	default:
		return false, fmt.Errorf("unknown wait condition %q: %w", condition, driver.ErrInvalid)
	}
	return false, nil
}
