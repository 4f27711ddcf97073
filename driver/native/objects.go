package native

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/volume"
)

// Labels berth adds to volumes for what compose's labels do not carry.
const (
	labelVolumeHash = "org.berth.config-hash"
	labelAnonymous  = "org.berth.anonymous-for" // project/service/number (or a one-off's id) owning an anonymous volume
)

// CreateNetwork creates a project network; ErrAlreadyExists when present.
// External networks must exist already and are never created.
func (d *Driver) CreateNetwork(ctx context.Context, s state.NetworkSpec) error {
	if _, err := d.net.Network(ctx, s.Name); err == nil {
		return fmt.Errorf("network %s: %w", s.Name, driver.ErrAlreadyExists)
	} else if !errors.Is(err, network.ErrNotFound) {
		return err
	}
	if s.External {
		return fmt.Errorf("external network %s: %w", s.Name, driver.ErrNotFound)
	}
	_, err := d.net.EnsureNetwork(ctx, s)
	return wrap(err, "create network %s", s.Name)
}

// RemoveNetwork removes a network; a missing one is nil.
func (d *Driver) RemoveNetwork(ctx context.Context, name string) error {
	err := d.net.RemoveNetwork(ctx, name)
	if errors.Is(err, network.ErrNotFound) {
		return nil
	}
	return wrap(err, "remove network %s", name)
}

// CreateVolume creates a named volume; ErrAlreadyExists when present.
func (d *Driver) CreateVolume(ctx context.Context, s state.VolumeSpec) error {
	if s.External {
		if _, err := d.vols.Inspect(ctx, s.Name); err != nil {
			return fmt.Errorf("external volume %s: %w", s.Name, driver.ErrNotFound)
		}
		return fmt.Errorf("volume %s: %w", s.Name, driver.ErrAlreadyExists)
	}
	labels := map[string]string{labelVolumeHash: s.Hash, state.LabelProject: s.Project, state.LabelVolume: s.Key}
	for k, v := range s.Labels {
		labels[k] = v
	}
	_, err := d.vols.Create(ctx, volume.Spec{Name: s.Name, Driver: s.Driver, DriverOpts: s.DriverOpts, Labels: labels})
	if errors.Is(err, volume.ErrExists) {
		return fmt.Errorf("volume %s: %w", s.Name, driver.ErrAlreadyExists)
	}
	return wrap(err, "create volume %s", s.Name)
}

// RemoveVolume removes a volume and its content; a missing one is nil.
func (d *Driver) RemoveVolume(ctx context.Context, name string) error {
	return wrap(d.vols.Remove(ctx, name), "remove volume %s", name)
}

// EnsureImage finds, pulls or builds the image as the pull policy says.
func (d *Driver) EnsureImage(ctx context.Context, s state.ImageSpec) (state.ImageRef, error) {
	policy := s.PullPolicy
	if policy == "" {
		policy = "missing"
	}
	build := func() (state.ImageRef, error) {
		if s.Build == nil {
			return state.ImageRef{}, fmt.Errorf("image %s: pull_policy build without a build section: %w", s.Ref, driver.ErrInvalid)
		}
		if d.opt.Build == nil {
			return state.ImageRef{}, fmt.Errorf("image %s: building is not available here: %w", s.Ref, driver.ErrInvalid)
		}
		return d.opt.Build(ctx, s)
	}
	pull := func() (state.ImageRef, error) {
		img, err := d.store.Pull(ctx, s.Ref, d.opt.Registry)
		if err != nil {
			return state.ImageRef{}, fmt.Errorf("pull %s: %w", s.Ref, err)
		}
		return state.ImageRef{Ref: s.Ref, Digest: img.ID().String()}, nil
	}
	if policy == "build" {
		return build()
	}
	if policy == "always" {
		if s.Build != nil {
			return build()
		}
		return pull()
	}
	if img, err := d.store.Resolve(s.Ref); err == nil {
		return state.ImageRef{Ref: s.Ref, Digest: img.ID().String()}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return state.ImageRef{}, err
	}
	switch {
	case policy == "never":
		return state.ImageRef{}, fmt.Errorf("image %s is not in the store and pull_policy is never: %w", s.Ref, driver.ErrNotFound)
	case s.Build != nil:
		return build()
	default:
		return pull()
	}
}
