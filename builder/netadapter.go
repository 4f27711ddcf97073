package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/state"
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
	release := func() { n.M.RemoveSandbox(context.WithoutCancel(ctx), id) }
	att, err := n.M.Attach(ctx, network.Endpoint{ID: id, Name: id, Hostname: "buildkitsandbox",
		Networks: []state.NetworkAttachment{{Network: BuildNetworkName}}})
	if err != nil {
		release()
		return nil, func() {}, fmt.Errorf("build network: %w", err)
	}
	return &RunNetwork{NetnsPath: att.NetnsPath, ResolvConf: att.ResolvConfPath, Hosts: att.HostsPath}, release, nil
}

// Close implements Networker: the bridge goes when no build uses it.
func (n *BridgeNetwork) Close(ctx context.Context) error {
	err := n.M.RemoveNetwork(ctx, BuildNetworkName)
	if errors.Is(err, network.ErrInUse) {
		return nil
	}
	return err
}
