package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/berth-dev/berth/state"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MTUOption is the driver_opts key compose files use for the bridge MTU.
const MTUOption = "com.docker.network.driver.mtu"

// EnsureNetwork converges the bridge of one compose network (creating it,
// re-creating it after a crash or reboot, allocating its subnets) and
// returns what was allocated. An external network must already exist.
func (m *Manager) EnsureNetwork(ctx context.Context, spec state.NetworkSpec) (NetworkInfo, error) {
	var out NetworkInfo
	err := m.mutate(ctx, func(st *diskState) error {
		if spec.External {
			n, ok := st.Networks[spec.Name]
			if !ok {
				return fmt.Errorf("external network %s: %w", spec.Name, ErrNotFound)
			}
			out = *n
			return nil
		}
		n, err := m.ensureNetwork(st, spec)
		if err != nil {
			return err
		}
		out = *n
		return m.applyFirewall(st)
	})
	if err != nil {
		return out, err
	}
	return out, m.ensureDNS(ctx)
}

// HostLock serialises subnet allocation between state roots sharing a
// host: each reads the host's routes, and two must not pick the same free
// subnet at once.
var HostLock = "/run/lock/berth-network.lock"

func (m *Manager) ensureNetwork(st *diskState, spec state.NetworkSpec) (*NetworkInfo, error) {
	if unlock, err := lockFile(HostLock); err == nil {
		defer unlock()
	}
	want, err := m.plan(st, spec)
	if err != nil {
		return nil, err
	}
	if old, ok := st.Networks[spec.Name]; ok && !sameShape(old, want) {
		if users := usersOf(st, spec.Name); len(users) > 0 {
			return nil, fmt.Errorf("network %s changed but containers %v are attached: %w", spec.Name, users, ErrInUse)
		}
		if err := m.deleteLink(old.Bridge); err != nil {
			return nil, err
		}
	}
	st.Networks[spec.Name] = want
	return want, m.ensureBridge(want)
}

// plan computes the allocation for spec, keeping the current one when the
// file's request has not changed.
func (m *Manager) plan(st *diskState, spec state.NetworkSpec) (*NetworkInfo, error) {
	if spec.Driver != "" && spec.Driver != "bridge" {
		return nil, fmt.Errorf("network %s: driver %q is not supported (berth networks are bridges)", spec.Name, spec.Driver)
	}
	n := &NetworkInfo{Spec: spec, Bridge: BridgeName(m.opt.Root, spec.Name)}
	if v, ok := spec.DriverOpts[MTUOption]; ok {
		mtu, err := strconv.Atoi(v)
		if err != nil || mtu < 68 || mtu > 65535 {
			return nil, fmt.Errorf("network %s: bad %s %q", spec.Name, MTUOption, v)
		}
		n.MTU = mtu
	}
	old := st.Networks[spec.Name]
	used, err := m.usedPrefixes(st, spec.Name)
	if err != nil {
		return nil, err
	}
	for _, s := range spec.IPAM {
		if err := fillStatic(n, s); err != nil {
			return nil, fmt.Errorf("network %s: %w", spec.Name, err)
		}
	}
	if !n.Subnet4.IsValid() {
		if old != nil && old.Subnet4.IsValid() && !ipamHas(old.Spec, true) {
			n.Subnet4, n.Gateway4 = old.Subnet4, old.Gateway4
		} else {
			p, err := m.opt.Pool4.Allocate(used)
			if err != nil {
				return nil, err
			}
			n.Subnet4, n.Gateway4 = p, firstHost(p)
		}
	}
	if spec.EnableIPv6 && !n.Subnet6.IsValid() {
		if old != nil && old.Subnet6.IsValid() && !ipamHas(old.Spec, false) {
			n.Subnet6, n.Gateway6 = old.Subnet6, old.Gateway6
		} else {
			p, err := m.opt.Pool6.Allocate(used)
			if err != nil {
				return nil, err
			}
			n.Subnet6, n.Gateway6 = p, firstHost(p)
		}
	}
	if n.Subnet4.IsValid() && overlapsAny(n.Subnet4, used) && (old == nil || old.Subnet4 != n.Subnet4) {
		return nil, fmt.Errorf("network %s: subnet %s overlaps an existing route or network", spec.Name, n.Subnet4)
	}
	return n, nil
}

