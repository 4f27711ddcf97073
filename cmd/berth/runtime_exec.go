package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime"
)

func rtExecCmd() *cobra.Command {
	var (
		tty         bool
		detach      bool
		user, cwd   string
		env         []string
		processFile string
		pidFile     string
		noNewPrivs  bool
	)
	c := &cobra.Command{
		Use:   "exec [flags] ID [COMMAND [ARG...]]",
		Short: "Run a new process inside a running container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			p := &specs.Process{Args: args[1:], Cwd: cwd, Terminal: tty, NoNewPrivileges: noNewPrivs}
			if processFile != "" {
				b, err := os.ReadFile(processFile)
				if err != nil {
					return err
				}
				p = &specs.Process{}
				if err := json.Unmarshal(b, p); err != nil {
					return fmt.Errorf("process file: %w", err)
				}
			}
			if len(env) > 0 {
				base, err := rtSpecEnv(args[0])
				if err != nil {
					return err
				}
				p.Env = append(base, env...)
			}
			stdio := []*os.File{os.Stdin, os.Stdout, os.Stderr}
			var master *os.File
			if p.Terminal {
				m, slave, err := openPty()
				if err != nil {
					return err
				}
				defer slave.Close()
				master = m
				stdio = []*os.File{slave, slave, slave}
			}
			proc, err := rt.ExecStart(cmd.Context(), args[0], p, execOptions(user, stdio))
			if err != nil {
				return err
			}
			if pidFile != "" {
				if err := os.WriteFile(pidFile, []byte(strconv.Itoa(proc.Pid)), 0o644); err != nil {
					return err
				}
			}
			if detach {
				proc.Release()
				return nil
			}
			if master != nil {
				restore := makeRaw(os.Stdin)
				defer restore()
				go io.Copy(master, os.Stdin)
				go io.Copy(os.Stdout, master)
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
			ws := st.Sys().(syscall.WaitStatus)
			code := ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	f := c.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-terminal")
	f.BoolVarP(&detach, "detach", "d", false, "Do not wait for the process")
	f.StringVarP(&user, "user", "u", "", "user[:group], names or numbers")
	f.StringVar(&cwd, "cwd", "", "Working directory")
	f.StringArrayVarP(&env, "env", "e", nil, "Extra environment variables")
	f.StringVar(&processFile, "process", "", "A process.json to run instead of COMMAND")
	f.StringVar(&pidFile, "pid-file", "", "File to write the process's pid to")
	f.BoolVar(&noNewPrivs, "no-new-privs", false, "Set no_new_privs")
	return c
}

// openPty allocates a pseudo-terminal pair on the host's devpts.
func openPty() (*os.File, *os.File, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
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
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, ws)
	}
	return m, s, nil
}

// makeRaw puts a terminal in raw mode and returns how to undo it.
func makeRaw(f *os.File) func() {
	old, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return func() {}
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &raw)
	return func() { unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, old) }
}

func execOptions(user string, stdio []*os.File) runtime.ExecOptions {
	return runtime.ExecOptions{User: user, Stdio: stdio}
}

// rtSpecEnv is the container's own environment, which -e extends.
func rtSpecEnv(id string) ([]string, error) {
	rt, err := openRuntime()
	if err != nil {
		return nil, err
	}
	spec, err := runtime.LoadSpec(filepath.Join(rt.Root(), id))
	if err != nil {
		return nil, err
	}
	return spec.Process.Env, nil
}
