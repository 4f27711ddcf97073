package network

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth/state"
)

// TestAttachAfterCrashMidRealize: a process killed after the veth pair of a
// planned endpoint exists but before its address is on, leaves the plan
// recorded. The next Attach must not take the link as done: it gives the
// container its address and default route (it failed with "network is
// unreachable" setting the route through a gateway off every subnet).
func TestAttachAfterCrashMidRealize(t *testing.T) {
	e, ctx := newNetEnv(t, "crash")
	ep := Endpoint{ID: "cw", Name: "p-worker-1", Project: "p", Service: "worker",
		Networks: []state.NetworkAttachment{{Network: "p_default"}}}
	if _, err := e.m.Attach(ctx, ep); err != nil {
		t.Fatal(err)
	}
	rec, _, err := readEndpoint(e.m.stateDir, ep.ID)
	if err != nil || rec == nil || len(rec.Interfaces) != 1 {
		t.Fatalf("record %+v: %v", rec, err)
	}
	// What the killed attach left: the link up, no address, the plan on disk.
	ifc := rec.Interfaces[0]
	nsexec(t, rec.Netns, "ip", "addr", "flush", "dev", ifc.Name)
	rec.Realizing = true
	if err := writeEndpoint(e.m.stateDir, rec); err != nil {
		t.Fatal(err)
	}

	if _, err := e.m.Attach(ctx, ep); err != nil {
		t.Fatalf("attach after the crash: %v", err)
	}
	if out := nsexec(t, rec.Netns, "ip", "-4", "addr", "show", "dev", ifc.Name); !strings.Contains(out, ifc.IPv4.String()+"/") {
		t.Errorf("%s lacks %s after the second attach:\n%s", ifc.Name, ifc.IPv4, out)
	}
	if out := nsexec(t, rec.Netns, "ip", "-4", "route", "show", "default"); !strings.Contains(out, "default via") {
		t.Errorf("no default route after the second attach: %q", out)
	}
	if again, _, _ := readEndpoint(e.m.stateDir, ep.ID); again == nil || again.Realizing {
		t.Errorf("record after the attach: %+v", again)
	}
}

// nsexec runs a command in the network namespace mounted at path.
func nsexec(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + path}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestReattachKeepsLinks: attaching a running container again with nothing
// changed (a rename, a publish after a drain) leaves its links alone. Its
// record must not stay marked as a plan being realized: the attach after
// it would rebuild the links under the container's open connections (the
// published path wrote the plan mid-way and skipped the final record when
// it matched what was on disk before).
func TestReattachKeepsLinks(t *testing.T) {
	e, ctx := newNetEnv(t, "reatt")
	for name, ports := range map[string][]state.Port{
		"plain":     nil,
		"published": {{HostIP: "127.0.0.1", HostPort: 7071, ContainerPort: 80}},
	} {
		ep := Endpoint{ID: "c" + name, Name: "p-" + name + "-1", Project: "p", Service: name,
			Networks: []state.NetworkAttachment{{Network: "p_default"}}, Ports: ports}
		var index string
		for i := 0; i < 3; i++ {
			if _, err := e.m.Attach(ctx, ep); err != nil {
				t.Fatal(err)
			}
			rec, _, err := readEndpoint(e.m.stateDir, ep.ID)
			if err != nil || rec == nil || rec.Realizing {
				t.Fatalf("%s, attach %d: record %+v (%v)", name, i+1, rec, err)
			}
			link := strings.Fields(nsexec(t, rec.Netns, "ip", "-o", "link", "show", "dev", rec.Interfaces[0].Name))[0]
			if index != "" && link != index {
				t.Errorf("%s, attach %d: the link was rebuilt (index %s, was %s)", name, i+1, link, index)
			}
			index = link
		}
	}
}