func ipamHas(spec state.NetworkSpec, v4 bool) bool {
	for _, s := range spec.IPAM {
		if p, err := netip.ParsePrefix(s.Subnet); err == nil && p.Addr().Is4() == v4 {
			return true
		}
	}
	return false
}

// fillStatic applies one ipam.config entry.
func fillStatic(n *NetworkInfo, s state.Subnet) error {
	p, err := netip.ParsePrefix(s.Subnet)
	if err != nil {
		return fmt.Errorf("ipam subnet %q: %w", s.Subnet, err)
	}
	p = p.Masked()
	gw := firstHost(p)
	if s.Gateway != "" {
		if gw, err = netip.ParseAddr(s.Gateway); err != nil || !p.Contains(gw) {
			return fmt.Errorf("ipam gateway %q is not in %s", s.Gateway, p)
		}
	}
	var rng netip.Prefix
	if s.IPRange != "" {
		if rng, err = netip.ParsePrefix(s.IPRange); err != nil || !p.Contains(rng.Addr()) {
			return fmt.Errorf("ipam ip_range %q is not in %s", s.IPRange, p)
		}
	}
	if p.Addr().Is4() {
		n.Subnet4, n.Gateway4, n.Range4 = p, gw, rng
	} else {
		n.Subnet6, n.Gateway6, n.Range6 = p, gw, rng
	}
	return nil
}

// sameShape reports whether a bridge built for a can serve b unchanged.
func sameShape(a, b *NetworkInfo) bool {
	return a.Bridge == b.Bridge && a.Subnet4 == b.Subnet4 && a.Gateway4 == b.Gateway4 &&
		a.Subnet6 == b.Subnet6 && a.Gateway6 == b.Gateway6 && a.MTU == b.MTU
}

func usersOf(st *diskState, network string) []string {
	var ids []string
	for id, r := range st.Endpoints {
		if r.on(network) {
			ids = append(ids, id)
		}
	}
	return ids
}

// usedPrefixes is every subnet a new network must not overlap: the host's
// routes and addresses (except those of berth's own bridges) and the other
// networks' allocations.
func (m *Manager) usedPrefixes(st *diskState, except string) ([]netip.Prefix, error) {
	ours := map[string]bool{}
	var used []netip.Prefix
	for name, n := range st.Networks {
		ours[n.Bridge] = true
		if name != except {
			used = append(used, n.Subnet4, n.Subnet6)
		}
	}
	links, err := dumpRetry(m.nl.LinkList)
	if err != nil {
		return nil, err
	}
	skip := map[int]bool{}
	for _, l := range links {
		if ours[l.Attrs().Name] {
			skip[l.Attrs().Index] = true
		}
	}
	routes, err := dumpRetry(func() ([]netlink.Route, error) {
		return m.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if r.Dst == nil || skip[r.LinkIndex] {
			continue
		}
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 {
			used = append(used, p)
		}
	}
	return used, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}
}

