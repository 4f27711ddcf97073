package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/runtime"
)

type execFlags struct {
	noTTY   bool
	detach  bool
	user    string
	workdir string
	env     []string
	index   int
}

func init() {
	register(func() *cobra.Command {
		var o execFlags
		cmd := &cobra.Command{
			Use:   "exec [OPTIONS] SERVICE COMMAND [ARGS...]",
			Short: "Execute a command in a running container",
			Args:  cobra.MinimumNArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runExec(cmd.Context(), o, args[0], args[1:])
			},
		}
		f := cmd.Flags()
		f.SetInterspersed(false) // flags after SERVICE belong to COMMAND
		f.BoolVarP(&o.noTTY, "no-TTY", "T", false, "Disable pseudo-TTY allocation (default: a TTY when stdin is one)")
		f.BoolVarP(&o.detach, "detach", "d", false, "Detached mode: run the command in the background")
		f.StringVarP(&o.user, "user", "u", "", "Run the command as this user")
		f.StringVarP(&o.workdir, "workdir", "w", "", "Path to workdir directory for this command")
		f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
		f.IntVar(&o.index, "index", 0, "Index of the container if the service has multiple replicas (default 1)")
		f.BoolP("interactive", "i", true, "Keep STDIN open (always on; compose's flag)")
		f.Lookup("interactive").Hidden = true
		return cmd
	})
}

func runExec(ctx context.Context, o execFlags, service string, args []string) error {
	t, err := openProject(ctx)
	if err != nil {
		return err
	}
	c, err := serviceReplica(ctx, t, service, o.index)
	if err != nil {
		return err
	}
	if !running(*c) || c.Status == "paused" {
		return fmt.Errorf("container %s is not running", c.Name)
	}
	rt := t.d.Runtime()
	p := &specs.Process{Args: args, Cwd: o.workdir}
	var stdio []*os.File
	var tty *ttySession
	if !o.detach {
		if stdio, tty, err = callerStdio(!o.noTTY, containerDevices(rt, c.ID)); err != nil {
			return err
		}
	}
	if tty != nil {
		defer tty.Close()
		p.Terminal = true
		o.env = append([]string{"TERM=" + firstOf(os.Getenv("TERM"), "xterm")}, o.env...)
	}
	if len(o.env) > 0 {
		// Setting Env replaces the container's: start from it.
		spec, err := runtime.LoadSpec(filepath.Join(rt.Root(), c.ID))
		if err != nil {
			return err
		}
		p.Env = overlayEnv(spec.Process.Env, o.env)
	}
	if o.detach {
		proc, err := rt.ExecStart(ctx, c.ID, p, runtime.ExecOptions{User: o.user})
		if err != nil {
			return err
		}
		// berth exits at once; the command, reparented to init, goes on.
		return proc.Release()
	}
	proc, err := rt.ExecStart(ctx, c.ID, p, runtime.ExecOptions{User: o.user, Stdio: stdio})
	if err != nil {
		return err
	}
	return waitForeground(proc, tty)
}

// serviceReplica finds replica index (1 when 0) of a service.
func serviceReplica(ctx context.Context, t *projectTarget, service string, index int) (*native.ContainerInfo, error) {
	cs, err := t.containers(ctx, []string{service}, false)
	if err != nil {
		return nil, err
	}
	if index == 0 {
		index = 1
	}
	for i := range cs {
		if cs[i].Number == index {
			return &cs[i], nil
		}
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("service %q is not running", service)
	}
	return nil, fmt.Errorf("service %q has no container number %d", service, index)
}

// overlayEnv sets KEY=VALUE entries over base; a bare KEY takes its value
// from berth's own environment (or is dropped when unset), as docker does.
func overlayEnv(base, extra []string) []string {
	out := append([]string{}, base...)
	for _, kv := range extra {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			v, set := os.LookupEnv(k)
			if !set {
				continue
			}
			kv = k + "=" + v
		}
		replaced := false
		for i, old := range out {
			if strings.HasPrefix(old, k+"=") {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// ttySession is a pseudo-terminal between the caller's terminal and a
// process in a container: the process gets the slave side, berth copies
// between the master and its own stdin/stdout in raw mode.
type ttySession struct {
	master, slave *os.File
	restore       func()
	copied        chan struct{}
	winch         chan os.Signal
}

// callerStdio returns the stdio a foreground process gets: a new pty when
// a terminal is wanted and stdin is one, else berth's own stdin, stdout
// and stderr. The pty is made in the container's own devpts when dev (the
// container's /dev seen from the host) is known, so that programs inside
// find their terminal by name (tty, stty); else on the host's.
func callerStdio(wantTTY bool, dev string) ([]*os.File, *ttySession, error) {
	if !wantTTY || !term.IsTerminal(int(os.Stdin.Fd())) {
		return []*os.File{os.Stdin, os.Stdout, os.Stderr}, nil, nil
	}
	m, s, err := openPtyIn(dev)
	if err != nil && dev != "" {
		m, s, err = openPty()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("allocate a terminal: %w", err)
	}
	t := &ttySession{master: m, slave: s, copied: make(chan struct{}), winch: make(chan os.Signal, 1)}
	return []*os.File{s, s, s}, t, nil
}

// start begins copying once the process holds the slave: berth closes its
// own copy so that the master reads EOF when the process is gone.
func (t *ttySession) start() {
	t.slave.Close()
	if st, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
		t.restore = func() { term.Restore(int(os.Stdin.Fd()), st) }
	}
	go io.Copy(t.master, os.Stdin)
	go func() {
		io.Copy(os.Stdout, t.master)
		close(t.copied)
	}()
	signal.Notify(t.winch, syscall.SIGWINCH)
	go func() {
		for range t.winch {
			if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
				unix.IoctlSetWinsize(int(t.master.Fd()), unix.TIOCSWINSZ, ws)
			}
		}
	}()
}

// drain waits (briefly) for the last output of the process.
func (t *ttySession) drain() {
	select {
	case <-t.copied:
	case <-time.After(time.Second):
	}
}

func (t *ttySession) Close() {
	signal.Stop(t.winch)
	close(t.winch)
	if t.restore != nil {
		t.restore()
	}
	t.master.Close()
	t.slave.Close()
}

// waitForeground forwards berth's signals to proc until it exits and
// returns its exit status as berth's (128+N when a signal ended it).
func waitForeground(proc *os.Process, t *ttySession) error {
	if t != nil {
		t.start()
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			proc.Signal(s)
		}
	}()
	st, err := proc.Wait()
	if err != nil {
		return err
	}
	if t != nil {
		t.drain()
	}
	return exitStatus(st.Sys().(syscall.WaitStatus))
}

func exitStatus(ws syscall.WaitStatus) error {
	code := ws.ExitStatus()
	if ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}

// containerDevices is the running container's /dev as the host sees it
// ("" when unknown).
func containerDevices(rt *runtime.Runtime, id string) string {
	st, err := rt.State(id)
	if err != nil || st.Pid == 0 {
		return ""
	}
	return filepath.Join("/proc", strconv.Itoa(st.Pid), "root", "dev")
}

// openPtyIn allocates a pty pair from the devpts instance under dev (its
// ptmx and pts/N); the slave's size is the caller's terminal's.
func openPtyIn(dev string) (*os.File, *os.File, error) {
	if dev == "" {
		return nil, nil, errors.New("no devpts")
	}
	m, err := os.OpenFile(filepath.Join(dev, "pts", "ptmx"), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	s, err := os.OpenFile(filepath.Join(dev, "pts", strconv.Itoa(int(n))), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, ws)
	}
	return m, s, nil
}
