package network

import (
	"fmt"
	"testing"

	"github.com/berth-dev/berth/state"
)

func TestZoneLookup(t *testing.T) {
	ifc := func(n, v4, v6 string, aliases ...string) Interface {
		i := Interface{Network: n, IPv4: addr(v4), Aliases: aliases}
		if v6 != "" {
			i.IPv6 = addr(v6)
		}
		return i
	}
	st := &diskState{
		Networks: map[string]*NetworkInfo{"front": {Subnet4: pfx("10.213.1.0/24"), Gateway4: addr("10.213.1.1")},
			"back": {Subnet4: pfx("10.213.2.0/24"), Gateway4: addr("10.213.2.1")}},
		Endpoints: map[string]*endpointRecord{
			"w1": {Endpoint: Endpoint{ID: "w1", Name: "p-web-1", Service: "web", Hostname: "www", Domainname: "example.org"},
				Interfaces: []Interface{ifc("front", "10.213.1.2", "fd42:b0::2", "site")}},
			"w2": {Endpoint: Endpoint{ID: "w2", Name: "p-web-2", Service: "web"},
				Interfaces: []Interface{ifc("front", "10.213.1.3", "")}},
			"db": {Endpoint: Endpoint{ID: "db", Name: "p-db-1", Project: "p", Service: "db", DNS: []string{"10.213.9.9", "10.213.2.1"}},
				Interfaces: []Interface{ifc("back", "10.213.2.2", "", "database")}},
			"api": {Endpoint: Endpoint{ID: "api", Name: "p-api-1", Project: "p", Service: "api", Links: []string{"db:store", "web:web"}},
				Interfaces: []Interface{ifc("front", "10.213.1.4", ""), ifc("back", "10.213.2.3", "")}},
			// Another project's db: a link never reaches across projects.
			"qdb": {Endpoint: Endpoint{ID: "qdb", Name: "q-db-1", Project: "q", Service: "db"},
				Interfaces: []Interface{ifc("back", "10.213.2.9", "")}},
		},
	}
	z := newZone(st)
	for _, c := range []struct {
		from, name string
		want       string
		found      bool
	}{
		{"10.213.1.4", "web.", "[10.213.1.2 fd42:b0::2 10.213.1.3]", true},
		{"10.213.1.4", "site", "[10.213.1.2 fd42:b0::2]", true},
		{"10.213.1.4", "www.example.org.", "[10.213.1.2 fd42:b0::2]", true},
		{"10.213.1.4", "P-WEB-2.", "[10.213.1.3]", true},
		{"10.213.2.2", "api.", "[10.213.2.3]", true},      // only the address on the shared network
		{"10.213.2.2", "web.", "[]", false},               // not on a shared network
		{"10.213.1.2", "database.", "[]", false},          // alias on a network web is not on
		{"10.213.1.4", "database.", "[10.213.2.2]", true}, // api shares back with db
		{"192.0.2.9", "web.", "[]", false},                // not a container: forwarded
		{"10.213.1.4", "Store.", "[10.213.2.2]", true},    // links: db:store
		{"10.213.1.2", "store.", "[]", false},             // only for the linking container
		{"10.213.2.2", "store.", "[]", false},
	} {
		got, found := z.lookup(addr(c.from), c.name)
		if fmt.Sprint(got) != c.want && !(len(got) == 0 && c.want == "[]") || found != c.found {
			t.Errorf("%s asks %s: %v %v, want %s %v", c.from, c.name, got, found, c.want, c.found)
		}
	}
	if name, ok := z.reverse(addr("10.213.1.4"), "2.1.213.10.in-addr.arpa."); !ok || name != "p-web-1" {
		t.Errorf("PTR of web's address: %q %v", name, ok)
	}
	if name, ok := z.reverse(addr("10.213.1.4"), "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.b.0.0.2.4.d.f.ip6.arpa."); !ok || name != "p-web-1" {
		t.Errorf("PTR of web's IPv6 address: %q %v", name, ok)
	}
	if _, ok := z.reverse(addr("10.213.2.2"), "2.1.213.10.in-addr.arpa."); ok {
		t.Error("PTR answered across networks")
	}
	if !z.local(addr("10.213.2.200")) || z.local(addr("192.0.2.9")) {
		t.Error("only berth's subnets may query the responder")
	}
	if got := z.upstreams(addr("10.213.2.2"), []string{"192.0.2.53"}); fmt.Sprint(got) != "[10.213.9.9]" {
		t.Errorf("db's upstreams %v: its dns: servers minus berth's own listeners", got)
	}
	if got := z.upstreams(addr("10.213.1.2"), []string{"192.0.2.53"}); fmt.Sprint(got) != "[192.0.2.53]" {
		t.Errorf("default upstreams %v", got)
	}
}

func TestEndpointFor(t *testing.T) {
	s := &state.Service{Name: "web", Replicas: 2, Container: state.ContainerSpec{Project: "p", Hostname: "h",
		Networks: []state.NetworkAttachment{{Network: "p_default"}}, Ports: []state.Port{{ContainerPort: 80}}, DNS: []string{"1.1.1.1"},
		Links: []string{"db:store"}}}
	ep := EndpointFor("abc", s.Replica(2))
	if ep.ID != "abc" || ep.Name != "p-web-2" || ep.Service != "web" || ep.Hostname != "h" || len(ep.Networks) != 1 || len(ep.Ports) != 1 || ep.DNS[0] != "1.1.1.1" || len(ep.Links) != 1 {
		t.Errorf("%+v", ep)
	}
}
