package state

import "time"

// ContainerSpec is everything the runtime needs to create one container.
// Paths are absolute and resolved; nothing here needs the compose file again.
type ContainerSpec struct {
	Name    string
	Project string
	Service string
	Number  int
	OneOff  bool

	Image       string // reference as written (or the built tag)
	ImageDigest string // filled by the executor once the image is ensured
	ConfigHash  string

	Entrypoint []string // nil: the image's
	Command    []string // nil: the image's
	Env        []string // KEY=VALUE, sorted; merged over the image's by the driver
	User       string
	WorkingDir string
	Hostname   string
	Domainname string
	Tty        bool
	StdinOpen  bool
	Init       bool

	Mounts []Mount
	Files  []File // configs and secrets

	NetworkMode string // "" (bridge networks below), "host", "none", "service:NAME", "container:NAME"
	Networks    []NetworkAttachment
	Ports       []Port
	ExtraHosts  []string // "host:ip", ip may be "host-gateway"
	Links       []string `json:",omitempty"` // links: "SERVICE:ALIAS" (ALIAS resolves to SERVICE for this container)
	DNS         []string
	DNSSearch   []string
	DNSOpt      []string
	MacAddress  string

	IPC string // "", "private", "shareable", "host", "service:NAME", "container:NAME"
	PID string // "", "host", "service:NAME", "container:NAME"

	Healthcheck     *Healthcheck
	Restart         string // no, always, on-failure[:N], unless-stopped
	StopSignal      string
	StopGracePeriod time.Duration

	Resources   Resources
	CapAdd      []string
	CapDrop     []string
	Privileged  bool
	ReadOnly    bool
	SecurityOpt []string
	Ulimits     map[string]Ulimit
	Sysctls     map[string]string
	GroupAdd    []string
	Devices     []string
	ShmSize     int64
	OomScoreAdj int
	Tmpfs       []string

	PostStart []Hook
	PreStop   []Hook
	// NoHealthRestart keeps a container running when its healthcheck turns
	// unhealthy (x-berth: {restart-on-unhealthy: false}); by default its
	// restart policy restarts it as after a crash.
	NoHealthRestart bool

	Labels map[string]string
}

// Mount types.
const (
	MountBind   = "bind"
	MountVolume = "volume"
	MountTmpfs  = "tmpfs"
)

// Mount is one entry of volumes:/tmpfs: of a service.
type Mount struct {
	Type           string
	Source         string // host path (bind), full volume name (volume; "" = anonymous)
	Target         string
	ReadOnly       bool
	Propagation    string
	CreateHostPath bool  // bind: create the source directory when missing
	NoCopy         bool  // volume: do not populate from the image
	TmpfsSize      int64 // bytes, tmpfs only
	TmpfsMode      uint32
}

// File is a config or secret materialised inside the container.
type File struct {
	Kind    string // "config" or "secret"
	Name    string
	Source  string // host file, "" when Content is set
	Content []byte // inline content or environment-sourced value
	Target  string // absolute path inside the container
	UID     string
	GID     string
	Mode    uint32
}

// NetworkAttachment connects a container to a project network.
type NetworkAttachment struct {
	Network       string // full network name (project_key, or the external name)
	Aliases       []string
	IPv4          string
	IPv6          string
	MacAddress    string
	InterfaceName string
	Priority      int      // gw_priority: highest carries the default route
	LinkLocalIPs  []string `json:",omitempty"` // link_local_ips: extra 169.254.0.0/16 or fe80::/10 addresses
}

// Port is one published port (a range has HostPortEnd > HostPort).
type Port struct {
	HostIP           string
	HostPort         int // 0: a random free port
	HostPortEnd      int
	ContainerPort    int
	ContainerPortEnd int
	Protocol         string // tcp, udp
}

// Healthcheck as in compose; Test[0] is NONE, CMD or CMD-SHELL.
type Healthcheck struct {
	Test          []string
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
	Disable       bool
}

// Resources limits; zero means unlimited.
type Resources struct {
	MemoryLimit       int64
	MemoryReservation int64
	NanoCPUs          int64
	CPUShares         int64
	CpusetCpus        string
	PidsLimit         int64
}

// Ulimit is one rlimit.
type Ulimit struct {
	Soft int64
	Hard int64
}

// Hook is a post_start/pre_stop lifecycle command.
type Hook struct {
	Command    []string
	User       string
	Privileged bool
	WorkingDir string
	Env        []string
}
