package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var nsCloneFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
}

var nsFileNames = map[specs.LinuxNamespaceType]string{
	specs.MountNamespace: "mnt", specs.UTSNamespace: "uts", specs.IPCNamespace: "ipc",
	specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.CgroupNamespace: "cgroup",
	specs.UserNamespace: "user",
}

// nsPlan is how a spec's namespaces are made: cloned new, joined by the
// constructor, or (cgroup) unshared by the child once it is in its cgroup.
type nsPlan struct {
	clone     uintptr
	join      []string
	fork      bool
	newCgroup bool
	newUTS    bool
	userNS    bool // a new user namespace: devices are bound, not made
	hostMount bool // no mount namespace: the host's (mounts under the rootfs, chroot)
	warm      bool // a spare init (warm_linux.go): its fds come with its config
	// intoCgroup is the v2 cgroup the child is cloned into
	// (CLONE_INTO_CGROUP; cgroup.spawnIn), nil for its parent's
	intoCgroup *os.File
	uidMap     []syscall.SysProcIDMap
	gidMap     []syscall.SysProcIDMap
}

// rootHostID maps the container's uid/gid 0 to the host (for files the
// container's root must open, like exec.fifo).
func (p nsPlan) rootHostID() (int, int) {
	uid, gid := 0, 0
	for _, m := range p.uidMap {
		if m.ContainerID == 0 {
			uid = m.HostID
		}
	}
	for _, m := range p.gidMap {
		if m.ContainerID == 0 {
			gid = m.HostID
		}
	}
	return uid, gid
}

func planNamespaces(spec *specs.Spec) (nsPlan, error) {
	// A spec without a mount namespace runs in the host's, as runc allows:
	// its mounts are made under the rootfs in the host's namespace (a
	// private bind of the rootfs holds them all, detached at delete) and
	// the process chroots instead of pivot_root. A mount namespace with a
	// path is joined, last, by the constructor, and the rootfs is set up in
	// it (as runc does: the namespace's owner sees the container's mounts).
	p := nsPlan{}
	if spec.Linux == nil {
		p.clone = unix.CLONE_NEWNS
		return p, nil
	}
	p.hostMount = !seenMount(spec)
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range spec.Linux.Namespaces {
		if seen[ns.Type] {
			return p, fmt.Errorf("%w: namespace %s listed twice", ErrInvalid, ns.Type)
		}
		seen[ns.Type] = true
		name, ok := nsFileNames[ns.Type]
		if !ok {
			return p, fmt.Errorf("%w: namespace type %q", ErrInvalid, ns.Type)
		}
		switch {
		case ns.Type == specs.UserNamespace && ns.Path == "":
			if len(spec.Linux.UIDMappings) == 0 || len(spec.Linux.GIDMappings) == 0 {
				return p, fmt.Errorf("%w: a new user namespace needs uid and gid mappings", ErrInvalid)
			}
			p.clone |= unix.CLONE_NEWUSER
			p.userNS = true
			for _, m := range spec.Linux.UIDMappings {
				p.uidMap = append(p.uidMap, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
			}
			for _, m := range spec.Linux.GIDMappings {
				p.gidMap = append(p.gidMap, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
			}
			continue
		case ns.Path != "":
			if _, err := os.Stat(ns.Path); err != nil {
				return p, fmt.Errorf("%w: namespace %s: %v", ErrInvalid, ns.Type, err)
			}
			p.join = append(p.join, name+":"+ns.Path)
			if ns.Type == specs.PIDNamespace {
				p.fork = true
			}
			if ns.Type == specs.UTSNamespace {
				p.newUTS = true // hostname in a joined UTS namespace is the owner's business; runc sets it too
			}
		case ns.Type == specs.CgroupNamespace:
			p.newCgroup = true
		default:
			p.clone |= nsCloneFlags[ns.Type]
			if ns.Type == specs.UTSNamespace {
				p.newUTS = true
			}
		}
	}
	return p, nil
}

func seenMount(spec *specs.Spec) bool {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.MountNamespace {
			return true
		}
	}
	return false
}

// child is a started berth child that waits for its config on the sync socket.
type child struct {
	proc      *os.Process
	pid       int
	sync      *os.File
	consoleFd int         // the console socket's fd in the child, 0 if none
	warm      bool        // a spare: sendFds before the config
	staged    *cgroup     // a spare's staging cgroups (v1), renamed at take
	expire    *time.Timer // a spare's: ends it when unused for warmTTL
}

// envSelfFd names, to a child's C constructor, the fd of the sealed copy
// it was exec'd from, which it closes before anything else.
const envSelfFd = "_BERTH_SELF_FD"

// childGoEnv runs a container's init (and an exec's) on one P with no
// garbage collection: its work is one goroutine locked to the thread that
// execs, and it allocates a few MB at most. Its execve has to kill every
// other thread of the Go runtime and wait for each to exit; with the
// defaults a spare had 5 or 6, with these 4. (The container's environment
// is the spec's, never ours: these do not reach it.)
var childGoEnv = []string{"GOMAXPROCS=1", "GOGC=off", "GOMEMLIMIT=256MiB"}

// withChildGoEnv is env with childGoEnv in place of any of its keys there:
// the Go runtime reads the first occurrence of a variable, so one the
// monitor inherited (a user's GOGC) would win over an appended one.
func withChildGoEnv(env []string) []string {
	out := make([]string, 0, len(env)+len(childGoEnv))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k != "GOMAXPROCS" && k != "GOGC" && k != "GOMEMLIMIT" {
			out = append(out, kv)
		}
	}
	return append(out, childGoEnv...)
}

