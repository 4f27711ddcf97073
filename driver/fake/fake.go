// Package fake is an in-memory driver.Driver for tests. It keeps the same
// contract as a real driver (statuses, health, exit codes, the error
// contract, attachments that block removal) so that the reconciler can be
// proven against it, and adds knobs a test needs: health and exits set by
// hand, one-off injected failures, and a log of calls.
//
// Containers do not run anything. Starting one makes it running, except
// that a command of exactly ["true"], ["false"] or ["sh", "-c", "exit N"]
// exits at once with that status, so tests can model one-shot jobs. A
// container with an enabled healthcheck is healthy as soon as it starts
// (starting when AutoHealthy is false), unless its test is ["CMD", "false"],
// which makes it unhealthy.
package fake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// ErrInjected is the default error of FailOnce.
var ErrInjected = errors.New("injected failure")

// Call is one logged driver call: the method name and the object it acted
// on (image ref, network or volume name, container name).
type Call struct {
	Method string
	Object string
}

func (c Call) String() string { return c.Method + " " + c.Object }

type container struct {
	spec   state.ContainerSpec
	obs    state.Container
	joined string // id of the container whose network namespace it joins
}

type failure struct {
	method, object string
	err            error
}

// Driver is the in-memory driver. The zero value is not usable: call New.
type Driver struct {
	// AutoHealthy makes a started container with a healthcheck healthy at
	// once; when false it stays "starting" until SetHealth.
	AutoHealthy bool

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every mutation
	seq        int
	now        time.Time
	containers map[string]*container // by id
	networks   map[string]state.Network
	volumes    map[string]state.Volume
	images     map[string]state.ImageRef // by ref: the store
	registry   map[string]string         // ref -> digest a pull would get
	failures   []failure
	calls      []Call
}

// New returns an empty machine.
func New() *Driver {
	return &Driver{
		AutoHealthy: true,
		changed:     make(chan struct{}),
		now:         time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		containers:  map[string]*container{},
		networks:    map[string]state.Network{},
		volumes:     map[string]state.Volume{},
		images:      map[string]state.ImageRef{},
		registry:    map[string]string{},
	}
}

var _ driver.Driver = (*Driver)(nil)

// FailOnce makes the next call of method on object fail with err (ErrInjected
// when nil). The object is what Calls logs: image ref, network or volume
// name, container name.
func (d *Driver) FailOnce(method, object string, err error) {
	if err == nil {
		err = ErrInjected
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failures = append(d.failures, failure{method, object, err})
}

// Calls returns the calls made so far, in order.
func (d *Driver) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Call(nil), d.calls...)
}

// ResetCalls forgets the logged calls.
func (d *Driver) ResetCalls() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = nil
}

// Publish makes the registry serve digest for ref: the next pull of ref
// (pull policy always, or a missing image) gets it.
func (d *Driver) Publish(ref, digest string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.registry[ref] = digest
}

// SetHealth sets the health of the container with that name.
func (d *Driver) SetHealth(name, health string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.byName(name)
	if c == nil {
		return fmt.Errorf("container %s: %w", name, driver.ErrNotFound)
	}
	c.obs.Health = health
	d.notify()
	return nil
}

// Exit makes a running container exit with code, as if its process ended.
func (d *Driver) Exit(name string, code int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.byName(name)
	if c == nil {
		return fmt.Errorf("container %s: %w", name, driver.ErrNotFound)
	}
	d.exit(c, code)
	return nil
}

// Container returns what Observe would report for the named container.
func (d *Driver) Container(name string) (state.Container, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.byName(name)
	if c == nil {
		return state.Container{}, false
	}
	return copyContainer(c.obs), true
}

// call logs a call and returns the injected failure, if one is pending.
// Callers hold d.mu.
func (d *Driver) call(method, object string) error {
	d.calls = append(d.calls, Call{method, object})
	for i, f := range d.failures {
		if f.method == method && f.object == object {
			d.failures = append(d.failures[:i], d.failures[i+1:]...)
			return fmt.Errorf("%s %s: %w", method, object, f.err)
		}
	}
	return nil
}

func (d *Driver) notify() {
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *Driver) tick() time.Time {
	d.now = d.now.Add(time.Second)
	return d.now
}

func (d *Driver) byName(name string) *container {
	for _, c := range d.containers {
		if c.obs.Name == name {
			return c
		}
	}
	return nil
}

func (d *Driver) objectName(id string) string {
	if c, ok := d.containers[id]; ok {
		return c.obs.Name
	}
	return id
}

func digestOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Observe implements driver.Driver. Images lists the whole store.
func (d *Driver) Observe(ctx context.Context, project string) (*state.Observed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("Observe", project); err != nil {
		return nil, err
	}
	o := &state.Observed{Project: project}
	for _, c := range d.containers {
		if c.obs.Project == project {
			o.Containers = append(o.Containers, copyContainer(c.obs))
		}
	}
	sort.Slice(o.Containers, func(i, j int) bool { return o.Containers[i].Name < o.Containers[j].Name })
	for _, n := range d.networks {
		if n.Labels[state.LabelProject] == project {
			n.Labels = copyMap(n.Labels)
			o.Networks = append(o.Networks, n)
		}
	}
	sort.Slice(o.Networks, func(i, j int) bool { return o.Networks[i].Name < o.Networks[j].Name })
	for _, v := range d.volumes {
		if v.Labels[state.LabelProject] == project {
			v.Labels = copyMap(v.Labels)
			o.Volumes = append(o.Volumes, v)
		}
	}
	sort.Slice(o.Volumes, func(i, j int) bool { return o.Volumes[i].Name < o.Volumes[j].Name })
	for _, im := range d.images {
		o.Images = append(o.Images, im)
	}
	sort.Slice(o.Images, func(i, j int) bool { return o.Images[i].Ref < o.Images[j].Ref })
	return o, nil
}

// EnsureImage implements driver.Driver: a build or pull stores the digest
// the registry publishes for the ref (a digest derived from the ref when
// nothing was published).
func (d *Driver) EnsureImage(ctx context.Context, s state.ImageSpec) (state.ImageRef, error) {
	if err := ctx.Err(); err != nil {
		return state.ImageRef{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("EnsureImage", s.Ref); err != nil {
		return state.ImageRef{}, err
	}
	if s.Ref == "" {
		return state.ImageRef{}, fmt.Errorf("image without a reference: %w", driver.ErrInvalid)
	}
	have, ok := d.images[s.Ref]
	refresh := s.PullPolicy == "always" || (s.Build != nil && s.PullPolicy == "build")
	if ok && !refresh {
		return have, nil
	}
	if !ok && s.PullPolicy == "never" && s.Build == nil {
		return state.ImageRef{}, fmt.Errorf("image %s: not present and pull_policy is never: %w", s.Ref, driver.ErrNotFound)
	}
	dg := d.registry[s.Ref]
	if dg == "" {
		dg = digestOf(s.Ref)
	}
	im := state.ImageRef{Ref: s.Ref, Digest: dg}
	d.images[s.Ref] = im
	d.notify()
	return im, nil
}
