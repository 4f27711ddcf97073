package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// ExecOptions tune Execute.
type ExecOptions struct {
	// Parallel bounds how many operations run at once; <= 0 is unbounded.
	Parallel int
	// OnEvent, when set, is called as each operation starts and ends. Calls
	// are serialised, so it may print without locking.
	OnEvent func(Event)
	// WaitTimeout bounds each WaitContainer; zero leaves it to ctx.
	WaitTimeout time.Duration
}

// Phase is where an operation is.
type Phase string

// Phases of an Event.
const (
	Started   Phase = "started"
	Succeeded Phase = "done"
	Failed    Phase = "failed"
	Skipped   Phase = "skipped" // a dependency failed, or ctx ended first
)

// Event reports progress of one operation.
type Event struct {
	Op       *Op
	Phase    Phase
	Err      error         // Failed, Skipped
	Duration time.Duration // Succeeded, Failed
}

// OpError is one failed operation.
type OpError struct {
	Op  *Op
	Err error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("#%d %s %s: %v", e.Op.ID, e.Op.Object, e.Op.Kind, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// ExecError is what Execute returns when operations failed: each failure,
// and how many operations were skipped because of them.
type ExecError struct {
	Failed  []*OpError
	Skipped []*Op
}

func (e *ExecError) Error() string {
	var b strings.Builder
	for i, f := range e.Failed {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Error())
	}
	if len(e.Skipped) > 0 {
		fmt.Fprintf(&b, " (%d dependent operations skipped)", len(e.Skipped))
	}
	return b.String()
}

// Unwrap exposes every failure to errors.Is (driver.ErrInvalid...).
func (e *ExecError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f
	}
	return out
}

type result struct {
	id     string // container id (CreateContainer)
	digest string // image digest (EnsureImage)
}

type executor struct {
	ctx  context.Context
	d    driver.Driver
	p    *Plan
	o    ExecOptions
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex // guards everything below and serialises OnEvent
	res  []result
	ok   []bool // finished successfully
	bad  []bool // failed or skipped
	idle []bool // conditional (OnFailure) ops not needed, and their hard dependents
	left []int  // unfinished dependencies
	down [][]int
	err  ExecError
}

// Execute runs the plan against the driver: every operation starts as soon
// as its own dependencies are done, at most o.Parallel at once. A failed
// operation skips what depends on it (not its After dependents) and nothing
// else. It makes no decisions: the plan says everything.
func Execute(ctx context.Context, d driver.Driver, p *Plan, o ExecOptions) error {
	if p.Empty() {
		return nil
	}
	n := len(p.Ops)
	e := &executor{ctx: ctx, d: d, p: p, o: o,
		res: make([]result, n+1), ok: make([]bool, n+1), bad: make([]bool, n+1), idle: make([]bool, n+1),
		left: make([]int, n+1), down: make([][]int, n+1)}
	if o.Parallel > 0 {
		e.sem = make(chan struct{}, o.Parallel)
	}
	for i, op := range p.Ops {
		if op.ID != i+1 {
			return fmt.Errorf("plan op #%d is at position %d", op.ID, i+1)
		}
		for _, dep := range append(append([]int(nil), op.Deps...), op.After...) {
			e.left[op.ID]++
			e.down[dep] = append(e.down[dep], op.ID)
		}
	}
	e.mu.Lock()
	for _, op := range p.Ops {
		if e.left[op.ID] == 0 {
			e.launch(op)
		}
	}
	e.mu.Unlock()
	e.wg.Wait()
	if len(e.err.Failed) > 0 || len(e.err.Skipped) > 0 {
		if len(e.err.Failed) == 0 {
			return fmt.Errorf("%d operations not run: %w", len(e.err.Skipped), ctx.Err())
		}
		return &e.err
	}
	return nil
}

