package runtime

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ExecOptions are what exec needs beyond the process.
type ExecOptions struct {
	// Stdio become the process's fds 0, 1, 2 (nil: /dev/null). With
	// process.terminal, Stdio[0] must be the slave side of a pty.
	Stdio []*os.File
	// User, when set, is "user[:group]" resolved in the container.
	User string
	// ConsoleSocket, with process.terminal, is a connected unix socket:
	// the process gets a pty allocated in the container, whose master is
	// sent there (runc's --console-socket). Stdio is then not used.
	ConsoleSocket *os.File
}

// ExecStart starts p inside the running container id and returns it; the
// caller Waits for it. Unset fields of p (env, cwd, user, capabilities,
// no_new_privs) are taken from the container's process. The new process
// joins every namespace and cgroup of the container, gets its seccomp
// filter, and is a direct child of the caller.
func (r *Runtime) ExecStart(ctx context.Context, id string, p *specs.Process, o ExecOptions) (*os.Process, error) {
	s, err := r.State(id)
	if err != nil {
		return nil, err
	}
	if s.Status != StatusRunning && s.Status != StatusCreated {
		return nil, fmt.Errorf("%w: %s is %s", ErrState, id, s.Status)
	}
	spec, err := LoadSpec(r.dir(id))
	if err != nil {
		return nil, err
	}
	proc := fillProcess(p, spec.Process)
	if len(proc.Args) == 0 {
		return nil, fmt.Errorf("%w: no command", ErrInvalid)
	}
	if err := ValidateCapabilities(proc.Capabilities); err != nil {
		return nil, err
	}
	filter, err := compileSeccomp(seccompOf(spec))
	if err != nil {
		return nil, err
	}
	plan := nsPlan{fork: true, join: joinList(spec, s.Pid)}
	console := o.ConsoleSocket
	if !proc.Terminal {
		console = nil
	}
	cg, err := openCgroup(s.Cgroup)
	if err != nil {
		return nil, err
	}
	spawn := func(p nsPlan) (*child, error) { return startChild(childExec, p, o.Stdio, nil, console) }
	c, placed, err := placeable(cg, spec).spawnIn(plan, spawn)
	if err != nil {
		return nil, err
	}
	if !placed {
		err = cg.addPid(c.pid)
	}
	if err == nil {
		err = c.handshake(ctx, &initConfig{Process: proc, Seccomp: filter, User: o.User, ConsoleFd: c.consoleFd, Chroot: chrootOf(s.Pid)})
	}
	if err != nil {
		c.sync.Close()
		c.kill()
		return nil, err
	}
	return c.proc, nil
}

// Exec runs p in the container and returns its exit code; cancelling ctx
// kills it.
func (r *Runtime) Exec(ctx context.Context, id string, p *specs.Process, o ExecOptions) (int, error) {
	proc, err := r.ExecStart(ctx, id, p, o)
	if err != nil {
		return -1, err
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			proc.Kill()
		case <-done:
		}
	}()
	st, err := proc.Wait()
	if err != nil {
		return -1, err
	}
	return ExitCode(st.Sys().(syscall.WaitStatus)), ctx.Err()
}

func fillProcess(p, base *specs.Process) *specs.Process {
	out := *p
	if out.Env == nil {
		out.Env = base.Env
	}
	if out.Cwd == "" {
		out.Cwd = base.Cwd
	}
	if out.User.UID == 0 && out.User.GID == 0 && len(out.User.AdditionalGids) == 0 {
		out.User = base.User
	}
	if out.Capabilities == nil {
		out.Capabilities = base.Capabilities
	}
	if !out.NoNewPrivileges {
		out.NoNewPrivileges = base.NoNewPrivileges
	}
	if out.Rlimits == nil {
		out.Rlimits = base.Rlimits
	}
	return &out
}

// joinList names every namespace of the container's init that differs
// from ours (joining one's own namespace is pointless and, for some
// types, refused).
func joinList(spec *specs.Spec, pid int) []string {
	var out []string
	for _, name := range []string{"cgroup", "ipc", "uts", "net", "pid", "mnt"} {
		theirs, err1 := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + name)
		ours, err2 := os.Readlink("/proc/self/ns/" + name)
		if err1 != nil || err2 != nil || theirs == ours {
			continue
		}
		out = append(out, name+":/proc/"+strconv.Itoa(pid)+"/ns/"+name)
	}
	return out
}

// Process is one row of Top.
type Process struct {
	Pid     int    `json:"pid"`
	PPid    int    `json:"ppid"`
	State   string `json:"state"`
	Command string `json:"command"`
}

// Top lists the processes of a container (host pids).
func (r *Runtime) Top(id string) ([]Process, error) {
	s, err := r.State(id)
	if err != nil {
		return nil, err
	}
	cg, err := openCgroup(s.Cgroup)
	if err != nil {
		return nil, err
	}
	pids, err := cg.pids()
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		st := string(b)
		i := strings.LastIndexByte(st, ')')
		f := strings.Fields(st[i+1:])
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		c := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		out = append(out, Process{Pid: pid, PPid: ppid, State: f[0], Command: c})
	}
	return out, nil
}

// Stats reads the container's live resource usage from its cgroup.
func (r *Runtime) Stats(id string) (*Stats, error) {
	s, err := r.State(id)
	if err != nil {
		return nil, err
	}
	cg, err := openCgroup(s.Cgroup)
	if err != nil {
		return nil, err
	}
	return cg.stats()
}

// chrootOf is the root an exec child must chroot to: the container's init's
// when it shares our mount namespace (joining it gives no root change).
func chrootOf(pid int) string {
	theirs, err1 := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
	ours, err2 := os.Readlink("/proc/self/ns/mnt")
	if err1 != nil || err2 != nil || theirs != ours {
		return ""
	}
	return "/proc/" + strconv.Itoa(pid) + "/root"
}
