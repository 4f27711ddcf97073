package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/state"
	"github.com/miekg/dns"
)

// query asks berth's responder at server, from inside the sandbox at path.
func query(t testing.TB, path, server, name string, qtype uint16) (*dns.Msg, error) {
	var resp *dns.Msg
	err := inSandbox(t, path, func() error {
		c := &dns.Client{Timeout: time.Second}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		var err error
		resp, _, err = c.Exchange(m, net.JoinHostPort(server, "53"))
		return err
	})
	return resp, err
}

func answers(m *dns.Msg) []string {
	var out []string
	if m == nil {
		return nil
	}
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		}
	}
	return out
}

// wget fetches url from inside the namespace at nsPath with busybox.
func wget(nsPath, url string) (string, error) {
	out, err := exec.Command("nsenter", "--net="+nsPath, "timeout", "5", "busybox", "wget", "-q", "-O-", url).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// wgetFail is wget for a fetch that must fail: dropped packets would make
// it wait, so it gives up sooner.
func wgetFail(nsPath, url string) (string, error) {
	out, err := exec.Command("nsenter", "--net="+nsPath, "timeout", "1", "busybox", "wget", "-q", "-O-", url).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// serveHTTP runs busybox httpd in a sandbox, answering body.
func serveHTTP(t testing.TB, nsPath, body string) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startIn(t, nsPath, "busybox", "httpd", "-f", "-p", "80", "-h", dir)
}

// otherMachine links a namespace to the test host by a veth with the
// test's own addresses and returns its path and the host's address.
func otherMachine(t testing.TB, host testHost) (string, string) {
	m := newTestHost(t, "machine")
	run(t, "ip", "link", "add", "bt-mach0", "netns", host.name, "type", "veth", "peer", "name", "eth0", "netns", m.name)
	run(t, "ip", "-n", host.name, "addr", "add", "10.213.250.1/30", "dev", "bt-mach0")
	run(t, "ip", "-n", host.name, "link", "set", "bt-mach0", "up")
	run(t, "ip", "-n", m.name, "addr", "add", "10.213.250.2/30", "dev", "eth0")
	run(t, "ip", "-n", m.name, "link", "set", "eth0", "up")
	t.Cleanup(func() { exec.Command("ip", "-n", host.name, "link", "del", "bt-mach0").Run() })
	return m.path, "10.213.250.1"
}

func TestEndToEnd(t *testing.T) {
	for _, brnf := range []string{"1", "0"} {
		// br_netfilter on (packets between bridge ports see nftables) and
		// off (only routed packets do): published ports work either way.
		t.Run("br_netfilter="+brnf, func(t *testing.T) { endToEnd(t, brnf) })
	}
}

func endToEnd(t *testing.T, brnf string) {
	// An upstream resolver on the host's loopback answers what berth forwards.
	e := newTestEnv(t, "e2e"+brnf, "127.0.0.1:5353")
	ctx := context.Background()
	if err := writeSysctl(e.m.host, "net/bridge/bridge-nf-call-iptables", brnf); err != nil {
		t.Fatal(err)
	}
	startUpstream(t, e.host.path, "127.0.0.1:5353")
	machine, machineGW := otherMachine(t, e.host)
	for _, n := range []string{"p_front", "p_back", "p_inner"} {
		spec := netSpec(n, "")
		spec.Internal = n == "p_inner"
		if _, err := e.m.EnsureNetwork(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	ep := func(id, service string, n int, network string, ports ...state.Port) Endpoint {
		return Endpoint{ID: id, Name: state.ContainerName("p", service, n), Project: "p", Service: service,
			Networks: []state.NetworkAttachment{{Network: network, Aliases: []string{service + "-alias"}}}, Ports: ports}
	}
	lb := state.Port{HostPort: 9090, ContainerPort: 80, Protocol: "tcp"}
	eps := []Endpoint{
		ep("web1", "web", 1, "p_front", state.Port{HostPort: 8080, ContainerPort: 80}, state.Port{HostPort: 5300, ContainerPort: 53, Protocol: "udp"}),
		ep("client1", "client", 1, "p_front"),
		ep("other1", "other", 1, "p_back"),
		ep("inner1", "inner", 1, "p_inner"),
		ep("api1", "api", 1, "p_front", lb), ep("api2", "api", 2, "p_front", lb), ep("api3", "api", 3, "p_front", lb),
	}
	atts := map[string]Attachment{}
	for _, x := range eps {
		a, err := e.m.Attach(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		atts[x.ID] = a
		serveHTTP(t, a.NetnsPath, x.Name)
	}
	front, _ := e.m.Network(ctx, "p_front")
	back, _ := e.m.Network(ctx, "p_back")
	gw := front.Gateway4.String()
	resolv, _ := os.ReadFile(atts["client1"].ResolvConfPath)
	if !strings.Contains(string(resolv), "nameserver "+gw) {
		t.Errorf("client resolv.conf does not point at the responder:\n%s", resolv)
	}

	t.Run("names", func(t *testing.T) {
		webIP := atts["web1"].Interfaces[0].IPv4.String()
		for _, name := range []string{"web", "p-web-1", "web-alias", "WEB."} {
			m, err := query(t, atts["client1"].NetnsPath, gw, name, dns.TypeA)
			if err != nil || fmt.Sprint(answers(m)) != "["+webIP+"]" {
				t.Errorf("%s from client: %v %v, want %s", name, answers(m), err, webIP)
			}
		}
		rev, _ := dns.ReverseAddr(webIP)
		if m, err := query(t, atts["client1"].NetnsPath, gw, rev, dns.TypePTR); err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "p-web-1." {
			t.Errorf("PTR %s: %v %v", rev, m, err)
		}
		m, err := query(t, atts["client1"].NetnsPath, gw, "api", dns.TypeA)
		if err != nil || len(answers(m)) != 3 {
			t.Errorf("api has 3 replicas, got %v %v", answers(m), err)
		}
		// A container on another network does not see web: the name is
		// forwarded upstream, which says NXDOMAIN.
		m, err = query(t, atts["other1"].NetnsPath, back.Gateway4.String(), "web", dns.TypeA)
		if err != nil || len(m.Answer) != 0 || m.Rcode != dns.RcodeNameError {
			t.Errorf("other network resolved web: %v rcode %d %v", answers(m), m.Rcode, err)
		}
		m, err = query(t, atts["client1"].NetnsPath, gw, "upstream.example", dns.TypeA)
		if err != nil || fmt.Sprint(answers(m)) != "[10.213.99.99]" {
			t.Errorf("forwarding: %v %v", answers(m), err)
		}
		body, err := wget(atts["client1"].NetnsPath, "http://"+webIP+"/")
		if err != nil || body != "p-web-1" {
			t.Errorf("client -> web: %q %v", body, err)
		}
		if body, err := wgetFail(atts["other1"].NetnsPath, "http://"+webIP+"/"); err == nil {
			t.Errorf("other network reached web: %q", body)
		}
	})

	t.Run("published", func(t *testing.T) {
		for _, c := range []struct{ from, url string }{
			{e.host.path, "http://127.0.0.1:8080/"},
			{machine, "http://" + machineGW + ":8080/"},
			{atts["client1"].NetnsPath, "http://" + gw + ":8080/"},
			{atts["other1"].NetnsPath, "http://" + back.Gateway4.String() + ":8080/"},
			{atts["web1"].NetnsPath, "http://" + gw + ":8080/"},
		} {
			body, err := wget(c.from, c.url)
			if err != nil || body != "p-web-1" {
				t.Errorf("%s from %s: %q %v", c.url, filepath.Base(c.from), body, err)
			}
		}
	})

	t.Run("outbound", func(t *testing.T) {
		serveHTTP(t, machine, "machine")
		waitFor(t, "machine serving", func() error { _, err := wget(machine, "http://127.0.0.1:80/"); return err })
		// Masqueraded: the other machine has no route back to the bridge.
		if body, err := wget(atts["client1"].NetnsPath, "http://10.213.250.2/"); err != nil || body != "machine" {
			t.Errorf("client -> other machine: %q %v", body, err)
		}
		if body, err := wgetFail(atts["inner1"].NetnsPath, "http://10.213.250.2/"); err == nil {
			t.Errorf("a container on an internal network got out: %q", body)
		}
		// Even with a route of its own (NET_ADMIN), and a machine that could
		// answer it, the host does not forward it.
		inner, _ := e.m.Network(ctx, "p_inner")
		run(t, "nsenter", "--net="+machine, "ip", "route", "add", "10.213.0.0/16", "via", machineGW)
		defer run(t, "nsenter", "--net="+machine, "ip", "route", "del", "10.213.0.0/16", "via", machineGW)
		run(t, "nsenter", "--net="+atts["inner1"].NetnsPath, "ip", "route", "add", "default", "via", inner.Gateway4.String())
		if body, err := wgetFail(atts["inner1"].NetnsPath, "http://10.213.250.2/"); err == nil {
			t.Errorf("a container on an internal network got out through its gateway: %q", body)
		}
	})

	t.Run("udp", func(t *testing.T) {
		var pc net.PacketConn
		if err := inSandbox(t, atts["web1"].NetnsPath, func() (err error) { pc, err = net.ListenPacket("udp", ":53"); return err }); err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
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
		var c net.Conn
		if err := inSandbox(t, e.host.path, func() (err error) { c, err = net.Dial("udp", "127.0.0.1:5300"); return err }); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		c.Write([]byte("ping"))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "echo ping" {
			t.Errorf("udp through 127.0.0.1:5300: %q %v", buf[:n], err)
		}
	})

	t.Run("balanced", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 9; i++ {
			body, err := wget(e.host.path, "http://127.0.0.1:9090/")
			if err != nil {
				t.Fatal(err)
			}
			seen[body]++
		}
		if len(seen) != 3 {
			t.Errorf("replicas behind :9090 got %v, want all three", seen)
		}
		// Scale down: the name and the port follow within a second.
		if err := e.m.RemoveSandbox(ctx, "api3"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if t.Failed() {
				log, _ := os.ReadFile(filepath.Join(e.opt.RunRoot, "network", "dns.log"))
				t.Logf("dns pid %d log:\n%s", e.m.dnsPid(), log)
			}
		}()
		waitFor(t, "api scaled to 2", func() error {
			m, err := query(t, atts["client1"].NetnsPath, gw, "api", dns.TypeA)
			if err != nil || len(answers(m)) != 2 {
				return fmt.Errorf("%v %v", answers(m), err)
			}
			return nil
		})
		for i := 0; i < 4; i++ {
			if body, err := wget(e.host.path, "http://127.0.0.1:9090/"); err != nil || body == "p-api-3" {
				t.Errorf("after scale-down: %q %v", body, err)
			}
		}
	})
}

// startUpstream serves upstream.example (and NXDOMAIN for the rest) at addr
// inside the host namespace.
func startUpstream(t testing.TB, hostPath, addr string) {
	var pc net.PacketConn
	if err := inSandbox(t, hostPath, func() (err error) {
		pc, err = net.ListenPacket("udp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "upstream.example." {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
				A: netip.MustParseAddr("10.213.99.99").AsSlice()})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
}
