package native

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/store"
)

// CreateContainer checks that what the container needs exists and records
// it. Nothing else is made until it starts, so a failed or interrupted
// create leaves either no container or one that StartContainer completes.
func (d *Driver) CreateContainer(ctx context.Context, s state.ContainerSpec) (string, error) {
	if s.Name == "" {
		return "", fmt.Errorf("container without a name: %w", driver.ErrInvalid)
	}
	img, err := d.checkRefs(ctx, s)
	if err != nil {
		return "", err
	}
	r := &record{ID: newID(), Name: s.Name, Spec: s, Created: time.Now().UTC()}
	if r.Spec.Labels == nil {
		r.Spec.Labels = map[string]string{}
	}
	r.Spec.Labels[state.LabelImage] = s.ImageDigest
	d.imageDefaults(&r.Spec, img)
	tmp, err := d.prepareRecord(r)
	if err != nil {
		return "", err
	}
	if err := d.commitNamed(tmp, r); err != nil {
		return "", err
	}
	if from := s.Labels[state.LabelSandboxFrom]; from != "" {
		if err := d.adoptSandbox(ctx, r, from); err != nil {
			return "", fmt.Errorf("container %s: network sandbox of %s: %w", s.Name, shortID(from), err)
		}
	}
	d.event(r, "create", "")
	return r.ID, nil
}

// adoptSandbox gives r the network sandbox container from kept when it
// stopped (network.Manager.Adopt), when both use it alike: their own
// namespace, the same network sysctls (the namespace keeps what the old
// one's were set to). Otherwise r gets its own at its start, as always.
func (d *Driver) adoptSandbox(ctx context.Context, r *record, from string) error {
	old, err := d.readRecord(from)
	if err != nil {
		return nil // gone: nothing to take over
	}
	if !ownNetns(old.Spec.NetworkMode) || !ownNetns(r.Spec.NetworkMode) || !maps.Equal(netSysctls(old.Spec), netSysctls(r.Spec)) {
		return nil
	}
	_, err = d.net.Adopt(ctx, from, r.ID)
	return err
}

// ownNetns tells a network mode in which a container has a namespace of
// its own.
func ownNetns(mode string) bool {
	return mode == "" || mode == "bridge" || mode == "default"
}

func netSysctls(s state.ContainerSpec) map[string]string {
	out := map[string]string{}
	for k, v := range s.Sysctls {
		if strings.HasPrefix(k, "net.") {
			out[k] = v
		}
	}
	return out
}

// checkRefs fails with ErrNotFound when an image, network or volume the
// container names does not exist; it returns the image.
func (d *Driver) checkRefs(ctx context.Context, s state.ContainerSpec) (*store.Image, error) {
	img, err := d.image(s)
	if err != nil {
		return nil, err
	}
	for _, a := range s.Networks {
		if _, err := d.net.Network(ctx, a.Network); errors.Is(err, network.ErrNotFound) {
			return nil, fmt.Errorf("container %s: network %s: %w", s.Name, a.Network, driver.ErrNotFound)
		} else if err != nil {
			return nil, err
		}
	}
	for _, m := range s.Mounts {
		if m.Type != state.MountVolume || m.Source == "" {
			continue
		}
		if _, err := d.vols.Inspect(ctx, m.Source); err != nil {
			return nil, fmt.Errorf("container %s: volume %s: %w", s.Name, m.Source, driver.ErrNotFound)
		}
	}
	return img, nil
}

// image resolves the container's image, by digest when the executor gave
// one (the tag may have moved since).
func (d *Driver) image(s state.ContainerSpec) (*store.Image, error) {
	ref := s.Image
	if s.ImageDigest != "" {
		ref = s.ImageDigest
	}
	img, err := d.store.Resolve(ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("container %s: image %s: %w", s.Name, ref, driver.ErrNotFound)
	}
	return img, err
}

// RemoveContainer kills and deletes the container, its sandbox, snapshot,
// anonymous volumes and record, in that order; each step is idempotent so
// an interrupted removal is finished by the next one.
func (d *Driver) RemoveContainer(ctx context.Context, id string) error {
	r, err := d.readRecord(id)
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := d.rt.Delete(ctx, id, true); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("remove container %s: %w", r.Name, err)
	}
	if err := d.net.RemoveSandbox(ctx, id); err != nil {
		return fmt.Errorf("remove container %s: network: %w", r.Name, err)
	}
	d.unpopulate(id)
	if err := d.store.RemoveSnapshot(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("remove container %s: snapshot: %w", r.Name, err)
	}
	if err := d.removeAnonymousVolumes(ctx, id); err != nil {
		return err
	}
	if err := d.removeDir(id); err != nil {
		return err
	}
	d.event(r, "destroy", "")
	return nil
}

func (d *Driver) removeAnonymousVolumes(ctx context.Context, id string) error {
	vols, err := d.vols.List(ctx)
	if err != nil {
		return err
	}
	for _, v := range vols {
		if v.Labels[labelAnonymous] == id {
			if err := d.vols.Remove(ctx, v.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// RenameContainer renames a container (and its DNS name when it runs).
func (d *Driver) RenameContainer(ctx context.Context, id, name string) error {
	unlock, err := d.lockNames()
	if err != nil {
		return err
	}
	defer unlock()
	r, err := d.readRecord(id)
	if err != nil {
		return err
	}
	if r.Name == name {
		return nil
	}
	if taken, err := d.nameTaken(name, id); err != nil {
		return err
	} else if taken {
		return fmt.Errorf("container name %s: %w", name, driver.ErrAlreadyExists)
	}
	r.Name, r.Spec.Name = name, name
	// A name set aside only frees the replica's name for a successor, not
	// flushed: an fsync right after a burst of writes waited for all of
	// them (6 to 30 ms of a recreate's). Lost to a power cut, the rename
	// leaves two containers of one replica under its name, and the next
	// up keeps one (the planner's dedupe) and removes the other.
	if err := d.writeRecordSync(r, !aside(r)); err != nil {
		return err
	}
	if err := d.nameAdded(name, id); err != nil {
		return err
	}
	// A successor renamed into place is the service's container now: its
	// ports are published whatever happened to the wait before. One set
	// aside for a rollback (see aside) is published again only once a
	// wait on it succeeds or it gets a name of its own back.
	if err := d.setMarker(id, markPublished, !aside(r)); err != nil {
		return err
	}
	if aside(r) {
		// Set aside on its way out (its stop follows, which takes its
		// names and ports away): its network is left as it is until then.
		return nil
	}
	if st, err := d.rt.State(id); err == nil && st.Status == runtime.StatusRunning {
		if _, err := d.attach(ctx, r); err != nil {
			return fmt.Errorf("rename %s: network names: %w", name, err)
		}
	}
	return nil
}

// Anticipate tells the runtime that a container like id (the same
// namespaces) is about to be created, so that an init for it starts ahead
// (runtime.Runtime.Anticipate). Best effort: it changes nothing visible.
func (d *Driver) Anticipate(ctx context.Context, id string) error {
	return d.rt.Anticipate(ctx, id)
}
