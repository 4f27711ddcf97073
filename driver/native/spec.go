package native

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
)

// specInput is everything beyond the ContainerSpec that the OCI spec of a
// container is made from; the driver resolves each piece before.
type specInput struct {
	Container state.ContainerSpec
	Image     ocispec.ImageConfig
	ID        string
	Hostname  string
	// NetNS is the network namespace to join ("" with NetworkMode none:
	// a new one with loopback only; host: none at all).
	NetNS string
	// PIDNS and IPCNS are namespace paths to join for pid/ipc sharing.
	PIDNS, IPCNS string
	// Mounts are the container's resolved mounts (binds with host paths,
	// volumes as binds of their directories, tmpfs, configs, secrets and
	// the network files), in the order they must be mounted.
	Mounts []specs.Mount
}

// processArgs merges entrypoint and command with the image's as Docker does:
// an entrypoint given in the file drops the image's CMD too.
func processArgs(c state.ContainerSpec, img ocispec.ImageConfig) ([]string, error) {
	ep, cmd := img.Entrypoint, img.Cmd
	if c.Entrypoint != nil {
		ep, cmd = c.Entrypoint, nil
	}
	if c.Command != nil {
		cmd = c.Command
	}
	args := append(append([]string{}, ep...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("service %s: no command specified and the image has none: %w", c.Service, driver.ErrInvalid)
	}
	return args, nil
}

// mergeEnv lays the file's environment over the image's, key by key.
func mergeEnv(image, file []string, extra ...string) []string {
	idx := map[string]int{}
	var out []string
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			return
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	for _, l := range [][]string{image, file, extra} {
		for _, kv := range l {
			set(kv)
		}
	}
	if _, ok := idx["PATH"]; !ok {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return out
}

// capabilities applies cap_add and cap_drop ("ALL" allowed) to the default set.
func capabilities(c state.ContainerSpec) ([]string, error) {
	set := map[string]bool{}
	base := runtime.DefaultCapabilities
	if c.Privileged {
		base = runtime.AllCapabilities()
	}
	for _, n := range base {
		set[n] = true
	}
	norm := func(n string) (string, error) {
		n = strings.ToUpper(n)
		if n == "ALL" {
			return n, nil
		}
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		if !slices.Contains(runtime.AllCapabilities(), n) {
			return "", fmt.Errorf("service %s: unknown capability %q: %w", c.Service, n, driver.ErrInvalid)
		}
		return n, nil
	}
	for _, d := range c.CapDrop {
		n, err := norm(d)
		if err != nil {
			return nil, err
		}
		if n == "ALL" {
			set = map[string]bool{}
			continue
		}
		delete(set, n)
	}
	for _, a := range c.CapAdd {
		n, err := norm(a)
		if err != nil {
			return nil, err
		}
		if n == "ALL" {
			for _, k := range runtime.AllCapabilities() {
				set[k] = true
			}
			continue
		}
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// rlimitNames maps compose's ulimit names to the kernel's.
var rlimitNames = map[string]string{
	"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
	"locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
	"nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
	"rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
	"stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}

func rlimits(c state.ContainerSpec) ([]specs.POSIXRlimit, error) {
	names := make([]string, 0, len(c.Ulimits))
	for n := range c.Ulimits {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []specs.POSIXRlimit
	for _, n := range names {
		k, ok := rlimitNames[n]
		if !ok {
			return nil, fmt.Errorf("service %s: ulimits: unknown limit %q: %w", c.Service, n, driver.ErrInvalid)
		}
		u := c.Ulimits[n]
		out = append(out, specs.POSIXRlimit{Type: k, Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
	}
	return out, nil
}

// setResources fills the limits into the default spec's resources.
func setResources(res *specs.LinuxResources, r state.Resources) {
	if r.MemoryLimit > 0 || r.MemoryReservation > 0 {
		res.Memory = &specs.LinuxMemory{}
		if r.MemoryLimit > 0 {
			res.Memory.Limit = &r.MemoryLimit
		}
		if r.MemoryReservation > 0 {
			res.Memory.Reservation = &r.MemoryReservation
		}
	}
	if r.NanoCPUs > 0 || r.CPUShares > 0 || r.CpusetCpus != "" {
		res.CPU = &specs.LinuxCPU{Cpus: r.CpusetCpus}
		if r.NanoCPUs > 0 {
			period := uint64(100000)
			quota := r.NanoCPUs * int64(period) / 1e9
			res.CPU.Period, res.CPU.Quota = &period, &quota
		}
		if r.CPUShares > 0 {
			s := uint64(r.CPUShares)
			res.CPU.Shares = &s
		}
	}
	if r.PidsLimit != 0 {
		l := r.PidsLimit
		res.Pids = &specs.LinuxPids{Limit: &l}
	}
}

// namespaces lists the namespaces to create or join: a path joins one,
// "host" modes leave the namespace out.
func namespaces(in specInput) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.MountNamespace}, {Type: specs.UTSNamespace}, {Type: specs.CgroupNamespace},
	}
	if in.Container.PID != "host" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: in.PIDNS})
	}
	if in.Container.IPC != "host" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: in.IPCNS})
	}
	if in.Container.NetworkMode != "host" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.NetNS})
	}
	return ns
}

// buildSpec turns a container's desired state into the OCI runtime spec the
// runtime runs, starting from the runtime's Docker-like defaults. The root
// filesystem comes separately, as the store's mounts.
func buildSpec(in specInput) (*specs.Spec, error) {
	c := in.Container
	args, err := processArgs(c, in.Image)
	if err != nil {
		return nil, err
	}
	caps, err := capabilities(c)
	if err != nil {
		return nil, err
	}
	rl, err := rlimits(c)
	if err != nil {
		return nil, err
	}
	s := runtime.DefaultSpec(args)
	if c.Privileged {
		runtime.Privileged(s)
	}
	s.Hostname, s.Domainname = in.Hostname, c.Domainname
	s.Root.Readonly = c.ReadOnly
	p := s.Process
	p.Terminal = c.Tty
	p.Cwd = firstOf(c.WorkingDir, in.Image.WorkingDir, "/")
	extra := []string{"HOSTNAME=" + in.Hostname}
	if c.Tty {
		extra = append(extra, "TERM=xterm")
	}
	p.Env = mergeEnv(in.Image.Env, c.Env, extra...)
	p.Rlimits = rl
	p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	for _, o := range c.SecurityOpt {
		switch o {
		case "no-new-privileges", "no-new-privileges:true", "no-new-privileges=true":
			p.NoNewPrivileges = true
		}
	}
	if c.OomScoreAdj != 0 {
		v := c.OomScoreAdj
		p.OOMScoreAdj = &v
	}
	if c.ShmSize > 0 {
		for i := range s.Mounts {
			if s.Mounts[i].Destination == "/dev/shm" {
				s.Mounts[i].Options = append(withoutPrefix(s.Mounts[i].Options, "size="), "size="+strconv.FormatInt(c.ShmSize, 10))
			}
		}
	}
	s.Mounts = append(s.Mounts, in.Mounts...)
	s.Linux.Namespaces = namespaces(in)
	setResources(s.Linux.Resources, c.Resources)
	s.Linux.Sysctl = c.Sysctls
	if !c.Privileged {
		sc, err := runtime.DefaultSeccomp(s)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile: %w", err)
		}
		s.Linux.Seccomp = sc
	}
	return s, nil
}

func firstOf(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func withoutPrefix(opts []string, prefix string) []string {
	var out []string
	for _, x := range opts {
		if !strings.HasPrefix(x, prefix) {
			out = append(out, x)
		}
	}
	return out
}
