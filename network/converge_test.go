package network

import (
	"context"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/state"
)

// convergeTable is a set of whole desired states with every allocation
// pinned, so that each has exactly one correct rendering.
func convergeTable() map[string]Config {
	net1 := netSpec("p_one", "10.213.20.0/24")
	net2 := netSpec("p_two", "10.213.21.0/24")
	net2.Internal = true
	net3 := netSpec("q_six", "10.213.22.0/24")
	net3.EnableIPv6 = true
	net3.IPAM = append(net3.IPAM, state.Subnet{Subnet: "fd42:b0:0:30::/64"})
	att := func(n, ip, mac string) state.NetworkAttachment {
		return state.NetworkAttachment{Network: n, IPv4: ip, MacAddress: mac}
	}
	port := func(h, c int) []state.Port { return []state.Port{{HostPort: h, ContainerPort: c, Protocol: "tcp"}} }
	web1 := Endpoint{ID: "w1", Name: "p-web-1", Project: "p", Service: "web", Ports: port(8080, 80),
		Networks: []state.NetworkAttachment{att("p_one", "10.213.20.10", "02:00:00:00:00:10")}}
	web2 := Endpoint{ID: "w2", Name: "p-web-2", Project: "p", Service: "web", Ports: port(8080, 80),
		Networks: []state.NetworkAttachment{att("p_one", "10.213.20.11", "02:00:00:00:00:11")}}
	web1b := web1
	web1b.Networks = append(web1b.Networks, att("p_two", "10.213.21.10", "02:00:00:00:01:10"))
	db := Endpoint{ID: "d1", Name: "p-db-1", Project: "p", Service: "db",
		Networks: []state.NetworkAttachment{att("p_two", "10.213.21.20", "02:00:00:00:01:20")}}
	six := Endpoint{ID: "s1", Name: "q-six-1", Project: "q", Service: "six", Ports: []state.Port{{HostPort: 5353, ContainerPort: 53, Protocol: "udp"}},
		Networks: []state.NetworkAttachment{{Network: "q_six", IPv4: "10.213.22.5", IPv6: "fd42:b0:0:30::5", MacAddress: "02:00:00:00:02:05"}}}
	none := Endpoint{ID: "n1", Name: "p-none-1", Project: "p", Service: "none", NetworkMode: "none"}
	return map[string]Config{
		"empty":     {},
		"balanced":  {Networks: []state.NetworkSpec{net1}, Endpoints: []Endpoint{web1, web2}},
		"two-nets":  {Networks: []state.NetworkSpec{net1, net2}, Endpoints: []Endpoint{web1b, db, none}},
		"ipv6":      {Networks: []state.NetworkSpec{net2, net3}, Endpoints: []Endpoint{db, six}},
		"all":       {Networks: []state.NetworkSpec{net1, net2, net3}, Endpoints: []Endpoint{web1b, web2, db, six, none}},
		"nets-only": {Networks: []state.NetworkSpec{net1, net2, net3}},
	}
}

