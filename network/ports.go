package network

import (
	"fmt"
	"net"
	"strconv"
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
// hostFree says whether nothing on the host listens on a port; random host
// ports are only chosen among free ones.
func resolvePorts(st *diskState, ep Endpoint, old *endpointRecord, hostFree func(PublishedPort) bool) ([]PublishedPort, error) {
	var out []PublishedPort
	owner := portOwners(st, ep.ID)
	for _, p := range ep.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("port %d/%s: protocol not supported", p.ContainerPort, proto)
		}
		cEnd := max(p.ContainerPortEnd, p.ContainerPort)
		hEnd := max(p.HostPortEnd, p.HostPort)
		for cp := p.ContainerPort; cp <= cEnd; cp++ {
			pp := PublishedPort{HostIP: p.HostIP, ContainerPort: cp, Protocol: proto}
			switch {
			case p.HostPort == 0:
				pp.HostPort = keptRandom(old, pp)
				if pp.HostPort == 0 {
					hp, err := pickRandomPort(owner, pp, hostFree)
					if err != nil {
						return nil, err
					}
					pp.HostPort = hp
				}
			case hEnd-p.HostPort == cEnd-p.ContainerPort:
				pp.HostPort = p.HostPort + cp - p.ContainerPort
			default:
				// "8000-8010:80": the first host port of the range that is free.
				pp.HostPort = firstFree(owner, pp, p.HostPort, hEnd)
				if pp.HostPort == 0 {
					return nil, fmt.Errorf("port %d-%d: no free host port", p.HostPort, hEnd)
				}
			}
			if o, ok := owner[portKey(pp)]; ok && (o.Project != ep.Project || o.Service != ep.Service || ep.Service == "") {
				return nil, fmt.Errorf("host port %s is already published by %s", portKey(pp), o.Name)
			}
			owner[portKey(pp)] = ep
			out = append(out, pp)
		}
	}
	return out, nil
}

func portKey(p PublishedPort) string {
	return net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort)) + "/" + p.Protocol
}

// portOwners maps every host port published by another container to it.
// A port bound to all addresses also collides with each specific address.
func portOwners(st *diskState, self string) map[string]Endpoint {
	owner := map[string]Endpoint{}
	for id, r := range st.Endpoints {
		if id == self {
			continue
		}
		for _, p := range r.Ports {
			owner[portKey(p)] = r.Endpoint
		}
	}
	return owner
}

func keptRandom(old *endpointRecord, want PublishedPort) int {
	if old == nil {
		return 0
	}
	for _, p := range old.Ports {
		if p.HostIP == want.HostIP && p.ContainerPort == want.ContainerPort && p.Protocol == want.Protocol && p.HostPort >= randomPortLow {
			return p.HostPort
		}
	}
	return 0
}

func firstFree(owner map[string]Endpoint, pp PublishedPort, lo, hi int) int {
	for hp := lo; hp <= hi; hp++ {
		pp.HostPort = hp
		if _, ok := owner[portKey(pp)]; !ok {
			return hp
		}
	}
	return 0
}

func pickRandomPort(owner map[string]Endpoint, pp PublishedPort, hostFree func(PublishedPort) bool) (int, error) {
	for hp := randomPortLow; hp <= randomPortHigh; hp++ {
		pp.HostPort = hp
		if _, taken := owner[portKey(pp)]; taken || (hostFree != nil && !hostFree(pp)) {
			continue
		}
		return hp, nil
	}
	return 0, fmt.Errorf("no free host port for %d/%s", pp.ContainerPort, pp.Protocol)
}

// hostPortFree tries to bind the port in the host namespace.
func (m *Manager) hostPortFree(p PublishedPort) bool {
	free := false
	inNS(m.host, func() error {
		addr := net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))
		if p.Protocol == "udp" {
			if c, err := net.ListenPacket("udp", addr); err == nil {
				c.Close()
				free = true
			}
			return nil
		}
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			free = true
		}
		return nil
	})
	return free
}
