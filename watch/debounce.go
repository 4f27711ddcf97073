package watch

import (
	"context"
	"slices"
	"time"
)

// DefaultDebounce is the quiet period after the last change before a batch
// is acted on: long enough for an editor's save (write temp, rename, chmod)
// or a `git checkout` to land as one batch.
const DefaultDebounce = 500 * time.Millisecond

// Debouncer collects changed paths and releases them as one batch once no
// change arrived for Quiet. It is a plain state machine driven by the times
// it is given, so tests need no clock at all.
type Debouncer struct {
	Quiet time.Duration
	// MaxDelay releases a batch at the latest this long after its first
	// change, so that a file rewritten without pause (a log, a watch
	// build writing continuously) cannot hold every other change back.
	// Zero: 20 × Quiet.
	MaxDelay time.Duration

	pending     map[string]bool
	first, last time.Time
}

// Add records changed paths seen at now.
func (b *Debouncer) Add(now time.Time, paths ...string) {
	if len(paths) == 0 {
		return
	}
	if b.pending == nil {
		b.pending = map[string]bool{}
	}
	if len(b.pending) == 0 {
		b.first = now
	}
	b.last = now
	for _, p := range paths {
		b.pending[p] = true
	}
}

// Deadline is when the pending batch becomes due; ok is false when nothing
// is pending.
func (b *Debouncer) Deadline() (t time.Time, ok bool) {
	if len(b.pending) == 0 {
		return time.Time{}, false
	}
	maxDelay := b.MaxDelay
	if maxDelay <= 0 {
		maxDelay = 20 * b.Quiet
	}
	t = b.last.Add(b.Quiet)
	if limit := b.first.Add(maxDelay); limit.Before(t) {
		t = limit
	}
	return t, true
}

// Take returns the pending batch, sorted, when it is due at now, and
// starts a new one; otherwise nil.
func (b *Debouncer) Take(now time.Time) []string {
	due, ok := b.Deadline()
	if !ok || now.Before(due) {
		return nil
	}
	return b.takeAll()
}

func (b *Debouncer) takeAll() []string {
	out := make([]string, 0, len(b.pending))
	for p := range b.pending {
		out = append(out, p)
	}
	clear(b.pending)
	slices.Sort(out)
	return out
}

// Clock is the time source of Run; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Run feeds the paths arriving on in through the debouncer and calls flush
// with each batch that falls due, until ctx ends or in is closed (a batch
// still pending then is flushed at once: nothing seen is dropped).
func (b *Debouncer) Run(ctx context.Context, clk Clock, in <-chan []string, flush func([]string)) {
	if clk == nil {
		clk = realClock{}
	}
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case paths, ok := <-in:
			if !ok {
				if batch := b.takeAll(); len(batch) > 0 {
					flush(batch)
				}
				return
			}
			now := clk.Now()
			b.Add(now, paths...)
			due, _ := b.Deadline()
			timer = clk.After(due.Sub(now))
		case now := <-timer:
			timer = nil
			if batch := b.Take(now); len(batch) > 0 {
				flush(batch)
			}
			if due, ok := b.Deadline(); ok {
				timer = clk.After(due.Sub(clk.Now()))
			}
		}
	}
}
