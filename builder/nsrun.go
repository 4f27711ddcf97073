package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/runtime"
	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// NamespaceRunner runs RUN steps in fresh mount, PID, UTS and IPC
// namespaces (and a network namespace for --network=none) by re-executing
// the current binary. Everything it mounts lives in the child's mount
// namespace, so nothing is left mounted on the host whatever happens, and
// killing the child (PID 1 of its namespace) kills every process the step
// started.
type NamespaceRunner struct{}

const envRunChild = "_BERTH_BUILD_RUN"

type runConfig struct {
	Rootfs  string        `json:"rootfs"`
	Args    []string      `json:"args"`
	Env     []string      `json:"env"`
	Cwd     string        `json:"cwd"`
	UID     int           `json:"uid"`
	GID     int           `json:"gid"`
	Groups  []int         `json:"groups"`
	Network string        `json:"network"`
	Netns   string        `json:"netns,omitempty"`
	Mounts  []specs.Mount `json:"mounts"`
}

func init() {
	if os.Getenv(envRunChild) == "1" {
		goruntime.LockOSThread()
		err := runChild()
		fmt.Fprintf(os.Stderr, "berth build: %v\n", err)
		os.Exit(126)
	}
}

// Run starts the step and waits for it.
func (NamespaceRunner) Run(ctx context.Context, p *Process) error {
	rootfs := p.Rootfs.Path()
	created, err := prepareMountpoints(rootfs, p)
	defer removeMountpoints(rootfs, created)
	if err != nil {
		return err
	}
	cfg := runConfig{Rootfs: rootfs, Args: p.Args, Env: p.Env, Cwd: p.Cwd, UID: p.UID, GID: p.GID,
		Groups: p.Groups, Network: p.Network, Netns: p.Netns, Mounts: p.Mounts}
	data, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cr, cw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer cr.Close()
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{"berth-build-run"}
	cmd.Env = []string{envRunChild + "=1"}
	cmd.ExtraFiles = []*os.File{cr}
	cmd.Stdout, cmd.Stderr = p.Output, p.Output
	flags := unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
	if p.Network == "none" {
		flags |= unix.CLONE_NEWNET
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: uintptr(flags), Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		cw.Close()
		return fmt.Errorf("start RUN: %w", err)
	}
	cw.Write(data)
	cw.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &ExitError{Code: ee.ExitCode()}
	}
	return err
}

// prepareMountpoints creates, inside the rootfs, the directories and files
// the child mounts over and the working directory. It returns the mount
// points it created, removed again after the step so they do not end up in
// the layer.
func prepareMountpoints(rootfs string, p *Process) ([]string, error) {
	root, err := openRootDir(rootfs)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var created []string
	need := func(dir string, file bool) error {
		if f, err := root.openIn(dir, unix.O_PATH); err == nil {
			f.Close()
			return nil
		}
		parent := dir
		if file {
			parent = path.Dir(dir)
		}
		// the missing parents go too (e.g. /run/secrets), top first
		var missing []string
		for p := parent; p != "/" && p != "."; p = path.Dir(p) {
			f, err := root.openIn(p, unix.O_PATH)
			if err == nil {
				f.Close()
				break
			}
			missing = append([]string{p}, missing...)
		}
		if !file && len(missing) > 0 {
			missing = missing[:len(missing)-1] // parent is dir, appended below
		}
		d, err := root.mkdirAll(parent, copyOptions{uid: -1, gid: -1})
		if err != nil {
			return err
		}
		defer d.Close()
		if file {
			fd, err := unix.Openat(int(d.Fd()), path.Base(dir), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return err
			}
			unix.Close(fd)
		}
		created = append(append(created, missing...), dir)
		return nil
	}
	for _, d := range []string{"/proc", "/dev", "/sys"} {
		if err := need(d, false); err != nil {
			return created, err
		}
	}
	for _, m := range p.Mounts {
		st, err := os.Stat(m.Source)
		file := err == nil && !st.IsDir()
		if err := need(m.Destination, file); err != nil {
			return created, err
		}
	}
	d, err := root.mkdirAll(p.Cwd, copyOptions{uid: -1, gid: -1})
	if err != nil {
		return created, err
	}
	d.Close()
	return created, nil
}

func removeMountpoints(rootfs string, created []string) {
	for i := len(created) - 1; i >= 0; i-- {
		p, err := securejoin.SecureJoin(rootfs, created[i])
		if err == nil {
			os.Remove(p) // only empty directories and files go
		}
	}
}