func TestSetConvergesInAnyOrder(t *testing.T) {
	e := newTestEnv(t, "conv", "")
	ctx := context.Background()
	table := convergeTable()
	want := map[string]string{}
	var names []string
	for name, cfg := range table {
		names = append(names, name)
		if err := e.m.Set(ctx, Config{}); err != nil {
			t.Fatal(err)
		}
		if err := e.m.Set(ctx, cfg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want[name] = e.render(t)
	}
	if !strings.Contains(want["ipv6"], "addr eth0 fd42:b0:0:30::5/64") || !strings.Contains(want["ipv6"], "route default dev eth0 via fd42:b0:0:30::1") {
		t.Errorf("ipv6 rendering:\n%s", want["ipv6"])
	}
	if !strings.Contains(want["ipv6"], "udp dport 5353 dnat ip6 to numgen inc mod 60 map @lb-udp-5353-6") || !strings.Contains(want["ipv6"], "elements = { 0 : fd42:b0:0:30::5 . 53, 1 : fd42:b0:0:30::5 . 53,") ||
		!strings.Contains(want["ipv6"], "udp dport 5353 dnat ip to numgen inc mod 60 map @lb-udp-5353-4") || !strings.Contains(want["ipv6"], "elements = { 0 : 10.213.22.5 . 53, 1 : 10.213.22.5 . 53,") {
		t.Errorf("published port lacks an IPv4 or IPv6 rule:\n%s", want["ipv6"])
	}
	if !strings.Contains(want["balanced"], "tcp dport 8080 dnat ip to numgen inc mod 60 map @lb-tcp-8080-4") || !strings.Contains(want["balanced"], "elements = { 0 : 10.213.20.10 . 80, 1 : 10.213.20.11 . 80, 2 : 10.213.20.10 . 80,") {
		t.Errorf("two replicas behind one port are not balanced:\n%s", want["balanced"])
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 18; i++ {
		name := names[rng.Intn(len(names))]
		if i%2 == 1 {
			e.damage(t, rng)
		}
		if err := e.m.Set(ctx, table[name]); err != nil {
			t.Fatalf("step %d %s: %v", i, name, err)
		}
		if got := e.render(t); got != want[name] {
			t.Fatalf("step %d: %s rendered differently after a transition:\n--- got\n%s\n--- want\n%s", i, name, got, want[name])
		}
	}
}

// snapshot is what the residue test compares: the host namespace as `ip`
// and `nft` print it, and berth's namespaces and files.
func (e *testEnv) snapshot(t *testing.T) string {
	var b strings.Builder
	for _, args := range [][]string{{"ip", "link"}, {"ip", "addr"}, {"ip", "route"}, {"ip", "-6", "route"}, {"nft", "list", "ruleset"}} {
		b.WriteString(run(t, append([]string{"ip", "netns", "exec", e.host.name}, args...)...))
	}
	for _, line := range strings.Split(run(t, "ip", "netns"), "\n") {
		if strings.HasPrefix(line, e.host.name) {
			b.WriteString(line + "\n")
		}
	}
	ents, _ := os.ReadDir(filepath.Join(e.opt.RunRoot, "netns"))
	for _, ent := range ents {
		b.WriteString("sandbox " + ent.Name() + "\n")
	}
	ents, _ = os.ReadDir(filepath.Join(e.opt.RunRoot, "network", "containers"))
	for _, ent := range ents {
		b.WriteString("files " + ent.Name() + "\n")
	}
	return b.String()
}

func TestNoResidue(t *testing.T) {
	e := newTestEnv(t, "residue", "")
	ctx := context.Background()
	// Another root's bridge in the same namespace is not this root's to clean.
	run(t, "ip", "-n", e.host.name, "link", "add", bridgePrefix+"0ther000000", "type", "bridge")
	run(t, "ip", "-n", e.host.name, "link", "set", bridgePrefix+"0ther000000", "alias", "berth 0123456789ab")
	before := e.snapshot(t)
	if err := e.m.Set(ctx, convergeTable()["all"]); err != nil {
		t.Fatal(err)
	}
	pid := e.m.dnsPid()
	if pid == 0 {
		t.Fatal("no DNS responder while networks exist")
	}
	// Leave crash debris: a stray berth bridge, veth and namespace.
	alias := linkAlias(e.m.opt.Root)
	run(t, "ip", "-n", e.host.name, "link", "add", bridgePrefix+"deadbeef000", "type", "bridge")
	run(t, "ip", "-n", e.host.name, "link", "set", bridgePrefix+"deadbeef000", "alias", alias)
	run(t, "ip", "-n", e.host.name, "link", "add", hostVethPrefix+"deadbeef0000", "type", "veth", "peer", "name", "strayp")
	run(t, "ip", "-n", e.host.name, "link", "set", hostVethPrefix+"deadbeef0000", "alias", alias)

	if err := createNetns(e.m.SandboxPath("crashed")); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Set(ctx, Config{}); err != nil {
		t.Fatal(err)
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("residue after removal:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		t.Errorf("DNS responder %d still runs with no network left", pid)
	}
}

// TestDNSRestart: the responder is stateless; killed, it is started again
// by the next change and answers from the file.
func TestDNSRestart(t *testing.T) {
	e := newTestEnv(t, "dnsre", "")
	ctx := context.Background()
	cfg := convergeTable()["balanced"]
	if err := e.m.Set(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	pid := e.m.dnsPid()
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, "responder killed", func() error {
		if e.m.dnsPid() != 0 {
			return syscall.EBUSY
		}
		return nil
	})
	if err := e.m.Set(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if e.m.dnsPid() == 0 || e.m.dnsPid() == pid {
		t.Fatal("responder not restarted")
	}
	m, err := query(t, e.m.SandboxPath("w1"), "10.213.20.1", "web", 1)
	if err != nil || len(answers(m)) != 2 {
		t.Fatalf("after restart: %v %v", answers(m), err)
	}
}

// damage breaks what berth made the way a crash, a reboot or an operator
// would: the table flushed away, a link or a sandbox gone.
func (e *testEnv) damage(t *testing.T, rng *rand.Rand) {
	var victims [][]string
	for _, line := range strings.Split(renderNS(t, e.host.path), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "link" && (strings.HasPrefix(f[1], bridgePrefix) || strings.HasPrefix(f[1], hostVethPrefix)) {
			victims = append(victims, []string{"ip", "-n", e.host.name, "link", "del", f[1]})
		}
	}
	victims = append(victims, []string{"ip", "netns", "exec", e.host.name, "nft", "delete", "table", "inet", TableName(e.m.opt.Root)})
	ents, _ := os.ReadDir(filepath.Join(e.opt.RunRoot, "netns"))
	for _, ent := range ents {
		victims = append(victims, []string{"umount", filepath.Join(e.opt.RunRoot, "netns", ent.Name())})
	}
	v := victims[rng.Intn(len(victims))]
	t.Logf("damage: %s", strings.Join(v, " "))
	exec.Command(v[0], v[1:]...).Run() // the table may already be gone
}

// TestConcurrentAttach: containers attached in parallel (as the driver's
// executor does) get distinct addresses and one DNS responder between them.
func TestConcurrentAttach(t *testing.T) {
	e, ctx := newNetEnv(t, "para")
	// Kill the responder so that the parallel callers race to start it.
	syscall.Kill(e.m.dnsPid(), syscall.SIGKILL)
	waitFor(t, "responder gone", func() error {
		if e.m.dnsPid() != 0 {
			return syscall.EBUSY
		}
		return nil
	})
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func(i int) {
			_, err := e.m.Attach(ctx, Endpoint{ID: "c" + string(rune('a'+i)), Name: "p-web-" + string(rune('1'+i)), Service: "web",
				Networks: []state.NetworkAttachment{{Network: "p_default"}}})
			errs <- err
		}(i)
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	eps, _ := e.m.Endpoints(ctx, "p_default")
	seen := map[string]bool{}
	for _, a := range eps {
		seen[a.Interfaces[0].IPv4.String()] = true
	}
	if len(eps) != 8 || len(seen) != 8 {
		t.Fatalf("%d endpoints with %d distinct addresses", len(eps), len(seen))
	}
	m, err := query(t, e.m.SandboxPath("ca"), "10.213.0.1", "web", 1)
	if err != nil || len(answers(m)) != 8 {
		t.Fatalf("web: %v %v", answers(m), err)
	}
	if n := responders(e.m.stateDir); n != 1 {
		t.Errorf("%d DNS responders run for one root", n)
	}
}

// responders counts the live responder processes of a state directory.
func responders(stateDir string) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		env, err := os.ReadFile(p)
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil && strings.Contains(string(env), dnsMarker+stateDir+"\x00") && !isZombie(pid) {
			n++
		}
	}
	return n
}
