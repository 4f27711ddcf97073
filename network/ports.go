package network

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Random host ports come from here, as Docker's do.
const (
	randomPortLow  = 32768
	randomPortHigh = 60999
)

// resolvePorts expands ep's ports into one PublishedPort per host port:
// ranges are paired, random host ports are chosen (and kept across calls),
// and a host port another service already publishes is refused. Replicas
// of one service may share a host port: they are load-balanced.
// hostFree says whether nothing on the host listens on a port: random host
// ports are only chosen among free ones, and a fixed one that a host
// process already serves is refused rather than silently shadowed by DNAT.
func resolvePorts(st *diskState, ep Endpoint, old *endpointRecord, hostFree func(PublishedPort) bool) ([]PublishedPort, error) {
	var out []PublishedPort
	owned := portOwners(st, ep.ID)
	for _, p := range ep.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("port %d/%s: protocol not supported", p.ContainerPort, proto)
		}
		if p.HostIP != "" {
			// "[::1]" or "::1", "::ffff:127.0.0.1": one spelling per address,
			// so that collisions and load-balanced groups are found.
			a, err := netip.ParseAddr(strings.Trim(p.HostIP, "[]"))
			if err != nil {
				return nil, fmt.Errorf("port %d/%s: bad host ip %q", p.ContainerPort, proto, p.HostIP)
			}
			p.HostIP = a.Unmap().String()
		}
		cEnd := max(p.ContainerPortEnd, p.ContainerPort)
		hEnd := max(p.HostPortEnd, p.HostPort)
		for cp := p.ContainerPort; cp <= cEnd; cp++ {
			pp := PublishedPort{HostIP: p.HostIP, ContainerPort: cp, Protocol: proto}
			switch {
			case hEnd-p.HostPort == cEnd-p.ContainerPort && p.HostPort != 0:
				pp.HostPort = p.HostPort + cp - p.ContainerPort
			default:
				// A random port, or "8000-8010:80" (the first free port of
				// the range); either stays what it was across calls.
				lo, hi := p.HostPort, hEnd
				if lo == 0 {
					lo, hi = randomPortLow, randomPortHigh
				}
				if pp.HostPort = kept(old, pp, lo, hi); pp.HostPort == 0 {
					hp, err := pickPort(owned, pp, lo, hi, hostFree)
					if err != nil {
						return nil, err
					}
					pp.HostPort = hp
				}
			}
			o, shared := conflict(owned, pp)
			switch {
			case o != nil && (!shared || o.ep.Project != ep.Project || o.ep.Service != ep.Service || ep.Service == ""):
				return nil, fmt.Errorf("host port %s is already published by %s", portKey(pp), o.ep.Name)
			case o == nil && !hadPort(old, pp) && hostFree != nil && !hostFree(pp):
				return nil, fmt.Errorf("host port %s is in use by a process on the host", portKey(pp))
			}
			owned = append(owned, ownedPort{pp, ep})
			out = append(out, pp)
		}
	}
	return out, nil
}

func portKey(p PublishedPort) string {
	return net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort)) + "/" + p.Protocol
}

// ownedPort is a host port some container publishes.
type ownedPort struct {
	PublishedPort
	ep Endpoint
}

// portOwners lists every host port published by another container.
func portOwners(st *diskState, self string) []ownedPort {
	var owned []ownedPort
	for id, r := range st.Endpoints {
		if id == self {
			continue
		}
		for _, p := range r.Ports {
			owned = append(owned, ownedPort{p, r.Endpoint})
		}
	}
	return owned
}

func wildcard(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }

// conflict finds a published port that pp would collide with: same port
// and protocol, and the same host IP or either bound to all addresses.
// shared is true when the two could be one load-balanced group (the very
// same host IP, port and protocol).
func conflict(owned []ownedPort, pp PublishedPort) (o *ownedPort, shared bool) {
	for i := range owned {
		x := &owned[i]
		if x.Protocol != pp.Protocol || x.HostPort != pp.HostPort {
			continue
		}
		if x.HostIP == pp.HostIP {
			return x, true
		}
		if wildcard(x.HostIP) || wildcard(pp.HostIP) {
			o = x
		}
	}
	return o, false
}

func hadPort(old *endpointRecord, pp PublishedPort) bool {
	if old == nil {
		return false
	}
	for _, p := range old.Ports {
		if p.HostIP == pp.HostIP && p.HostPort == pp.HostPort && p.Protocol == pp.Protocol {
			return true
		}
	}
	return false
}

// kept is the host port in lo..hi that old already had for this
// container port, or 0.
func kept(old *endpointRecord, want PublishedPort, lo, hi int) int {
	if old == nil {
		return 0
	}
	for _, p := range old.Ports {
		if p.HostIP == want.HostIP && p.ContainerPort == want.ContainerPort && p.Protocol == want.Protocol && p.HostPort >= lo && p.HostPort <= hi {
			return p.HostPort
		}
	}
	return 0
}

// pickPort returns the first port of lo..hi that no container publishes
// and nothing on the host listens on.
func pickPort(owned []ownedPort, pp PublishedPort, lo, hi int, hostFree func(PublishedPort) bool) (int, error) {
	for hp := lo; hp <= hi; hp++ {
		pp.HostPort = hp
		if o, _ := conflict(owned, pp); o != nil || (hostFree != nil && !hostFree(pp)) {
			continue
		}
		return hp, nil
	}
	return 0, fmt.Errorf("no free host port in %d-%d for %d/%s", lo, hi, pp.ContainerPort, pp.Protocol)
}

// hostPortFree tries to bind the port in the host namespace (without
// listening: no connection can land on the probe). SO_REUSEPORT, which
// berth's userland proxy also sets, makes a port that only the proxy still
// holds (it follows the allocation file a few milliseconds late) count as
// free; any other holder without SO_REUSEPORT makes it taken. A host IP of
// "" probes both families at once (a dual-stack socket on [::]).
func (m *Manager) hostPortFree(p PublishedPort) bool {
	free := false
	inNS(m.host, func() error {
		free = portBindable(p)
		return nil
	})
	return free
}

func portBindable(p PublishedPort) bool {
	typ := unix.SOCK_STREAM
	if p.Protocol == "udp" {
		typ = unix.SOCK_DGRAM
	}
	ip := hostIPAddr(p.HostIP)
	fam, v6only := unix.AF_INET6, 1
	var sa unix.Sockaddr
	switch {
	case ip.Is4():
		fam = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: p.HostPort, Addr: ip.As4()}
	case !ip.IsValid():
		v6only = 0
		sa = &unix.SockaddrInet6{Port: p.HostPort}
	default:
		sa = &unix.SockaddrInet6{Port: p.HostPort, Addr: ip.As16()}
	}
	fd, err := unix.Socket(fam, typ|unix.SOCK_CLOEXEC, 0)
	if err == unix.EAFNOSUPPORT && !ip.IsValid() {
		// A host without IPv6: all addresses are the IPv4 ones.
		fam, sa = unix.AF_INET, &unix.SockaddrInet4{Port: p.HostPort}
		fd, err = unix.Socket(fam, typ|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) != nil {
		return false
	}
	if fam == unix.AF_INET6 && unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only) != nil {
		return false
	}
	return unix.Bind(fd, sa) == nil
}
