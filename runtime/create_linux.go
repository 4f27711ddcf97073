package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// LoadSpec reads a bundle's config.json.
func LoadSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: config.json: %v", ErrInvalid, err)
	}
	return &s, nil
}

func validateSpec(s *specs.Spec) error {
	if s.Process == nil {
		return fmt.Errorf("%w: no process", ErrInvalid)
	}
	if len(s.Process.Args) == 0 {
		return fmt.Errorf("%w: process.args is empty", ErrInvalid)
	}
	if s.Process.Cwd != "" && !filepath.IsAbs(s.Process.Cwd) {
		return fmt.Errorf("%w: process.cwd %q is not absolute", ErrInvalid, s.Process.Cwd)
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("%w: mount destination %q is not absolute", ErrInvalid, m.Destination)
		}
	}
	if s.Linux != nil {
		ownNet := false
		for _, ns := range s.Linux.Namespaces {
			ownNet = ownNet || ns.Type == specs.NetworkNamespace
		}
		for k := range s.Linux.Sysctl {
			if err := checkSysctl(k, ownNet); err != nil {
				return err
			}
		}
	}
	return ValidateCapabilities(s.Process.Capabilities)
}

// rootfsOf says where the container's / is built on the host.
func (r *Runtime) rootfsOf(id string, spec *specs.Spec, o *CreateOptions) (string, error) {
	if len(o.RootfsMounts) > 0 {
		d := filepath.Join(r.dir(id), "rootfs")
		return d, os.MkdirAll(d, 0o755)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return "", fmt.Errorf("%w: no root.path and no rootfs mounts", ErrInvalid)
	}
	p := spec.Root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(o.Bundle, p)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%w: rootfs: %v", ErrInvalid, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: rootfs %s is not a directory", ErrInvalid, p)
	}
	return p, nil
}

// launch creates the container's process (blocked before exec on
// exec.fifo when fifo is set) and records it. It is the monitor's half of
// Create and of every restart.
//
// console, when set, is a console socket (CreateOptions.ConsoleSocket): a
// process with terminal: true gets a pty whose master is sent there.
func (r *Runtime) launch(ctx context.Context, s *State, spec *specs.Spec, stdio []*os.File, fifo string, console *os.File) (*child, error) {
	o := &s.Options
	plan, err := planNamespaces(spec)
	if err != nil {
		return nil, err
	}
	filter, err := compileSeccomp(seccompOf(spec))
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	cg, err := newCgroup(spec, s.ID)
	if err != nil {
		return nil, err
	}
	s.Cgroup = cg.path
	s.HostMounts = plan.hostMount
	root, bind := s.Rootfs, ""
	if plan.hostMount && len(o.RootfsMounts) == 0 {
		// Mounts in the host's namespace go on a directory of ours only.
		root, bind = r.hostRoot(s.ID), s.Rootfs
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, err
		}
	}
	defer warm.begin()()
	c := warm.take(plan, hostPaths(root, spec.Mounts))
	warm.next(plan)
	ok := false
	defer func() {
		if !ok && c != nil {
			c.discard()
		}
	}()
	// A warm init already sits in staging cgroups (v1): renamed to the
	// container's, they need no migration of it.
	moved := c.adoptStaged(cg)
	if err := cg.create(); err != nil {
		return nil, err
	}
	res := withDeviceRules(spec)
	if err := cg.apply(res); err != nil {
		cg.destroy()
		return nil, err
	}
	if plan.userNS && fifo != "" {
		uid, gid := plan.rootHostID()
		if err := os.Chown(fifo, uid, gid); err != nil {
			cg.destroy()
			return nil, err
		}
	}
	var fifoFile *os.File
	if fifo != "" {
		if fifoFile, err = os.OpenFile(fifo, unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
			cg.destroy()
			return nil, err
		}
		defer fifoFile.Close()
	}
	if !spec.Process.Terminal {
		console = nil
	}
	placed := false
	if c == nil {
		spawn := func(p nsPlan) (*child, error) { return startChild(childInit, p, stdio, fifoFile, console) }
		c, placed, err = placeable(cg, spec).spawnIn(plan, spawn)
	} else {
		c.consoleFd = 0
		if console != nil {
			c.consoleFd = warmConsoleFd
		}
	}
	if err != nil {
		cg.destroy()
		return nil, err
	}
	cfg := &initConfig{
		Spec: withoutSeccompProfile(spec), Rootfs: root, RootfsBind: bind, RootfsMounts: o.RootfsMounts, ExecFifo: fifo != "",
		User: o.User, Init: o.Init, Seccomp: filter, NewCgroupNS: plan.newCgroup, NewUTS: plan.newUTS,
		UserNS: plan.userNS, ConsoleFd: c.consoleFd, HostMountNS: plan.hostMount,
	}
	if hasCgroupMount(spec) {
		cfg.CgroupV1 = cg.v1Dirs()
	}
	if !placed {
		err = cg.addPidExcept(c.pid, moved)
	}
	if err == nil {
		err = setOOMScoreAdj(c.pid, spec.Process.OOMScoreAdj)
	}
	if err == nil && c.warm {
		err = c.sendWarm(plan, stdio, fifoFile, console)
	}
	if err == nil {
		err = c.handshake(ctx, cfg)
	}
	if err != nil {
		c.sync.Close()
		c.kill()
		cg.destroy()
		return nil, err
	}
	s.Pid = c.pid
	s.PidStart, _ = pidStartTime(c.pid)
	ok = true
	return c, nil
}

