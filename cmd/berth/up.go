package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

// machineDriver opens the driver of this machine (the native one; tests
// put the in-memory fake here).
var machineDriver func(ctx context.Context) (driver.Driver, error)

type upOptions struct {
	dryRun        bool
	detach        bool
	forceRecreate bool
	noRecreate    bool
	noDeps        bool
	noStart       bool
	removeOrphans bool
	timeout       int
	timeoutSet    bool
	build         bool
	noBuild       bool
	pull          string
	scale         []string
	wait          bool
	waitTimeout   int
	noColor       bool
	noLogPrefix   bool
	abortOnExit   bool
	exitCodeFrom  string
	attach        []string // up_attach.go
	noAttach      []string
	timestamps    bool
}

func init() {
	register(func() *cobra.Command {
		var o upOptions
		cmd := &cobra.Command{
			Use:   "up [OPTIONS] [SERVICE...]",
			Short: "Create and start containers, converging the machine to the compose file",
			RunE: func(cmd *cobra.Command, args []string) error {
				o.timeoutSet = cmd.Flags().Changed("timeout")
				if watching(cmd) {
					return runUpWatch(cmd, o, args) // watch.go
				}
				return runUp(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, args)
			},
		}
		f := cmd.Flags()
		f.BoolVar(&o.dryRun, "dry-run", false, "Print the plan (one line per operation) and change nothing")
		f.BoolVarP(&o.detach, "detach", "d", false, "Detached mode: converge and exit, leaving containers running")
		f.BoolVar(&o.forceRecreate, "force-recreate", false, "Recreate containers even if nothing changed")
		f.BoolVar(&o.noRecreate, "no-recreate", false, "Never recreate existing containers")
		f.BoolVar(&o.noDeps, "no-deps", false, "Do not start the services the named ones depend on")
		f.BoolVar(&o.noStart, "no-start", false, "Create containers without starting them")
		f.BoolVar(&o.removeOrphans, "remove-orphans", false, "Remove containers of services not in the compose file")
		f.IntVarP(&o.timeout, "timeout", "t", 10, "Seconds to wait for a container to stop before killing it")
		f.BoolVar(&o.build, "build", false, "Build images before starting containers")
		f.BoolVar(&o.noBuild, "no-build", false, "Don't build an image, even if it's missing")
		f.StringVar(&o.pull, "pull", "", `Pull image before running ("always"|"missing"|"never")`)
		f.StringArrayVar(&o.scale, "scale", nil, "Scale SERVICE to NUM instances; overrides the compose file's scale")
		f.BoolVar(&o.wait, "wait", false, "Wait for services to be running|healthy; implies detached mode")
		f.IntVar(&o.waitTimeout, "wait-timeout", 0, "Maximum seconds to wait for the project to be running|healthy")
		f.BoolVar(&o.noColor, "no-color", false, "Produce monochrome output")
		f.BoolVar(&o.noLogPrefix, "no-log-prefix", false, "Don't print a prefix in logs")
		f.BoolVar(&o.abortOnExit, "abort-on-container-exit", false, "Stops all containers if any container was stopped; incompatible with -d")
		f.StringVar(&o.exitCodeFrom, "exit-code-from", "", "Return the exit code of the selected service container; implies --abort-on-container-exit")
		f.StringArrayVar(&o.attach, "attach", nil, "Restrict attaching to the specified services")
		f.StringArrayVar(&o.noAttach, "no-attach", nil, "Do not attach (stream logs) to the specified services")
		f.BoolVar(&o.timestamps, "timestamps", false, "Show timestamps")
		addWatchFlags(f) // --watch, --quiet, --debounce: watch.go
		return cmd
	})
}

func (o upOptions) planOptions(services []string) (reconciler.Options, error) {
	if o.forceRecreate && o.noRecreate {
		return reconciler.Options{}, errors.New("--force-recreate and --no-recreate are incompatible")
	}
	if o.build && o.noBuild {
		return reconciler.Options{}, errors.New("--build and --no-build are incompatible")
	}
	if (o.detach || o.wait) && (o.abortOnExit || o.exitCodeFrom != "") {
		return reconciler.Options{}, errors.New("--abort-on-container-exit and --exit-code-from are incompatible with --detach and --wait")
	}
	ro := reconciler.Options{
		Services: services, NoDeps: o.noDeps, ForceRecreate: o.forceRecreate, NoRecreate: o.noRecreate,
		NoStart: o.noStart, RemoveOrphans: o.removeOrphans, RefreshImages: true,
	}
	if o.timeoutSet {
		t := time.Duration(o.timeout) * time.Second
		ro.Timeout = &t
	}
	return ro, nil
}

