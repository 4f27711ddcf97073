package watch

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestDebouncerQuietPeriod(t *testing.T) {
	b := &Debouncer{Quiet: 500 * time.Millisecond}
	if _, ok := b.Deadline(); ok {
		t.Fatal("empty debouncer has a deadline")
	}
	b.Add(at(0), "a")
	b.Add(at(300), "b", "a")
	if got := b.Take(at(799)); got != nil {
		t.Fatalf("batch released %v before 500ms of quiet after the last change", got)
	}
	if d, _ := b.Deadline(); !d.Equal(at(800)) {
		t.Fatalf("deadline %v, want 800ms", d.Sub(t0))
	}
	if got := b.Take(at(800)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("batch %v, want [a b] (coalesced, sorted, deduplicated)", got)
	}
	if got := b.Take(at(5000)); got != nil {
		t.Fatalf("second take returned %v", got)
	}
	b.Add(at(6000), "c")
	if got := b.Take(at(6500)); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("next batch %v, want [c]", got)
	}
}

func TestDebouncerMaxDelay(t *testing.T) {
	b := &Debouncer{Quiet: 100 * time.Millisecond, MaxDelay: 1000 * time.Millisecond}
	// a file rewritten every 50ms never gets quiet
	for ms := 0; ms <= 990; ms += 50 {
		b.Add(at(ms), "log")
		if got := b.Take(at(ms)); got != nil {
			t.Fatalf("released at %dms", ms)
		}
	}
	b.Add(at(995), "other")
	if got := b.Take(at(1000)); !slices.Equal(got, []string{"log", "other"}) {
		t.Fatalf("at max delay got %v", got)
	}
	// the default max delay is 20 quiet periods
	b = &Debouncer{Quiet: 10 * time.Millisecond}
	b.Add(at(0), "x")
	for ms := 5; ms < 200; ms += 5 {
		b.Add(at(ms), "x")
	}
	if d, _ := b.Deadline(); !d.Equal(at(200)) {
		t.Fatalf("default max delay deadline %v, want 200ms", d.Sub(t0))
	}
}

// fakeClock hands out timers the test fires by advancing time; every After
// is announced on registered so the test knows the debouncer is waiting.
type fakeClock struct {
	mu         sync.Mutex
	now        time.Time
	timers     []fakeTimer
	registered chan time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	c.mu.Unlock()
	c.registered <- d
	return ch
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if !tm.at.After(c.now) {
			tm.ch <- c.now
		} else {
			kept = append(kept, tm)
		}
	}
	c.timers = kept
}

func TestDebouncerRunWithInjectedClock(t *testing.T) {
	clk := &fakeClock{now: t0, registered: make(chan time.Duration, 16)}
	in := make(chan []string)
	batches := make(chan []string, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&Debouncer{Quiet: 500 * time.Millisecond}).Run(ctx, clk, in, func(b []string) { batches <- b })
	}()
	send := func(paths ...string) time.Duration {
		in <- paths
		return <-clk.registered
	}
	if d := send("compose.yaml"); d != 500*time.Millisecond {
		t.Fatalf("first timer %v, want 500ms", d)
	}
	clk.advance(400 * time.Millisecond)
	if d := send(".env"); d != 500*time.Millisecond {
		t.Fatalf("timer after a second change %v, want a fresh 500ms", d)
	}
	// 500ms after the first change: not quiet yet (the second one was
	// 100ms ago), so nothing is released
	clk.advance(100 * time.Millisecond)
	select {
	case b := <-batches:
		t.Fatalf("batch %v released before the quiet period", b)
	default:
	}
	clk.advance(400 * time.Millisecond)
	if b := <-batches; !slices.Equal(b, []string{".env", "compose.yaml"}) {
		t.Fatalf("batch %v, want both changes coalesced", b)
	}
	// a change pending when the input closes is flushed, not lost
	send("late")
	close(in)
	if b := <-batches; !slices.Equal(b, []string{"late"}) {
		t.Fatalf("final batch %v", b)
	}
	<-done
}
