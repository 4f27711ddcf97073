package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// Source tells the loop to look again: a file changed, a commit arrived, a
// container exited, a timer fired. Events carry no state: every pass reads
// everything afresh.
type Source interface {
	// Run calls kick whenever there is a reason to look again, until ctx
	// ends. A source that returns early just stops triggering.
	Run(ctx context.Context, kick func(reason string)) error
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, kick func(reason string)) error

// Run implements Source.
func (f SourceFunc) Run(ctx context.Context, kick func(reason string)) error { return f(ctx, kick) }

// Ticker is a Source that triggers every d.
func Ticker(d time.Duration) Source {
	return SourceFunc(func(ctx context.Context, kick func(string)) error {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				kick("timer")
			}
		}
	})
}

// PassResult reports one pass of the loop.
type PassResult struct {
	Reasons []string // the triggers this pass answered, coalesced
	Plans   []*Plan  // every non-empty plan executed in the pass
	Err     error
	// Terminal errors (invalid desired state, an impossible plan, a
	// driver's ErrInvalid) are not retried until the next trigger.
	Terminal bool
}

// Loop keeps a project converged: on every trigger it takes the project
// lock, reads the desired state, observes the machine, plans and executes.
type Loop struct {
	Driver  driver.Driver
	Project string
	// Desired returns the desired state; an error means it is invalid,
	// which is terminal: reported through OnInvalid, retried only when
	// something triggers the loop again.
	Desired func(ctx context.Context) (*state.Desired, error)
	Options Options
	Exec    ExecOptions
	Locker  Locker   // nil: no lock
	Sources []Source // besides Resync
	// Resync runs a pass this long after the last one even without a
	// trigger; zero disables it.
	Resync time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff of retried
	// failures (defaults 1s and 5m).
	MinBackoff, MaxBackoff time.Duration
	// Rounds bounds the plan/execute rounds of one pass: a round may leave
	// work to the next (an image's digest is known only once ensured).
	// Default 3.
	Rounds int
	// OnInvalid receives terminal errors; OnPass every pass result;
	// OnSourceError the error of a source that stopped (the loop goes on
	// without it).
	OnInvalid     func(error)
	OnPass        func(PassResult)
	OnSourceError func(error)
	// After is the clock; nil is time.After.
	After func(time.Duration) <-chan time.Time
	// Holds keeps the services held at a desired state that was rolled
	// back (Options.Hold) where the next controller finds them; nil: the
	// Locker's when it keeps them (FileLock does, next to the lock file),
	// else this Loop's memory.
	Holds HoldStore
	// Explicit marks the passes as a user's request (berth up), not a
	// controller's: they plan past the holds and end those of the
	// services in Options' scope, as `docker stack deploy` retries a
	// rolled-back service; a rollout that fails again is held again.
	Explicit bool

	once    sync.Once
	mu      sync.Mutex
	reasons []string
	kicks   chan struct{}
	mem     memHolds // Holds when neither it nor the Locker keeps them
}

func (l *Loop) init() {
	l.once.Do(func() { l.kicks = make(chan struct{}, 1) })
}

// Kick asks for a pass; triggers that arrive while a pass runs or waits are
// coalesced into one. Safe from any goroutine, never blocks.
func (l *Loop) Kick(reason string) {
	l.init()
	l.mu.Lock()
	l.reasons = append(l.reasons, reason)
	l.mu.Unlock()
	select {
	case l.kicks <- struct{}{}:
	default:
	}
}

func (l *Loop) takeReasons() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reasons
	l.reasons = nil
	return r
}

func (l *Loop) after(d time.Duration) <-chan time.Time {
	if d <= 0 {
		return nil
	}
	if l.After != nil {
		return l.After(d)
	}
	return time.After(d)
}

// Run passes once at once, then on every trigger, resync and retry, until
// ctx ends; it returns ctx's error.
func (l *Loop) Run(ctx context.Context) error {
	l.init()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, s := range l.Sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx, l.Kick); err != nil && ctx.Err() == nil && l.OnSourceError != nil {
				l.OnSourceError(err)
			}
		}()
	}
	minB, maxB := l.MinBackoff, l.MaxBackoff
	if minB <= 0 {
		minB = time.Second
	}
	if maxB < minB {
		maxB = max(minB, 5*time.Minute)
	}
	backoff := time.Duration(0)
	reasons := []string{"start"}
	for {
		res := l.Pass(ctx)
		res.Reasons = append(reasons, res.Reasons...)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if l.OnPass != nil {
			l.OnPass(res)
		}
		var retry <-chan time.Time
		switch {
		case res.Err == nil:
			backoff = 0
		case res.Terminal:
			backoff = 0
			if l.OnInvalid != nil {
				l.OnInvalid(res.Err)
			}
		default:
			backoff = min(max(2*backoff, minB), maxB)
			retry = l.after(backoff)
		}
		resync := l.after(l.Resync)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.kicks:
			reasons = l.takeReasons()
		case <-retry:
			reasons = append(l.takeReasons(), fmt.Sprintf("retry after %s", backoff))
		case <-resync:
			reasons = append(l.takeReasons(), "resync")
		}
	}
}

// Pass runs one pass: lock, desired state, then up to Rounds rounds of
// observe → plan → execute until the plan is empty.
func (l *Loop) Pass(ctx context.Context) PassResult {
	var res PassResult
	if l.Locker != nil {
		unlock, err := l.Locker.Lock(ctx)
		if err != nil {
			res.Err = fmt.Errorf("lock project %s: %w", l.Project, err)
			return res
		}
		defer unlock()
	}
	want, err := l.Desired(ctx)
	if err != nil {
		res.Err, res.Terminal = fmt.Errorf("desired state: %w", err), true
		return res
	}
	rounds := l.Rounds
	if rounds <= 0 {
		rounds = 3
	}
	o := l.Options
	if l.Explicit {
		if err := l.release(scopeOf(o)); err != nil {
			res.Err = err
			return res
		}
	}
	for i := 0; i < rounds; i++ {
		obs, err := l.Driver.Observe(ctx, l.Project)
		if err != nil {
			res.Err = fmt.Errorf("observe: %w", err)
			return res
		}
		if !l.Explicit {
			if o.Hold, err = l.holding(want, obs); err != nil {
				res.Err = err
				return res
			}
		}
		p, err := PlanUp(want, obs, o)
		if err != nil {
			res.Err, res.Terminal = fmt.Errorf("plan: %w", err), true
			return res
		}
		if p.Empty() {
			return res
		}
		res.Plans = append(res.Plans, p)
		if err := Execute(ctx, l.Driver, p, l.Exec); err != nil {
			if names := rolledBack(want, err); len(names) > 0 && ctx.Err() == nil {
				err = l.rollBack(ctx, want, obs, names, err, &res)
			}
			res.Err, res.Terminal = err, errors.Is(err, driver.ErrInvalid)
			return res
		}
		if !p.leavesWork() {
			// Everything the plan asked for is done, and nothing it did
			// changes what a plan compares: observing again (a read of
			// every container, ~10 ms of a 50-service recreate) would
			// find nothing to do. The convergence tests check that.
			return res
		}
		o.RefreshImages = false // refreshed once per pass, or no pass would end
		// Forced once per pass too: a later round re-creating what this
		// one just created would never end either (it ran every round,
		// three recreates for one `up --force-recreate`).
		o.ForceRecreate = false
	}
	return res
}
