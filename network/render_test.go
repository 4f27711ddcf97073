package network

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-dev/berth/state"
)

func netSpec(name string, subnet string) state.NetworkSpec {
	s := state.NetworkSpec{Name: name, Key: name, Project: "p", Driver: "bridge"}
	if subnet != "" {
		s.IPAM = []state.Subnet{{Subnet: subnet}}
	}
	return s
}

func TestRenderNetworkAndEndpoint(t *testing.T) {
	e := newTestEnv(t, "render", "")
	ctx := context.Background()
	front := netSpec("p_front", "10.213.10.0/24")
	front.DriverOpts = map[string]string{MTUOption: "1400"}
	back := netSpec("p_back", "10.213.11.0/24")
	back.Internal = true
	for _, s := range []state.NetworkSpec{front, back} {
		if _, err := e.m.EnsureNetwork(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	att, err := e.m.Attach(ctx, Endpoint{ID: "c1", Name: "p-web-1", Project: "p", Service: "web",
		Networks: []state.NetworkAttachment{
			{Network: "p_front", MacAddress: "02:42:0a:d5:0a:05", IPv4: "10.213.10.5"},
			{Network: "p_back", InterfaceName: "internal0", MacAddress: "02:42:0a:d5:0b:02", Priority: 10},
		},
		Ports: []state.Port{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := e.render(t)
	fb, bb := BridgeName(e.m.opt.Root, "p_front"), BridgeName(e.m.opt.Root, "p_back")
	fv, bv := hostVethName("c1", "p_front"), hostVethName("c1", "p_back")
	for _, want := range []string{
		"link " + fb + " bridge mtu 1400 up=true",
		"addr " + fb + " 10.213.10.1/24",
		"addr " + bb + " 10.213.11.1/24",
		"link " + fv + " veth mtu 1400 up=true master " + fb,
		"link " + bv + " veth mtu 1500 up=true master " + bb,
		"== sandbox c1",
		"link eth0 veth mtu 1400 up=true mac 02:42:0a:d5:0a:05",
		"addr eth0 10.213.10.5/24",
		"link internal0 veth mtu 1500 up=true mac 02:42:0a:d5:0b:02",
		"addr internal0 10.213.11.2/24",
		// gw_priority favours back, but an internal network has no way out.
		"route default dev eth0 via 10.213.10.1",
		"table inet berth",
		"ip saddr 10.213.10.0/24 oifname != \"" + fb + "\" masquerade",
		"iifname \"" + bb + "\" oifname != \"" + bb + "\" drop",
		"iifname \"" + fb + "\" oifname \"" + bb + "\" drop",
		"ip daddr 127.0.0.1 tcp dport 8080 dnat ip to numgen inc mod 60 map @lb-tcp-8080-127_0_0_1-4",
		"elements = { 0 : 10.213.10.5 . 80, 1 : 10.213.10.5 . 80,",
		"fib daddr type local jump ports",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendering lacks %q", want)
		}
	}
	if strings.Contains(got, "ip saddr 10.213.11.0/24 oifname !=") {
		t.Errorf("internal network is masqueraded")
	}
	if t.Failed() {
		t.Log(got)
	}
	if att.NetnsPath != e.m.SandboxPath("c1") || len(att.Ports) != 1 || att.Interfaces[1].IPv4 != mustAddr("10.213.11.2") {
		t.Errorf("attachment %+v", att)
	}
	// Attaching again with the same endpoint changes nothing.
	if _, err := e.m.Attach(ctx, Endpoint{ID: "c1", Name: "p-web-1", Project: "p", Service: "web",
		Networks: []state.NetworkAttachment{
			{Network: "p_front", MacAddress: "02:42:0a:d5:0a:05", IPv4: "10.213.10.5"},
			{Network: "p_back", InterfaceName: "internal0", MacAddress: "02:42:0a:d5:0b:02", Priority: 10},
		},
		Ports: []state.Port{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
	}); err != nil {
		t.Fatal(err)
	}
	if again := e.render(t); again != got {
		t.Errorf("re-attach changed the machine:\n%s\nvs\n%s", got, again)
	}
}

func TestNetworkModes(t *testing.T) {
	e, ctx := newNetEnv(t, "modes")
	if _, err := e.m.EnsureNetwork(ctx, state.NetworkSpec{Name: "p_overlay", Driver: "overlay"}); err == nil {
		t.Error("an overlay network was accepted")
	}
	if _, err := e.m.EnsureNetwork(ctx, state.NetworkSpec{Name: "elsewhere", External: true}); err == nil {
		t.Error("a missing external network was accepted")
	}
	ext, err := e.m.EnsureNetwork(ctx, state.NetworkSpec{Name: "p_default", External: true})
	if err != nil || ext.Bridge != BridgeName(e.m.opt.Root, "p_default") {
		t.Errorf("external network: %+v %v", ext, err)
	}
	web, err := e.m.Attach(ctx, Endpoint{ID: "web", Name: "p-web-1", Service: "web", Hostname: "webhost",
		Networks: []state.NetworkAttachment{{Network: "p_default"}}})
	if err != nil {
		t.Fatal(err)
	}
	side, err := e.m.Attach(ctx, Endpoint{ID: "side", Name: "p-side-1", Service: "side", NetworkMode: "container:web"})
	if err != nil || side.NetnsPath != web.NetnsPath {
		t.Errorf("container mode joins %q, want %q (%v)", side.NetnsPath, web.NetnsPath, err)
	}
	hosts, _ := readFile(side.HostsPath)
	if !strings.Contains(hosts, web.Interfaces[0].IPv4.String()+"\tside\n") {
		t.Errorf("container-mode hosts file lacks the shared address:\n%s", hosts)
	}
	host, err := e.m.Attach(ctx, Endpoint{ID: "hostnet", Name: "p-h-1", NetworkMode: "host"})
	if err != nil || host.NetnsPath != "" {
		t.Errorf("host mode: %+v %v", host, err)
	}
	if _, err := e.m.Attach(ctx, Endpoint{ID: "bad", NetworkMode: "container:nope"}); err == nil {
		t.Error("joining a missing container succeeded")
	}
	if err := e.m.RemoveNetwork(ctx, "p_default"); err == nil {
		t.Error("removed a network in use")
	}
	// gw_priority: the highest non-internal network carries the default route.
	if _, err := e.m.EnsureNetwork(ctx, netSpec("p_side", "10.213.12.0/24")); err != nil {
		t.Fatal(err)
	}
	two, err := e.m.Attach(ctx, Endpoint{ID: "two", Name: "p-two-1", Networks: []state.NetworkAttachment{
		{Network: "p_default"}, {Network: "p_side", Priority: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := renderNS(t, two.NetnsPath); !strings.Contains(got, "route default dev eth1 via 10.213.12.1") {
		t.Errorf("default route not through the gw_priority network:\n%s", got)
	}
	// Moving a publishing container to host mode drops its rules.
	if _, err := e.m.Attach(ctx, Endpoint{ID: "pub", Name: "p-pub-1", Networks: []state.NetworkAttachment{{Network: "p_default"}},
		Ports: []state.Port{{HostPort: 8181, ContainerPort: 80}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Attach(ctx, Endpoint{ID: "pub", Name: "p-pub-1", NetworkMode: "host"}); err != nil {
		t.Fatal(err)
	}
	if got := e.render(t); strings.Contains(got, "8181") {
		t.Errorf("host mode kept the published port:\n%s", got)
	}
	// Moving web from its network to none removes its veth.
	if _, err := e.m.Attach(ctx, Endpoint{ID: "web", Name: "p-web-1", NetworkMode: "none"}); err != nil {
		t.Fatal(err)
	}
	if got := renderNS(t, web.NetnsPath); strings.Contains(got, "eth0") {
		t.Errorf("none mode kept an interface:\n%s", got)
	}
}
