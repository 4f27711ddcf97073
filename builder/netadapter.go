package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/state"
	"golang.org/x/sys/unix"
)

// RunNetwork is the network of one RUN --network=default: a namespace
// behind berth's NAT and the name resolution files that go with it.
type RunNetwork struct {
	NetnsPath  string
	ResolvConf string
	Hosts      string
}

// Networker gives RUN steps their own network namespace. Without one,
// --network=default shares the host's network, like --network=host.
type Networker interface {
	Join(ctx context.Context) (*RunNetwork, func(), error)
	// Close drops what Join set up once no step uses it any more.
	Close(ctx context.Context) error
}

// BuildNetworkName is the bridge network RUN steps are attached to.
const BuildNetworkName = "berth-build"

// BridgeNetwork attaches RUN steps to the "berth-build" bridge network of
// berth's network layer: outbound traffic is NATed like any container's;
// nothing is published.
type BridgeNetwork struct {
	M *network.Manager
	// LockDir holds one flock per endpoint in use, so that Cleanup can
	// tell the endpoints of killed builds from those of running ones.
	LockDir string
	// Keep leaves the bridge in place after a build, for the next one.
	Keep bool
}

// Join implements Networker.
func (n *BridgeNetwork) Join(ctx context.Context) (*RunNetwork, func(), error) {
	spec := state.NetworkSpec{Name: BuildNetworkName, Key: "build", Driver: "bridge",
		Labels: map[string]string{"io.berth.build": "true"}}
	if _, err := n.M.EnsureNetwork(ctx, spec); err != nil {
		return nil, func() {}, fmt.Errorf("build network: %w", err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	id := "build-" + hex.EncodeToString(rnd[:])
	lock, err := n.lock(id, 0)
	if err != nil {
		return nil, func() {}, err
	}
	release := func() {
		if n.M.RemoveSandbox(context.WithoutCancel(ctx), id) == nil {
			os.Remove(lock.Name())
		}
		lock.Close()
	}
	att, err := n.M.Attach(ctx, network.Endpoint{ID: id, Name: id, Hostname: "buildkitsandbox",
		Networks: []state.NetworkAttachment{{Network: BuildNetworkName}}})
	if err != nil {
		release()
		return nil, func() {}, fmt.Errorf("build network: %w", err)
	}
	return &RunNetwork{NetnsPath: att.NetnsPath, ResolvConf: att.ResolvConfPath, Hosts: att.HostsPath}, release, nil
}

func (n *BridgeNetwork) lock(id string, how int) (*os.File, error) {
	if err := os.MkdirAll(n.LockDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(n.LockDir, id+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Cleanup removes the endpoints of builds killed during a RUN.
func (n *BridgeNetwork) Cleanup(ctx context.Context) error {
	eps, err := n.M.Endpoints(ctx, BuildNetworkName)
	if err != nil {
		return nil // no build network: nothing to clean
	}
	var errs []error
	for id := range eps {
		if !strings.HasPrefix(id, "build-") {
			continue
		}
		lock, err := n.lock(id, unix.LOCK_NB)
		if err != nil {
			continue // a live build's
		}
		if err := n.M.RemoveSandbox(ctx, id); err != nil {
			errs = append(errs, err)
		} else {
			os.Remove(lock.Name())
		}
		lock.Close()
	}
	return errors.Join(errs...)
}

// bridgeUsers counts, per state root (LockDir), the builds of this process
// that use the build bridge: builds in parallel (berth build of several
// services, up building them) each have a BridgeNetwork, and the bridge
// must not go while one of them may still join it.
var bridgeUsers = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

// Open marks a build as using the bridge until its Close.
func (n *BridgeNetwork) Open() {
	bridgeUsers.Lock()
	bridgeUsers.n[n.LockDir]++
	bridgeUsers.Unlock()
}

// Close implements Networker: the build that opened the bridge is done.
// With Keep the bridge stays for the next build (as docker0 does):
// setting it up and tearing it down again cost a build 0.15-0.4 s here.
// Otherwise it goes once no build of this process uses it (nor one of
// another process: RemoveNetwork refuses while endpoints are attached).
func (n *BridgeNetwork) Close(ctx context.Context) error {
	bridgeUsers.Lock()
	defer bridgeUsers.Unlock()
	if bridgeUsers.n[n.LockDir] > 0 {
		bridgeUsers.n[n.LockDir]--
	}
	if n.Keep || bridgeUsers.n[n.LockDir] > 0 {
		return nil
	}
	delete(bridgeUsers.n, n.LockDir)
	return n.Remove(ctx)
}

// Remove deletes the build bridge unless a build uses it (berth builder
// prune --all).
func (n *BridgeNetwork) Remove(ctx context.Context) error {
	err := n.M.RemoveNetwork(ctx, BuildNetworkName)
	if errors.Is(err, network.ErrInUse) || errors.Is(err, network.ErrNotFound) {
		return nil
	}
	return err
}
