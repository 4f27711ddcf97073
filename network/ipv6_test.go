package network

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// otherMachine6 links a namespace standing for another machine to the
// test host by a veth with IPv6 addresses of the test's own (a ULA prefix
// nothing on the machine uses) and returns its path and the host's address.
func otherMachine6(t testing.TB, host testHost) (string, string) {
	m := newTestHost(t, "machine6")
	run(t, "ip", "link", "add", "bt-mach6", "netns", host.name, "type", "veth", "peer", "name", "eth0", "netns", m.name)
	run(t, "ip", "-n", host.name, "addr", "add", "fd5b:e27a:9d10::1/64", "dev", "bt-mach6", "nodad")
	run(t, "ip", "-n", host.name, "link", "set", "bt-mach6", "up")
	run(t, "ip", "-n", m.name, "addr", "add", "fd5b:e27a:9d10::2/64", "dev", "eth0", "nodad")
	run(t, "ip", "-n", m.name, "link", "set", "eth0", "up")
	// A route to every address of the host (its gateways too).
	run(t, "ip", "-n", m.name, "-6", "route", "add", "default", "via", "fd5b:e27a:9d10::1")
	t.Cleanup(func() { exec.Command("ip", "-n", host.name, "link", "del", "bt-mach6").Run() })
	return m.path, "fd5b:e27a:9d10::1"
}

