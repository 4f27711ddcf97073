// Package native is the driver that acts on the real machine: it joins the
// layer store, the runtime, the network layer and volumes behind
// driver.Driver.
//
// A container is a record on disk (<root>/containers/<id>/record.json)
// written before anything else exists, so that a crash at any point leaves a
// container the reconciler sees and can remove. Its rootfs snapshot, network
// sandbox and runtime container are made when it starts and are each removed
// idempotently, record last.
package native

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/topdir"
	"github.com/berth-dev/berth/volume"
)

// Options say where the driver keeps its state.
type Options struct {
	Root    string // persistent state (/var/lib/berth)
	RunRoot string // runtime state (/run/berth)
	// Build builds an image for a service with a build: section; nil means
	// images can only be pulled or found in the store.
	Build func(ctx context.Context, s state.ImageSpec) (state.ImageRef, error)
	// Registry are the options of pulls.
	Registry store.RegistryOptions
	// Network are the network layer's options; Root and RunRoot default
	// to the driver's.
	Network network.Options
}

var _ driver.Driver = (*Driver)(nil)

// Driver is the native driver.
type Driver struct {
	opt   Options
	store *store.Store
	rt    *runtime.Runtime
	net   *network.Manager
	vols  *volume.Manager
	// names serialises name checks within this process; nameLock (a flock)
	// does across processes.
	names sync.Mutex
	index *nameIndex // guarded by names
}

// New opens every layer under the roots.
func New(opt Options) (*Driver, error) {
	if opt.Root == "" || opt.RunRoot == "" {
		return nil, errors.New("native driver: Root and RunRoot are required")
	}
	st, err := store.Open(opt.Root)
	if err != nil {
		return nil, err
	}
	rt, err := runtime.New(filepath.Join(opt.RunRoot, "runtime"))
	if err != nil {
		return nil, err
	}
	nopt := opt.Network
	if nopt.Root == "" {
		nopt.Root, nopt.RunRoot = opt.Root, opt.RunRoot
	}
	nm, err := network.New(nopt)
	if err != nil {
		return nil, err
	}
	if err := topdir.MkdirAll(filepath.Join(opt.Root, "containers"), 0o700); err != nil {
		return nil, err
	}
	return &Driver{opt: opt, store: st, rt: rt, net: nm, vols: volume.New(opt.Root)}, nil
}

// Close releases handles; nothing on the machine changes.
func (d *Driver) Close() error { return d.net.Close() }

// Store, Runtime, Network and Volumes give the commands that are not plan
// operations (images, logs, exec, volume ls) the same layers.
func (d *Driver) Store() *store.Store           { return d.store }
func (d *Driver) Runtime() *runtime.Runtime     { return d.rt }
func (d *Driver) Network() *network.Manager     { return d.net }
func (d *Driver) Volumes() *volume.Manager      { return d.vols }
func (d *Driver) containersDir() string         { return filepath.Join(d.opt.Root, "containers") }
func (d *Driver) containerDir(id string) string { return filepath.Join(d.containersDir(), id) }

func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