// ensureBridge makes the bridge match n: present, up, MTU, exactly the
// gateway addresses, and the sysctls published ports need.
func (m *Manager) ensureBridge(n *NetworkInfo) error {
	link, err := m.nl.LinkByName(n.Bridge)
	if err != nil {
		// A bridge without an address of its own takes its lowest port's,
		// and changes it when that container goes: every peer's ARP entry
		// for the gateway then points nowhere for seconds.
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, MTU: n.MTU, TxQLen: -1, HardwareAddr: bridgeMAC(n.Spec.Name)}}
		if err := m.nl.LinkAdd(br); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", n.Bridge, err)
		}
		if link, err = m.nl.LinkByName(n.Bridge); err != nil {
			return err
		}
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("%s exists and is a %s, not a bridge", n.Bridge, link.Type())
	}
	if err := m.tag(link); err != nil {
		return err
	}
	if mac := bridgeMAC(n.Spec.Name); link.Attrs().HardwareAddr.String() != mac.String() {
		if err := m.nl.LinkSetHardwareAddr(link, mac); err != nil {
			return err
		}
	}
	if n.MTU > 0 && link.Attrs().MTU != n.MTU {
		if err := m.nl.LinkSetMTU(link, n.MTU); err != nil {
			return err
		}
	}
	if n.Subnet6.IsValid() {
		// Before the address goes on, or the kernel drops it with IPv6 off.
		if err := writeSysctl(m.host, "net/ipv6/conf/"+n.Bridge+"/disable_ipv6", "0"); err != nil {
			return err
		}
	}
	want := map[string]*netlink.Addr{}
	if n.Subnet4.IsValid() {
		a := &netlink.Addr{IPNet: ipNet(n.Gateway4, n.Subnet4.Bits())}
		want[a.IPNet.String()] = a
	}
	if n.Subnet6.IsValid() {
		a := &netlink.Addr{IPNet: ipNet(n.Gateway6, n.Subnet6.Bits()), Flags: unix.IFA_F_NODAD}
		want[a.IPNet.String()] = a
	}
	if err := m.syncAddrs(m.nl, link, want); err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	if err := m.nl.LinkSetUp(link); err != nil {
		return err
	}
	// Published ports answer on 127.0.0.1: the DNATed packet leaves through
	// the bridge with a loopback source, which the kernel only routes with
	// route_localnet.
	if err := writeSysctl(m.host, "net/ipv4/conf/"+n.Bridge+"/route_localnet", "1"); err != nil {
		return err
	}
	if err := writeSysctl(m.host, "net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if n.Subnet6.IsValid() {
		return writeSysctl(m.host, "net/ipv6/conf/all/forwarding", "1")
	}
	return nil
}

// syncAddrs leaves exactly want (plus IPv6 link-local) on link.
func (m *Manager) syncAddrs(h *netlink.Handle, link netlink.Link, want map[string]*netlink.Addr) error {
	have, err := dumpRetry(func() ([]netlink.Addr, error) { return h.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, a := range have {
		k := a.IPNet.String()
		if want[k] != nil {
			seen[k] = true
			continue
		}
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		if err := h.AddrDel(link, &a); err != nil {
			return err
		}
	}
	for k, a := range want {
		if !seen[k] {
			if err := h.AddrAdd(link, a); err != nil && !errors.Is(err, syscall.EEXIST) {
				return fmt.Errorf("add %s: %w", k, err)
			}
		}
	}
	return nil
}

// tag marks link as this root's.
func (m *Manager) tag(link netlink.Link) error {
	if alias := linkAlias(m.opt.Root); link.Attrs().Alias != alias {
		return m.nl.LinkSetAlias(link, alias)
	}
	return nil
}

// deleteOurLink deletes a link by name only if this root made it.
func (m *Manager) deleteOurLink(name string) error {
	l, err := m.nl.LinkByName(name)
	if err != nil || l.Attrs().Alias != linkAlias(m.opt.Root) {
		return nil
	}
	return m.nl.LinkDel(l)
}

func (m *Manager) deleteLink(name string) error {
	l, err := m.nl.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	return m.nl.LinkDel(l)
}

// RemoveNetwork deletes a network's bridge and allocation. A network with
// containers still attached is refused with ErrInUse; a missing one is nil;
// an external one is left alone (pass its spec's name only if berth made it).
func (m *Manager) RemoveNetwork(ctx context.Context, name string) error {
	last := false
	err := m.mutate(ctx, func(st *diskState) error {
		n, ok := st.Networks[name]
		if !ok {
			return m.deleteOurLink(BridgeName(m.opt.Root, name))
		}
		if users := usersOf(st, name); len(users) > 0 {
			return fmt.Errorf("network %s has containers %v attached: %w", name, users, ErrInUse)
		}
		if err := m.deleteLink(n.Bridge); err != nil {
			return err
		}
		delete(st.Networks, name)
		last = len(st.Networks) == 0
		return m.applyFirewall(st)
	})
	if err == nil && last {
		err = m.stopDNS(ctx)
	}
	return err
}
