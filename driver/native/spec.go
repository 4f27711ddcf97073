package native

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/driver"
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

// The capabilities Docker grants by default.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Paths runc and Docker hide from containers or make read-only.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

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
	if c.Privileged {
		for _, n := range allCaps {
			set[n] = true
		}
	} else {
		for _, n := range defaultCaps {
			set[n] = true
		}
	}
	norm := func(n string) (string, error) {
		n = strings.ToUpper(n)
		if n == "ALL" {
			return n, nil
		}
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		if !knownCap[n] {
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
			for _, k := range allCaps {
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

var allCaps = []string{
	"CAP_AUDIT_CONTROL", "CAP_AUDIT_READ", "CAP_AUDIT_WRITE", "CAP_BLOCK_SUSPEND", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_KILL", "CAP_LEASE", "CAP_LINUX_IMMUTABLE",
	"CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_MKNOD", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_RAW", "CAP_PERFMON", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
	"CAP_SETUID", "CAP_SYSLOG", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_CHROOT", "CAP_SYS_MODULE",
	"CAP_SYS_NICE", "CAP_SYS_PACCT", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_WAKE_ALARM",
}

var knownCap = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range allCaps {
		m[c] = true
	}
	return m
}()

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

func resources(r state.Resources) *specs.LinuxResources {
	res := &specs.LinuxResources{Devices: defaultDeviceRules()}
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
	return res
}

// defaultDeviceRules is Docker's device cgroup allow-list: deny all, then
// the standard nodes and pseudo-terminals.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	i := func(v int64) *int64 { return &v }
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i(1), Minor: i(3), Access: "rwm"},    // null
		{Allow: true, Type: "c", Major: i(1), Minor: i(5), Access: "rwm"},    // zero
		{Allow: true, Type: "c", Major: i(1), Minor: i(7), Access: "rwm"},    // full
		{Allow: true, Type: "c", Major: i(1), Minor: i(8), Access: "rwm"},    // random
		{Allow: true, Type: "c", Major: i(1), Minor: i(9), Access: "rwm"},    // urandom
		{Allow: true, Type: "c", Major: i(5), Minor: i(0), Access: "rwm"},    // tty
		{Allow: true, Type: "c", Major: i(5), Minor: i(1), Access: "rwm"},    // console
		{Allow: true, Type: "c", Major: i(5), Minor: i(2), Access: "rwm"},    // ptmx
		{Allow: true, Type: "c", Major: i(136), Access: "rwm"},               // pts/*
		{Allow: true, Type: "c", Major: i(10), Minor: i(200), Access: "rwm"}, // tun
	}
}

// baseMounts are the filesystems every container has.
func baseMounts(shmSize int64) []specs.Mount {
	if shmSize <= 0 {
		shmSize = 64 << 20
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shmSize, 10)}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// namespaces lists the namespaces to create or join.
func namespaces(in specInput) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.MountNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.CgroupNamespace},
	}
	switch c := in.Container; {
	case c.PID == "host":
	default:
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
// runtime runs. The root filesystem comes separately, as the store's mounts.
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
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = in.Image.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	user := c.User
	if user == "" {
		user = in.Image.User
	}
	extra := []string{"HOSTNAME=" + in.Hostname}
	if c.Tty {
		extra = append(extra, "TERM=xterm")
	}
	noNewPrivs := false
	for _, o := range c.SecurityOpt {
		if o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true" {
			noNewPrivs = true
		}
	}
	s := &specs.Spec{
		Version:    specs.Version,
		Hostname:   in.Hostname,
		Domainname: c.Domainname,
		Root:       &specs.Root{Path: "rootfs", Readonly: c.ReadOnly},
		Process: &specs.Process{
			Terminal:        c.Tty,
			Args:            args,
			Env:             mergeEnv(in.Image.Env, c.Env, extra...),
			Cwd:             cwd,
			NoNewPrivileges: noNewPrivs,
			Rlimits:         rl,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
		},
		Mounts:      append(baseMounts(c.ShmSize), in.Mounts...),
		Annotations: map[string]string{},
		Linux: &specs.Linux{
			Namespaces: namespaces(in),
			Resources:  resources(c.Resources),
			Sysctl:     c.Sysctls,
		},
	}
	if user != "" {
		// The runtime resolves names against the image's /etc/passwd and
		// /etc/group once the rootfs is in place.
		s.Annotations[AnnotationUser] = user
	}
	if len(c.GroupAdd) > 0 {
		s.Annotations[AnnotationGroupAdd] = strings.Join(c.GroupAdd, ",")
	}
	if c.OomScoreAdj != 0 {
		v := c.OomScoreAdj
		s.Process.OOMScoreAdj = &v
	}
	if !c.Privileged {
		s.Linux.MaskedPaths = maskedPaths
		s.Linux.ReadonlyPaths = readonlyPaths
	} else {
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		for i := range s.Mounts {
			if s.Mounts[i].Destination == "/sys" || s.Mounts[i].Destination == "/sys/fs/cgroup" {
				s.Mounts[i].Options = withoutOption(s.Mounts[i].Options, "ro")
			}
		}
	}
	return s, nil
}

// Annotations the runtime reads for what the OCI spec has no field for.
const (
	AnnotationUser     = "org.berth.user"
	AnnotationGroupAdd = "org.berth.group-add"
)

func withoutOption(opts []string, o string) []string {
	var out []string
	for _, x := range opts {
		if x != o {
			out = append(out, x)
		}
	}
	return out
}