// startChild re-execs the sealed berth binary in role with stdio, joining
// and cloning namespaces as plan says. When the plan forks (a joined PID
// namespace) the intermediate is reaped here and proc is the real child.
//
// Its fds: 0-2 stdio, 3 the sync socket, 4 extra (exec.fifo opened O_PATH,
// reopened by the child through /proc/self/fd so that no path, and no
// directory permission, is involved; /dev/null when nil), 5 the pid pipe
// of a forking plan, then the console socket when there is one (its
// number is consoleFd), then the sealed copy it was exec'd from (closed by
// the constructor at once: envSelfFd).
func startChild(role string, plan nsPlan, stdio []*os.File, extra, console *os.File) (*child, error) {
	exe, stamp, err := sealedChild()
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	parent, childEnd := os.NewFile(uintptr(fds[0]), "sync"), os.NewFile(uintptr(fds[1]), "sync-child")
	defer childEnd.Close()
	env := append(os.Environ(), envChild+"="+role)
	if role == childInit || role == childExec {
		env = withChildGoEnv(env)
	}
	env = append(env, "_BERTH_NSENTER="+strings.Join(plan.join, ","))
	if plan.warm {
		env = append(env, envWarm+"=1")
	}
	if stamp != "" {
		env = append(env, envStamp+"="+stamp)
	}
	files := append(stdioOrNull(stdio), childEnd)
	if extra == nil {
		extra = files[0]
	}
	files = append(files, extra)
	var pidR *os.File
	if plan.fork {
		r, w, err := os.Pipe()
		if err != nil {
			parent.Close()
			return nil, err
		}
		defer w.Close() // also closed right after the start, below
		pidR = r
		defer pidR.Close()
		files = append(files, w)
		env = append(env, "_BERTH_NSFORK=5")
	}
	consoleFd := 0
	if console != nil {
		consoleFd = len(files)
		files = append(files, console)
	}
	// The sealed copy goes last, at a slot of its own (see sealedSelf);
	// the child's constructor closes it first thing.
	selfSlot := len(files)
	files = append(files, exe)
	env = append(env, envSelfFd+"="+strconv.Itoa(selfSlot))
	proc, err := os.StartProcess("/proc/self/fd/"+strconv.Itoa(selfSlot), []string{"berth-" + role},
		&os.ProcAttr{Env: env, Files: files, Sys: sysProcAttr(plan)})
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("start %s child: %w", role, err)
	}
	c := &child{proc: proc, pid: proc.Pid, sync: parent, consoleFd: consoleFd, warm: plan.warm}
	if !plan.fork {
		return c, nil
	}
	// Only the intermediate may hold the write end, or a failed setns
	// would leave this read waiting forever.
	files[5].Close()
	st, err := proc.Wait()
	line, rerr := bufio.NewReader(pidR).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || !st.Success() || rerr != nil || perr != nil {
		parent.Close()
		return nil, fmt.Errorf("enter namespaces: %v %v %v %v", err, st, rerr, perr)
	}
	c.pid = pid
	c.proc, err = os.FindProcess(pid)
	return c, err
}

func stdioOrNull(stdio []*os.File) []*os.File {
	out := make([]*os.File, 3)
	for i := range out {
		if i < len(stdio) && stdio[i] != nil {
			out[i] = stdio[i]
			continue
		}
		f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err == nil {
			out[i] = f
		}
	}
	return out
}

// handshake sends the config and waits for the child's verdict.
func (c *child) handshake(ctx context.Context, cfg *initConfig) error {
	defer c.sync.Close()
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if _, err := c.sync.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send config: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.sync.SetReadDeadline(dl)
	} else {
		c.sync.SetReadDeadline(time.Now().Add(time.Minute))
	}
	var msg syncMsg
	if err := json.NewDecoder(c.sync).Decode(&msg); err != nil {
		return fmt.Errorf("container init died before it was ready: %w", err)
	}
	if msg.Error != "" {
		return fmt.Errorf("container init: %s", msg.Error)
	}
	return nil
}

func (c *child) kill() {
	c.proc.Kill()
	c.proc.Wait()
}

func setOOMScoreAdj(pid int, adj *int) error {
	if adj == nil {
		return nil
	}
	p := "/proc/" + strconv.Itoa(pid) + "/oom_score_adj"
	if err := os.WriteFile(p, []byte(strconv.Itoa(*adj)), 0); err != nil {
		return fmt.Errorf("oom_score_adj %d (lowering it needs CAP_SYS_RESOURCE): %w", *adj, err)
	}
	return nil
}

func sysProcAttr(plan nsPlan) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Cloneflags: plan.clone, Setsid: true}
	if plan.userNS {
		a.UidMappings, a.GidMappings, a.GidMappingsEnableSetgroups = plan.uidMap, plan.gidMap, true
		// Become the namespace's root before exec, or the host uid (not
		// mapped) would exec without capabilities in the namespace.
		a.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	if plan.intoCgroup != nil {
		a.UseCgroupFD, a.CgroupFD = true, int(plan.intoCgroup.Fd())
	}
	return a
}
