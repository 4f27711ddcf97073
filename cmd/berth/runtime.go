package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime"
)

func init() { register(newRuntimeCmd) }

// openRuntime opens the runtime's state root under --run-root.
func openRuntime() (*runtime.Runtime, error) {
	return runtime.New(filepath.Join(global.runRoot, "runtime"))
}

func newRuntimeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runtime",
		Short: "The OCI runtime, with runc's command line (create, start, state, kill, delete, run, exec, list)",
	}
	cmd.AddCommand(rtCreateCmd(), rtStartCmd(), rtStateCmd(), rtKillCmd(), rtDeleteCmd(), rtRunCmd(),
		rtExecCmd(), rtListCmd(), rtPauseCmd(true), rtPauseCmd(false), rtPsCmd(), rtLogsCmd(), rtStatsCmd())
	return cmd
}

type createFlags struct {
	bundle, pidFile, consoleSocket string
	noPivot, noNewKeyring          bool
}

func (f *createFlags) add(c *cobra.Command) {
	c.Flags().StringVarP(&f.bundle, "bundle", "b", "", "Path to the bundle (default: the current directory)")
	c.Flags().StringVar(&f.pidFile, "pid-file", "", "File to write the container's pid to")
	c.Flags().StringVar(&f.consoleSocket, "console-socket", "", "Accepted for runc compatibility; terminals are not supported by create")
	c.Flags().BoolVar(&f.noPivot, "no-pivot", false, "Accepted for runc compatibility (always pivots)")
	c.Flags().BoolVar(&f.noNewKeyring, "no-new-keyring", false, "Accepted for runc compatibility")
}

func (f *createFlags) options() (runtime.CreateOptions, error) {
	bundle := f.bundle
	if bundle == "" {
		wd, err := os.Getwd()
		if err != nil {
			return runtime.CreateOptions{}, err
		}
		bundle = wd
	}
	pid := f.pidFile
	if pid != "" {
		abs, err := filepath.Abs(pid)
		if err != nil {
			return runtime.CreateOptions{}, err
		}
		pid = abs
	}
	// The container gets the caller's stdio, as with runc.
	return runtime.CreateOptions{Bundle: bundle, PidFile: pid, Stdio: []*os.File{os.Stdin, os.Stdout, os.Stderr}}, nil
}

func rtCreateCmd() *cobra.Command {
	var f createFlags
	c := &cobra.Command{
		Use:   "create [flags] ID",
		Short: "Create a container from a bundle; it waits for start",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			o, err := f.options()
			if err != nil {
				return err
			}
			_, err = rt.Create(cmd.Context(), args[0], o)
			return err
		},
	}
	f.add(c)
	return c
}

func rtStartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start ID",
		Short: "Start a created container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			return rt.Start(cmd.Context(), args[0])
		},
	}
}

func rtStateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "state ID",
		Short: "Print the OCI state of a container as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			s, err := rt.State(args[0])
			if err != nil {
				return err
			}
			return printJSON(s.OCI())
		},
	}
}

func printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

// parseSignal accepts KILL, SIGKILL, kill and 9.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func rtKillCmd() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "kill [--all] ID [SIGNAL]",
		Short: "Send a signal (default SIGTERM) to a container",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig := syscall.SIGTERM
			if len(args) == 2 {
				var err error
				if sig, err = parseSignal(args[1]); err != nil {
					return err
				}
			}
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			return rt.Kill(cmd.Context(), args[0], sig, all)
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "Signal every process of the container")
	return c
}

func rtDeleteCmd() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "delete [--force] ID",
		Short: "Delete a stopped container (--force: kill it first)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			return rt.Delete(cmd.Context(), args[0], force)
		},
	}
	c.Flags().BoolVar(&force, "force", false, "Kill the container if it runs")
	return c
}

func rtRunCmd() *cobra.Command {
	var f createFlags
	var detach bool
	c := &cobra.Command{
		Use:   "run [flags] ID",
		Short: "Create and start a container; wait for it unless --detach",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			o, err := f.options()
			if err != nil {
				return err
			}
			id := args[0]
			ctx := cmd.Context()
			if _, err := rt.Run(ctx, id, o); err != nil {
				return err
			}
			if detach {
				return nil
			}
			sigs := make(chan os.Signal, 8)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
			defer signal.Stop(sigs)
			go func() {
				for s := range sigs {
					rt.Kill(context.Background(), id, s.(syscall.Signal), false)
				}
			}()
			st, err := rt.Wait(ctx, id)
			if err != nil {
				return err
			}
			if err := rt.Delete(ctx, id, true); err != nil {
				return err
			}
			if st.ExitCode != 0 {
				return exitError{code: st.ExitCode}
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVarP(&detach, "detach", "d", false, "Do not wait for the container")
	return c
}

func rtListCmd() *cobra.Command {
	var quiet bool
	var format string
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			list, err := rt.List()
			if err != nil {
				return err
			}
			if format == "json" {
				out := []map[string]any{}
				for _, s := range list {
					o := s.OCI()
					out = append(out, map[string]any{"id": o.ID, "pid": o.Pid, "status": o.Status, "bundle": o.Bundle,
						"created": s.Created, "annotations": o.Annotations, "restarts": s.Restarts, "health": s.Health})
				}
				return printJSON(out)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 1, ' ', 0)
			if !quiet {
				fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED")
			}
			for _, s := range list {
				if quiet {
					fmt.Fprintln(w, s.ID)
					continue
				}
				o := s.OCI()
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", s.ID, o.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano))
			}
			return w.Flush()
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only IDs")
	c.Flags().StringVar(&format, "format", "table", "table or json")
	return c
}

func rtPauseCmd(pause bool) *cobra.Command {
	use, short := "pause ID", "Freeze every process of a container"
	if !pause {
		use, short = "resume ID", "Thaw a paused container"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			if pause {
				return rt.Pause(cmd.Context(), args[0])
			}
			return rt.Resume(cmd.Context(), args[0])
		},
	}
}

func rtPsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ps ID",
		Short: "List the processes of a container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			ps, err := rt.Top(args[0])
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 1, ' ', 0)
			fmt.Fprintln(w, "PID\tPPID\tSTATE\tCOMMAND")
			for _, p := range ps {
				fmt.Fprintf(w, "%d\t%d\t%s\t%s\n", p.Pid, p.PPid, p.State, p.Command)
			}
			return w.Flush()
		},
	}
}

func rtLogsCmd() *cobra.Command {
	var o runtime.LogOptions
	var timestamps bool
	c := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a container's log (containers created without caller stdio)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			return rt.Logs(cmd.Context(), args[0], o, func(e runtime.LogEntry) error {
				out := os.Stdout
				if e.Stream == "stderr" {
					out = os.Stderr
				}
				if timestamps {
					fmt.Fprint(out, e.Time.Format(time.RFC3339Nano)+" ")
				}
				_, err := fmt.Fprint(out, e.Log)
				return err
			})
		},
	}
	c.Flags().BoolVar(&o.Follow, "follow", false, "Follow the log")
	c.Flags().IntVarP(&o.Tail, "tail", "n", 0, "Only the last N lines")
	c.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "Show timestamps")
	return c
}

func rtStatsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats ID",
		Short: "Print a container's resource usage as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			s, err := rt.Stats(args[0])
			if err != nil {
				return err
			}
			return printJSON(s)
		},
	}
}
