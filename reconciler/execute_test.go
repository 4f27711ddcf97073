package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

// slowImages counts concurrent EnsureImage calls.
type slowImages struct {
	driver.Driver
	cur, peak atomic.Int32
}

func (s *slowImages) EnsureImage(ctx context.Context, spec state.ImageSpec) (state.ImageRef, error) {
	n := s.cur.Add(1)
	defer s.cur.Add(-1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(20 * time.Millisecond)
	return s.Driver.EnsureImage(ctx, spec)
}

func TestExecuteParallelBound(t *testing.T) {
	var services []*state.Service
	for i := range 8 {
		services = append(services, svc(fmt.Sprint("s", i), fmt.Sprintf("img%d:1", i), "h", 1))
	}
	for _, tc := range []struct{ parallel, peak int32 }{{2, 2}, {0, 8}} {
		d := &slowImages{Driver: fake.New()}
		p, _ := PlanUp(desired(services...), &state.Observed{Project: proj}, Options{})
		if err := Execute(context.Background(), d, p, ExecOptions{Parallel: int(tc.parallel)}); err != nil {
			t.Fatal(err)
		}
		if got := d.peak.Load(); got != tc.peak {
			t.Errorf("Parallel %d: %d EnsureImage calls at once, want %d", tc.parallel, got, tc.peak)
		}
	}
}

func TestExecuteWaitsOnlyForOwnDeps(t *testing.T) {
	d := fake.New()
	d.AutoHealthy = false
	want := desired(
		svc("db", "pg:16", "h", 1, healthcheck),
		svc("web", "app:1", "h", 1, dependsOn("db", state.ConditionHealthy)),
		svc("cache", "app:1", "h", 1),
	)
	p := plan(t, d, want, Options{})
	var mu sync.Mutex
	var events []string
	done := make(chan error, 1)
	go func() {
		done <- Execute(context.Background(), d, p, ExecOptions{OnEvent: func(e Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, fmt.Sprintf("%s %s %s", e.Phase, e.Op.Object, e.Op.Kind))
		}})
	}()
	// cache runs although db's wait blocks; web waits.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, ok := d.Container("demo-cache-1")
		if ok && c.Status == state.StatusRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("independent service not started while another waits")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := d.Container("demo-web-1"); ok {
		t.Fatalf("web created before db was healthy")
	}
	if err := d.SetHealth("demo-db-1", state.HealthHealthy); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c, _ := d.Container("demo-web-1"); c.Status != state.StatusRunning {
		t.Errorf("web is %q after db turned healthy", c.Status)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2*len(p.Ops) {
		t.Errorf("%d events for %d ops: %v", len(events), len(p.Ops), events)
	}
}

func TestExecuteFailureSkipsOnlyDependents(t *testing.T) {
	d := fake.New()
	want := desired(
		svc("db", "pg:16", "h", 1),
		svc("web", "app:1", "h", 1, dependsOn("db", state.ConditionStarted)),
		svc("cache", "app:1", "h", 1),
		svc("opt", "app:1", "h", 1, optionalDep("db", state.ConditionStarted)),
	)
	p := plan(t, d, want, Options{})
	d.FailOnce("StartContainer", "demo-db-1", nil)
	var skipped []string
	err := Execute(context.Background(), d, p, ExecOptions{OnEvent: func(e Event) {
		if e.Phase == Skipped {
			skipped = append(skipped, e.Op.Object+" "+string(e.Op.Kind))
		}
	}})
	var ee *ExecError
	if !errors.As(err, &ee) || len(ee.Failed) != 1 {
		t.Fatalf("err = %v, want one failed op", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "service:db:1 StartContainer: StartContainer demo-db-1: injected failure") ||
		!strings.Contains(msg, "(2 dependent operations skipped)") {
		t.Errorf("error does not name the failed op and the skips: %s", msg)
	}
	if strings.Join(skipped, ",") != "service:web:1 CreateContainer,service:web:1 StartContainer" {
		t.Errorf("skipped = %v", skipped)
	}
	for _, name := range []string{"demo-cache-1", "demo-opt-1"} {
		if c, _ := d.Container(name); c.Status != state.StatusRunning {
			t.Errorf("%s is %q: a failure elsewhere stopped it", name, c.Status)
		}
	}
	if !errors.Is(err, fake.ErrInjected) {
		t.Errorf("errors.Is does not see the driver's error through ExecError")
	}
}

func TestExecuteDigestFlowsFromEnsureImage(t *testing.T) {
	d := fake.New()
	d.Publish("app:1", "sha256:published")
	want := desired(svc("web", "app:1", "h", 1))
	converge(t, d, want, Options{}, 1)
	c, _ := d.Container("demo-web-1")
	if c.ImageDigest != "sha256:published" || c.Labels[state.LabelImage] != "sha256:published" {
		t.Errorf("container digest %q label %q, want the ensured image's", c.ImageDigest, c.Labels[state.LabelImage])
	}
	// A new digest on the registry: the refresh pass pulls it, the next
	// pass recreates (the digest is only known once ensured).
	d.Publish("app:1", "sha256:v2")
	want.Services["web"].Image.PullPolicy = "always"
	p := plan(t, d, want, Options{RefreshImages: true})
	if p.String() != "[] -> #1 image:app:1 EnsureImage (refresh)\n" {
		t.Fatalf("refresh plan:\n%s", p)
	}
	if err := Execute(context.Background(), d, p, ExecOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := plan(t, d, want, Options{}); !strings.Contains(p.String(), "service:web:1 CreateContainer (image changed)") {
		t.Fatalf("after the pull:\n%s", p)
	}
	converge(t, d, want, Options{}, 1)
	if c, _ := d.Container("demo-web-1"); c.ImageDigest != "sha256:v2" {
		t.Errorf("digest %q after recreate", c.ImageDigest)
	}
}

func TestExecuteCancelled(t *testing.T) {
	d := fake.New()
	d.AutoHealthy = false
	want := desired(svc("db", "pg:16", "h", 1, healthcheck), svc("web", "app:1", "h", 1, dependsOn("db", state.ConditionHealthy)))
	p := plan(t, d, want, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := Execute(ctx, d, p, ExecOptions{})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "WaitContainer") {
		t.Errorf("err = %v, want the wait to fail with the deadline", err)
	}
	if _, ok := d.Container("demo-web-1"); ok {
		t.Errorf("web created after cancellation")
	}
}

func TestExecuteWaitTimeout(t *testing.T) {
	d := fake.New()
	d.AutoHealthy = false
	want := desired(svc("db", "pg:16", "h", 1, healthcheck), svc("web", "app:1", "h", 1, dependsOn("db", state.ConditionHealthy)))
	err := Execute(context.Background(), d, plan(t, d, want, Options{}), ExecOptions{WaitTimeout: 30 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "condition healthy not reached within 30ms") {
		t.Errorf("err = %v", err)
	}
}