// runChild is the re-executed child: it builds the container's view of the
// filesystem in its own mount namespace, pivots into it, drops privileges
// and executes the step.
func runChild() error {
	var cfg runConfig
	f := os.NewFile(3, "config")
	if err := json.NewDecoder(f).Decode(&cfg); err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	f.Close()
	if cfg.Netns != "" {
		// network namespaces may be joined by one thread of a Go
		// process: init locked this one, which also executes the step
		fd, err := unix.Open(cfg.Netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open netns: %w", err)
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("join netns: %w", err)
		}
		unix.Close(fd)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	r := cfg.Rootfs
	if err := unix.Mount(r, r, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs: %w", err)
	}
	if err := mountSystem(r, cfg.Network); err != nil {
		return err
	}
	for _, m := range cfg.Mounts {
		if err := mountOne(r, m); err != nil {
			return err
		}
	}
	if err := pivot(r); err != nil {
		return err
	}
	unix.Sethostname([]byte("buildkitsandbox"))
	return execStep(cfg)
}

func mountSystem(r, network string) error {
	if err := unix.Mount("proc", filepath.Join(r, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	sysFlags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY)
	if err := unix.Mount("sysfs", filepath.Join(r, "sys"), "sysfs", sysFlags, ""); err != nil {
		// sysfs of a foreign network namespace may be refused: bind the host's read-only
		unix.Mount("/sys", filepath.Join(r, "sys"), "", unix.MS_BIND|unix.MS_REC, "")
		unix.Mount("", filepath.Join(r, "sys"), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, "")
	}
	dev := filepath.Join(r, "dev")
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		t := filepath.Join(dev, n)
		if err := os.WriteFile(t, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+n, t, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", n, err)
		}
	}
	os.Mkdir(filepath.Join(dev, "pts"), 0o755)
	if unix.Mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") == nil {
		os.Symlink("pts/ptmx", filepath.Join(dev, "ptmx"))
	}
	os.Mkdir(filepath.Join(dev, "shm"), 0o1777)
	unix.Mount("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k")
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		os.Symlink(target, filepath.Join(dev, name))
	}
	return maskPaths(r)
}

// maskPaths hides and write-protects the same /proc and /sys paths as
// runc does for containers.
func maskPaths(r string) error {
	for _, p := range runtime.DefaultMaskedPaths {
		t := filepath.Join(r, p)
		st, err := os.Stat(t)
		if err != nil {
			continue
		}
		if st.IsDir() {
			err = unix.Mount("tmpfs", t, "tmpfs", unix.MS_RDONLY, "size=0")
		} else {
			err = unix.Mount("/dev/null", t, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range runtime.DefaultReadonlyPaths {
		t := filepath.Join(r, p)
		if _, err := os.Stat(t); err != nil {
			continue
		}
		if err := unix.Mount(t, t, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("read-only %s: %w", p, err)
		}
		if err := unix.Mount("", t, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("read-only %s: %w", p, err)
		}
	}
	return nil
}

func mountOne(r string, m specs.Mount) error {
	t, err := securejoin.SecureJoin(r, m.Destination)
	if err != nil {
		return err
	}
	ro := false
	for _, o := range m.Options {
		ro = ro || o == "ro"
	}
	if _, err := os.Lstat(t); os.IsNotExist(err) {
		// below the fresh /dev tmpfs: the parent could not create it
		if st, err := os.Stat(m.Source); err == nil && !st.IsDir() {
			os.MkdirAll(filepath.Dir(t), 0o755)
			os.WriteFile(t, nil, 0o644)
		} else {
			os.MkdirAll(t, 0o755)
		}
	}
	switch m.Type {
	case "tmpfs":
		var data []string
		for _, o := range m.Options {
			if strings.HasPrefix(o, "size=") || strings.HasPrefix(o, "mode=") {
				data = append(data, o)
			}
		}
		return unix.Mount("tmpfs", t, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, strings.Join(data, ","))
	case "bind":
		if err := unix.Mount(m.Source, t, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", m.Destination, err)
		}
		if ro {
			return unix.Mount("", t, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, "")
		}
		return nil
	}
	return fmt.Errorf("mount type %s is not supported", m.Type)
}

func pivot(r string) error {
	if err := unix.Chdir(r); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// dockerCaps is Docker's default capability set, the bounding set of RUN.
var dockerCaps = map[int]bool{
	unix.CAP_CHOWN: true, unix.CAP_DAC_OVERRIDE: true, unix.CAP_FSETID: true, unix.CAP_FOWNER: true,
	unix.CAP_MKNOD: true, unix.CAP_NET_RAW: true, unix.CAP_SETGID: true, unix.CAP_SETUID: true,
	unix.CAP_SETFCAP: true, unix.CAP_SETPCAP: true, unix.CAP_NET_BIND_SERVICE: true,
	unix.CAP_SYS_CHROOT: true, unix.CAP_KILL: true, unix.CAP_AUDIT_WRITE: true,
}

func execStep(cfg runConfig) error {
	for c := 0; c <= 63; c++ {
		if !dockerCaps[c] {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err == unix.EINVAL {
				break
			}
		}
	}
	if err := loadRunSeccomp(); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	if err := syscall.Setgroups(cfg.Groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(cfg.GID); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(cfg.UID); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	if err := unix.Chdir(cfg.Cwd); err != nil {
		return fmt.Errorf("chdir %s: %w", cfg.Cwd, err)
	}
	if len(cfg.Args) == 0 {
		return errors.New("empty command")
	}
	bin, err := lookPath(cfg.Args[0], cfg.Env)
	if err != nil {
		return err
	}
	return unix.Exec(bin, cfg.Args, cfg.Env)
}

func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	p := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			p = v
		}
	}
	for _, dir := range filepath.SplitList(p) {
		c := filepath.Join(dir, name)
		if st, err := os.Stat(c); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH", name)
}
