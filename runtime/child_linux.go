package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	_ "github.com/berth-dev/berth/runtime/nsenter" // joins namespaces before Go starts
)

// The parent <-> child protocol.
//
// Every child is a re-exec of the berth binary (from a sealed memfd copy, see
// selfexe_linux.go) with envChild naming its role. The init child is cloned
// into its new namespaces (mount, uts, ipc, pid, net unless joined); the
// namespaces it joins by path are joined by the C constructor in
// runtime/nsenter before the Go runtime starts.
//
//  1. parent: clone the child; it blocks reading fd 3 (syncFd, a socketpair).
//  2. parent: place the child in its cgroups (so that its cgroup namespace
//     is rooted there), then write one JSON initConfig and a newline on fd 3.
//  3. child:  unshare the cgroup namespace, set up the rootfs, pivot_root,
//     masked and read-only paths, sysctls, the console (a pty sent over the
//     console socket, when there is one), hostname, rlimits; then write one
//     JSON syncMsg on fd 3: {"ready":true} or {"error":"..."} (and exit 1).
//  4. child:  open exec.fifo for writing (fd 4, opened O_PATH by the parent
//     and reopened through /proc/self/fd): this blocks until
//     Start opens the FIFO for reading, which is what "start" means. It
//     writes one byte so that Start knows the child passed the point.
//  5. child:  resolve the executable, seccomp (before dropping capabilities
//     unless no_new_privs), user and groups, capabilities, no_new_privs and
//     seccomp, mark every fd above 2 close-on-exec, execve.
//
// An exec child follows the same two messages on fd 3, joined into every
// namespace of the container by the constructor (with _BERTH_NSFORK so that
// the PID namespace applies), and skips steps 3 and 4.
const (
	envChild   = "_BERTH_CHILD"
	childInit  = "init"
	childExec  = "exec"
	childMon   = "monitor"
	syncFd     = 3
	envMonitor = "_BERTH_MONITOR_ROOT"
)

type initConfig struct {
	Spec         *specs.Spec       `json:"spec"`
	Rootfs       string            `json:"rootfs"`
	RootfsMounts []specs.Mount     `json:"rootfsMounts,omitempty"`
	ExecFifo     bool              `json:"execFifo,omitempty"` // on fd 4
	User         string            `json:"user,omitempty"`
	Init         bool              `json:"init,omitempty"`
	Seccomp      bpfProgram        `json:"seccomp,omitempty"`
	NewCgroupNS  bool              `json:"newCgroupNS,omitempty"`
	CgroupV1     map[string]string `json:"cgroupV1,omitempty"` // hierarchy name -> the container's cgroup directory there (host path), for a cgroup mount on v1
	NewUTS       bool              `json:"newUTS,omitempty"`
	UserNS       bool              `json:"userNS,omitempty"`
	// ConsoleFd, when set, is the fd of a console socket: allocate a pty
	// in the container and send its master there (console_linux.go).
	ConsoleFd int `json:"consoleFd,omitempty"`
	// HostMountNS: no mount namespace, the host's (see planNamespaces).
	// Rootfs is then a directory of the state root and RootfsBind the
	// bundle's rootfs bound there.
	HostMountNS bool   `json:"hostMountNS,omitempty"`
	RootfsBind  string `json:"rootfsBind,omitempty"`
	// Chroot (exec only): the container's root when it shares our mount
	// namespace, /proc/<init>/root.
	Chroot string `json:"chroot,omitempty"`
	// Exec only: the process to run in an existing container.
	Process *specs.Process `json:"process,omitempty"`
}

// startFifo is the write end of exec.fifo, held until execve.
var startFifo *os.File

// warmChild: a spare init, whose fds arrive with its config.
var warmChild bool

type syncMsg struct {
	Ready bool   `json:"ready,omitempty"`
	Error string `json:"error,omitempty"`
}

func init() {
	switch os.Getenv(envChild) {
	case "":
		return
	case childInit, childExec:
		// Credentials, the cgroup namespace and the seccomp filter are set
		// per thread: keep this goroutine on the thread that will execve.
		goruntime.LockOSThread()
		role := os.Getenv(envChild)
		warmChild = os.Getenv(envWarm) != ""
		os.Unsetenv(envChild)
		os.Unsetenv(envWarm)
		os.Unsetenv("_BERTH_NSENTER")
		os.Unsetenv("_BERTH_NSFORK")
		os.Unsetenv(envSelfFd)
		childMain(role)
	case childMon:
		os.Unsetenv(envChild)
		monitorMain(os.Getenv(envMonitor))
	}
}

