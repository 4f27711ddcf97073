package network

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/state"
)

// TestStampFollowsEndpointWrites: the DNS responder reloads when the stamp
// changes; every endpoint write or removal must change it, however close
// together (a file's mtime alone would not: it ticks in jiffies).
func TestStampFollowsEndpointWrites(t *testing.T) {
	dir := t.TempDir()
	seen := map[stateStamp]bool{}
	stamp := func() stateStamp {
		s, err := readStamp(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	seen[stamp()] = true
	for i := 0; i < 20; i++ {
		r := &endpointRecord{Endpoint: Endpoint{ID: "c1", Name: fmt.Sprint("n", i)}}
		if err := writeEndpoint(dir, r); err != nil {
			t.Fatal(err)
		}
		s := stamp()
		if seen[s] {
			t.Fatalf("write %d: stamp unchanged", i)
		}
		seen[s] = true
		st, err := loadState(dir)
		if err != nil || st.Endpoints["c1"] == nil || st.Endpoints["c1"].Endpoint.Name != r.Endpoint.Name {
			t.Fatalf("write %d: loaded %+v, %v", i, st, err)
		}
	}
	// An unchanged record is not rewritten and the stamp stays.
	before := stamp()
	if err := writeEndpoint(dir, &endpointRecord{Endpoint: Endpoint{ID: "c1", Name: "n19"}}); err != nil {
		t.Fatal(err)
	}
	if stamp() != before {
		t.Error("rewriting the same record changed the stamp")
	}
	if err := removeEndpoint(dir, "c1"); err != nil {
		t.Fatal(err)
	}
	if seen[stamp()] {
		t.Error("removal left the stamp unchanged")
	}
	// A torn record (what a power loss may leave) reads as absent.
	os.WriteFile(endpointPath(dir, "c2"), []byte(`{"endpoint":{"id":"c2"`), 0o644)
	st, err := loadState(dir)
	if err != nil || len(st.Endpoints) != 0 {
		t.Fatalf("torn record: %v endpoints, %v", len(st.Endpoints), err)
	}
}

// hostLinks lists berth's host veths in the test host namespace.
func (e *testEnv) hostVeths(t *testing.T) []string {
	links, err := e.m.nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Type() == "veth" && len(l.Attrs().Name) > len(hostVethPrefix) && l.Attrs().Name[:len(hostVethPrefix)] == hostVethPrefix {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

func dirNames(t *testing.T, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestParallelAttachRemove: attaches and removals of many containers run
// in parallel (they no longer share one lock) and leave, each, exactly
// what one at a time would: distinct addresses, an interface with its
// address in every sandbox; then no record, lock file, link or sandbox.
func TestParallelAttachRemove(t *testing.T) {
	e := newTestEnv(t, "ppar", "")
	ctx := context.Background()
	for _, n := range []string{"p_a", "p_b"} {
		if _, err := e.m.EnsureNetwork(ctx, netSpec(n, "")); err != nil {
			t.Fatal(err)
		}
	}
	const n = 16
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%02d", i)
	}
	parallel := func(fn func(id string, i int) error) {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i, id := range ids {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = fn(id, i) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s: %v", ids[i], err)
			}
		}
	}
	parallel(func(id string, i int) error {
		nets := []state.NetworkAttachment{{Network: "p_a"}}
		if i%2 == 0 {
			nets = append(nets, state.NetworkAttachment{Network: "p_b"})
		}
		_, err := e.m.Attach(ctx, Endpoint{ID: id, Name: "p-s-" + id, Service: "s", Networks: nets})
		return err
	})
	eps, err := e.m.Endpoints(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	for id, a := range eps {
		for _, ifc := range a.Interfaces {
			k := ifc.Network + " " + ifc.IPv4.String()
			if other, dup := addrs[k]; dup {
				t.Errorf("%s and %s share %s", id, other, k)
			}
			addrs[k] = id
		}
		out := run(t, "nsenter", "--net="+a.NetnsPath, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if want := a.Interfaces[0].IPv4.String() + "/"; !strings.Contains(out, want) {
			t.Errorf("%s: eth0 has %q, want %s", id, out, want)
		}
	}
	if len(eps) != n || len(addrs) != n+n/2 {
		t.Fatalf("%d endpoints, %d addresses; want %d and %d", len(eps), len(addrs), n, n+n/2)
	}
	if v := e.hostVeths(t); len(v) != n+n/2 {
		t.Errorf("%d host veths, want %d", len(v), n+n/2)
	}
	parallel(func(id string, i int) error {
		if i%3 == 0 {
			if err := e.m.Detach(ctx, id); err != nil {
				return err
			}
		}
		return e.m.RemoveSandbox(ctx, id)
	})
	if v := e.hostVeths(t); len(v) != 0 {
		t.Errorf("host veths left: %v", v)
	}
	for _, dir := range []string{
		filepath.Join(e.opt.Root, "network", endpointsDir),
		filepath.Join(e.opt.RunRoot, "network", "locks"),
		filepath.Join(e.opt.RunRoot, "network", "containers"),
		filepath.Join(e.opt.RunRoot, "netns"),
	} {
		if left := dirNames(t, dir); len(left) != 0 {
			t.Errorf("%s left: %v", dir, left)
		}
	}
	for _, n := range []string{"p_a", "p_b"} {
		if err := e.m.RemoveNetwork(ctx, n); err != nil {
			t.Errorf("remove %s: %v", n, err)
		}
	}
}

// crashAfterPlan records what Attach plans for ep and stops there, as a
// berth killed between the allocation and the links would.
func (e *testEnv) crashAfterPlan(t *testing.T, ep Endpoint) *endpointRecord {
	var rec *endpointRecord
	err := e.m.mutate(context.Background(), func(st *diskState) error {
		r, err := e.m.planEndpoint(st, ep, st.Endpoints[ep.ID])
		if err != nil {
			return err
		}
		st.Endpoints[ep.ID], rec = r, r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestCrashBetweenPlanAndLinks: a container moved from one network to
// another by an attach killed after recording its plan still has its old
// link; the record names it (Stale), its address stays taken, and the next
// Attach, or RemoveSandbox, removes it.
func TestCrashBetweenPlanAndLinks(t *testing.T) {
	e := newTestEnv(t, "pcrash", "")
	ctx := context.Background()
	for _, n := range []string{"p_a", "p_b"} {
		if _, err := e.m.EnsureNetwork(ctx, netSpec(n, "")); err != nil {
			t.Fatal(err)
		}
	}
	on := func(id, net string) Endpoint {
		return Endpoint{ID: id, Name: "p-s-" + id, Service: "s", Networks: []state.NetworkAttachment{{Network: net}}}
	}
	for _, id := range []string{"x", "y"} {
		if _, err := e.m.Attach(ctx, on(id, "p_a")); err != nil {
			t.Fatal(err)
		}
	}
	oldVeth := hostVethName("x", "p_a")
	oldAddr := e.mustRecord(t, "x").Interfaces[0].IPv4
	rec := e.crashAfterPlan(t, on("x", "p_b"))
	if len(rec.Stale) != 1 || rec.Stale[0].HostVeth != oldVeth {
		t.Fatalf("planned record's stale interfaces: %+v", rec.Stale)
	}
	// The old link is still there, and its address is not handed out.
	if !strings.Contains(fmt.Sprint(e.hostVeths(t)), oldVeth) {
		t.Fatal("the crash removed the old link already?")
	}
	e.crashAfterPlan(t, on("z", "p_a"))
	if z := e.mustRecord(t, "z"); z.Interfaces[0].IPv4 == oldAddr {
		t.Errorf("z got %s, the address of x's stale interface", oldAddr)
	}
	// Set keeps recorded links, stale ones included, until they are converged.
	if err := e.m.collect(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(e.hostVeths(t)), oldVeth) {
		t.Error("collect removed a link the record names as stale")
	}
	if _, err := e.m.Attach(ctx, on("x", "p_b")); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprint(e.hostVeths(t)), oldVeth) {
		t.Error("the next attach left the stale link")
	}
	if r := e.mustRecord(t, "x"); len(r.Stale) != 0 || r.Interfaces[0].Network != "p_b" {
		t.Errorf("record after convergence: %+v", r)
	}
	// A crashed plan followed by a removal: nothing of it remains, not
	// even the temporary file of a record write killed before its rename.
	e.crashAfterPlan(t, on("y", "p_b"))
	tmp := filepath.Join(e.m.stateDir, endpointsDir, ".tmp-y.json-0123abcd")
	if err := os.WriteFile(tmp, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RemoveSandbox(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(tmp); err == nil {
		t.Error("a killed write's temporary file outlived the sandbox")
	}
	for _, v := range e.hostVeths(t) {
		if v == hostVethName("y", "p_a") || v == hostVethName("y", "p_b") {
			t.Errorf("link %s of removed y left", v)
		}
	}
	// z's planned record, never realized: Set converges it to nothing.
	if err := e.m.Set(ctx, Config{}); err != nil {
		t.Fatal(err)
	}
	if v := e.hostVeths(t); len(v) != 0 {
		t.Errorf("links left after Set: %v", v)
	}
}

func (e *testEnv) mustRecord(t *testing.T, id string) *endpointRecord {
	t.Helper()
	r, _, err := readEndpoint(e.m.stateDir, id)
	if err != nil || r == nil {
		t.Fatalf("record of %s: %v %v", id, r, err)
	}
	return r
}

// TestLegacyStateMoves: endpoints an older berth kept inside state.json are
// read, moved to their own files by the first change, and removable.
func TestLegacyStateMoves(t *testing.T) {
	e := newTestEnv(t, "plegacy", "")
	ctx := context.Background()
	if _, err := e.m.EnsureNetwork(ctx, netSpec("p_a", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Attach(ctx, Endpoint{ID: "old1", Name: "p-s-1", Service: "s",
		Networks: []state.NetworkAttachment{{Network: "p_a"}}}); err != nil {
		t.Fatal(err)
	}
	// Rewrite the state as the single-file layout had it.
	st, err := loadState(e.m.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(struct {
		Networks  map[string]*NetworkInfo    `json:"networks"`
		Endpoints map[string]*endpointRecord `json:"endpoints"`
	}{st.Networks, st.Endpoints})
	if err := os.WriteFile(filepath.Join(e.m.stateDir, stateFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(endpointPath(e.m.stateDir, "old1"))
	if eps, err := e.m.Endpoints(ctx, "p_a"); err != nil || len(eps) != 1 {
		t.Fatalf("legacy endpoint not read: %v %v", eps, err)
	}
	if err := e.m.RemoveNetwork(ctx, "p_a"); err == nil {
		t.Fatal("network with a legacy endpoint removed")
	}
	if err := e.m.RemoveSandbox(ctx, "old1"); err != nil {
		t.Fatal(err)
	}
	if v := e.hostVeths(t); len(v) != 0 {
		t.Errorf("links of the legacy endpoint left: %v", v)
	}
	_, legacy, err := loadNetworks(e.m.stateDir)
	if err != nil || len(legacy) != 0 {
		t.Errorf("state.json still holds endpoints: %v %v", legacy, err)
	}
	if eps, _ := e.m.Endpoints(ctx, ""); len(eps) != 0 {
		t.Errorf("endpoints left: %v", eps)
	}
}

// BenchmarkParallel50 attaches 50 containers to one network in parallel,
// then removes their sandboxes in parallel, as an up and a down of a
// 50-service project do; it reports the milliseconds of each half.
//
// The run root is under /run (a tmpfs on most systems; on the development
// machine a plain directory on the root ext4), as berth's is.
func BenchmarkParallel50(b *testing.B) {
	e := newTestEnvOn(b, "p50", runTempDir(b))
	ctx := context.Background()
	if _, err := e.m.EnsureNetwork(ctx, netSpec("b_net", "")); err != nil {
		b.Fatal(err)
	}
	var attach, remove time.Duration
	for i := 0; i < b.N; i++ {
		ids := make([]string, 50)
		for j := range ids {
			ids[j] = fmt.Sprintf("i%dc%02d", i, j)
		}
		each := func(fn func(id string) error) time.Duration {
			t0 := time.Now()
			var wg sync.WaitGroup
			for _, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := fn(id); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			return time.Since(t0)
		}
		attach += each(func(id string) error {
			_, err := e.m.Attach(ctx, Endpoint{ID: id, Name: "b-s-" + id, Service: "s",
				Networks: []state.NetworkAttachment{{Network: "b_net"}}})
			return err
		})
		remove += each(func(id string) error { return e.m.RemoveSandbox(ctx, id) })
	}
	b.ReportMetric(float64(attach.Milliseconds())/float64(b.N), "attach50-ms")
	b.ReportMetric(float64(remove.Milliseconds())/float64(b.N), "remove50-ms")
}

// runTempDir is a temporary directory under /run, removed at cleanup.
func runTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("/run", "berth-nettest-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// newTestEnvOn is newTestEnv with the given run root.
func newTestEnvOn(t testing.TB, tag, runRoot string) *testEnv {
	t.Helper()
	return newTestEnvAt(t, tag, runRoot, "")
}

// TestEndpointsOnRunRoot: endpoint records live under the run root, reached
// from the state directory by a link; records a root kept on disk are
// moved there, and a run root emptied (a reboot) means no endpoint.
func TestEndpointsOnRunRoot(t *testing.T) {
	e := newTestEnv(t, "prunroot", "")
	ctx := context.Background()
	if _, err := e.m.EnsureNetwork(ctx, netSpec("p_a", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Attach(ctx, Endpoint{ID: "r1", Name: "p-s-1", Service: "s",
		Networks: []state.NetworkAttachment{{Network: "p_a"}}}); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(e.opt.Root, "network", endpointsDir)
	target := filepath.Join(e.opt.RunRoot, "network", endpointsDir)
	if cur, err := os.Readlink(link); err != nil || cur != target {
		t.Fatalf("%s links to %q (%v), want %s", link, cur, err, target)
	}
	if _, err := os.Stat(filepath.Join(target, "r1.json")); err != nil {
		t.Fatalf("record not under the run root: %v", err)
	}
	// The layout of a root whose records were on disk.
	b, err := os.ReadFile(filepath.Join(target, "r1.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(link)
	os.MkdirAll(link, 0o755)
	os.WriteFile(filepath.Join(link, "r1.json"), b, 0o644)
	os.Remove(filepath.Join(target, "r1.json"))
	m2, err := New(e.opt)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if cur, err := os.Readlink(link); err != nil || cur != target {
		t.Fatalf("not linked again: %q %v", cur, err)
	}
	if eps, err := m2.Endpoints(ctx, "p_a"); err != nil || len(eps) != 1 {
		t.Fatalf("moved record not found: %v %v", eps, err)
	}
	// A reboot empties the run root: no endpoint is left, and the next
	// Manager makes the directory again.
	if err := os.RemoveAll(target); err != nil {
		t.Fatal(err)
	}
	if eps, err := m2.Endpoints(ctx, ""); err != nil || len(eps) != 0 {
		t.Fatalf("after the run root went: %v %v", eps, err)
	}
	m3, err := New(e.opt)
	if err != nil {
		t.Fatal(err)
	}
	m3.Close()
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		t.Errorf("run root's endpoint directory not made again: %v", err)
	}
}
