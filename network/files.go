package network

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// HostResolvConf is where the host's resolvers are read from.
var HostResolvConf = "/etc/resolv.conf"

// resolvConf is the part of resolv.conf berth reads and writes.
type resolvConf struct {
	Nameservers []string
	Search      []string
	Options     []string
}

func parseResolvConf(b []byte) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			rc.Nameservers = append(rc.Nameservers, f[1])
		case "search", "domain":
			rc.Search = f[1:]
		case "options":
			rc.Options = append(rc.Options, f[1:]...)
		}
	}
	return rc
}

func (rc resolvConf) String() string {
	var b strings.Builder
	for _, n := range rc.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", n)
	}
	if len(rc.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(rc.Search, " "))
	}
	if len(rc.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(rc.Options, " "))
	}
	return b.String()
}

func hostResolv() resolvConf {
	b, _ := os.ReadFile(HostResolvConf)
	return parseResolvConf(b)
}

// writeFiles renders the container's /etc/hosts, /etc/resolv.conf and
// /etc/hostname, which the runtime bind-mounts.
func (m *Manager) writeFiles(st *diskState, r *endpointRecord) error {
	ep := r.Endpoint
	dir := m.filesDir(ep.ID)
	ifaces := r.Interfaces
	if strings.HasPrefix(ep.NetworkMode, "container:") {
		if o := st.Endpoints[strings.TrimPrefix(ep.NetworkMode, "container:")]; o != nil {
			ifaces = o.Interfaces
		}
	}
	host := hostname(ep)
	var hosts strings.Builder
	if ep.NetworkMode == "host" {
		b, _ := os.ReadFile("/etc/hosts")
		hosts.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			hosts.WriteByte('\n')
		}
	} else {
		hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
		names := host
		if ep.Domainname != "" {
			names = host + "." + ep.Domainname + " " + host
		}
		if len(ifaces) > 0 {
			for _, a := range []netip.Addr{ifaces[0].IPv4, ifaces[0].IPv6} {
				if a.IsValid() {
					fmt.Fprintf(&hosts, "%s\t%s\n", a, names)
				}
			}
		}
	}
	gw := "127.0.0.1"
	if len(ifaces) > 0 {
		if n := st.Networks[ifaces[0].Network]; n != nil && n.Gateway4.IsValid() {
			gw = n.Gateway4.String()
		}
	}
	for _, e := range ep.ExtraHosts {
		name, ip, ok := splitExtraHost(e)
		if !ok {
			return fmt.Errorf("extra_hosts %q: want name:ip", e)
		}
		if ip == "host-gateway" {
			ip = gw
		}
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
	}
	rc := m.containerResolv(st, ep, ifaces)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, content := range map[string]string{"hosts": hosts.String(), "resolv.conf": rc.String(), "hostname": host + "\n"} {
		if err := writeRuntimeFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func hostname(ep Endpoint) string {
	if ep.Hostname != "" {
		return ep.Hostname
	}
	if len(ep.ID) > 12 {
		return ep.ID[:12]
	}
	return ep.ID
}

// splitExtraHost accepts "name:ip", "name=ip" and "name:[v6]".
func splitExtraHost(s string) (name, ip string, ok bool) {
	i := strings.IndexAny(s, ":=")
	if i <= 0 || i == len(s)-1 {
		return "", "", false
	}
	return s[:i], strings.Trim(s[i+1:], "[]"), true
}

// containerResolv points bridge-mode containers at berth's DNS responder
// (listening on the gateway of their first network), which forwards what
// it does not know to the dns: servers or the host's.
func (m *Manager) containerResolv(st *diskState, ep Endpoint, ifaces []Interface) resolvConf {
	host := hostResolv()
	rc := resolvConf{Nameservers: ep.DNS, Search: ep.DNSSearch, Options: ep.DNSOpt}
	if len(rc.Search) == 0 {
		rc.Search = host.Search
	}
	if !m.opt.NoDNS && len(ifaces) > 0 {
		if n := st.Networks[ifaces[0].Network]; n != nil && n.Gateway4.IsValid() {
			// The responder listens on both gateways of an enable_ipv6
			// network; the IPv6 one comes second (glibc asks it when the
			// first does not answer, musl asks both at once).
			rc.Nameservers = []string{n.Gateway4.String()}
			if n.Gateway6.IsValid() && ifaces[0].IPv6.IsValid() {
				rc.Nameservers = append(rc.Nameservers, n.Gateway6.String())
			}
			return rc
		}
	}
	if len(rc.Nameservers) == 0 {
		rc.Nameservers = host.Nameservers
		if ep.NetworkMode != "host" {
			rc.Nameservers = reachable(host.Nameservers)
		}
	}
	if len(rc.Options) == 0 {
		rc.Options = host.Options
	}
	return rc
}

// reachable drops loopback resolvers (systemd-resolved's 127.0.0.53, a
// local dnsmasq): a container in its own network namespace cannot reach
// the host's loopback.
func reachable(servers []string) []string {
	var out []string
	for _, s := range servers {
		if a, err := netip.ParseAddr(s); err == nil && a.IsLoopback() {
			continue
		}
		out = append(out, s)
	}
	return out
}