func childMain(role string) {
	sync := os.NewFile(syncFd, "sync")
	fail := func(err error) {
		b, _ := json.Marshal(syncMsg{Error: err.Error()})
		if _, werr := sync.Write(append(b, '\n')); werr != nil {
			// Past the handshake: the parent is gone, stderr is the log.
			fmt.Fprintf(os.Stderr, "berth: %v\n", err)
		}
		os.Exit(127)
	}
	if err := checkStamp(); err != nil {
		fail(err)
	}
	if warmChild {
		warmDecoder()
		dropTextPages()
		if err := recvWarmFds(); errors.Is(err, errUnused) {
			os.Exit(127)
		} else if err != nil {
			fail(err)
		}
	}
	var cfg initConfig
	if err := json.NewDecoder(sync).Decode(&cfg); err != nil {
		fail(fmt.Errorf("read config: %w", err))
	}
	var err error
	if role == childInit {
		err = initContainer(&cfg, sync)
	} else {
		err = execInContainer(&cfg, sync)
	}
	if err != nil {
		fail(err)
	}
}

func sendReady(sync *os.File) error {
	b, _ := json.Marshal(syncMsg{Ready: true})
	_, err := sync.Write(append(b, '\n'))
	return err
}

func initContainer(cfg *initConfig, sync *os.File) error {
	spec := cfg.Spec
	if cfg.NewCgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	var fifo *os.File
	if cfg.ExecFifo {
		fifo = os.NewFile(4, "exec.fifo")
		unix.CloseOnExec(4)
	}
	if err := setupRootfs(cfg); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if cfg.ConsoleFd > 0 {
		if err := setupConsole(cfg.ConsoleFd, spec.Process.ConsoleSize); err != nil {
			return err
		}
	}
	if cfg.NewUTS && spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	if cfg.NewUTS && spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("setdomainname: %w", err)
		}
	}
	p := spec.Process
	if err := setRlimits(p.Rlimits); err != nil {
		return err
	}
	if err := resolveUser(p, cfg.User); err != nil {
		return fmt.Errorf("user: %w", err)
	}
	if err := os.Chdir(cwdOf(p)); err != nil {
		return fmt.Errorf("chdir %s: %w", p.Cwd, err)
	}
	path, err := lookPath(p)
	if err != nil {
		return err
	}
	if err := sendReady(sync); err != nil {
		return err
	}
	if fifo != nil {
		w, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(fifo.Fd())), os.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("wait for start: %w", err)
		}
		if _, err := w.Write([]byte{0}); err != nil {
			return fmt.Errorf("wait for start: %w", err)
		}
		// w stays open, close-on-exec: Start reads EOF once execve
		// succeeded (or this process died), so "started" means running.
		startFifo = w
		fifo.Close()
	}
	sync.Close()
	return finalizeAndExec(p, path, cfg.Seccomp, cfg.Init)
}

func execInContainer(cfg *initConfig, sync *os.File) error {
	p := cfg.Process
	if cfg.Chroot != "" {
		if err := unix.Chdir(cfg.Chroot); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
	}
	if err := setRlimits(p.Rlimits); err != nil {
		return err
	}
	if err := resolveUser(p, cfg.User); err != nil {
		return fmt.Errorf("user: %w", err)
	}
	if err := os.Chdir(cwdOf(p)); err != nil {
		return fmt.Errorf("chdir %s: %w", p.Cwd, err)
	}
	if cfg.ConsoleFd > 0 {
		if err := setupConsole(cfg.ConsoleFd, p.ConsoleSize); err != nil {
			return err
		}
	} else if p.Terminal {
		if _, err := unix.Setsid(); err != nil {
			return fmt.Errorf("setsid: %w", err)
		}
		if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
			return fmt.Errorf("set controlling terminal: %w", err)
		}
	}
	path, err := lookPath(p)
	if err != nil {
		return err
	}
	if err := sendReady(sync); err != nil {
		return err
	}
	sync.Close()
	return finalizeAndExec(p, path, cfg.Seccomp, false)
}

func cwdOf(p *specs.Process) string {
	if p.Cwd == "" {
		return "/"
	}
	return p.Cwd
}
