package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/state"
)

// containerAction is one command applied to each selected container.
type containerAction struct {
	use, short string
	// pick says whether the action applies to a container.
	pick func(native.ContainerInfo) bool
	do   func(ctx context.Context, d *native.Driver, c native.ContainerInfo) error
	verb string // what the progress line says, "Stopped"...
}

func running(c native.ContainerInfo) bool {
	return c.Status == state.StatusRunning || c.Status == state.StatusPaused || c.Status == state.StatusRestarting
}

func init() {
	var stopT, restartT int
	var signal string
	var rmStop, rmVolumes, rmForce bool
	stopTimeout := func(t *int) time.Duration { return time.Duration(*t) * time.Second }
	actions := []struct {
		a     containerAction
		flags func(*cobra.Command)
	}{
		{containerAction{use: "stop", short: "Stop services", verb: "Stopped", pick: running,
			do: func(ctx context.Context, d *native.Driver, c native.ContainerInfo) error {
				return d.StopContainer(ctx, c.ID, stopTimeout(&stopT))
			}}, func(c *cobra.Command) {
			c.Flags().IntVarP(&stopT, "timeout", "t", 10, "Seconds to wait before killing")
		}},
		{containerAction{use: "start", short: "Start services", verb: "Started",
			pick: func(c native.ContainerInfo) bool { return !running(c) },
			do: func(ctx context.Context, d *native.Driver, c native.ContainerInfo) error {
				return d.StartContainer(ctx, c.ID)
			}}, nil},
		{containerAction{use: "restart", short: "Restart service containers", verb: "Restarted",
			pick: func(native.ContainerInfo) bool { return true },
			do: func(ctx context.Context, d *native.Driver, c native.ContainerInfo) error {
				if err := d.StopContainer(ctx, c.ID, stopTimeout(&restartT)); err != nil {
					return err
				}
				return d.StartContainer(ctx, c.ID)
			}}, func(c *cobra.Command) {
			c.Flags().IntVarP(&restartT, "timeout", "t", 10, "Seconds to wait before killing")
		}},
		{containerAction{use: "kill", short: "Force stop service containers", verb: "Killed", pick: running,
			do: func(ctx context.Context, d *native.Driver, c native.ContainerInfo) error {
				sig, err := parseSignal(signal)
				if err != nil {
					return err
				}
				return d.Kill(ctx, c.ID, sig)
			}}, func(c *cobra.Command) { c.Flags().StringVarP(&signal, "signal", "s", "SIGKILL", "Signal to send") }},
		{containerAction{use: "rm", short: "Remove stopped service containers", verb: "Removed",
			pick: func(c native.ContainerInfo) bool { return rmStop || !running(c) },
			do: func(ctx context.Context, d *native.Driver, c native.ContainerInfo) error {
				if err := d.StopContainer(ctx, c.ID, 10*time.Second); err != nil {
					return err
				}
				if err := d.RemoveContainer(ctx, c.ID); err != nil {
					return err
				}
				return nil
			}}, func(c *cobra.Command) {
			c.Flags().BoolVarP(&rmStop, "stop", "s", false, "Stop the containers first if needed")
			c.Flags().BoolVarP(&rmVolumes, "volumes", "v", false, "Remove anonymous volumes attached to containers")
			c.Flags().BoolVarP(&rmForce, "force", "f", false, "Don't ask to confirm removal")
			shadowFileFlag(c)
		}},
		{containerAction{use: "pause", short: "Pause services", verb: "Paused",
			pick: func(c native.ContainerInfo) bool { return c.Status == state.StatusRunning },
			do: func(ctx context.Context, d *native.Driver, c native.ContainerInfo) error {
				return d.Pause(ctx, c.ID)
			}}, nil},
		{containerAction{use: "unpause", short: "Unpause services", verb: "Unpaused",
			pick: func(c native.ContainerInfo) bool { return c.Status == state.StatusPaused },
			do: func(ctx context.Context, d *native.Driver, c native.ContainerInfo) error {
				return d.Unpause(ctx, c.ID)
			}}, nil},
	}
	for _, x := range actions {
		register(func() *cobra.Command {
			cmd := &cobra.Command{
				Use:   x.a.use + " [OPTIONS] [SERVICE...]",
				Short: x.a.short,
				RunE: func(cmd *cobra.Command, args []string) error {
					ctx, cancel := signalContext(cmd)
					defer cancel()
					return runAction(ctx, cmd.OutOrStdout(), x.a, args)
				},
			}
			if x.flags != nil {
				x.flags(cmd)
			}
			return cmd
		})
	}
}

// runAction applies an action to the selected containers in parallel,
// holding the project's lock, and reports one line per container.
func runAction(ctx context.Context, w io.Writer, a containerAction, services []string) error {
	t, err := openProject(ctx)
	if err != nil {
		return err
	}
	unlock, err := t.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	cs, err := t.containers(ctx, services, a.use == "rm")
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, c := range cs {
		if !a.pick(c) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := a.do(ctx, t.d, c)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", a.use, c.Name, err))
				return
			}
			fmt.Fprintf(w, "Container %s  %s\n", c.Name, a.verb)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
