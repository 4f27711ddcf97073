package reconciler

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

// passes collects loop results safely.
type passes struct {
	mu  sync.Mutex
	all []PassResult
	ch  chan PassResult
}

func newPasses() *passes { return &passes{ch: make(chan PassResult, 100)} }

func (p *passes) on(r PassResult) {
	p.mu.Lock()
	p.all = append(p.all, r)
	p.mu.Unlock()
	p.ch <- r
}

func (p *passes) next(t *testing.T) PassResult {
	t.Helper()
	select {
	case r := <-p.ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no pass")
		return PassResult{}
	}
}

func (p *passes) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case r := <-p.ch:
		t.Fatalf("unexpected pass: %+v", r)
	case <-time.After(d):
	}
}

func runLoop(t *testing.T, l *Loop) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
}

func TestLoopCoalescesTriggers(t *testing.T) {
	d := fake.New()
	want := desired(svc("web", "app:1", "h", 1))
	release := make(chan struct{})
	first := true
	ps := newPasses()
	kicked := make(chan struct{})
	l := &Loop{Driver: d, Project: proj, OnPass: ps.on,
		Desired: func(ctx context.Context) (*state.Desired, error) {
			if first {
				first = false
				<-release // hold the first pass while the source fires
			}
			return want, nil
		},
		Sources: []Source{SourceFunc(func(ctx context.Context, kick func(string)) error {
			for i := range 10 {
				kick(fmt.Sprint("file changed ", i))
			}
			close(kicked)
			<-ctx.Done()
			return nil
		})},
	}
	runLoop(t, l)
	<-kicked
	close(release)
	r := ps.next(t)
	if r.Err != nil || len(r.Plans) != 1 || r.Reasons[0] != "start" {
		t.Fatalf("first pass: %+v", r)
	}
	r = ps.next(t)
	if r.Err != nil || len(r.Plans) != 0 || len(r.Reasons) != 10 {
		t.Fatalf("second pass should answer the 10 coalesced triggers with nothing to do: %+v", r)
	}
	ps.none(t, 100*time.Millisecond)
}

func TestLoopInvalidDesiredIsTerminal(t *testing.T) {
	d := fake.New()
	var mu sync.Mutex
	valid := false
	var invalid []error
	ps := newPasses()
	l := &Loop{Driver: d, Project: proj, OnPass: ps.on, MinBackoff: time.Millisecond,
		Desired: func(ctx context.Context) (*state.Desired, error) {
			mu.Lock()
			defer mu.Unlock()
			if !valid {
				return nil, errors.New("compose.yaml:3: services.web.image must be a string")
			}
			return desired(svc("web", "app:1", "h", 1)), nil
		},
		OnInvalid: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			invalid = append(invalid, err)
		},
	}
	runLoop(t, l)
	if r := ps.next(t); !r.Terminal || r.Err == nil {
		t.Fatalf("pass with invalid desired state: %+v", r)
	}
	ps.none(t, 100*time.Millisecond) // not retried
	mu.Lock()
	if len(invalid) != 1 {
		t.Errorf("OnInvalid called %d times", len(invalid))
	}
	valid = true
	mu.Unlock()
	l.Kick("file changed")
	if r := ps.next(t); r.Err != nil || len(r.Plans) != 1 {
		t.Fatalf("pass after the fix: %+v", r)
	}
	if c, ok := d.Container("demo-web-1"); !ok || c.Status != state.StatusRunning {
		t.Errorf("not converged after the fix")
	}
}

