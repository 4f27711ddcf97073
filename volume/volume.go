// Package volume keeps berth's named volumes: local directories under the
// state root (or a device/bind given by driver_opts), with their labels and
// options recorded beside them so that a later berth reads them back.
package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Errors, for errors.Is.
var (
	ErrExists   = errors.New("volume already exists")
	ErrNotFound = errors.New("no such volume")
	ErrInUse    = errors.New("volume is in use")
)

// Spec is what a volume is created from.
type Spec struct {
	Name       string
	Driver     string // "" or "local"
	DriverOpts map[string]string
	Labels     map[string]string
}

// Volume is a volume as stored.
type Volume struct {
	Spec
	CreatedAt  time.Time
	Mountpoint string
	// Populated records that the volume was filled from an image once, so
	// a later container never copies image content over user data.
	Populated bool
}

// Manager keeps the volumes under one directory.
type Manager struct {
	dir string
}

// New returns the manager for <root>/volumes.
func New(root string) *Manager { return &Manager{dir: filepath.Join(root, "volumes")} }

func (m *Manager) volDir(name string) string   { return filepath.Join(m.dir, name) }
func (m *Manager) metaPath(name string) string { return filepath.Join(m.dir, name, "volume.json") }

// Mountpoint is where a volume's content lives on the host.
func (m *Manager) Mountpoint(name string) string { return filepath.Join(m.dir, name, "_data") }

// ValidName reports whether name can be a volume name (as Docker's rule).
func ValidName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("invalid volume name %q", name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '_' || r == '.' || r == '-')
		if !ok {
			return fmt.Errorf("invalid volume name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] allowed", name)
		}
	}
	return nil
}

// Create makes a volume; ErrExists when one of that name is there.
func (m *Manager) Create(ctx context.Context, s Spec) (*Volume, error) {
	if err := ValidName(s.Name); err != nil {
		return nil, err
	}
	if s.Driver != "" && s.Driver != "local" {
		return nil, fmt.Errorf("volume %s: driver %q is not supported (only local)", s.Name, s.Driver)
	}
	if err := checkOpts(s.DriverOpts); err != nil {
		return nil, fmt.Errorf("volume %s: %w", s.Name, err)
	}
	if _, err := m.Inspect(ctx, s.Name); err == nil {
		return nil, fmt.Errorf("volume %s: %w", s.Name, ErrExists)
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, err
	}
	// Build in a temporary directory and rename: a crash leaves either no
	// volume or a whole one, never a volume without its metadata.
	tmp, err := os.MkdirTemp(m.dir, ".tmp-"+s.Name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Mkdir(filepath.Join(tmp, "_data"), 0o755); err != nil {
		return nil, err
	}
	v := &Volume{Spec: s, CreatedAt: time.Now().UTC()}
	if err := writeJSON(filepath.Join(tmp, "volume.json"), v); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, m.volDir(s.Name)); err != nil {
		if errors.Is(err, os.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			return nil, fmt.Errorf("volume %s: %w", s.Name, ErrExists)
		}
		return nil, err
	}
	v.Mountpoint = m.Mountpoint(s.Name)
	return v, nil
}

// Inspect reads one volume.
func (m *Manager) Inspect(_ context.Context, name string) (*Volume, error) {
	if ValidName(name) != nil {
		return nil, fmt.Errorf("volume %q: %w", name, ErrNotFound)
	}
	b, err := os.ReadFile(m.metaPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var v Volume
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("volume %s: corrupt metadata: %w", name, err)
	}
	v.Mountpoint = m.Mountpoint(name)
	return &v, nil
}

// List returns every volume, sorted by name.
func (m *Manager) List(ctx context.Context) ([]Volume, error) {
	ents, err := os.ReadDir(m.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Volume
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		v, err := m.Inspect(ctx, e.Name())
		if err != nil {
			continue // a half-removed directory is not a volume
		}
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a volume and its content; a missing volume is not an error.
func (m *Manager) Remove(_ context.Context, name string) error {
	if ValidName(name) != nil {
		return nil
	}
	m.clearLeftovers(name)
	dir := m.volDir(name)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// Unmount a device mounted by driver_opts, then rename away first so a
	// crash mid-removal leaves no volume that looks whole.
	_ = unix.Unmount(m.Mountpoint(name), unix.MNT_DETACH)
	// Never delete through a mount that is still there: it would erase the
	// device's own content.
	if mounted, err := isMountpoint(m.Mountpoint(name)); err != nil || mounted {
		return fmt.Errorf("volume %s: still mounted at %s: %w", name, m.Mountpoint(name), ErrInUse)
	}
	gone := filepath.Join(m.dir, ".rm-"+name+"-"+fmt.Sprint(time.Now().UnixNano()))
	if err := os.Rename(dir, gone); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}

// clearLeftovers deletes the side directories of this volume that a
// crash left: a create's .tmp-NAME-N (killed before its rename) and a
// removal's .rm-NAME-N (killed after its rename). Removing the volume is
// when the user asks for none of it to remain.
func (m *Manager) clearLeftovers(name string) {
	for _, prefix := range []string{".tmp-" + name + "-", ".rm-" + name + "-"} {
		ents, _ := filepath.Glob(filepath.Join(m.dir, prefix+"*"))
		for _, p := range ents {
			rest := strings.TrimPrefix(filepath.Base(p), prefix)
			if rest == "" || strings.Trim(rest, "0123456789") != "" {
				continue // another volume's (NAME-suffix): not ours
			}
			if mounted, err := isMountpoint(filepath.Join(p, "_data")); err == nil && !mounted {
				os.RemoveAll(p)
			}
		}
	}
}

// Prune removes every volume for which keep returns false and reports their names.
func (m *Manager) Prune(ctx context.Context, keep func(Volume) bool) ([]string, error) {
	vols, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, v := range vols {
		if keep(v) {
			continue
		}
		if err := m.Remove(ctx, v.Name); err != nil {
			return removed, err
		}
		removed = append(removed, v.Name)
	}
	return removed, nil
}

// Populate fills volume name once, from an image (fill gets its data
// directory), and records it: the first of the containers mounting a new
// volume fills it, and the others, which may start at the same moment
// (the demo's api and worker share one), find it filled. Serialised per
// volume across processes (a flock in the volume's directory).
func (m *Manager) Populate(ctx context.Context, name string, fill func(path string) error) error {
	if err := ValidName(name); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(m.volDir(name), "populate.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	v, err := m.Inspect(ctx, name)
	if err != nil || v.Populated {
		return err
	}
	if err := fill(m.Mountpoint(name)); err != nil {
		return err
	}
	v.Populated = true
	return writeJSON(m.metaPath(name), v)
}

// writeJSON replaces path with v's JSON, flushed: through a temporary file
// of its own, so that writers of one volume at once each rename a whole
// file (a shared temporary name made the second rename fail).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op once renamed
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
