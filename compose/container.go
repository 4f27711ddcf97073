package compose

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berth-dev/berth/state"
)

// container is the replica-independent container template of a service.
func container(p *types.Project, s types.ServiceConfig) (state.ContainerSpec, error) {
	c := state.ContainerSpec{
		Name:        s.ContainerName,
		Project:     p.Name,
		Service:     s.Name,
		Image:       ImageName(p.Name, s),
		Entrypoint:  cloneStrings(s.Entrypoint),
		Command:     cloneStrings(s.Command),
		Env:         envList(s.Environment),
		User:        s.User,
		WorkingDir:  s.WorkingDir,
		Hostname:    s.Hostname,
		Domainname:  s.DomainName,
		Tty:         s.Tty,
		StdinOpen:   s.StdinOpen,
		Init:        s.Init != nil && *s.Init,
		NetworkMode: s.NetworkMode,
		ExtraHosts:  extraHosts(s.ExtraHosts),
		Links:       links(s.Links),
		DNS:         cloneStrings(s.DNS),
		DNSSearch:   cloneStrings(s.DNSSearch),
		DNSOpt:      cloneStrings(s.DNSOpts),
		MacAddress:  s.MacAddress,
		IPC:         s.Ipc,
		PID:         s.Pid,
		Healthcheck: healthcheck(s.HealthCheck),
		Restart:     restartPolicy(s),
		StopSignal:  s.StopSignal,
		Resources:   resources(s),
		CapAdd:      cloneStrings(s.CapAdd),
		CapDrop:     cloneStrings(s.CapDrop),
		Privileged:  s.Privileged,
		ReadOnly:    s.ReadOnly,
		SecurityOpt: cloneStrings(s.SecurityOpt),
		Ulimits:     ulimits(s.Ulimits),
		Sysctls:     cloneMap(s.Sysctls),
		GroupAdd:    cloneStrings(s.GroupAdd),
		Devices:     devices(s.Devices),
		ShmSize:     int64(s.ShmSize),
		OomScoreAdj: int(s.OomScoreAdj),
		PostStart:   hooks(s.PostStart),
		PreStop:     hooks(s.PreStop),
		Labels:      labels(p, s),
	}
	if s.StopGracePeriod != nil {
		c.StopGracePeriod = time.Duration(*s.StopGracePeriod)
	}
	var err error
	if c.Mounts, err = mounts(p, s); err != nil {
		return c, err
	}
	if c.Files, err = files(p, s); err != nil {
		return c, err
	}
	c.Networks = networks(p, s)
	if c.Ports, err = ports(s.Ports); err != nil {
		return c, err
	}
	return c, nil
}

func cloneStrings[S ~[]string](s S) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone([]string(s))
}

func labels(p *types.Project, s types.ServiceConfig) map[string]string {
	l := cloneMap(s.Labels)
	if l == nil {
		l = map[string]string{}
	}
	l[state.LabelWorkingDir] = p.WorkingDir
	l[state.LabelConfigFiles] = strings.Join(p.ComposeFiles, ",")
	if len(s.DependsOn) > 0 {
		deps := make([]string, 0, len(s.DependsOn))
		for name, d := range s.DependsOn {
			deps = append(deps, fmt.Sprintf("%s:%s:%t", name, d.Condition, d.Restart))
		}
		slices.Sort(deps)
		l[state.LabelDependsOn] = strings.Join(deps, ",")
	}
	return l
}

func extraHosts(h types.HostsList) []string {
	if len(h) == 0 {
		return nil
	}
	l := h.AsList(":")
	slices.Sort(l)
	return l
}

func healthcheck(h *types.HealthCheckConfig) *state.Healthcheck {
	if h == nil {
		return nil
	}
	out := &state.Healthcheck{Test: cloneStrings(h.Test), Disable: h.Disable}
	if len(out.Test) > 0 && out.Test[0] == "NONE" {
		out.Disable = true
	}
	dur := func(d *types.Duration) time.Duration {
		if d == nil {
			return 0
		}
		return time.Duration(*d)
	}
	out.Interval, out.Timeout = dur(h.Interval), dur(h.Timeout)
	out.StartPeriod, out.StartInterval = dur(h.StartPeriod), dur(h.StartInterval)
	if h.Retries != nil {
		out.Retries = int(*h.Retries)
	}
	return out
}