// udpEcho answers every datagram sent to addr inside the namespace at path
// with "echo " and the datagram.
func udpEcho(t testing.TB, path, addr string) {
	var pc net.PacketConn
	if err := inSandbox(t, path, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
}

// udpAsk sends msg to addr from the namespace at path and returns the answer.
func udpAsk(t testing.TB, path, addr, msg string) (string, error) {
	var c net.Conn
	if err := inSandbox(t, path, func() (err error) { c, err = net.Dial("udp", addr); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// dialFails is true when nothing accepts a TCP connection to addr from the
// namespace at path.
func dialFails(t testing.TB, path, addr string) bool {
	var c net.Conn
	err := inSandbox(t, path, func() (err error) { c, err = net.DialTimeout("tcp", addr, 500*time.Millisecond); return err })
	if err == nil {
		c.Close()
	}
	return err != nil
}

// TestIPv6Published: published ports answer over IPv6 as a compose user
// expects from Docker with its userland proxy — on ::1 and on the host's
// other IPv6 addresses, from the host and from another machine, for
// containers with IPv6 addresses (nftables, and the proxy for ::1) and for
// IPv4-only containers (the proxy, to their IPv4 address); "::1" as host
// IP binds the loopback only; the proxy follows the ports as they go. And
// the DNS responder answers on the IPv6 gateway.
func TestIPv6Published(t *testing.T) {
	e := newTestEnv(t, "v6p", "")
	ctx := context.Background()
	machine, hostAddr6 := otherMachine6(t, e.host)
	six := netSpec("p_six", "")
	six.EnableIPv6 = true
	n6, err := e.m.EnsureNetwork(ctx, six)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.EnsureNetwork(ctx, netSpec("p_four", "")); err != nil {
		t.Fatal(err)
	}
	att := map[string]Attachment{}
	for _, x := range []Endpoint{
		{ID: "web6", Name: "p-web6-1", Project: "p", Service: "web6", Networks: []state.NetworkAttachment{{Network: "p_six"}},
			Ports: []state.Port{{HostPort: 8086, ContainerPort: 80}, {HostIP: "::1", HostPort: 8087, ContainerPort: 80},
				{HostPort: 5306, ContainerPort: 53, Protocol: "udp"}}},
		{ID: "web4", Name: "p-web4-1", Project: "p", Service: "web4", Networks: []state.NetworkAttachment{{Network: "p_four"}},
			Ports: []state.Port{{HostPort: 8084, ContainerPort: 80}, {HostIP: "[::1]", HostPort: 8088, ContainerPort: 80},
				{HostPort: 5304, ContainerPort: 53, Protocol: "udp"}}},
		{ID: "client6", Name: "p-client6-1", Project: "p", Service: "client6", Networks: []state.NetworkAttachment{{Network: "p_six"}}},
	} {
		a, err := e.m.Attach(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		att[x.ID] = a
		if x.Service != "client6" {
			serveHTTP(t, a.NetnsPath, x.Service)
			udpEcho(t, a.NetnsPath, ":53")
		}
	}
	if got := att["web4"].Ports[1].HostIP; got != "::1" {
		t.Errorf("host ip [::1] recorded as %q", got)
	}
	gw6 := n6.Gateway6.String()
	waitFor(t, "web6 serving", func() error {
		_, err := wget(att["client6"].NetnsPath, "http://["+att["web6"].Interfaces[0].IPv6.String()+"]/")
		return err
	})

	t.Run("tcp", func(t *testing.T) {
		rules := run(t, "ip", "netns", "exec", e.host.name, "nft", "list", "table", "inet", TableName(e.opt.Root))
		if !strings.Contains(rules, "ip6 daddr != ::1 tcp dport 8086 dnat ip6 to") || strings.Contains(rules, "dport 8087") {
			t.Errorf("IPv6 DNAT must leave ::1 to the proxy:\n%s", rules)
		}
		for _, c := range []struct{ from, url, want string }{
			{e.host.path, "http://[::1]:8086/", "web6"},                      // proxy -> IPv6
			{e.host.path, "http://[" + gw6 + "]:8086/", "web6"},              // nftables
			{e.host.path, "http://[" + hostAddr6 + "]:8086/", "web6"},        // nftables, another host address
			{machine, "http://[" + hostAddr6 + "]:8086/", "web6"},            // nftables, prerouting
			{e.host.path, "http://127.0.0.1:8086/", "web6"},                  // IPv4 as before
			{e.host.path, "http://[::1]:8087/", "web6"},                      // host ip ::1
			{e.host.path, "http://[::1]:8084/", "web4"},                      // proxy -> IPv4
			{e.host.path, "http://[" + hostAddr6 + "]:8084/", "web4"},        // proxy -> IPv4
			{machine, "http://[" + hostAddr6 + "]:8084/", "web4"},            // proxy -> IPv4, another machine
			{e.host.path, "http://127.0.0.1:8084/", "web4"},                  // nftables
			{e.host.path, "http://[::1]:8088/", "web4"},                      // host ip [::1], IPv4-only container
			{att["client6"].NetnsPath, "http://[" + gw6 + "]:8086/", "web6"}, // hairpin over IPv6
		} {
			var body string
			var err error
			// The proxy follows the allocation file asynchronously.
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if body, err = wget(c.from, c.url); err == nil {
					break
				}
			}
			if err != nil || body != c.want {
				t.Errorf("%s from %s: %q %v, want %q", c.url, filepath.Base(c.from), body, err, c.want)
			}
		}
		// A port published on ::1 only answers there.
		for _, addr := range []string{"127.0.0.1:8087", "[" + gw6 + "]:8087", "[" + hostAddr6 + "]:8088", "127.0.0.1:8088"} {
			if !dialFails(t, e.host.path, addr) {
				t.Errorf("%s answers; the port is published on ::1 only", addr)
			}
		}
		if !dialFails(t, machine, "["+hostAddr6+"]:8087") {
			t.Errorf("another machine reaches a port published on ::1")
		}
	})

	t.Run("udp", func(t *testing.T) {
		// A second host address on the machine's link: the proxy must
		// answer from the address asked, not the one the kernel prefers.
		run(t, "ip", "-n", e.host.name, "addr", "add", "fd5b:e27a:9d10::4/64", "dev", "bt-mach6", "nodad")
		for _, c := range []struct{ from, addr string }{
			{e.host.path, "[::1]:5306"}, {e.host.path, "[" + gw6 + "]:5306"}, {machine, "[" + hostAddr6 + "]:5306"},
			{e.host.path, "[::1]:5304"}, {machine, "[" + hostAddr6 + "]:5304"}, {e.host.path, "127.0.0.1:5304"},
			{machine, "[fd5b:e27a:9d10::4]:5304"},
		} {
			var got string
			var err error
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if got, err = udpAsk(t, c.from, c.addr, "ping"); err == nil {
					break
				}
			}
			if err != nil || got != "echo ping" {
				t.Errorf("udp %s from %s: %q %v", c.addr, filepath.Base(c.from), got, err)
			}
		}
	})

	t.Run("dns", func(t *testing.T) {
		resolv, _ := os.ReadFile(att["client6"].ResolvConfPath)
		if !strings.Contains(string(resolv), "nameserver "+n6.Gateway4.String()+"\nnameserver "+gw6+"\n") {
			t.Errorf("resolv.conf of an IPv6 container lacks the IPv6 gateway:\n%s", resolv)
		}
		resolv, _ = os.ReadFile(att["web4"].ResolvConfPath)
		if strings.Count(string(resolv), "nameserver") != 1 {
			t.Errorf("resolv.conf of an IPv4-only container:\n%s", resolv)
		}
		web6 := att["web6"].Interfaces[0]
		for qt, want := range map[uint16]string{dns.TypeAAAA: web6.IPv6.String(), dns.TypeA: web6.IPv4.String()} {
			m, err := query(t, att["client6"].NetnsPath, gw6, "web6", qt)
			if err != nil || fmt.Sprint(answers(m)) != "["+want+"]" {
				t.Errorf("%s web6 over IPv6: %v %v, want %s", dns.TypeToString[qt], answers(m), err, want)
			}
		}
		// Not an open resolver on IPv6 either.
		m, err := query(t, machine, gw6, "web6", dns.TypeAAAA)
		if err == nil && m.Rcode != dns.RcodeRefused {
			t.Errorf("another machine got an answer from the responder over IPv6: %v", m)
		}
	})

	t.Run("follows", func(t *testing.T) {
		// The ports go with the container; a new one takes them at once
		// (the proxy still holding them a moment must not refuse it).
		if err := e.m.RemoveSandbox(ctx, "web4"); err != nil {
			t.Fatal(err)
		}
		a, err := e.m.Attach(ctx, Endpoint{ID: "web4b", Name: "p-web4-2", Project: "p", Service: "web4",
			Networks: []state.NetworkAttachment{{Network: "p_four"}}, Ports: []state.Port{{HostPort: 8084, ContainerPort: 80}}})
		if err != nil {
			t.Fatalf("re-publishing 8084 right after its container went: %v", err)
		}
		serveHTTP(t, a.NetnsPath, "web4b")
		waitFor(t, "[::1]:8084 to the new container", func() error {
			body, err := wget(e.host.path, "http://[::1]:8084/")
			if err == nil && body != "web4b" {
				return fmt.Errorf("got %q", body)
			}
			return err
		})
		waitFor(t, "[::1]:8088 closed", func() error {
			if !dialFails(t, e.host.path, "[::1]:8088") {
				return fmt.Errorf("still accepting")
			}
			return nil
		})
		if err := e.m.RemoveSandbox(ctx, "web6"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "[::1]:8086 closed", func() error {
			if !dialFails(t, e.host.path, "[::1]:8086") || !dialFails(t, e.host.path, "[::1]:8087") {
				return fmt.Errorf("still accepting")
			}
			return nil
		})
	})
}

// TestLinkLocalIPs: link_local_ips go on the interface beside the IPAM
// addresses, and peers on the bridge reach them; anything but a
// link-local address is refused.
func TestLinkLocalIPs(t *testing.T) {
	e := newTestEnv(t, "ll", "")
	ctx := context.Background()
	if _, err := e.m.EnsureNetwork(ctx, netSpec("p_ll", "")); err != nil {
		t.Fatal(err)
	}
	att := map[string]Attachment{}
	for id, ll := range map[string][]string{"a": {"169.254.77.5", "fe80::77:5"}, "b": {"169.254.77.6"}} {
		a, err := e.m.Attach(ctx, Endpoint{ID: id, Name: "p-" + id + "-1", Service: id,
			Networks: []state.NetworkAttachment{{Network: "p_ll", LinkLocalIPs: ll}}})
		if err != nil {
			t.Fatal(err)
		}
		att[id] = a
	}
	out := run(t, "nsenter", "--net="+att["a"].NetnsPath, "ip", "addr", "show", "dev", "eth0")
	for _, want := range []string{"inet " + att["a"].Interfaces[0].IPv4.String() + "/24", "inet 169.254.77.5/16", "inet6 fe80::77:5/64"} {
		if !strings.Contains(out, want) {
			t.Errorf("eth0 lacks %q:\n%s", want, out)
		}
	}
	serveHTTP(t, att["a"].NetnsPath, "linked")
	waitFor(t, "b -> a over 169.254", func() error {
		body, err := wget(att["b"].NetnsPath, "http://169.254.77.5/")
		if err == nil && body != "linked" {
			return fmt.Errorf("got %q", body)
		}
		return err
	})
	_, err := e.m.Attach(ctx, Endpoint{ID: "c", Name: "p-c-1", Service: "c",
		Networks: []state.NetworkAttachment{{Network: "p_ll", LinkLocalIPs: []string{"10.213.77.9"}}}})
	if err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("a routable address as link_local_ips: %v", err)
	}
}
