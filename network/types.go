package network

import (
	"errors"
	"net/netip"

	"github.com/berth-dev/berth/state"
)

var (
	// ErrNotFound is returned for a network or sandbox berth does not have.
	ErrNotFound = errors.New("not found")
	// ErrInUse is returned when removing a network that still has endpoints.
	ErrInUse = errors.New("in use")
)

// Endpoint is everything the network layer needs to know about one container.
type Endpoint struct {
	ID         string // the container's id; also names its sandbox
	Name       string // container name (resolvable by peers)
	Project    string
	Service    string // service name (resolvable; every replica answers)
	Hostname   string // "" means the first 12 characters of ID
	Domainname string
	// NetworkMode is "" (the bridge networks below), "none", "host" or
	// "container:<ID>" where ID is the sandbox id of the container to join
	// (the driver resolves service:NAME and container:NAME to an id).
	NetworkMode string
	Networks    []state.NetworkAttachment
	Ports       []state.Port
	ExtraHosts  []string // "name:ip" or "name=ip"; ip may be "host-gateway"
	Links       []string // "SERVICE:ALIAS": ALIAS answers as SERVICE's name for this container only
	DNS         []string // upstream resolvers for this container's forwarded queries
	DNSSearch   []string
	DNSOpt      []string
	MacAddress  string // for the first network when its attachment sets none
}

// Config is the whole desired state of berth's networking, for Set.
type Config struct {
	Networks  []state.NetworkSpec
	Endpoints []Endpoint
}

// Attachment is what Attach set up for a container.
type Attachment struct {
	Name           string // the container's name
	NetnsPath      string // "" in host mode: the container keeps the host's namespace
	HostsPath      string
	ResolvConfPath string
	HostnamePath   string
	Interfaces     []Interface
	Ports          []PublishedPort
}

// Interface is one container end of a veth pair.
type Interface struct {
	Network  string     `json:"network"`
	Name     string     `json:"name"`
	HostVeth string     `json:"hostVeth"`
	IPv4     netip.Addr `json:"ipv4,omitzero"`
	IPv6     netip.Addr `json:"ipv6,omitzero"`
	MAC      string     `json:"mac,omitempty"`
	Aliases  []string   `json:"aliases,omitempty"`
	Priority int        `json:"priority,omitempty"`
	// LinkLocal are link_local_ips: more addresses on the interface (/16
	// for IPv4, /64 for IPv6), outside IPAM.
	LinkLocal []netip.Addr `json:"linkLocal,omitempty"`
}

// PublishedPort is one host port forwarded to a container port (ranges are
// expanded, random host ports resolved).
type PublishedPort struct {
	HostIP        string `json:"hostIP,omitempty"`
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

// NetworkInfo describes a network berth manages.
type NetworkInfo struct {
	Spec     state.NetworkSpec `json:"spec"`
	Bridge   string            `json:"bridge"`
	Subnet4  netip.Prefix      `json:"subnet4,omitzero"`
	Gateway4 netip.Addr        `json:"gateway4,omitzero"`
	Range4   netip.Prefix      `json:"range4,omitzero"`
	Subnet6  netip.Prefix      `json:"subnet6,omitzero"`
	Gateway6 netip.Addr        `json:"gateway6,omitzero"`
	Range6   netip.Prefix      `json:"range6,omitzero"`
	MTU      int               `json:"mtu,omitempty"`
}

// endpointRecord is the on-disk record of one container.
type endpointRecord struct {
	Endpoint   Endpoint        `json:"endpoint"`
	Netns      string          `json:"netns,omitempty"`
	Interfaces []Interface     `json:"interfaces,omitempty"`
	Ports      []PublishedPort `json:"ports,omitempty"`
	// Stale are interfaces the container had and an attach or detach under
	// way removes: recorded until their links are gone, so that a crash in
	// between leaves them named (their addresses stay taken meanwhile).
	Stale []Interface `json:"stale,omitempty"`
	// Realizing marks a plan recorded before the machine was made to match
	// it: after a crash half-way, links that exist may lack their addresses
	// or routes, so none of them is trusted as it stands.
	Realizing bool `json:"realizing,omitempty"`
	// Parked marks the sandbox of a stopped container kept for the
	// container that replaces it (Park, Adopt): its namespace, links and
	// addresses stay, it has no names and publishes nothing.
	Parked bool `json:"parked,omitempty"`
}

// links are the interfaces r has and those it still records as stale: all
// the links that may exist for it (a fresh slice).
func (r *endpointRecord) links() []Interface {
	return append(append([]Interface(nil), r.Interfaces...), r.Stale...)
}

// diskState is the whole allocation state (see store.go for its files).
type diskState struct {
	Networks  map[string]*NetworkInfo    `json:"networks"`
	Endpoints map[string]*endpointRecord `json:"endpoints"`
}

// EndpointFor builds the Endpoint of container id from its spec. The
// caller still resolves network_mode service:NAME and container:NAME to
// "container:<id of that container>".
func EndpointFor(id string, c state.ContainerSpec) Endpoint {
	return Endpoint{
		ID: id, Name: c.Name, Project: c.Project, Service: c.Service,
		Hostname: c.Hostname, Domainname: c.Domainname, NetworkMode: c.NetworkMode,
		Networks: c.Networks, Ports: c.Ports, ExtraHosts: c.ExtraHosts, Links: c.Links,
		DNS: c.DNS, DNSSearch: c.DNSSearch, DNSOpt: c.DNSOpt, MacAddress: c.MacAddress,
	}
}
