package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/runtime"
)

// registerCommands fills the table (called from the fast path's init,
// which may run before this file's init functions would).
func registerCommands() {
	if len(commands) > 0 {
		return
	}
	commands["create"] = command{"[--bundle DIR] [--pid-file FILE] ID", cmdCreate}
	commands["start"] = command{"ID", cmdStart}
	commands["state"] = command{"ID", cmdState}
	commands["kill"] = command{"[--all] ID [SIGNAL]", cmdKill}
	commands["delete"] = command{"[--force] ID", cmdDelete}
	commands["run"] = command{"[--bundle DIR] [--pid-file FILE] [--detach] ID", cmdRun}
	commands["exec"] = command{"[-t] [-u USER] [-e K=V] [--cwd DIR] [--process FILE] [-d] ID [CMD ARG...]", cmdExec}
	commands["list"] = command{"[-q] [--format table|json]", cmdList}
	commands["pause"] = command{"ID", func(ctx context.Context, rt *runtime.Runtime, a []string) error {
		return onID(ctx, "pause", a, rt.Pause)
	}}
	commands["resume"] = command{"ID", func(ctx context.Context, rt *runtime.Runtime, a []string) error {
		return onID(ctx, "resume", a, rt.Resume)
	}}
	commands["ps"] = command{"ID", cmdPs}
	commands["logs"] = command{"[--follow] [--tail N] [--timestamps] ID", cmdLogs}
	commands["stats"] = command{"ID", cmdStats}
}

type createFlags struct {
	bundle, pidFile, consoleSocket *string
}

func addCreateFlags(fs *flagSet) createFlags {
	c := createFlags{
		bundle:        fs.String("bundle", "", "path to the bundle (default: the working directory)"),
		pidFile:       fs.String("pid-file", "", "file to write the container's pid to"),
		consoleSocket: fs.String("console-socket", "", "unix socket the pty master of a terminal: true process is sent to"),
	}
	fs.Alias("b", "bundle")
	fs.Bool("no-pivot", false, "accepted for runc compatibility")
	fs.Bool("no-new-keyring", false, "accepted for runc compatibility")
	return c
}

// options are the create options of a detached (create, run -d) or an
// attached run; an attached run with a terminal gets ownConsole, the
// socket its pty master arrives on.
func (c createFlags) options(detach bool) (o runtime.CreateOptions, ownConsole *os.File, err error) {
	bundle := *c.bundle
	if bundle == "" {
		wd, err := os.Getwd()
		if err != nil {
			return o, nil, err
		}
		bundle = wd
	}
	spec, err := runtime.LoadSpec(bundle)
	if err != nil {
		return o, nil, err
	}
	terminal := spec.Process != nil && spec.Process.Terminal
	if err := checkConsole(terminal, detach, *c.consoleSocket); err != nil {
		return o, nil, err
	}
	pid := *c.pidFile
	if pid != "" {
		abs, err := filepath.Abs(pid)
		if err != nil {
			return o, nil, err
		}
		pid = abs
	}
	// The container gets the caller's stdio, as with runc.
	o = runtime.CreateOptions{Bundle: bundle, PidFile: pid, Stdio: []*os.File{os.Stdin, os.Stdout, os.Stderr}}
	switch {
	case *c.consoleSocket != "":
		if o.ConsoleSocket, err = dialConsole(*c.consoleSocket); err != nil {
			return o, nil, err
		}
	case terminal && !detach:
		var theirs *os.File
		if ownConsole, theirs, err = consolePair(); err != nil {
			return o, nil, err
		}
		o.ConsoleSocket = theirs
	}
	return o, ownConsole, nil
}

func cmdCreate(ctx context.Context, rt *runtime.Runtime, args []string) error {
	fs := newFlagSet("create")
	cf := addCreateFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := wantArgs(fs.FlagSet, 1, 1); err != nil {
		return err
	}
	o, _, err := cf.options(true)
	if err != nil {
		return err
	}
	if o.ConsoleSocket != nil {
		defer o.ConsoleSocket.Close()
	}
	_, err = rt.Create(ctx, fs.Arg(0), o)
	return err
}

func onID(ctx context.Context, name string, args []string, f func(context.Context, string) error) error {
	fs := newFlagSet(name)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := wantArgs(fs.FlagSet, 1, 1); err != nil {
		return err
	}
	return f(ctx, fs.Arg(0))
}

func cmdStart(ctx context.Context, rt *runtime.Runtime, args []string) error {
	return onID(ctx, "start", args, rt.Start)
}

func cmdState(ctx context.Context, rt *runtime.Runtime, args []string) error {
	return onID(ctx, "state", args, func(_ context.Context, id string) error {
		s, err := rt.State(id)
		if err != nil {
			return err
		}
		return printJSON(s.OCI())
	})
}

func printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

// ParseSignal accepts KILL, SIGKILL, kill and 9.
func ParseSignal(s string) (syscall.Signal, error) { return runtime.ParseSignal(s) }

