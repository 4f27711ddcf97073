package watch

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/reconciler"
)

// syncBuffer is the controller's output, read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const controllerCompose = `
name: ctl
services:
  a:
    image: example/a
    environment:
      X: "${X}"
  b:
    image: example/b
`

// startController runs a controller over the in-memory driver on a project
// in a temporary directory.
func startController(t *testing.T, noUp bool) (dir string, d *fake.Driver, out *syncBuffer, passes chan reconciler.PassResult) {
	t.Helper()
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(controllerCompose), 0o644)
	os.WriteFile(filepath.Join(dir, ".env"), []byte("X=1\n"), 0o644)
	d = fake.New()
	d.Publish("example/a", "sha256:aa")
	d.Publish("example/b", "sha256:bb")
	out = &syncBuffer{}
	passes = make(chan reconciler.PassResult, 64)
	c, err := New(context.Background(), Options{
		Compose: compose.Options{Dir: dir, Environ: []string{}}, Driver: d, Debounce: 50 * time.Millisecond,
		NoUp: noUp, Out: out, OnPass: func(r reconciler.PassResult) { passes <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return dir, d, out, passes
}

// nextWork waits for a pass that executed something.
func nextWork(t *testing.T, passes chan reconciler.PassResult) reconciler.PassResult {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case r := <-passes:
			if len(r.Plans) > 0 || r.Err != nil {
				return r
			}
		case <-deadline:
			t.Fatal("no pass did anything")
		}
	}
}

func callsOn(d *fake.Driver) string {
	var s []string
	for _, c := range d.Calls() {
		if c.Method != "Observe" {
			s = append(s, c.String())
		}
	}
	return strings.Join(s, "; ")
}

func TestControllerReloads(t *testing.T) {
	dir, d, out, passes := startController(t, false)
	if r := nextWork(t, passes); r.Err != nil {
		t.Fatal(r.Err)
	}
	if _, ok := d.Container("ctl-a-1"); !ok {
		t.Fatalf("not converged at start: %s", callsOn(d))
	}
	d.ResetCalls()

	// .env moves a's environment: only a is touched
	os.WriteFile(filepath.Join(dir, ".env"), []byte("X=2\n"), 0o644)
	if r := nextWork(t, passes); r.Err != nil {
		t.Fatal(r.Err)
	}
	if calls := callsOn(d); !strings.Contains(calls, "ctl-a-1") || strings.Contains(calls, "ctl-b-1") {
		t.Fatalf("calls after the .env edit: %s", calls)
	}
	if !strings.Contains(out.String(), ".env changed: changed [a]") {
		t.Fatalf("output:\n%s", out)
	}

	// broken: reported with the line, nothing touched
	d.ResetCalls()
	os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("services:\n  a: [\n"), 0o644)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "invalid project, keeping the running one") {
		if time.Now().After(deadline) {
			t.Fatalf("no error printed:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "line") {
		t.Fatalf("error without a line:\n%s", out)
	}
	if calls := callsOn(d); calls != "" {
		t.Fatalf("a broken file made calls: %s", calls)
	}

	// fixed with a new service: converges, the new one created
	os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(controllerCompose+"  c:\n    image: example/b\n"), 0o644)
	if r := nextWork(t, passes); r.Err != nil {
		t.Fatal(r.Err)
	}
	if _, ok := d.Container("ctl-c-1"); !ok {
		t.Fatalf("c not created: %s", callsOn(d))
	}
	if calls := callsOn(d); strings.Contains(calls, "ctl-a-1") || strings.Contains(calls, "ctl-b-1") {
		t.Fatalf("adding c touched a or b: %s", calls)
	}
}

func TestControllerNoUp(t *testing.T) {
	dir, d, _, passes := startController(t, true)
	time.Sleep(300 * time.Millisecond) // several debounce periods: nothing may happen
	if calls := callsOn(d); calls != "" {
		t.Fatalf("--no-up converged before any change: %s", calls)
	}
	os.WriteFile(filepath.Join(dir, ".env"), []byte("X=3\n"), 0o644)
	if r := nextWork(t, passes); r.Err != nil {
		t.Fatal(r.Err)
	}
	if _, ok := d.Container("ctl-b-1"); !ok {
		t.Fatalf("first change did not converge: %s", callsOn(d))
	}
}
