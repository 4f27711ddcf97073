package main

import (
	"context"
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
	var sess *stdioSession
	if !o.detach {
		if sess, err = callerStdio(!o.noTTY, containerDevices(rt, c.ID)); err != nil {
			return err
		}
		defer sess.Close()
		if sess.tty {
			p.Terminal = true
			o.env = append([]string{"TERM=" + firstOf(os.Getenv("TERM"), "xterm")}, o.env...)
		}
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
	proc, err := rt.ExecStart(ctx, c.ID, p, runtime.ExecOptions{User: o.user, Stdio: sess.stdio})
	if err != nil {
		return err
	}
	return waitForeground(proc, sess)
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

// stdioSession is what a foreground process in a container is connected
// to. On a terminal with a tty wanted: a new pty, whose slave the process
// gets while berth copies between the master and its own stdin/stdout in
// raw mode. Otherwise berth's own stdin, stdout and stderr, except that a
// terminal is never handed over: the process gets a pipe that berth
// copies, so it cannot reach the caller's terminal (TIOCSTI and the like)
// and sees no tty, as -T promises.
type stdioSession struct {
	stdio   []*os.File // the process's fds 0, 1, 2
	child   []*os.File // berth's copies of the process's ends
	outputs []chan struct{}
	tty     bool
	master  *os.File
	restore func()
	winch   chan os.Signal
}

// callerStdio prepares the stdio of a foreground process. The pty is made
// in the container's own devpts when dev (the container's /dev seen from
// the host) is given, so that programs inside find their terminal by name
// (tty, stty); else on the host's.
func callerStdio(wantTTY bool, dev string) (*stdioSession, error) {
	s := &stdioSession{}
	if !wantTTY || !term.IsTerminal(int(os.Stdin.Fd())) {
		return s, s.relay()
	}
	var m, slave *os.File
	var err error
	if dev != "" {
		m, slave, err = runtime.OpenPty(filepath.Join(dev, "pts", "ptmx"))
	}
	if m == nil {
		m, slave, err = runtime.OpenPty("/dev/ptmx")
	}
	if err != nil {
		return nil, fmt.Errorf("allocate a terminal: %w", err)
	}
	s.tty, s.master = true, m
	s.stdio, s.child = []*os.File{slave, slave, slave}, []*os.File{slave}
	return s, nil
}

// relay passes berth's stdio through, with pipes in place of terminals.
func (s *stdioSession) relay() error {
	for i, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if !term.IsTerminal(int(f.Fd())) {
			s.stdio = append(s.stdio, f)
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		if i == 0 {
			s.stdio, s.child = append(s.stdio, r), append(s.child, r)
			go func() { io.Copy(w, os.Stdin); w.Close() }()
			continue
		}
		s.stdio, s.child = append(s.stdio, w), append(s.child, w)
		done := make(chan struct{})
		s.outputs = append(s.outputs, done)
		go func() { io.Copy(f, r); r.Close(); close(done) }()
	}
	return nil
}

// started is called once the process holds its ends: berth closes its
// copies (so outputs end when the process does) and starts the terminal.
func (s *stdioSession) started() {
	for _, f := range s.child {
		f.Close()
	}
	if !s.tty {
		return
	}
	in := int(os.Stdin.Fd())
	if st, err := term.MakeRaw(in); err == nil {
		s.restore = func() { term.Restore(in, st) }
	}
	go io.Copy(s.master, os.Stdin)
	done := make(chan struct{})
	s.outputs = append(s.outputs, done)
	go func() { io.Copy(os.Stdout, s.master); close(done) }()
	s.winch = make(chan os.Signal, 1)
	signal.Notify(s.winch, syscall.SIGWINCH)
	go func(winch chan os.Signal) {
		for range winch {
			if ws, err := unix.IoctlGetWinsize(in, unix.TIOCGWINSZ); err == nil {
				unix.IoctlSetWinsize(int(s.master.Fd()), unix.TIOCSWINSZ, ws)
			}
		}
	}(s.winch)
}

// drain waits (briefly: a background child of the process may hold the
// output open) for the last output of the process.
func (s *stdioSession) drain() {
	deadline := time.After(time.Second)
	for _, done := range s.outputs {
		select {
		case <-done:
		case <-deadline:
			return
		}
	}
}

// Close restores the terminal and releases what berth holds.
func (s *stdioSession) Close() {
	if s.winch != nil {
		signal.Stop(s.winch)
		close(s.winch)
	}
	if s.restore != nil {
		s.restore()
	}
	if s.master != nil {
		s.master.Close()
	}
	for _, f := range s.child {
		f.Close()
	}
}

// waitForeground forwards berth's signals to proc until it exits and
// returns its exit status as berth's (128+N when a signal ended it).
func waitForeground(proc *os.Process, sess *stdioSession) error {
	sess.started()
	code, err := runtime.WaitForeground(proc)
	if err != nil {
		return err
	}
	sess.drain()
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
