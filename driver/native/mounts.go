package native

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/volume"
)

// mounts turns the container's volumes, binds, tmpfs, configs, secrets and
// network files into runtime mounts, in the order they must be mounted.
func (d *Driver) mounts(ctx context.Context, r *record, rootfs []specs.Mount, att network.Attachment) ([]specs.Mount, error) {
	var out []specs.Mount
	var populate []populateJob
	for i, m := range r.Spec.Mounts {
		switch m.Type {
		case state.MountBind:
			src, err := volume.ResolveBind(m.Source, m.CreateHostPath)
			if err != nil {
				return nil, err
			}
			out = append(out, bindMount(src, m.Target, m.ReadOnly, m.Propagation))
		case state.MountVolume:
			name, err := d.volumeFor(ctx, r, i, m)
			if err != nil {
				return nil, err
			}
			path, err := d.vols.Path(ctx, name)
			if err != nil {
				return nil, err
			}
			if v, err := d.vols.Inspect(ctx, name); err == nil && !v.Populated && !m.NoCopy {
				populate = append(populate, populateJob{volume: name, target: m.Target})
			}
			out = append(out, bindMount(path, m.Target, m.ReadOnly, m.Propagation))
		case state.MountTmpfs:
			opts := []string{"nosuid", "nodev"}
			if m.TmpfsSize > 0 {
				opts = append(opts, "size="+strconv.FormatInt(m.TmpfsSize, 10))
			}
			if m.TmpfsMode != 0 {
				opts = append(opts, "mode="+strconv.FormatUint(uint64(m.TmpfsMode), 8))
			}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			out = append(out, specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: m.Target, Options: opts})
		default:
			return nil, fmt.Errorf("mount %s: unknown type %q", m.Target, m.Type)
		}
	}
	if len(populate) > 0 {
		if err := d.populateVolumes(ctx, r.ID, rootfs, populate); err != nil {
			return nil, err
		}
	}
	files, err := d.writeFiles(r)
	if err != nil {
		return nil, err
	}
	out = append(out, files...)
	for _, f := range []struct{ src, dst string }{
		{att.HostsPath, "/etc/hosts"}, {att.ResolvConfPath, "/etc/resolv.conf"}, {att.HostnamePath, "/etc/hostname"},
	} {
		if f.src != "" {
			out = append(out, bindMount(f.src, f.dst, false, ""))
		}
	}
	return out, nil
}

func bindMount(src, dst string, ro bool, propagation string) specs.Mount {
	opts := []string{"rbind"}
	if ro {
		opts = append(opts, "ro")
	}
	if propagation == "" {
		propagation = "rprivate"
	}
	opts = append(opts, propagation)
	return specs.Mount{Type: "bind", Source: src, Destination: dst, Options: opts}
}

// volumeFor returns the named volume of a mount, creating the container's
// anonymous volume when the mount names none.
//
// A service replica's anonymous volume is named after the project, service,
// replica number and target, not the container: compose carries anonymous
// volumes over to the container that replaces one, and so does berth (a
// recreate is stop, remove, create, so the new container finds the old
// one's volume by name). They outlive down too and go with down -v, which
// removes every volume of the project. A one-off container's are its own
// and go with it.
func (d *Driver) volumeFor(ctx context.Context, r *record, i int, m state.Mount) (string, error) {
	if m.Source != "" {
		return m.Source, nil
	}
	owner := r.ID
	if !r.Spec.OneOff {
		owner = r.Spec.Project + "/" + r.Spec.Service + "/" + strconv.Itoa(r.Spec.Number)
	}
	sum := sha256.Sum256([]byte(owner + "\x00" + m.Target))
	name := hex.EncodeToString(sum[:])
	_, err := d.vols.Create(ctx, volume.Spec{Name: name, Labels: map[string]string{
		state.LabelProject: r.Spec.Project, labelAnonymous: owner,
	}})
	if err != nil && !errors.Is(err, volume.ErrExists) {
		return "", fmt.Errorf("anonymous volume for %s: %w", m.Target, err)
	}
	return name, nil
}

type populateJob struct{ volume, target string }

// populateDir is where a container's rootfs is mounted while volumes are
// filled from it: a fixed place under the run root, so that a mount a
// killed berth left is found again (by the next populate or the removal).
func (d *Driver) populateDir(id string) string {
	return filepath.Join(d.opt.RunRoot, "populate", id)
}

// unpopulate removes a populate mount a killed berth may have left.
func (d *Driver) unpopulate(id string) {
	dir := d.populateDir(id)
	unix.Unmount(dir, unix.MNT_DETACH)
	os.Remove(dir)
}

// populateVolumes fills new volumes with what the image has at their
// target, as Docker does: the rootfs is mounted once, read, and unmounted
// before the container starts.
func (d *Driver) populateVolumes(ctx context.Context, id string, rootfs []specs.Mount, jobs []populateJob) error {
	if len(rootfs) != 1 || rootfs[0].Type != "overlay" {
		return fmt.Errorf("populate volumes: unexpected rootfs mounts %v", rootfs)
	}
	d.unpopulate(id)
	dir := d.populateDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	defer os.Remove(dir)
	m := rootfs[0]
	data := ""
	for i, o := range m.Options {
		if i > 0 {
			data += ","
		}
		data += o
	}
	if err := runtime.ClearVolatile(m); err != nil {
		return fmt.Errorf("populate volumes: %w", err)
	}
	if err := unix.Mount("overlay", dir, "overlay", unix.MS_RDONLY, data); err != nil {
		return fmt.Errorf("populate volumes: mount rootfs: %w", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	for _, j := range jobs {
		src := filepath.Join(dir, j.target)
		err := d.vols.Populate(ctx, j.volume, func(path string) error {
			if fi, err := os.Lstat(src); err == nil && fi.IsDir() {
				return volume.CopyTree(src, path)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("populate volume %s from %s: %w", j.volume, j.target, err)
		}
	}
	return nil
}

// writeFiles materialises configs and secrets under the container's
// directory and returns read-only binds of them.
func (d *Driver) writeFiles(r *record) ([]specs.Mount, error) {
	if len(r.Spec.Files) == 0 {
		return nil, nil
	}
	dir := filepath.Join(d.containerDir(r.ID), "files")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var out []specs.Mount
	for i, f := range r.Spec.Files {
		content := f.Content
		if f.Source != "" {
			b, err := os.ReadFile(f.Source)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", f.Kind, f.Name, err)
			}
			content = b
		}
		mode := os.FileMode(f.Mode)
		if mode == 0 {
			mode = 0o444
		}
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(p+".tmp", content, mode); err != nil {
			return nil, err
		}
		if err := os.Chmod(p+".tmp", mode); err != nil {
			return nil, err
		}
		uid, _ := strconv.Atoi(f.UID)
		gid, _ := strconv.Atoi(f.GID)
		if err := os.Chown(p+".tmp", uid, gid); err != nil {
			return nil, err
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			return nil, err
		}
		out = append(out, bindMount(p, f.Target, true, ""))
	}
	return out, nil
}
