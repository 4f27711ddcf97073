package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/state"
)

// attach is up without -d: once the project is converged, print the output
// of the containers of the services up was asked for (from this up on,
// with coloured name prefixes) until they have all exited or the user
// interrupts; an interrupt stops those containers as compose does and
// exits 128+signal (130 for Ctrl-C).
func attach(ctx context.Context, stdout, stderr io.Writer, want *state.Desired, services []string, o upOptions, since time.Time) error {
	d, err := nativeDriver(ctx)
	if err != nil {
		return err
	}
	t := &projectTarget{name: want.Project, desired: want, d: d}
	// Watched: the services up was given (all when none) and the
	// --attach ones (a dependency attached by name), as compose does.
	if len(services) > 0 && len(o.attach) > 0 {
		services = append(slices.Clip(services), o.attach...)
		slices.Sort(services)
		services = slices.Compact(services)
	}
	cs, err := t.containers(ctx, services, false)
	if err != nil || len(cs) == 0 {
		return err
	}
	shown := attachedTo(cs, o)
	names := make([]string, len(shown))
	for i, c := range shown {
		names[i] = c.Name
	}
	fmt.Fprintf(stdout, "Attaching to %s\n", strings.Join(names, ", "))
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// Followers of the containers' logs and exits; started again when the
	// repair has brought back containers that had all exited.
	var (
		stopLogs func()
		logsDone chan error
		exits    chan containerExit
	)
	follow := func(cs []native.ContainerInfo, since time.Time) {
		var logCtx context.Context
		logCtx, stopLogs = context.WithCancel(ctx)
		logsDone = make(chan error, 1)
		go func() {
			shown := attachedTo(cs, o)
			if len(shown) == 0 { // --attach/--no-attach left none: only exits are watched
				<-logCtx.Done()
				logsDone <- nil
				return
			}
			lo := logsOptions{follow: true, since: since.Format(time.RFC3339Nano), noPrefix: o.noLogPrefix,
				noColor: o.noColor, timestamps: o.timestamps}
			logsDone <- streamLogs(logCtx, stdout, d, shown, lo)
		}()
		exits = make(chan containerExit, len(cs))
		go watchExits(logCtx, stdout, d, cs, exits)
	}
	follow(cs, since)
	defer func() { stopLogs() }()
	// Self-repair, unless the user asked up to end with a container.
	repairCtx, cancelRepair := context.WithCancel(ctx)
	repairDone := make(chan struct{})
	repairing := false
	if ro, err := o.planOptions(services); err == nil && !o.abortOnExit && o.exitCodeFrom == "" {
		repairing = true
		// Repairs put back what is gone: --force-recreate was for up's
		// own pass, or every repair would recreate everything again.
		ro.ForceRecreate = false
		go func() { repairWhileAttached(repairCtx, stderr, d, want, ro); close(repairDone) }()
	} else {
		close(repairDone)
	}
	// stopRepair ends the repairs and waits for a pass under way, so that
	// nothing starts a container the stop below is stopping.
	stopRepair := func() { cancelRepair(); <-repairDone }
	defer stopRepair()
	// finish lets the followers print what the monitor wrote last (it
	// records the exit just after the final lines) and ends them.
	finish := func() error {
		time.Sleep(300 * time.Millisecond)
		stopLogs()
		return <-logsDone
	}
	// revived lists the containers running again after every followed one
	// exited: those the repair put back (jobs that completed stay done).
	revived := func() []native.ContainerInfo {
		time.Sleep(repairInterval + time.Second)
		now, err := t.containers(ctx, services, false)
		if err != nil {
			return nil
		}
		var out []native.ContainerInfo
		for _, c := range now {
			if running(c) {
				out = append(out, c)
			}
		}
		return out
	}
	var sig os.Signal
	logsEnded := false // every followed log ended (logsDone answered nil)
	for sig == nil {
		logs := logsDone
		if logsEnded {
			logs = nil
		}
		select {
		case sig = <-sigs:
		case e, ok := <-exits:
			if !ok {
				if repairing {
					if again := revived(); len(again) > 0 {
						stopLogs()
						<-logsDone
						cs = again
						follow(cs, time.Now())
						logsEnded = false
						continue
					}
				}
				return finish() // every container has exited
			}
			if o.abortOnExit || o.exitCodeFrom != "" {
				finish()
				fmt.Fprintln(stdout, "Aborting on container exit...")
				return abortAttached(stderr, d, cs, o, sigs, e)
			}
		case err := <-logs:
			if err != nil {
				return err
			}
			// The logs end with their containers, and the exits decide
			// what follows (a repair brings them back, an abort reports
			// the first): the end of the logs ended up before them, in a
			// race with the exits, and stopped the repairs with it.
			logsEnded = true
			logsDone <- nil // for whoever waits for the followers next
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	stopRepair()
	// What to stop is what runs now: the repair may have replaced some.
	if now, err := t.containers(ctx, services, false); err == nil {
		cs = now
	}
	stopLogs()
	<-logsDone
	fmt.Fprintln(stderr, "Gracefully stopping... (press Ctrl+C again to force)")
	if err := stopAttached(stderr, d, cs, o, sigs); err != nil {
		return err
	}
	code := 130
	if s, ok := sig.(syscall.Signal); ok {
		code = 128 + int(s)
	}
	return exitError{code: code}
}

// attachedTo are the containers whose output up shows, as docker compose
// does: those of the --attach services when given (else every service up
// started), minus the --no-attach ones. Exits are watched on all of them
// all the same: --abort-on-container-exit and the end of up count every
// container up started, attached or not (compose's watchContainers).
func attachedTo(cs []native.ContainerInfo, o upOptions) []native.ContainerInfo {
	var out []native.ContainerInfo
	for _, c := range cs {
		if (len(o.attach) == 0 || slices.Contains(o.attach, c.Service)) && !slices.Contains(o.noAttach, c.Service) {
			out = append(out, c)
		}
	}
	return out
}

// checkAttachFlags rejects what compose rejects: --attach with --detach or
// --wait, and --attach/--no-attach of a service up does not start (not in
// the project, or neither named nor a dependency of one named).
func checkAttachFlags(o upOptions, want *state.Desired, services []string) error {
	if len(o.attach) > 0 && (o.detach || o.wait) {
		return errors.New("--detach and --wait cannot be combined with --attach")
	}
	if want == nil {
		return nil
	}
	included := map[string]bool{}
	var add func(string)
	add = func(name string) {
		svc, ok := want.Services[name]
		if !ok || included[name] {
			return
		}
		included[name] = true
		for dep := range svc.DependsOn {
			add(dep)
		}
	}
	for name := range want.Services {
		if len(services) == 0 || slices.Contains(services, name) {
			add(name)
		}
	}
	var unknown []string
	for _, s := range append(append([]string(nil), o.attach...), o.noAttach...) {
		if !included[s] {
			unknown = append(unknown, s)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("cannot attach to services not included in up: %s", strings.Join(unknown, ", "))
	}
	return nil
}

// abortAttached is --abort-on-container-exit: stop every attached
// container, then exit with the status of the one that exited first, or
// with --exit-code-from, of that service's container.
func abortAttached(w io.Writer, d *native.Driver, cs []native.ContainerInfo, o upOptions, sigs <-chan os.Signal, first containerExit) error {
	if err := stopAttached(w, d, cs, o, sigs); err != nil {
		return err
	}
	code := first.code
	if o.exitCodeFrom != "" && first.service != o.exitCodeFrom {
		for _, c := range cs {
			if c.Service == o.exitCodeFrom {
				if info, err := d.Inspect(context.Background(), c.ID); err == nil {
					code = info.ExitCode
				}
			}
		}
	}
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}

type containerExit struct {
	service string
	code    int
}

// watchExits prints "NAME exited with code N" as compose does when each
// container stops for good, sends it on exits, and closes exits once none
// is left running.
func watchExits(ctx context.Context, w io.Writer, d *native.Driver, cs []native.ContainerInfo, exits chan<- containerExit) {
	left := map[string]native.ContainerInfo{}
	for _, c := range cs {
		left[c.ID] = c
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for len(left) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for id, c := range left {
			info, err := d.Inspect(ctx, id)
			if err != nil {
				delete(left, id) // removed under us: nothing to wait for
				continue
			}
			if !running(*info) {
				fmt.Fprintf(w, "%s exited with code %d\n", c.Name, info.ExitCode)
				delete(left, id)
				exits <- containerExit{service: c.Service, code: info.ExitCode}
			}
		}
	}
	close(exits)
}

// stopAttached stops the attached containers in parallel, each with -t or
// its stop_grace_period; a second signal kills them at once.
func stopAttached(w io.Writer, d *native.Driver, cs []native.ContainerInfo, o upOptions, sigs <-chan os.Signal) error {
	ctx := context.Background()
	prog, err := newProgress(w, false)
	if err != nil {
		return err
	}
	defer prog.Close()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-sigs:
			for _, c := range cs {
				d.Kill(ctx, c.ID, syscall.SIGKILL)
			}
		case <-finished:
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "Container " + c.Name
			prog.Step(id, "Stopping", false)
			timeout := c.Spec.StopGracePeriod
			if o.timeoutSet || timeout == 0 {
				timeout = time.Duration(o.timeout) * time.Second
			}
			if errs[i] = d.StopContainer(ctx, c.ID, timeout); errs[i] == nil {
				prog.Step(id, "Stopped", true)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