// withoutSeccompProfile is spec for the init, which gets the filter
// compiled: Docker's profile is hundreds of syscall names it would only
// decode.
func withoutSeccompProfile(spec *specs.Spec) *specs.Spec {
	if spec.Linux == nil || spec.Linux.Seccomp == nil {
		return spec
	}
	out, linux := *spec, *spec.Linux
	linux.Seccomp = nil
	out.Linux = &linux
	return &out
}

func seccompOf(spec *specs.Spec) *specs.LinuxSeccomp {
	if spec.Linux == nil {
		return nil
	}
	return spec.Linux.Seccomp
}

func hasCgroupMount(spec *specs.Spec) bool {
	for _, m := range spec.Mounts {
		if m.Type == "cgroup" || m.Type == "cgroup2" {
			return true
		}
	}
	return false
}

// releaseStart is Start's half of the exec.fifo handshake: reading the
// byte the child wrote lets it exec. It fails when the child is gone. The
// returned fd reads EOF once the child's end closed on exec (awaitExec).
func releaseStart(ctx context.Context, path string, pid int, pidStart uint64) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("exec fifo: %w", err)
	}
	err = readFifo(ctx, fd, fmt.Errorf("%w: container did not reach start", ErrState), func(n int) (bool, error) {
		if n == 1 {
			return true, nil
		}
		// No byte yet. A child that died may still have written, exec'd
		// and exited since the read: the byte in the fifo then says it
		// started.
		if !pidAlive(pid, pidStart) {
			if n, _ := unix.Read(fd, make([]byte, 1)); n == 1 {
				return true, nil
			}
			return false, fmt.Errorf("%w: container process exited before start", ErrState)
		}
		return false, nil
	})
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// awaitExec waits until the released child's end of the fifo closed: it
// executed the container's process (or died). It closes fd.
func awaitExec(ctx context.Context, fd int) error {
	defer unix.Close(fd)
	return readFifo(ctx, fd, fmt.Errorf("%w: container did not exec", ErrState), func(n int) (bool, error) {
		return n == 0, nil // EOF: no writer left
	})
}

// readFifo reads fd (non-blocking) until done, given each read's count,
// says so or fails; between reads it waits for the fifo to change, for 10 s
// at most (then late).
func readFifo(ctx context.Context, fd int, late error, done func(n int) (bool, error)) error {
	buf := make([]byte, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN {
			n, err = -1, nil // nothing to read, a writer is there
		}
		if err != nil {
			return fmt.Errorf("exec fifo: %w", err)
		}
		if ok, err := done(n); ok || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return late
		}
		if err := pollFifo(ctx, fd); err != nil {
			return err
		}
	}
}

