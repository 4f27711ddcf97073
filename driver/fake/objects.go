package fake

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// CreateNetwork implements driver.Driver.
func (d *Driver) CreateNetwork(ctx context.Context, s state.NetworkSpec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("CreateNetwork", s.Name); err != nil {
		return err
	}
	if s.Name == "" {
		return fmt.Errorf("network without a name: %w", driver.ErrInvalid)
	}
	if _, ok := d.networks[s.Name]; ok {
		return fmt.Errorf("network %s: %w", s.Name, driver.ErrAlreadyExists)
	}
	labels := copyMap(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if s.Project != "" {
		labels[state.LabelProject] = s.Project
	}
	if s.Key != "" {
		labels[state.LabelNetwork] = s.Key
	}
	d.seq++
	d.networks[s.Name] = state.Network{Name: s.Name, ID: fmt.Sprintf("net%04d", d.seq), Hash: s.Hash, Labels: labels}
	d.notify()
	return nil
}

// RemoveNetwork implements driver.Driver; a network with containers
// attached cannot be removed, as on a real machine.
func (d *Driver) RemoveNetwork(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("RemoveNetwork", name); err != nil {
		return err
	}
	if _, ok := d.networks[name]; !ok {
		return nil
	}
	for _, c := range d.containers {
		for _, n := range c.obs.Networks {
			if n == name {
				return fmt.Errorf("network %s is in use by container %s", name, c.obs.Name)
			}
		}
	}
	delete(d.networks, name)
	d.notify()
	return nil
}

// CreateVolume implements driver.Driver.
func (d *Driver) CreateVolume(ctx context.Context, s state.VolumeSpec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("CreateVolume", s.Name); err != nil {
		return err
	}
	if s.Name == "" {
		return fmt.Errorf("volume without a name: %w", driver.ErrInvalid)
	}
	if _, ok := d.volumes[s.Name]; ok {
		return fmt.Errorf("volume %s: %w", s.Name, driver.ErrAlreadyExists)
	}
	labels := copyMap(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if s.Project != "" {
		labels[state.LabelProject] = s.Project
	}
	if s.Key != "" {
		labels[state.LabelVolume] = s.Key
	}
	d.volumes[s.Name] = state.Volume{Name: s.Name, Hash: s.Hash, Labels: labels, Mountpoint: "/fake/volumes/" + s.Name}
	d.notify()
	return nil
}

// RemoveVolume implements driver.Driver; a volume mounted by a container
// cannot be removed.
func (d *Driver) RemoveVolume(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("RemoveVolume", name); err != nil {
		return err
	}
	if _, ok := d.volumes[name]; !ok {
		return nil
	}
	for _, c := range d.containers {
		for _, m := range c.spec.Mounts {
			if m.Type == state.MountVolume && m.Source == name {
				return fmt.Errorf("volume %s is in use by container %s", name, c.obs.Name)
			}
		}
	}
	delete(d.volumes, name)
	d.notify()
	return nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func copyContainer(c state.Container) state.Container {
	c.Labels = copyMap(c.Labels)
	c.Networks = append([]string(nil), c.Networks...)
	return c
}
