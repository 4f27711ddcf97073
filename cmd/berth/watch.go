package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/watch"
)

type watchOptions struct {
	noUp     bool
	debounce time.Duration
	logs     bool // attach the containers' logs (up --watch)
}

func init() {
	register(func() *cobra.Command {
		var o watchOptions
		cmd := &cobra.Command{
			Use:   "watch [OPTIONS]",
			Short: "Keep the project converged: re-apply on every change, run develop.watch rules",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				ctx, cancel := signalContext(cmd)
				defer cancel()
				return runWatch(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), o, upOptions{}, nil)
			},
		}
		f := cmd.Flags()
		f.BoolVar(&o.noUp, "no-up", false, "Do not converge before the first change")
		f.DurationVar(&o.debounce, "debounce", watch.DefaultDebounce, "Quiet period after a change before acting")
		return cmd
	})
}

// addWatchFlags adds up's --watch and its companions.
func addWatchFlags(f *pflag.FlagSet) {
	f.Bool("watch", false, "Keep running: re-apply on every change and run develop.watch rules (see berth watch)")
	f.Bool("quiet", false, "With --watch, do not attach the containers' logs")
	f.Duration("debounce", watch.DefaultDebounce, "With --watch, quiet period after a change before acting")
}

func watching(cmd *cobra.Command) bool {
	w, _ := cmd.Flags().GetBool("watch")
	return w
}

// runUpWatch is `berth up --watch`: the same controller as berth watch,
// the containers' logs attached unless --quiet.
func runUpWatch(cmd *cobra.Command, up upOptions, services []string) error {
	ctx, cancel := signalContext(cmd)
	defer cancel()
	quiet, _ := cmd.Flags().GetBool("quiet")
	debounce, _ := cmd.Flags().GetDuration("debounce")
	if up.dryRun || up.detach {
		return errors.New("--watch cannot be combined with --dry-run or --detach")
	}
	return runWatch(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), watchOptions{debounce: debounce, logs: !quiet}, up, services)
}

func runWatch(ctx context.Context, stdout, stderr io.Writer, o watchOptions, up upOptions, services []string) error {
	ro, err := up.planOptions(services)
	if err != nil {
		return err
	}
	d, err := nativeDriver(ctx)
	if err != nil {
		return err
	}
	var logs *logFollower
	if o.logs {
		logs = &logFollower{d: d, w: stdout, seen: map[string]bool{}}
	}
	c, err := watch.New(ctx, watch.Options{
		Compose: composeOptions(), Driver: d, Reconcile: ro, Parallel: global.parallel,
		Debounce: o.debounce, StateDir: d.Runtime().Root(), NoUp: o.noUp, Out: stderr,
		Exec:      func(ctx context.Context, id string, h state.Hook) (int, error) { return execHook(ctx, d, id, h) },
		OnWarning: warnUnimplemented, Adjust: up.applyOverrides,
		OnPass: func(reconciler.PassResult) {
			if logs != nil {
				logs.follow(ctx)
			}
		},
	})
	if err != nil {
		return err
	}
	c.SetLocker(reconciler.FileLock(filepath.Join(global.root, "projects", c.Project()+".lock")))
	err = c.Run(ctx)
	if logs != nil {
		logs.wg.Wait()
	}
	return err
}

// execHook runs a develop.watch sync+exec command in a container, its
// output on ours.
func execHook(ctx context.Context, d *native.Driver, id string, h state.Hook) (int, error) {
	p := &specs.Process{Args: h.Command, Cwd: h.WorkingDir}
	if len(h.Env) > 0 {
		// Env replaces the container's whole environment: start from it
		spec, err := runtime.LoadSpec(filepath.Join(d.Runtime().Root(), id))
		if err != nil {
			return -1, err
		}
		p.Env = append(append([]string{}, spec.Process.Env...), h.Env...)
	}
	return d.Runtime().Exec(ctx, id, p, runtime.ExecOptions{User: h.User, Stdio: []*os.File{nil, os.Stdout, os.Stderr}})
}

// logFollower attaches the logs of every container of the project as it
// appears (recreated containers included), prefixed with its name.
type logFollower struct {
	d    *native.Driver
	w    io.Writer
	mu   sync.Mutex
	seen map[string]bool
	wg   sync.WaitGroup
}

func (f *logFollower) follow(ctx context.Context) {
	t, err := openProject(ctx)
	if err != nil {
		return
	}
	cs, err := t.containers(ctx, nil, false)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		if f.seen[c.ID] {
			continue
		}
		f.seen[c.ID] = true
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			prefix := fmt.Sprintf("%s | ", c.Name)
			_ = f.d.Logs(ctx, c.ID, runtime.LogOptions{Follow: true}, func(e runtime.LogEntry) error {
				f.mu.Lock()
				defer f.mu.Unlock()
				_, err := fmt.Fprint(f.w, prefix+e.Log)
				return err
			})
		}()
	}
}