func TestLoopRetriesWithBackoff(t *testing.T) {
	d := fake.New()
	for range 3 {
		d.FailOnce("CreateNetwork", "demo_default", nil)
	}
	var mu sync.Mutex
	var waits []time.Duration
	ps := newPasses()
	l := &Loop{Driver: d, Project: proj, OnPass: ps.on, MinBackoff: time.Second, MaxBackoff: 3 * time.Second,
		Desired: func(ctx context.Context) (*state.Desired, error) { return desired(svc("web", "app:1", "h", 1)), nil },
		// The injected clock fires at once and records what was asked.
		After: func(d time.Duration) <-chan time.Time {
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
			c := make(chan time.Time, 1)
			c <- time.Time{}
			return c
		},
	}
	runLoop(t, l)
	for i := range 3 {
		if r := ps.next(t); r.Err == nil || r.Terminal {
			t.Fatalf("pass %d: %+v, want a retried failure", i+1, r)
		}
	}
	if r := ps.next(t); r.Err != nil {
		t.Fatalf("pass 4: %v", r.Err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(waits) != "[1s 2s 3s]" {
		t.Errorf("backoff waits %v, want [1s 2s 3s]", waits)
	}
	if c, ok := d.Container("demo-web-1"); !ok || c.Status != state.StatusRunning {
		t.Errorf("not converged after the retries")
	}
}

func TestLoopDriverInvalidIsTerminal(t *testing.T) {
	d := fake.New()
	d.FailOnce("CreateContainer", "demo-web-1", driver.ErrInvalid)
	ps := newPasses()
	l := &Loop{Driver: d, Project: proj, OnPass: ps.on, MinBackoff: time.Millisecond,
		Desired: func(ctx context.Context) (*state.Desired, error) { return desired(svc("web", "app:1", "h", 1)), nil }}
	runLoop(t, l)
	if r := ps.next(t); !r.Terminal {
		t.Fatalf("driver ErrInvalid not terminal: %+v", r)
	}
	ps.none(t, 50*time.Millisecond)
}

func TestLoopResyncRepairsDrift(t *testing.T) {
	d := fake.New()
	ps := newPasses()
	l := &Loop{Driver: d, Project: proj, OnPass: ps.on, Resync: 20 * time.Millisecond,
		Desired: func(ctx context.Context) (*state.Desired, error) { return desired(svc("web", "app:1", "h", 1)), nil }}
	runLoop(t, l)
	ps.next(t)
	if err := d.Exit("demo-web-1", 2); err != nil { // the process crashed
		t.Fatal(err)
	}
	for {
		r := ps.next(t)
		if len(r.Plans) > 0 {
			if r.Reasons[len(r.Reasons)-1] != "resync" {
				t.Errorf("repaired by %v, want resync", r.Reasons)
			}
			break
		}
	}
	if c, _ := d.Container("demo-web-1"); c.Status != state.StatusRunning {
		t.Errorf("crashed container not restarted by the resync: %q", c.Status)
	}
}

func TestLoopPassTakesLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "projects", proj+".lock")
	other := FileLock(path)
	unlock, err := other.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := fake.New()
	l := &Loop{Driver: d, Project: proj, Locker: FileLock(path),
		Desired: func(ctx context.Context) (*state.Desired, error) { return desired(svc("web", "app:1", "h", 1)), nil }}
	res := make(chan PassResult, 1)
	go func() { res <- l.Pass(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	if calls := d.Calls(); len(calls) != 0 {
		t.Fatalf("the pass acted while another process held the lock: %v", calls)
	}
	unlock()
	if r := <-res; r.Err != nil || len(r.Plans) != 1 {
		t.Fatalf("pass after unlock: %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	unlock, err = other.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if r := l.Pass(ctx); r.Err == nil || !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("pass under a held lock with a deadline: %v", r.Err)
	}
}

func TestLoopTickerAndSourceError(t *testing.T) {
	d := fake.New()
	ps := newPasses()
	srcErr := make(chan error, 1)
	l := &Loop{Driver: d, Project: proj, OnPass: ps.on,
		Desired:       func(ctx context.Context) (*state.Desired, error) { return desired(), nil },
		Sources:       []Source{Ticker(10 * time.Millisecond), SourceFunc(func(context.Context, func(string)) error { return errors.New("watch: too many files") })},
		OnSourceError: func(err error) { srcErr <- err },
	}
	runLoop(t, l)
	ps.next(t)
	if r := ps.next(t); len(r.Reasons) == 0 || r.Reasons[0] != "timer" {
		t.Errorf("second pass reasons %v, want the timer", r.Reasons)
	}
	select {
	case err := <-srcErr:
		if err.Error() != "watch: too many files" {
			t.Errorf("source error %v", err)
		}
	case <-time.After(time.Second):
		t.Error("source error not reported")
	}
}

// TestPassForceRecreatesOnce: --force-recreate recreates each container
// once per pass; the next round sees the fresh container as converged.
func TestPassForceRecreatesOnce(t *testing.T) {
	d := fake.New()
	want := desired(svc("web", "app:1", "h", 2))
	l := &Loop{Driver: d, Project: proj, Desired: func(context.Context) (*state.Desired, error) { return want, nil }}
	if res := l.Pass(context.Background()); res.Err != nil {
		t.Fatal(res.Err)
	}
	d.ResetCalls()
	l.Options.ForceRecreate = true
	res := l.Pass(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	creates := 0
	for _, c := range d.Calls() {
		if c.Method == "CreateContainer" {
			creates++
		}
	}
	if creates != 2 || len(res.Plans) != 1 {
		t.Fatalf("force-recreate of 2 containers: %d creates in %d plans, want 2 in 1; calls %v", creates, len(res.Plans), d.Calls())
	}
}

// TestPassObservesAgainOnlyAfterImages: a round whose plan ensured an
// image is followed by another (the digest may differ from what the
// containers run); one whose plan did nothing of the kind ends the pass
// without observing again, and leaves nothing to do.
func TestPassObservesAgainOnlyAfterImages(t *testing.T) {
	d := fake.New()
	want := desired(svc("web", "app:1", "h", 2))
	l := &Loop{Driver: d, Project: proj, Desired: func(context.Context) (*state.Desired, error) { return want, nil }}
	count := func(plans []*Plan) (observes, ensures int) {
		for _, c := range d.Calls() {
			if c.Method == "Observe" {
				observes++
			}
		}
		for _, p := range plans {
			for _, op := range p.Ops {
				if op.Kind == EnsureImage {
					ensures++
				}
			}
		}
		return observes, ensures
	}
	for i, tc := range []struct {
		what              string
		change            func()
		observes, ensures int
	}{
		{"from nothing (the image is pulled)", func() {}, 2, 1},
		{"a config change", func() { want.Services["web"].ConfigHash = "h2" }, 1, 0},
	} {
		tc.change()
		d.ResetCalls()
		res := l.Pass(context.Background())
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		observes, ensures := count(res.Plans)
		if observes != tc.observes || ensures != tc.ensures {
			t.Errorf("pass %d, %s: %d observes, %d images ensured; want %d, %d", i, tc.what, observes, ensures, tc.observes, tc.ensures)
		}
		if p := plan(t, d, want, Options{}); !p.Empty() {
			t.Errorf("%s: work left after the pass:\n%s", tc.what, p)
		}
	}
}
