package watch

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

// Options configure a Controller.
type Options struct {
	Compose compose.Options
	Driver  driver.Driver
	Locker  reconciler.Locker
	// Reconcile are the planner options of every pass; RemoveOrphans is
	// forced on (a service deleted from the file must go).
	Reconcile reconciler.Options
	Parallel  int
	Debounce  time.Duration // 0: DefaultDebounce
	// Resync repairs drift the container events missed (0: 30s).
	Resync time.Duration
	// StateDir is the runtime's state directory; its changes (a container
	// exited, its health changed) kick the loop. "": no container events.
	StateDir string
	// Exec runs a sync+exec command in a container and returns its exit
	// code; nil makes sync+exec rules fail.
	Exec func(ctx context.Context, containerID string, h state.Hook) (int, error)
	// NoUp waits for the first change before converging.
	NoUp bool
	Out  io.Writer // action and summary lines
	// Adjust edits every loaded desired state before it is used (the
	// command line's --scale, --build...); an error makes the load invalid.
	Adjust func(*state.Desired) error
	// OnWarning receives the attribute paths berth ignores, per load.
	OnWarning func(unimplemented []string)
	// OnPass runs after every pass (the CLI follows new containers' logs).
	OnPass func(reconciler.PassResult)
	// Clock drives the debouncer; nil is the real one.
	Clock Clock
}

// Controller keeps one project converged until its context ends.
type Controller struct {
	o    Options
	loop *reconciler.Loop
	obs  *observing
	fs   *fsWatcher

	mu    sync.Mutex
	good  *loaded   // last valid load
	start time.Time // of the running pass
	outMu sync.Mutex

	refresh   bool // RefreshImages for the first pass
	ctx       context.Context
	syncMu    sync.Mutex
	synced    map[string]bool // container, rule: initial sync done
	startLoop func()
	loopOnce  sync.Once
}

// New loads the project once (an invalid project at start is an error) and
// prepares the controller.
func New(ctx context.Context, o Options) (*Controller, error) {
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Resync <= 0 {
		o.Resync = 30 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	l, err := load(ctx, o.Compose, o.Adjust)
	if err != nil {
		return nil, err
	}
	c := &Controller{o: o, good: l, obs: &observing{Driver: o.Driver}}
	c.warn(l)
	ro := o.Reconcile
	ro.RemoveOrphans = true
	// images are refreshed (pull_policy always/build) by the first pass
	// only: a loop refreshing on every pass would rebuild forever
	c.refresh, ro.RefreshImages = ro.RefreshImages, false
	c.loop = &reconciler.Loop{
		Driver: c.obs, Project: l.desired.Project, Options: ro, Locker: o.Locker,
		Desired: c.desired, Resync: o.Resync,
		Exec:   reconciler.ExecOptions{Parallel: o.Parallel, OnEvent: c.printEvent},
		OnPass: c.onPass, OnSourceError: func(err error) { c.printf("berth: watch: %v\n", err) },
	}
	return c, nil
}

// Project is the project's name.
func (c *Controller) Project() string { return c.current().desired.Project }

func (c *Controller) current() *loaded {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.good
}

// desired is the loop's view: always the last good load, so that drift is
// repaired even while the files are broken.
func (c *Controller) desired(context.Context) (*state.Desired, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.start = time.Now()
	return c.good.desired, nil
}

// Run converges the project (unless NoUp), then follows every change until
// ctx ends. It returns nil on a clean stop.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fw, err := newFSWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	c.fs, c.ctx = fw, ctx
	c.arm(c.current())
	c.printf("berth: watching project %s (debounce %s); services removed from the compose file are removed too (--remove-orphans)\n",
		c.Project(), c.o.Debounce)
	if c.o.StateDir != "" {
		c.loop.Sources = append(c.loop.Sources, containerEvents(c.o.StateDir, c.obs.name))
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	c.startLoop = func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.loop.Run(ctx)
		}()
	}
	if !c.o.NoUp {
		c.up(ctx)
	}
	changes := make(chan []string)
	wg.Add(1)
	go func() { defer wg.Done(); _ = fw.Run(ctx, changes) }()
	d := &Debouncer{Quiet: c.o.Debounce}
	d.Run(ctx, c.o.Clock, changes, func(batch []string) { c.handle(ctx, batch) })
	return nil
}

// up is the first convergence: images are refreshed as `berth up` would,
// then initial_sync rules copy their trees in, then the loop takes over.
func (c *Controller) up(ctx context.Context) {
	c.loop.Options.RefreshImages = c.refresh
	res := c.loop.Pass(ctx)
	c.loop.Options.RefreshImages = false
	res.Reasons = []string{"start"}
	c.onPass(res)
	c.initialSync(ctx)
	c.ensureLoop()
}

func (c *Controller) ensureLoop() {
	c.loopOnce.Do(c.startLoop)
}

// SetLocker sets the project lock, known only once the project's name is.
func (c *Controller) SetLocker(l reconciler.Locker) {
	c.o.Locker = l
	c.loop.Locker = l
}
