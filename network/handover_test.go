package network

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth/state"
	"golang.org/x/sys/unix"
)

// nsInode identifies the network namespace pinned at path.
func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestSandboxHandover: a stopped container's sandbox, parked, is adopted by
// its successor, which then attaches with the same namespace, links and
// address and answers to the name; the old one's removal leaves it alone.
// Parked and never adopted, it goes with its container. An adoption
// interrupted between its records leaves the links to the adopter.
func TestSandboxHandover(t *testing.T) {
	e, ctx := newNetEnv(t, "handover")
	ep := func(id string) Endpoint {
		return Endpoint{ID: id, Name: "p-web-1", Project: "p", Service: "web",
			Networks: []state.NetworkAttachment{{Network: "p_default"}}}
	}
	client := ep("client")
	client.Name, client.Service = "p-client-1", "client"
	if _, err := e.m.Attach(ctx, client); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Attach(ctx, ep("old")); err != nil {
		t.Fatal(err)
	}
	old, _, _ := readEndpoint(e.m.stateDir, "old")
	ino := nsInode(t, old.Netns)
	link := func(path string) string {
		return strings.Fields(nsexec(t, path, "ip", "-o", "link", "show", "dev", "eth0"))[0]
	}
	index := link(old.Netns)

	if err := e.m.Park(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if m, _ := query(t, e.m.SandboxPath("client"), "10.213.0.1", "web", 1); len(answers(m)) != 0 {
		t.Errorf("a parked sandbox answers to its service: %v", answers(m))
	}
	if ok, err := e.m.Adopt(ctx, "old", "new"); err != nil || !ok {
		t.Fatalf("adopt: %v %v", ok, err)
	}
	if r, _, _ := readEndpoint(e.m.stateDir, "old"); r != nil {
		t.Errorf("the old container still holds the sandbox: record %+v", r)
	}
	a, err := e.m.Attach(ctx, ep("new"))
	if err != nil {
		t.Fatal(err)
	}
	path := e.m.SandboxPath("new")
	if nsInode(t, path) != ino || link(path) != index || a.Interfaces[0].IPv4 != old.Interfaces[0].IPv4 {
		t.Errorf("the successor got another sandbox: ns %d (was %d), link %s (was %s), %s (was %s)",
			nsInode(t, path), ino, link(path), index, a.Interfaces[0].IPv4, old.Interfaces[0].IPv4)
	}
	if err := e.m.RemoveSandbox(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old.Netns); !os.IsNotExist(err) || nsInode(t, path) != ino || link(path) != index {
		t.Errorf("the old container's removal: its pin left (%v), or the successor's sandbox changed", err)
	}
	m, err := query(t, e.m.SandboxPath("client"), "10.213.0.1", "web", 1)
	if got := answers(m); err != nil || len(got) != 1 || got[0] != old.Interfaces[0].IPv4.String() {
		t.Errorf("web after the handover: %v %v", got, err)
	}

	// Parked, never adopted: removed with its container, links and all.
	if err := e.m.Park(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RemoveSandbox(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	hostLink := func(name string) bool {
		return exec.Command("ip", "-n", e.host.name, "link", "show", name).Run() == nil
	}
	if hostLink(a.Interfaces[0].HostVeth) {
		t.Errorf("the link of a removed parked sandbox is left")
	}

	// Interrupted between its records: both name the sandbox; the old
	// one's removal takes neither the namespace nor the links.
	if _, err := e.m.Attach(ctx, ep("a")); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Park(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	ra, _, _ := readEndpoint(e.m.stateDir, "a")
	if err := pinNetns(ra.Netns, e.m.SandboxPath("b")); err != nil {
		t.Fatal(err)
	}
	rb := *ra
	rb.Endpoint.ID, rb.Netns = "b", e.m.SandboxPath("b")
	if err := writeEndpoint(e.m.stateDir, &rb); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RemoveSandbox(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rb.Netns); err != nil || !hostLink(ra.Interfaces[0].HostVeth) {
		t.Errorf("the old record's removal took the adopter's sandbox or link: %v", err)
	}
}
