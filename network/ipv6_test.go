package network

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/state"
	"github.com/miekg/dns"
)

// TestIPv6: an enable_ipv6 network gives containers IPv6 addresses that
// reach each other, AAAA records, and published ports on IPv6 addresses.
func TestIPv6(t *testing.T) {
	e := newTestEnv(t, "v6", "")
	ctx := context.Background()
	spec := netSpec("p_six", "")
	spec.EnableIPv6 = true
	n, err := e.m.EnsureNetwork(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Subnet6.IsValid() || !DefaultPool6.Base.Contains(n.Subnet6.Addr()) {
		t.Fatalf("no IPv6 subnet from the pool: %+v", n)
	}
	atts := map[string]Attachment{}
	for _, id := range []string{"web", "client"} {
		a, err := e.m.Attach(ctx, Endpoint{ID: id, Name: "p-" + id + "-1", Service: id,
			Networks: []state.NetworkAttachment{{Network: "p_six"}},
			Ports:    map[string][]state.Port{"web": {{HostPort: 8086, ContainerPort: 80}}}[id]})
		if err != nil {
			t.Fatal(err)
		}
		atts[id] = a
	}
	web6 := atts["web"].Interfaces[0].IPv6
	if !n.Subnet6.Contains(web6) {
		t.Fatalf("web has no IPv6 address: %+v", atts["web"].Interfaces)
	}
	serveHTTP(t, atts["web"].NetnsPath, "six")
	waitFor(t, "web over IPv6", func() error {
		body, err := wget(atts["client"].NetnsPath, "http://["+web6.String()+"]/")
		if err == nil && body != "six" {
			t.Fatalf("got %q", body)
		}
		return err
	})
	m, err := query(t, atts["client"].NetnsPath, n.Gateway4.String(), "web", dns.TypeAAAA)
	if err != nil || len(answers(m)) != 1 || answers(m)[0] != web6.String() {
		t.Errorf("AAAA web: %v %v", answers(m), err)
	}
	// The published port answers on the host's IPv6 addresses too.
	if body, err := wget(e.host.path, "http://["+n.Gateway6.String()+"]:8086/"); err != nil || body != "six" {
		t.Errorf("published port on [%s]:8086: %q %v", n.Gateway6, body, err)
	}
}
