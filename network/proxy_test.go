package network

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
)

// TestProxiesFor: which published ports the userland proxy serves, and
// which container addresses it forwards them to.
func TestProxiesFor(t *testing.T) {
	dual := []Interface{{Network: "n6", IPv4: mustAddr("10.213.1.2"), IPv6: mustAddr("fd42:b0::2")}}
	dual2 := []Interface{{Network: "n6", IPv4: mustAddr("10.213.1.3"), IPv6: mustAddr("fd42:b0::3")}}
	four := []Interface{{Network: "n4", IPv4: mustAddr("10.213.2.2")}}
	port := func(ip string, hp, cp int, proto string) PublishedPort {
		return PublishedPort{HostIP: ip, HostPort: hp, ContainerPort: cp, Protocol: proto}
	}
	st := &diskState{Endpoints: map[string]*endpointRecord{
		"d1": {Interfaces: dual, Ports: []PublishedPort{port("", 8080, 80, "tcp"), port("::1", 8081, 81, "tcp"),
			port("fd00::7", 8082, 82, "tcp"), port("127.0.0.1", 8083, 83, "tcp"), port("::", 5353, 53, "udp")}},
		"d2": {Interfaces: dual2, Ports: []PublishedPort{port("", 8080, 80, "tcp")}},
		"f1": {Interfaces: four, Ports: []PublishedPort{port("", 9080, 80, "tcp"), port("::1", 9081, 81, "udp"),
			port("fd00::7", 9082, 82, "tcp"), port("0.0.0.0", 9083, 83, "tcp"), port("::", 9084, 84, "tcp")}},
		"none": {Ports: []PublishedPort{port("", 7000, 70, "tcp")}}, // not attached: nothing to reach
	}}
	var got []string
	for k, ts := range proxiesFor(st) {
		got = append(got, fmt.Sprintf("%s -> %v", k, ts))
	}
	sort.Strings(got)
	want := []string{
		"[::1]:8080/tcp -> [[fd42:b0::2]:80 [fd42:b0::3]:80]", // ::1 only: nftables serves the other IPv6 addresses
		"[::1]:8081/tcp -> [[fd42:b0::2]:81]",
		"[::1]:9081/udp -> [10.213.2.2:81]",
		"[::1]:5353/udp -> [[fd42:b0::2]:53]",
		"[::]:9080/tcp -> [10.213.2.2:80]", // an IPv4-only container: every IPv6 address
		"[::]:9084/tcp -> [10.213.2.2:84]",
		"[fd00::7]:9082/tcp -> [10.213.2.2:82]",
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestPortBindable: a port berth's own proxy holds is free for a new
// container (the proxy lags the allocation file a moment), one a host
// process holds is not.
func TestPortBindable(t *testing.T) {
	needRoot(t)
	h := newTestHost(t, "bind")
	inSandbox(t, h.path, func() error {
		for _, k := range []proxyKey{{netip.IPv6Unspecified(), 18080, "tcp"}, {netip.IPv6Loopback(), 18081, "tcp"}, {netip.IPv6Unspecified(), 18082, "udp"}} {
			l, err := listenProxy(k)
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
		}
		for _, p := range []PublishedPort{{HostPort: 18080, Protocol: "tcp"}, {HostIP: "::", HostPort: 18080, Protocol: "tcp"},
			{HostIP: "0.0.0.0", HostPort: 18080, Protocol: "tcp"}, {HostPort: 18081, Protocol: "tcp"}, {HostIP: "::1", HostPort: 18081, Protocol: "tcp"},
			{HostPort: 18082, Protocol: "udp"}} {
			if !portBindable(p) {
				t.Errorf("%s is refused while only the proxy holds it", portKey(p))
			}
		}
		tl, err := net.Listen("tcp6", "[::1]:18090")
		if err != nil {
			t.Fatal(err)
		}
		defer tl.Close()
		t4, err := net.Listen("tcp4", "127.0.0.1:18091")
		if err != nil {
			t.Fatal(err)
		}
		defer t4.Close()
		u, err := net.ListenPacket("udp", ":18092")
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		for p, want := range map[PublishedPort]bool{
			{HostPort: 18090, Protocol: "tcp"}:                      false,
			{HostIP: "::1", HostPort: 18090, Protocol: "tcp"}:       false,
			{HostIP: "::", HostPort: 18090, Protocol: "tcp"}:        false,
			{HostIP: "127.0.0.1", HostPort: 18090, Protocol: "tcp"}: true,
			{HostPort: 18091, Protocol: "tcp"}:                      false,
			{HostIP: "::1", HostPort: 18091, Protocol: "tcp"}:       true,
			{HostPort: 18092, Protocol: "udp"}:                      false,
			{HostIP: "127.0.0.1", HostPort: 18092, Protocol: "udp"}: false,
			{HostPort: 18092, Protocol: "tcp"}:                      true,
		} {
			if got := portBindable(p); got != want {
				t.Errorf("%s held by a host process: free=%v, want %v", portKey(p), got, want)
			}
		}
		return nil
	})
}