// resources merges the service-level limits with deploy.resources, which
// win where both are set (compose-go already rejects contradicting values).
func resources(s types.ServiceConfig) state.Resources {
	r := state.Resources{
		MemoryLimit:       int64(s.MemLimit),
		MemoryReservation: int64(s.MemReservation),
		NanoCPUs:          int64(float64(s.CPUS) * 1e9),
		CPUShares:         s.CPUShares,
		CpusetCpus:        s.CPUSet,
		PidsLimit:         s.PidsLimit,
	}
	if s.Deploy == nil {
		return r
	}
	if l := s.Deploy.Resources.Limits; l != nil {
		if l.MemoryBytes != 0 {
			r.MemoryLimit = int64(l.MemoryBytes)
		}
		if l.NanoCPUs != 0 {
			r.NanoCPUs = int64(float64(l.NanoCPUs) * 1e9)
		}
		if l.Pids != 0 {
			r.PidsLimit = l.Pids
		}
	}
	if res := s.Deploy.Resources.Reservations; res != nil && res.MemoryBytes != 0 {
		r.MemoryReservation = int64(res.MemoryBytes)
	}
	return r
}

func ulimits(u map[string]*types.UlimitsConfig) map[string]state.Ulimit {
	if len(u) == 0 {
		return nil
	}
	out := make(map[string]state.Ulimit, len(u))
	for name, l := range u {
		if l == nil {
			continue
		}
		if l.Single != 0 {
			out[name] = state.Ulimit{Soft: int64(l.Single), Hard: int64(l.Single)}
			continue
		}
		out[name] = state.Ulimit{Soft: int64(l.Soft), Hard: int64(l.Hard)}
	}
	return out
}

func devices(d []types.DeviceMapping) []string {
	var out []string
	for _, m := range d {
		e := m.Source + ":" + m.Target
		if m.Permissions != "" {
			e += ":" + m.Permissions
		}
		out = append(out, e)
	}
	return out
}

func hooks(h []types.ServiceHook) []state.Hook {
	var out []state.Hook
	for _, e := range h {
		out = append(out, state.Hook{
			Command:    cloneStrings(e.Command),
			User:       e.User,
			Privileged: e.Privileged,
			WorkingDir: e.WorkingDir,
			Env:        envList(e.Environment),
		})
	}
	return out
}

func networks(p *types.Project, s types.ServiceConfig) []state.NetworkAttachment {
	var out []state.NetworkAttachment
	for key, n := range s.Networks {
		a := state.NetworkAttachment{Network: p.Networks[key].Name}
		if a.Network == "" {
			a.Network = p.Name + "_" + key
		}
		if n != nil {
			a.Aliases = cloneStrings(n.Aliases)
			a.IPv4, a.IPv6 = n.Ipv4Address, n.Ipv6Address
			a.MacAddress = n.MacAddress
			a.InterfaceName = n.InterfaceName
			a.Priority = n.GatewayPriority
			a.LinkLocalIPs = cloneStrings(n.LinkLocalIPs)
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b state.NetworkAttachment) int { return strings.Compare(a.Network, b.Network) })
	return out
}

// ports converts compose-go's canonical ports (ranges already expanded one
// entry per container port, except a host range for a single container
// port, which means "any free port of the range").
func ports(ps []types.ServicePortConfig) ([]state.Port, error) {
	var out []state.Port
	for _, p := range ps {
		port := state.Port{
			HostIP:        p.HostIP,
			ContainerPort: int(p.Target),
			Protocol:      p.Protocol,
		}
		if port.Protocol == "" {
			port.Protocol = "tcp"
		}
		if p.Published != "" {
			lo, hi, found := strings.Cut(p.Published, "-")
			var err error
			if port.HostPort, err = strconv.Atoi(lo); err != nil {
				return nil, fmt.Errorf("ports: published %q: %w", p.Published, err)
			}
			if found {
				if port.HostPortEnd, err = strconv.Atoi(hi); err != nil {
					return nil, fmt.Errorf("ports: published %q: %w", p.Published, err)
				}
			}
		}
		out = append(out, port)
	}
	return out, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// links writes every `links:` entry as SERVICE:ALIAS ("db" is "db:db").
// compose-go already made each linked service a dependency.
func links(ls []string) []string {
	var out []string
	for _, l := range ls {
		svc, alias, ok := strings.Cut(l, ":")
		if !ok {
			alias = svc
		}
		out = append(out, svc+":"+alias)
	}
	return out
}
