package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/store"
)

type downOptions struct {
	volumes       bool
	removeOrphans bool
	rmi           string
	timeout       int
	dryRun        bool
}

func init() {
	register(func() *cobra.Command {
		var o downOptions
		cmd := &cobra.Command{
			Use:   "down [OPTIONS] [SERVICE...]",
			Short: "Stop and remove containers and networks (and volumes with -v)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				ctx, cancel := signalContext(cmd)
				defer cancel()
				return runDown(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), o, cmd.Flags().Changed("timeout"))
			},
		}
		f := cmd.Flags()
		f.BoolVarP(&o.volumes, "volumes", "v", false, "Remove named volumes declared in the volumes section and anonymous volumes")
		f.BoolVar(&o.removeOrphans, "remove-orphans", false, "Remove containers of services not defined in the compose file")
		f.StringVar(&o.rmi, "rmi", "", `Remove images used by services: "local" (those without a custom tag) or "all"`)
		f.IntVarP(&o.timeout, "timeout", "t", 10, "Seconds to wait for containers to stop before killing them")
		f.BoolVar(&o.dryRun, "dry-run", false, "Print the plan and change nothing")
		return cmd
	})
}

func runDown(ctx context.Context, stdout, stderr io.Writer, o downOptions, timeoutSet bool) error {
	if o.rmi != "" && o.rmi != "local" && o.rmi != "all" {
		return fmt.Errorf(`--rmi: %q is not "local" or "all"`, o.rmi)
	}
	t, err := openProject(ctx)
	if err != nil {
		return err
	}
	unlock, err := t.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	obs, err := t.d.Observe(ctx, t.name)
	if err != nil {
		return err
	}
	do := reconciler.DownOptions{Volumes: o.volumes, RemoveOrphans: o.removeOrphans, Desired: t.desired}
	if timeoutSet {
		d := time.Duration(o.timeout) * time.Second
		do.Timeout = &d
	}
	p, err := reconciler.PlanDown(obs, do)
	if err != nil {
		return err
	}
	warn(stderr, p.Warnings)
	if o.dryRun {
		_, err := io.WriteString(stdout, p.String())
		return err
	}
	prog, err := newProgress(stderr, false)
	if err != nil {
		return err
	}
	prog.Observed(obs)
	err = reconciler.Execute(ctx, t.d, p, reconciler.ExecOptions{Parallel: global.parallel, OnEvent: prog.Event})
	prog.Close()
	if err != nil {
		return err
	}
	// A project that is wholly gone leaves no file behind, its lock's
	// included (removed while held: waiters take a new one).
	if left, err := t.d.Observe(ctx, t.name); err == nil && len(left.Containers)+len(left.Networks)+len(left.Volumes) == 0 {
		if err := reconciler.RemoveLockFile(t.lockPath()); err != nil {
			fmt.Fprintf(stderr, "berth: warning: %v\n", err)
		}
	}
	// down -v leaves nothing of the project: its cached desired states
	// (keyed by the load's inputs, found by their project) go too.
	if o.volumes {
		if err := compose.RemoveCached(composeOptions().CacheDir, t.name); err != nil {
			fmt.Fprintf(stderr, "berth: warning: %v\n", err)
		}
	}
	if o.rmi != "" && t.desired != nil {
		return removeServiceImages(ctx, t, o.rmi, stderr)
	}
	return nil
}

// removeServiceImages is down --rmi: "all" removes every service image,
// "local" only those berth named after the service (built, no image: tag).
func removeServiceImages(ctx context.Context, t *projectTarget, which string, stderr io.Writer) error {
	st := t.d.Store()
	for _, name := range t.desired.ServiceNames() {
		s := t.desired.Services[name]
		if which == "local" && (s.Image.Build == nil || s.Image.Ref != t.name+"-"+name) {
			continue
		}
		if _, err := st.Untag(ctx, s.Image.Ref); err != nil && !errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(stderr, "berth: warning: image %s: %v\n", s.Image.Ref, err)
		}
	}
	_, err := st.GC(ctx)
	return err
}
