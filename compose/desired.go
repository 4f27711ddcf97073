package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berth-dev/berth/state"
)

// Desired turns a loaded project into berth's desired state: every enabled
// service with its container template and config hash, every network and
// volume with its own hash.
func Desired(p *types.Project) (*state.Desired, error) {
	d := &state.Desired{
		Project:     p.Name,
		WorkingDir:  p.WorkingDir,
		ConfigFiles: append([]string(nil), p.ComposeFiles...),
		Services:    make(map[string]*state.Service, len(p.Services)),
		Networks:    make(map[string]state.NetworkSpec, len(p.Networks)),
		Volumes:     make(map[string]state.VolumeSpec, len(p.Volumes)),
	}
	for key, n := range p.Networks {
		d.Networks[key] = network(p.Name, key, n)
	}
	for key, v := range p.Volumes {
		d.Volumes[key] = volume(p.Name, key, v)
	}
	for name, s := range p.Services {
		svc, err := service(p, s)
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", name, err)
		}
		d.Services[name] = svc
	}
	return d, nil
}

func network(project, key string, n types.NetworkConfig) state.NetworkSpec {
	spec := state.NetworkSpec{
		Name:       n.Name,
		Key:        key,
		Project:    project,
		Driver:     n.Driver,
		DriverOpts: cloneMap(n.DriverOpts),
		Internal:   n.Internal,
		Attachable: n.Attachable,
		External:   bool(n.External),
		Labels:     cloneMap(n.Labels),
	}
	if n.EnableIPv6 != nil {
		spec.EnableIPv6 = *n.EnableIPv6
	}
	if spec.Name == "" {
		spec.Name = project + "_" + key
	}
	for _, c := range n.Ipam.Config {
		if c != nil {
			spec.IPAM = append(spec.IPAM, state.Subnet{Subnet: c.Subnet, Gateway: c.Gateway, IPRange: c.IPRange})
		}
	}
	spec.Hash = hashOf(spec)
	return spec
}

func volume(project, key string, v types.VolumeConfig) state.VolumeSpec {
	spec := state.VolumeSpec{
		Name:       v.Name,
		Key:        key,
		Project:    project,
		Driver:     v.Driver,
		DriverOpts: cloneMap(v.DriverOpts),
		External:   bool(v.External),
		Labels:     cloneMap(v.Labels),
	}
	if spec.Name == "" {
		spec.Name = project + "_" + key
	}
	spec.Hash = hashOf(spec)
	return spec
}

// hashOf hashes a spec whose Hash field is still empty. encoding/json sorts
// map keys, so equal specs hash equally.
func hashOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("compose: hashing %T: %v", v, err)) // plain data cannot fail to marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func cloneMap[M ~map[string]string](m M) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(map[string]string(m))
}
