package network

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/berth-dev/berth/state"
)

func TestResolvePorts(t *testing.T) {
	st := &diskState{Endpoints: map[string]*endpointRecord{
		"a1": {Endpoint: Endpoint{ID: "a1", Name: "p-api-1", Project: "p", Service: "api"},
			Ports: []PublishedPort{{HostPort: 9090, ContainerPort: 80, Protocol: "tcp"}, {HostPort: randomPortLow, ContainerPort: 81, Protocol: "tcp"}}},
	}}
	busy := func(p PublishedPort) bool { return p.HostPort != randomPortLow+1 } // something on the host listens there
	ep := Endpoint{ID: "w1", Name: "p-web-1", Project: "p", Service: "web", Ports: []state.Port{
		{HostIP: "127.0.0.1", HostPort: 8000, HostPortEnd: 8001, ContainerPort: 80, ContainerPortEnd: 81},
		{ContainerPort: 53, Protocol: "udp"},
		{ContainerPort: 81},
		{HostPort: 7000, HostPortEnd: 7005, ContainerPort: 22},
	}}
	got, err := resolvePorts(st, ep, nil, busy)
	if err != nil {
		t.Fatal(err)
	}
	want := "[{127.0.0.1 8000 80 tcp} {127.0.0.1 8001 81 tcp} { 32768 53 udp} { 32770 81 tcp} { 7000 22 tcp}]"
	if fmt.Sprint(got) != want {
		t.Errorf("got  %v\nwant %s", got, want)
	}
	// A random port stays what it was across calls.
	again, err := resolvePorts(st, ep, &endpointRecord{Ports: got}, func(PublishedPort) bool { return false })
	if err != nil || fmt.Sprint(again) != want {
		t.Errorf("re-resolve: %v %v", again, err)
	}
	// A replica of api shares 9090 (load-balanced); another service may not.
	replica := Endpoint{ID: "a2", Name: "p-api-2", Project: "p", Service: "api", Ports: []state.Port{{HostPort: 9090, ContainerPort: 80}}}
	if _, err := resolvePorts(st, replica, nil, nil); err != nil {
		t.Errorf("replica: %v", err)
	}
	_, err = resolvePorts(st, Endpoint{ID: "x", Name: "p-x-1", Project: "p", Service: "x", Ports: []state.Port{{HostPort: 9090, ContainerPort: 80}}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "p-api-1") {
		t.Errorf("conflict not reported: %v", err)
	}
	// A port on all addresses collides with the same port on one address,
	// even for a replica (one load-balanced group needs one host address).
	for _, e := range []Endpoint{
		{ID: "z", Name: "p-z-1", Project: "p", Service: "z", Ports: []state.Port{{HostIP: "127.0.0.1", HostPort: 9090, ContainerPort: 80}}},
		{ID: "a3", Name: "p-api-3", Project: "p", Service: "api", Ports: []state.Port{{HostIP: "127.0.0.1", HostPort: 9090, ContainerPort: 80}}},
	} {
		if _, err := resolvePorts(st, e, nil, nil); err == nil {
			t.Errorf("%s: 127.0.0.1:9090 accepted beside *:9090", e.Name)
		}
	}
	if _, err := resolvePorts(st, Endpoint{ID: "u", Ports: []state.Port{{HostPort: 9090, ContainerPort: 80, Protocol: "udp"}}}, nil, nil); err != nil {
		t.Errorf("9090/udp beside 9090/tcp: %v", err)
	}
	// A fixed port a host process listens on is refused, not shadowed.
	hostBusy := func(p PublishedPort) bool { return p.HostPort != 2222 }
	if _, err := resolvePorts(st, Endpoint{ID: "s", Ports: []state.Port{{HostPort: 2222, ContainerPort: 22}}}, nil, hostBusy); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("port in use on the host: %v", err)
	}
	if _, err := resolvePorts(st, Endpoint{ID: "y", Ports: []state.Port{{ContainerPort: 1, Protocol: "sctp"}}}, nil, nil); err == nil {
		t.Error("sctp accepted")
	}
}

func TestFiles(t *testing.T) {
	m := &Manager{opt: Options{}, runDir: t.TempDir()}
	st := &diskState{Networks: map[string]*NetworkInfo{"n": {Subnet4: pfx("10.213.3.0/24"), Gateway4: addr("10.213.3.1")}}}
	r := &endpointRecord{Endpoint: Endpoint{ID: "0123456789abcdef", Domainname: "example.org",
		ExtraHosts: []string{"db:10.213.9.9", "host.docker.internal=host-gateway", "six:[fd42:b0::9]"},
		DNSSearch:  []string{"svc.local"}, DNSOpt: []string{"ndots:1"}},
		Interfaces: []Interface{{Network: "n", IPv4: addr("10.213.3.7")}}}
	if err := m.writeFiles(st, r); err != nil {
		t.Fatal(err)
	}
	a := m.attachment(r)
	read := func(p string) string {
		b, err := readFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hosts := read(a.HostsPath)
	for _, w := range []string{"10.213.3.7\t0123456789ab.example.org 0123456789ab\n", "10.213.9.9\tdb\n", "10.213.3.1\thost.docker.internal\n", "fd42:b0::9\tsix\n"} {
		if !strings.Contains(hosts, w) {
			t.Errorf("hosts lacks %q:\n%s", w, hosts)
		}
	}
	if got := read(a.ResolvConfPath); got != "nameserver 10.213.3.1\nsearch svc.local\noptions ndots:1\n" {
		t.Errorf("resolv.conf:\n%s", got)
	}
	if got := read(a.HostnamePath); got != "0123456789ab\n" {
		t.Errorf("hostname %q", got)
	}
	r.Endpoint.ExtraHosts = []string{"broken"}
	if err := m.writeFiles(st, r); err == nil {
		t.Error("bad extra_hosts accepted")
	}
}

func TestParseResolvConf(t *testing.T) {
	rc := parseResolvConf([]byte("# c\nnameserver 10.0.0.1\nnameserver ::1\nsearch a b\noptions ndots:2 edns0\n"))
	if fmt.Sprint(rc) != "nameserver 10.0.0.1\nnameserver ::1\nsearch a b\noptions ndots:2 edns0\n" {
		t.Errorf("%q", rc.String())
	}
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}

func TestNoDNSResolvConf(t *testing.T) {
	old := HostResolvConf
	defer func() { HostResolvConf = old }()
	HostResolvConf = t.TempDir() + "/resolv.conf"
	os.WriteFile(HostResolvConf, []byte("nameserver 127.0.0.53\nnameserver 192.0.2.53\noptions edns0\n"), 0o644)
	m := &Manager{opt: Options{NoDNS: true}}
	st := &diskState{Networks: map[string]*NetworkInfo{"n": {Gateway4: addr("10.213.3.1")}}}
	rc := m.containerResolv(st, Endpoint{}, []Interface{{Network: "n"}})
	if rc.String() != "nameserver 192.0.2.53\noptions edns0\n" {
		t.Errorf("without the responder:\n%s", rc)
	}
	rc = m.containerResolv(st, Endpoint{NetworkMode: "host"}, nil)
	if !strings.Contains(rc.String(), "127.0.0.53") {
		t.Errorf("host mode keeps the host's resolvers:\n%s", rc)
	}
}
