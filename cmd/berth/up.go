package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

// machineDriver opens the driver of this machine. It stays nil until
// driver/native exists; until then up can only print its plan against an
// empty machine (--dry-run).
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
}

func init() {
	register(func() *cobra.Command {
		var o upOptions
		cmd := &cobra.Command{
			Use:   "up [OPTIONS] [SERVICE...]",
			Short: "Create and start containers, converging the machine to the compose file",
			RunE: func(cmd *cobra.Command, args []string) error {
				return runUp(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, args, cmd.Flags().Changed("timeout"))
			},
		}
		f := cmd.Flags()
		f.BoolVar(&o.dryRun, "dry-run", false, "Print the plan (one line per operation) and change nothing")
		f.BoolVarP(&o.detach, "detach", "d", false, "Converge and exit, leaving containers running")
		f.BoolVar(&o.forceRecreate, "force-recreate", false, "Recreate containers even if nothing changed")
		f.BoolVar(&o.noRecreate, "no-recreate", false, "Never recreate existing containers")
		f.BoolVar(&o.noDeps, "no-deps", false, "Do not start the services the named ones depend on")
		f.BoolVar(&o.noStart, "no-start", false, "Create containers without starting them")
		f.BoolVar(&o.removeOrphans, "remove-orphans", false, "Remove containers of services not in the compose file")
		f.IntVarP(&o.timeout, "timeout", "t", 10, "Seconds to wait for a container to stop before killing it")
		return cmd
	})
}

func (o upOptions) planOptions(services []string, timeoutSet bool) (reconciler.Options, error) {
	if o.forceRecreate && o.noRecreate {
		return reconciler.Options{}, errors.New("--force-recreate and --no-recreate are incompatible")
	}
	ro := reconciler.Options{
		Services: services, NoDeps: o.noDeps, ForceRecreate: o.forceRecreate, NoRecreate: o.noRecreate,
		NoStart: o.noStart, RemoveOrphans: o.removeOrphans, RefreshImages: true,
	}
	if timeoutSet {
		t := time.Duration(o.timeout) * time.Second
		ro.Timeout = &t
	}
	return ro, nil
}

func runUp(ctx context.Context, stdout, stderr io.Writer, o upOptions, services []string, timeoutSet bool) error {
	ro, err := o.planOptions(services, timeoutSet)
	if err != nil {
		return err
	}
	want, err := loadDesired(ctx)
	if err != nil {
		return err
	}
	if machineDriver == nil {
		if !o.dryRun {
			return errors.New("up: no machine driver in this build yet; use --dry-run to print the plan")
		}
		return printPlan(stdout, stderr, want, &state.Observed{Project: want.Project}, ro)
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
	l := &reconciler.Loop{
		Driver: d, Project: want.Project, Options: ro,
		Desired: func(context.Context) (*state.Desired, error) { return want, nil },
		Locker:  reconciler.FileLock(filepath.Join(global.root, "projects", want.Project+".lock")),
		Exec: reconciler.ExecOptions{Parallel: global.parallel, OnEvent: func(e reconciler.Event) {
			printEvent(stdout, e)
		}},
	}
	res := l.Pass(ctx)
	for _, p := range res.Plans {
		warn(stderr, p.Warnings)
	}
	return res.Err
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

// printEvent prints one line per finished operation, the plan's own
// numbering included so a failure can be found in a dry-run's output.
func printEvent(w io.Writer, e reconciler.Event) {
	if global.progress == "quiet" || e.Phase == reconciler.Started {
		return
	}
	line := fmt.Sprintf("#%d %s %s %s", e.Op.ID, e.Op.Object, e.Op.Kind, e.Phase)
	if e.Err != nil {
		line += ": " + e.Err.Error()
	}
	fmt.Fprintln(w, line)
}