func cmdKill(ctx context.Context, rt *runtime.Runtime, args []string) error {
	fs := newFlagSet("kill")
	all := fs.Bool("all", false, "signal every process of the container")
	fs.Alias("a", "all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := wantArgs(fs.FlagSet, 1, 2); err != nil {
		return err
	}
	sig := syscall.SIGTERM
	if fs.NArg() == 2 {
		var err error
		if sig, err = ParseSignal(fs.Arg(1)); err != nil {
			return err
		}
	}
	return rt.Kill(ctx, fs.Arg(0), sig, *all)
}

func cmdDelete(ctx context.Context, rt *runtime.Runtime, args []string) error {
	fs := newFlagSet("delete")
	force := fs.Bool("force", false, "kill the container if it runs")
	fs.Alias("f", "force")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := wantArgs(fs.FlagSet, 1, 1); err != nil {
		return err
	}
	return rt.Delete(ctx, fs.Arg(0), *force)
}

func cmdRun(ctx context.Context, rt *runtime.Runtime, args []string) error {
	fs := newFlagSet("run")
	cf := addCreateFlags(fs)
	detach := fs.Bool("detach", false, "do not wait for the container")
	fs.Alias("d", "detach")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := wantArgs(fs.FlagSet, 1, 1); err != nil {
		return err
	}
	o, ownConsole, err := cf.options(*detach)
	if err != nil {
		return err
	}
	if o.ConsoleSocket != nil {
		defer o.ConsoleSocket.Close()
	}
	id := fs.Arg(0)
	if *detach {
		_, err := rt.Run(ctx, id, o)
		return err
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	var consoleErr error
	drain := func() {}
	// One call: the monitor creates, starts, answers, and answers again
	// once the container stopped and was deleted.
	st, err := rt.RunWait(ctx, id, o, true, func(*runtime.State) {
		if ownConsole != nil {
			// The master was sent during create: it waits in the socket.
			o.ConsoleSocket.Close()
			master, err := RecvConsole(ownConsole)
			ownConsole.Close()
			if err != nil {
				consoleErr = err
				rt.Kill(context.Background(), id, syscall.SIGKILL, true)
			} else {
				done := relayConsole(master)
				drain = func() { done(); master.Close() }
			}
		}
		go func() {
			for s := range sigs {
				rt.Kill(context.Background(), id, s.(syscall.Signal), false)
			}
		}()
	})
	drain()
	if err != nil {
		return err
	}
	if consoleErr != nil {
		return consoleErr
	}
	if st.ExitCode != 0 {
		return ExitError{Code: st.ExitCode}
	}
	return nil
}

func cmdList(ctx context.Context, rt *runtime.Runtime, args []string) error {
	fs := newFlagSet("list")
	quiet := fs.Bool("quiet", false, "only IDs")
	fs.Alias("q", "quiet")
	format := fs.String("format", "table", "table or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	list, err := rt.List()
	if err != nil {
		return err
	}
	if *format == "json" {
		out := []map[string]any{}
		for _, s := range list {
			o := s.OCI()
			out = append(out, map[string]any{"id": o.ID, "pid": o.Pid, "status": o.Status, "bundle": o.Bundle,
				"created": s.Created, "annotations": o.Annotations, "restarts": s.Restarts, "health": s.Health})
		}
		return printJSON(out)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 1, ' ', 0)
	if !*quiet {
		fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED")
	}
	for _, s := range list {
		if *quiet {
			fmt.Fprintln(w, s.ID)
			continue
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", s.ID, s.OCI().Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano))
	}
	return w.Flush()
}

func cmdPs(ctx context.Context, rt *runtime.Runtime, args []string) error {
	return onID(ctx, "ps", args, func(_ context.Context, id string) error {
		ps, err := rt.Top(id)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 8, 1, ' ', 0)
		fmt.Fprintln(w, "PID\tPPID\tSTATE\tCOMMAND")
		for _, p := range ps {
			fmt.Fprintf(w, "%d\t%d\t%s\t%s\n", p.Pid, p.PPid, p.State, p.Command)
		}
		return w.Flush()
	})
}

func cmdLogs(ctx context.Context, rt *runtime.Runtime, args []string) error {
	fs := newFlagSet("logs")
	var o runtime.LogOptions
	fs.BoolVar(&o.Follow, "follow", false, "follow the log")
	fs.IntVar(&o.Tail, "tail", 0, "only the last N lines")
	ts := fs.Bool("timestamps", false, "show timestamps")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := wantArgs(fs.FlagSet, 1, 1); err != nil {
		return err
	}
	return rt.Logs(ctx, fs.Arg(0), o, func(e runtime.LogEntry) error {
		out := os.Stdout
		if e.Stream == "stderr" {
			out = os.Stderr
		}
		if *ts {
			fmt.Fprint(out, e.Time.Format(time.RFC3339Nano)+" ")
		}
		_, err := fmt.Fprint(out, e.Log)
		return err
	})
}

func cmdStats(ctx context.Context, rt *runtime.Runtime, args []string) error {
	return onID(ctx, "stats", args, func(_ context.Context, id string) error {
		s, err := rt.Stats(id)
		if err != nil {
			return err
		}
		return printJSON(s)
	})
}
