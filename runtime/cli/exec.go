package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime"
)

type multiString []string

func (m *multiString) String() string     { return strings.Join(*m, ",") }
func (m *multiString) Set(v string) error { *m = append(*m, v); return nil }

func cmdExec(ctx context.Context, rt *runtime.Runtime, args []string) error {
	fs := newFlagSet("exec")
	tty := fs.Bool("tty", false, "allocate a pseudo-terminal")
	fs.Alias("t", "tty")
	detach := fs.Bool("detach", false, "do not wait for the process")
	fs.Alias("d", "detach")
	user := fs.String("user", "", "user[:group], names or numbers")
	fs.Alias("u", "user")
	cwd := fs.String("cwd", "", "working directory")
	var env multiString
	fs.Var(&env, "env", "extra environment variable (repeatable)")
	fs.Alias("e", "env")
	processFile := fs.String("process", "", "a process.json to run instead of CMD")
	pidFile := fs.String("pid-file", "", "file to write the process's pid to")
	noNewPrivs := fs.Bool("no-new-privs", false, "set no_new_privs")
	consoleSocket := fs.String("console-socket", "", "with -t -d: unix socket the pty master is sent to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := wantArgs(fs.FlagSet, 1, -1); err != nil {
		return err
	}
	id := fs.Arg(0)
	p := &specs.Process{Args: fs.Args()[1:], Cwd: *cwd, Terminal: *tty, NoNewPrivileges: *noNewPrivs}
	if *processFile != "" {
		b, err := os.ReadFile(*processFile)
		if err != nil {
			return err
		}
		p = &specs.Process{}
		if err := json.Unmarshal(b, p); err != nil {
			return fmt.Errorf("process file: %w", err)
		}
	}
	if len(env) > 0 {
		spec, err := runtime.LoadSpec(filepath.Join(rt.Root(), id))
		if err != nil {
			return err
		}
		p.Env = append(append([]string(nil), spec.Process.Env...), env...)
	}
	if err := checkConsole(p.Terminal, *detach, *consoleSocket); err != nil {
		return err
	}
	stdio := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	var master, console *os.File
	if *consoleSocket != "" {
		var err error
		if console, err = dialConsole(*consoleSocket); err != nil {
			return err
		}
		defer console.Close()
	} else if p.Terminal {
		m, slave, err := runtime.OpenPty("/dev/ptmx")
		if err != nil {
			return err
		}
		defer slave.Close()
		master = m
		stdio = []*os.File{slave, slave, slave}
	}
	proc, err := rt.ExecStart(ctx, id, p, runtime.ExecOptions{User: *user, Stdio: stdio, ConsoleSocket: console})
	if err != nil {
		return err
	}
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(proc.Pid)), 0o644); err != nil {
			return err
		}
	}
	if *detach {
		proc.Release()
		return nil
	}
	if master != nil {
		restore := MakeRaw(os.Stdin)
		defer restore()
		go io.Copy(master, os.Stdin)
		go io.Copy(os.Stdout, master)
	}
	code, err := runtime.WaitForeground(proc)
	if err != nil {
		return err
	}
	if code != 0 {
		return ExitError{Code: code}
	}
	return nil
}

// MakeRaw puts a terminal in raw mode and returns how to undo it.
func MakeRaw(f *os.File) func() {
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