// applyOverrides puts the command line's --scale, --build, --no-build and
// --pull into the desired state before anything is planned from it.
func (o upOptions) applyOverrides(want *state.Desired) error {
	for _, s := range o.scale {
		name, n, ok := strings.Cut(s, "=")
		count, err := strconv.Atoi(n)
		if !ok || err != nil || count < 0 {
			return fmt.Errorf("--scale: %q is not SERVICE=NUM", s)
		}
		svc, found := want.Services[name]
		if !found {
			return fmt.Errorf("--scale: no such service: %s", name)
		}
		svc.Replicas = count
	}
	switch o.pull {
	case "", "always", "missing", "never":
	case "policy":
		o.pull = "" // compose's "respect the file": nothing to override
	default:
		return fmt.Errorf(`--pull: %q is not "always", "missing" or "never"`, o.pull)
	}
	for _, svc := range want.Services {
		im := &svc.Image
		switch {
		case im.Build != nil && o.build:
			im.PullPolicy = "build"
		case im.Build != nil && o.noBuild:
			// Use what the store has; a missing image is an error.
			im.PullPolicy = "never"
		case im.Build != nil && o.pull == "always":
			b := *im.Build
			b.Pull = true // refresh the base images of the build
			im.Build = &b
		case im.Build == nil && o.pull != "":
			im.PullPolicy = o.pull
		}
	}
	return nil
}

func runUp(ctx context.Context, stdout, stderr io.Writer, o upOptions, services []string) error {
	started := time.Now()
	ro, err := o.planOptions(services)
	if err != nil {
		return err
	}
	var early *earlyObserve
	defer func() { early.release() }()
	want, err := loadDesiredWith(ctx, func(project string) {
		if !o.dryRun {
			early = startEarlyObserve(ctx, project)
		}
	})
	if err != nil {
		return err
	}
	if err := o.applyOverrides(want); err != nil {
		return err
	}
	if err := checkAttachFlags(o, want, services); err != nil {
		return err
	}
	if _, ok := want.Services[o.exitCodeFrom]; o.exitCodeFrom != "" && !ok {
		return fmt.Errorf("--exit-code-from: no such service: %s", o.exitCodeFrom)
	}
	if machineDriver == nil {
		return errors.New("up: no machine driver in this build")
	}
	d, err := machineDriver(ctx)
	if err != nil {
		return err
	}
	if o.dryRun {
		obs, err := d.Observe(ctx, want.Project)
		if err != nil {
			return err
		}
		return printPlan(stdout, stderr, want, obs, ro)
	}
	if err := convergeFrom(ctx, stderr, d, want, ro, early.take(want.Project)); err != nil {
		return err
	}
	if o.wait {
		return waitServices(ctx, want, services, o)
	}
	if o.detach || o.noStart {
		return nil
	}
	return attach(ctx, stdout, stderr, want, services, o, started)
}

// converge runs one pass of the loop (project lock, plan, execute, up to
// a few rounds), reporting progress on w.
func converge(ctx context.Context, w io.Writer, d driver.Driver, want *state.Desired, ro reconciler.Options) error {
	return convergeFrom(ctx, w, d, want, ro, nil)
}

// convergeFrom is converge starting from an early observation, with its
// lock (nil: none).
func convergeFrom(ctx context.Context, w io.Writer, d driver.Driver, want *state.Desired, ro reconciler.Options, early *earlyObserve) error {
	prog, err := newProgress(w, false)
	if err != nil {
		return err
	}
	lock := projectLock(want.Project)
	locker := lock
	if early != nil {
		d, locker = &observedOnce{Driver: d, e: early}, early
	}
	l := &reconciler.Loop{
		Driver: prog.Driver(d), Project: want.Project, Options: ro,
		Desired: func(context.Context) (*state.Desired, error) { return want, nil },
		Locker:  locker,
		Exec:    reconciler.ExecOptions{Parallel: global.parallel, OnEvent: prog.Event},
		// a user's request: retries a service a controller holds rolled back
		Explicit: true,
	}
	if h, ok := lock.(reconciler.HoldStore); ok {
		l.Holds = h // kept beside the lock file, whichever Locker holds it
	}
	res := l.Pass(ctx)
	prog.Close()
	for _, p := range res.Plans {
		warn(w, p.Warnings)
	}
	return res.Err
}

// waitServices is up --wait: every container of the services up started
// must run, and be healthy when it has a healthcheck.
func waitServices(ctx context.Context, want *state.Desired, services []string, o upOptions) error {
	if o.waitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(o.waitTimeout)*time.Second)
		defer cancel()
	}
	d, err := nativeDriver(ctx)
	if err != nil {
		return err
	}
	t := &projectTarget{name: want.Project, desired: want, d: d}
	cs, err := t.containers(ctx, services, false)
	if err != nil {
		return err
	}
	for _, c := range cs {
		cond := driver.WaitRunning
		if svc := want.Services[c.Service]; svc != nil && healthcheck(svc.Container.Healthcheck) {
			cond = driver.WaitHealthy
		}
		if err := d.WaitContainer(ctx, c.ID, cond); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("container %s: not %s after %ds", c.Name, cond, o.waitTimeout)
			}
			return err
		}
	}
	return nil
}

func healthcheck(h *state.Healthcheck) bool {
	return h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE"
}

func printPlan(stdout, stderr io.Writer, want *state.Desired, obs *state.Observed, o reconciler.Options) error {
	p, err := reconciler.PlanUp(want, obs, o)
	if err != nil {
		return err
	}
	warn(stderr, p.Warnings)
	if p.Empty() {
		fmt.Fprintln(stderr, "berth: nothing to do")
		return nil
	}
	_, err = io.WriteString(stdout, p.String())
	return err
}

func warn(w io.Writer, warnings []string) {
	for _, s := range warnings {
		fmt.Fprintln(w, "berth: warning:", s)
	}
}
