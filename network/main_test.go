package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestMain doubles as the DNS responder process when the Manager under test
// re-executes the test binary (standing in for `berth network dns-server`).
func TestMain(m *testing.M) {
	if os.Getenv("BERTH_TEST_DNS_SERVER") != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		var up []string
		if u := os.Getenv("BERTH_TEST_DNS_UPSTREAM"); u != "" {
			up = []string{u}
		}
		err := ServeDNS(ctx, DNSOptions{StateDir: os.Getenv("BERTH_TEST_DNS_STATE"), RunDir: os.Getenv("BERTH_TEST_DNS_RUN"), Upstreams: up})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, links and nftables tables")
	}
}

// testHost is a throwaway network namespace standing in for the host.
type testHost struct {
	name string
	path string
}

func newTestHost(t testing.TB, tag string) testHost {
	t.Helper()
	name := fmt.Sprintf("berth-t%d-%s", os.Getpid(), tag)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	h := testHost{name: name, path: "/run/netns/" + name}
	run(t, "ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
	return h
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type testEnv struct {
	host testHost
	m    *Manager
	opt  Options
}

// newTestEnv gives a Manager over a throwaway host namespace; cleanup
// removes everything it made, even when the test failed half-way.
// newNetEnv is newTestEnv with the network p_default made.
func newNetEnv(t *testing.T, name string) (*testEnv, context.Context) {
	t.Helper()
	e := newTestEnv(t, name, "")
	ctx := context.Background()
	if _, err := e.m.EnsureNetwork(ctx, netSpec("p_default", "")); err != nil {
		t.Fatal(err)
	}
	return e, ctx
}

func newTestEnv(t testing.TB, tag, upstream string) *testEnv {
	t.Helper()
	return newTestEnvAt(t, tag, t.TempDir(), upstream)
}

// newTestEnvAt is newTestEnv with the given run root.
func newTestEnvAt(t testing.TB, tag, runRoot, upstream string) *testEnv {
	t.Helper()
	needRoot(t)
	h := newTestHost(t, tag)
	opt := Options{Root: t.TempDir(), RunRoot: runRoot, HostNetns: h.path,
		DNSCommand: func(stateDir, runDir string) *exec.Cmd {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "BERTH_TEST_DNS_SERVER=1", "BERTH_TEST_DNS_STATE="+stateDir,
				"BERTH_TEST_DNS_RUN="+runDir)
			if upstream != "" {
				cmd.Env = append(cmd.Env, "BERTH_TEST_DNS_UPSTREAM="+upstream)
			}
			return cmd
		}}
	m, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Set(context.Background(), Config{}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		m.Close()
		filepath.Walk(filepath.Join(runRoot, "netns"), func(p string, _ os.FileInfo, _ error) error {
			syscall.Unmount(p, syscall.MNT_DETACH)
			return nil
		})
	})
	return &testEnv{host: h, m: m, opt: opt}
}

// render prints the host namespace and every sandbox as stable text:
// links, addresses, routes, and berth's nftables table.
func (e *testEnv) render(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(renderNS(t, e.host.path))
	b.WriteString(sortedRuleset(run(t, "ip", "netns", "exec", e.host.name, "nft", "list", "ruleset")))
	ents, _ := os.ReadDir(filepath.Join(e.opt.RunRoot, "netns"))
	for _, ent := range ents {
		fmt.Fprintf(&b, "== sandbox %s\n", ent.Name())
		b.WriteString(renderNS(t, filepath.Join(e.opt.RunRoot, "netns", ent.Name())))
	}
	return b.String()
}

// sortedRuleset orders the chains, maps and sets of each table of an `nft
// list ruleset` by their first line: nft lists them in the order they were
// made, and a table changed in place keeps the maps it had where a table
// made anew lists them in the order of its ports.
func sortedRuleset(s string) string {
	var out, blocks []string
	var cur []string
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(line, "\t}"):
			blocks = append(blocks, strings.Join(append(cur, line), "\n"))
			cur = nil
		case cur != nil || strings.HasPrefix(line, "\t") && strings.HasSuffix(line, "{"):
			cur = append(cur, line)
		case line == "}":
			sort.Strings(blocks)
			out = append(out, strings.Join(blocks, "\n\n"), line)
			blocks = nil
		case line == "":
		default:
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

func renderNS(t testing.TB, path string) string {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
	}
	for _, l := range links {
		a := l.Attrs()
		line := fmt.Sprintf("link %s %s mtu %d up=%v", a.Name, l.Type(), a.MTU, a.Flags&net.FlagUp != 0)
		if !strings.HasPrefix(a.Name, hostVethPrefix) && a.Name != "lo" {
			// Host veth ends get random addresses; every other one is chosen.
			line += " mac " + a.HardwareAddr.String()
		}
		if a.MasterIndex != 0 {
			line += " master " + names[a.MasterIndex]
		}
		lines = append(lines, line)
		addrs, _ := h.AddrList(l, netlink.FAMILY_ALL)
		for _, ad := range addrs {
			if !ad.IP.IsLinkLocalUnicast() {
				lines = append(lines, fmt.Sprintf("addr %s %s", a.Name, ad.IPNet))
			}
		}
	}
	routes, _ := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{}, 0)
	for _, r := range routes {
		if r.Dst != nil && r.Dst.IP.IsLinkLocalUnicast() {
			continue
		}
		dst := "default"
		if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
			dst = r.Dst.String()
		}
		line := fmt.Sprintf("route %s dev %s", dst, names[r.LinkIndex])
		if r.Gw != nil {
			line += " via " + r.Gw.String()
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// inSandbox runs fn with sockets created in the namespace at path.
func inSandbox(t testing.TB, path string, fn func() error) error {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	return inNS(ns, fn)
}

// startIn runs a long-lived command inside a namespace, killed at cleanup.
func startIn(t testing.TB, nsPath string, args ...string) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + nsPath}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func waitFor(t testing.TB, what string, fn func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = fn(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}