// launch starts op in its own goroutine, or skips it when a hard
// dependency failed or ctx is done. Callers hold e.mu.
func (e *executor) launch(op *Op) {
	for _, dep := range op.Deps {
		if e.bad[dep] {
			e.finish(op, Skipped, fmt.Errorf("dependency #%d failed", dep), 0)
			return
		}
	}
	if e.notNeeded(op) {
		e.idle[op.ID] = true
		e.release(op)
		return
	}
	if err := e.ctx.Err(); err != nil {
		e.finish(op, Skipped, err, 0)
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if e.sem != nil {
			select {
			case e.sem <- struct{}{}:
				defer func() { <-e.sem }()
			case <-e.ctx.Done():
				e.mu.Lock()
				e.finish(op, Skipped, e.ctx.Err(), 0)
				e.mu.Unlock()
				return
			}
		}
		e.mu.Lock()
		e.emit(Event{Op: op, Phase: Started})
		e.mu.Unlock()
		start := time.Now()
		r, err := e.run(op)
		e.mu.Lock()
		defer e.mu.Unlock()
		e.res[op.ID] = r
		if err != nil {
			e.finish(op, Failed, err, time.Since(start))
		} else {
			e.finish(op, Succeeded, nil, time.Since(start))
		}
	}()
}

// finish records op's outcome and launches the dependents it unblocks.
// Callers hold e.mu.
func (e *executor) finish(op *Op, ph Phase, err error, dur time.Duration) {
	switch ph {
	case Succeeded:
		e.ok[op.ID] = true
	case Failed:
		e.bad[op.ID] = true
		e.err.Failed = append(e.err.Failed, &OpError{Op: op, Err: err})
	case Skipped:
		e.bad[op.ID] = true
		e.err.Skipped = append(e.err.Skipped, op)
	}
	e.emit(Event{Op: op, Phase: ph, Err: err, Duration: dur})
	e.release(op)
}

// release launches the dependents op's end unblocks. Callers hold e.mu.
func (e *executor) release(op *Op) {
	for _, next := range e.down[op.ID] {
		e.left[next]--
		if e.left[next] == 0 {
			e.launch(e.p.Ops[next-1])
		}
	}
}

func (e *executor) emit(ev Event) {
	if e.o.OnEvent != nil {
		e.o.OnEvent(ev)
	}
}

// run makes op's one driver call, fed by the results of earlier ops.
func (e *executor) run(op *Op) (result, error) {
	ctx := e.ctx
	e.mu.Lock()
	id := op.ContainerID
	if id == "" && op.IDFrom != 0 {
		id = e.res[op.IDFrom].id
	}
	digest := ""
	if op.DigestFrom != 0 {
		digest = e.res[op.DigestFrom].digest
	}
	e.mu.Unlock()
	switch op.Kind {
	case EnsureImage:
		ref, err := e.d.EnsureImage(ctx, *op.Image)
		return result{digest: ref.Digest}, err
	case CreateNetwork:
		return result{}, e.d.CreateNetwork(ctx, *op.Network)
	case RemoveNetwork:
		return result{}, e.d.RemoveNetwork(ctx, op.Name)
	case CreateVolume:
		return result{}, e.d.CreateVolume(ctx, *op.Volume)
	case RemoveVolume:
		return result{}, e.d.RemoveVolume(ctx, op.Name)
	case Delay:
		return result{}, sleep(ctx, op.Duration)
	case CreateContainer:
		spec := *op.Container
		if op.DigestFrom != 0 {
			spec.ImageDigest = digest
			spec.Labels = withLabel(spec.Labels, state.LabelImage, digest)
		}
		cid, err := e.d.CreateContainer(ctx, spec)
		return result{id: cid}, err
	}
	if id == "" {
		return result{}, fmt.Errorf("no container id: %w", driver.ErrInvalid)
	}
	switch op.Kind {
	case StartContainer:
		return result{}, e.d.StartContainer(ctx, id)
	case StopContainer:
		return result{}, e.d.StopContainer(ctx, id, op.Timeout)
	case RemoveContainer:
		return result{}, e.d.RemoveContainer(ctx, id)
	case RenameContainer:
		return result{}, e.d.RenameContainer(ctx, id, op.Name)
	case Monitor:
		return result{}, e.monitor(ctx, id, op.Duration)
	case WaitContainer:
		if e.o.WaitTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, e.o.WaitTimeout)
			defer cancel()
		}
		err := e.d.WaitContainer(ctx, id, op.Condition)
		if errors.Is(err, context.DeadlineExceeded) && e.ctx.Err() == nil {
			err = fmt.Errorf("condition %s not reached within %s", op.Condition, e.o.WaitTimeout)
		}
		return result{}, err
	}
	return result{}, fmt.Errorf("unknown operation %q: %w", op.Kind, driver.ErrInvalid)
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = v
	return out
}