// pollFifo waits up to 10 ms for the fifo to change (data, or its last
// writer gone), instead of sleeping a fixed step between reads.
func pollFifo(ctx context.Context, fd int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if _, err := unix.Poll(fds, 10); err != nil && err != unix.EINTR {
		return fmt.Errorf("exec fifo: %w", err)
	}
	if fds[0].Revents&unix.POLLHUP != 0 && fds[0].Revents&unix.POLLIN == 0 {
		// A writer came and went without writing: the fifo polls ready
		// at once from now on; step instead of spinning until the
		// child's death shows.
		time.Sleep(200 * time.Microsecond)
	}
	return nil
}

func writePidFile(path string, pid int) error {
	if path == "" {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// cleanupContainer removes everything a container left: processes and
// cgroup, the state directory. Mounts live in the container's own mount
// namespace and vanished with its last process.
func (r *Runtime) cleanupContainer(s *State) error {
	var errs []error
	if s.HostMounts {
		// Everything the container mounted sits on its root there.
		root := s.Rootfs
		if len(s.Options.RootfsMounts) == 0 {
			root = r.hostRoot(s.ID)
		}
		if err := unmountAll(root); err != nil {
			// Never remove a state directory through a live mount.
			return fmt.Errorf("unmount %s: %w", s.Rootfs, err)
		}
	}
	// The cgroup and the state directory are independent: removed side by
	// side (a cgroup's rmdir waits for the kernel to let go of the last
	// task, ms at times, while the directory's unlinks are file system work).
	cgErr := make(chan error, 1)
	go func() {
		var err error
		if s.Cgroup != "" {
			var cg *cgroup
			if cg, err = openCgroup(s.Cgroup); err == nil {
				err = cg.destroy()
			}
		}
		cgErr <- err
	}()
	if err := os.RemoveAll(r.dir(s.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	errs = append(errs, <-cgErr)
	return errors.Join(errs...)
}

// withDeviceRules appends, as runc does, allow rules for the standard
// device nodes and the spec's devices to the spec's device cgroup rules:
// the runtime must be able to create them, and the container to use them.
func withDeviceRules(spec *specs.Spec) *specs.LinuxResources {
	if spec.Linux == nil || spec.Linux.Resources == nil {
		return nil
	}
	res := *spec.Linux.Resources
	if len(res.Devices) == 0 {
		return &res
	}
	res.Devices = append([]specs.LinuxDeviceCgroup(nil), res.Devices...)
	allow := func(t string, major, minor int64) {
		res.Devices = append(res.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: t, Major: &major, Minor: &minor, Access: "rwm"})
	}
	for _, d := range defaultDevices {
		allow("c", int64(d.major), int64(d.minor))
	}
	allow("c", 5, 1)    // /dev/console
	allow("c", 5, 2)    // /dev/ptmx
	allow("c", 136, -1) // /dev/pts/*
	for _, d := range spec.Linux.Devices {
		t := d.Type
		if t == "u" {
			t = "c"
		}
		if t != "c" && t != "b" {
			continue // a FIFO is not a device the cgroup governs
		}
		allow(t, d.Major, d.Minor)
	}
	return &res
}

// hostRoot is where a container in the host's mount namespace has its
// root bound: a directory of the state root, so that every mount there is
// the runtime's to detach.
func (r *Runtime) hostRoot(id string) string { return filepath.Join(r.dir(id), "hostroot") }

// unmountAll detaches every mount on path, a directory of the state root.
func unmountAll(path string) error {
	for i := 0; i < 64; i++ {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				return nil // not a mount point (any more)
			}
			return err
		}
	}
	return fmt.Errorf("%s: still mounted", path)
}
