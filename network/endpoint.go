package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Sandbox makes sure container id has a network namespace (with loopback
// up) and returns the path the runtime joins.
func (m *Manager) Sandbox(ctx context.Context, id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	path := m.SandboxPath(id)
	if err := createNetns(path); err != nil {
		return "", err
	}
	return path, withNS(path, func(h *netlink.Handle, _ netns.NsHandle) error { return loUp(h) })
}

func loUp(h *netlink.Handle) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if lo.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	return h.LinkSetUp(lo)
}

func validID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return fmt.Errorf("network: invalid container id %q", id)
	}
	return nil
}

// withNS gives fn a netlink handle inside the namespace pinned at path.
func withNS(path string, fn func(h *netlink.Handle, ns netns.NsHandle) error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h, ns)
}

// Attach converges container ep.ID to ep: its sandbox, one veth per network
// with its addresses, the default route, published ports and DNS records,
// and its hosts/resolv.conf/hostname files. Calling it again with the same
// Endpoint changes nothing; with another one, only the difference.
//
// Attaches of different containers run in parallel: only the choice of
// addresses and ports and the firewall table are made under the
// allocation lock, and the record written there names everything the
// attach is about to make (and to remove), before it is made. A crash at
// any point leaves a record that the next Attach, Detach or Set converges.
func (m *Manager) Attach(ctx context.Context, ep Endpoint) (Attachment, error) {
	if err := validID(ep.ID); err != nil {
		return Attachment{}, err
	}
	if err := ctx.Err(); err != nil {
		return Attachment{}, err
	}
	unlock, err := m.lockEndpoint(ep.ID)
	if err != nil {
		return Attachment{}, err
	}
	defer unlock(false)
	cur, err := m.record(ctx, ep.ID) // moves legacy records out first
	if err != nil {
		return Attachment{}, err
	}
	if (cur != nil && len(cur.Ports) > 0) || len(ep.Ports) > 0 {
		return m.attachPublished(ctx, ep)
	}
	var st *diskState
	var old, rec *endpointRecord
	err = m.mutate(ctx, func(s *diskState) error {
		st, old = s, s.Endpoints[ep.ID]
		r, err := m.planEndpoint(s, ep, old)
		if r != nil {
			s.Endpoints[ep.ID], rec = r, r
		}
		return err
	})
	if rec == nil {
		return Attachment{}, err
	}
	out := m.attachment(rec)
	if err != nil {
		return out, err
	}
	if err := m.realize(st, old, rec); err != nil {
		return out, err
	}
	done := *rec
	done.Stale, done.Realizing = nil, false
	if err := writeEndpoint(m.stateDir, &done); err != nil {
		return out, err
	}
	st.Endpoints[ep.ID] = &done
	if err := m.writeFiles(st, &done); err != nil {
		return out, err
	}
	if len(ep.Networks) > 0 {
		err = m.ensureDNS(ctx)
	}
	return out, err
}

// attachPublished is Attach for a container that publishes ports (or did):
// all of it under the allocation lock, so that the firewall table, which
// load-balances a port over every container publishing it, changes only
// once the container's interfaces exist, in step with every other change
// of the table.
func (m *Manager) attachPublished(ctx context.Context, ep Endpoint) (Attachment, error) {
	var out Attachment
	err := m.mutate(ctx, func(st *diskState) error {
		old := st.Endpoints[ep.ID]
		rec, err := m.planEndpoint(st, ep, old)
		if rec == nil {
			return err
		}
		st.Endpoints[ep.ID] = rec
		out = m.attachment(rec)
		if err != nil {
			return err
		}
		// The intent first: a crash while realizing it leaves it recorded.
		if err := writeEndpoint(m.stateDir, rec); err != nil {
			return err
		}
		if err := m.realize(st, old, rec); err != nil {
			return err
		}
		done := *rec
		done.Stale, done.Realizing = nil, false
		// Written here: the intent replaced the file that the end of
		// mutate compares against, and done may equal that file.
		if err := writeEndpoint(m.stateDir, &done); err != nil {
			return err
		}
		st.Endpoints[ep.ID] = &done
		if err := m.applyFirewall(st); err != nil {
			return err
		}
		return m.writeFiles(st, &done)
	})
	if err == nil && len(ep.Networks) > 0 {
		err = m.ensureDNS(ctx)
	}
	return out, err
}

// planEndpoint computes container ep's record from the allocation state: its
// namespace, interfaces with their addresses, published ports, and the
// interfaces it had that go (Stale). Nothing on the machine changes.
func (m *Manager) planEndpoint(st *diskState, ep Endpoint, old *endpointRecord) (*endpointRecord, error) {
	rec := &endpointRecord{Endpoint: ep, Realizing: true}
	defer func() { rec.Stale = staleOf(old, rec) }()
	mode := ep.NetworkMode
	if mode == "host" || strings.HasPrefix(mode, "container:") {
		if mode == "host" {
			return rec, nil
		}
		other, ok := st.Endpoints[strings.SplitN(mode, ":", 2)[1]]
		if !ok || other.Netns == "" {
			return nil, fmt.Errorf("network_mode %s: %w", mode, ErrNotFound)
		}
		rec.Netns = other.Netns
		return rec, nil
	}
	if mode != "" && mode != "none" && mode != "bridge" && mode != "default" {
		return nil, fmt.Errorf("network_mode %q is not supported", mode)
	}
	rec.Netns = m.SandboxPath(ep.ID)
	if mode != "none" {
		if err := m.allocate(st, ep, old, rec); err != nil {
			return nil, err
		}
	}
	ports, err := resolvePorts(st, ep, old, m.hostPortFree)
	rec.Ports = ports
	return rec, err
}

// staleOf lists the interfaces old had (or still recorded as stale) that
// rec does not keep unchanged.
func staleOf(old, rec *endpointRecord) []Interface {
	if old == nil {
		return nil
	}
	var out []Interface
	for _, o := range old.links() {
		kept := false
		for _, w := range rec.Interfaces {
			if reflect.DeepEqual(o, w) {
				kept = true
			}
		}
		if !kept {
			out = append(out, o)
		}
	}
	return out
}

// realize makes the machine match rec (planned from old): the stale links
// go, the sandbox, its interfaces and default routes are converged. Only
// the container's own objects change: no lock but the endpoint's is needed.
func (m *Manager) realize(st *diskState, old, rec *endpointRecord) error {
	m.realizing <- struct{}{}
	defer func() { <-m.realizing }()
	for _, s := range rec.Stale {
		if err := m.deleteLink(s.HostVeth); err != nil {
			return err
		}
	}
	mode := rec.Endpoint.NetworkMode
	if mode == "host" || strings.HasPrefix(mode, "container:") {
		return nil
	}
	if err := createNetns(rec.Netns); err != nil {
		return err
	}
	return withNS(rec.Netns, func(h *netlink.Handle, ns netns.NsHandle) error {
		if err := loUp(h); err != nil {
			return err
		}
		if err := m.syncInterfaces(st, h, ns, old, rec); err != nil {
			return err
		}
		return syncDefaultRoutes(st, h, rec, old)
	})
}

// allocate fills rec.Interfaces: names, and addresses that stay the same
// for as long as the request does.
func (m *Manager) allocate(st *diskState, ep Endpoint, old *endpointRecord, rec *endpointRecord) error {
	for i, att := range ep.Networks {
		n, ok := st.Networks[att.Network]
		if !ok {
			return fmt.Errorf("network %s: %w", att.Network, ErrNotFound)
		}
		var prev *Interface
		if old != nil {
			for j := range old.Interfaces {
				if old.Interfaces[j].Network == att.Network {
					prev = &old.Interfaces[j]
				}
			}
		}
		veth := hostVethName(ep.ID, att.Network)
		if prev != nil {
			veth = prev.HostVeth // an adopted sandbox keeps its links (Adopt)
		}
		ifc := Interface{
			Network:  att.Network,
			Name:     att.InterfaceName,
			HostVeth: veth,
			MAC:      strings.ToLower(att.MacAddress),
			Aliases:  att.Aliases,
			Priority: att.Priority,
		}
		if ifc.Name == "" {
			ifc.Name = "eth" + strconv.Itoa(i)
		}
		if ifc.MAC == "" && i == 0 {
			ifc.MAC = strings.ToLower(ep.MacAddress)
		}
		taken := takenAddrs(st, n, ep.ID)
		var err error
		if ifc.IPv4, err = pickAddr(n.Subnet4, n.Range4, att.IPv4, prev, true, taken); err != nil {
			return fmt.Errorf("%s on %s: %w", ep.Name, att.Network, err)
		}
		if ifc.IPv6, err = pickAddr(n.Subnet6, n.Range6, att.IPv6, prev, false, taken); err != nil {
			return fmt.Errorf("%s on %s: %w", ep.Name, att.Network, err)
		}
		if ifc.MAC == "" {
			ifc.MAC = macFor(ifc.IPv4, ep.ID, att.Network)
		}
		if ifc.LinkLocal, err = linkLocalIPs(att.LinkLocalIPs); err != nil {
			return fmt.Errorf("%s on %s: %w", ep.Name, att.Network, err)
		}
		rec.Interfaces = append(rec.Interfaces, ifc)
	}
	return nil
}

func takenAddrs(st *diskState, n *NetworkInfo, self string) map[netip.Addr]bool {
	taken := map[netip.Addr]bool{n.Gateway4: true, n.Gateway6: true}
	for id, r := range st.Endpoints {
		if id == self {
			continue
		}
		// Stale interfaces may still have their links: their
		// addresses stay taken until the links are gone.
		for _, i := range r.links() {
			if i.Network == n.Spec.Name {
				taken[i.IPv4], taken[i.IPv6] = true, true
			}
		}
	}
	return taken
}

func pickAddr(subnet, rng netip.Prefix, static string, prev *Interface, v4 bool, taken map[netip.Addr]bool) (netip.Addr, error) {
	if !subnet.IsValid() {
		if static != "" {
			return netip.Addr{}, fmt.Errorf("static address %s but the network has no such subnet", static)
		}
		return netip.Addr{}, nil
	}
	if static != "" {
		a, err := netip.ParseAddr(static)
		if err != nil {
			return a, err
		}
		return a, CheckStatic(subnet, a, taken)
	}
	if prev != nil {
		a := prev.IPv6
		if v4 {
			a = prev.IPv4
		}
		if a.IsValid() && CheckStatic(subnet, a, taken) == nil && (!rng.IsValid() || rng.Contains(a)) {
			return a, nil
		}
	}
	return AllocateAddr(subnet, rng, taken)
}

// syncInterfaces creates (or repairs) the veths rec wants; those it no
// longer wants are rec.Stale, deleted before.
func (m *Manager) syncInterfaces(st *diskState, h *netlink.Handle, ns netns.NsHandle, old, rec *endpointRecord) error {
	for i := range rec.Interfaces {
		w := rec.Interfaces[i]
		had := false
		if old != nil && !old.Realizing {
			for _, o := range old.Interfaces {
				if reflect.DeepEqual(o, w) {
					had = true
				}
			}
		}
		if had && vethIntact(m.nl, h, w) {
			continue
		}
		if err := m.createVeth(st.Networks[w.Network], h, ns, &rec.Interfaces[i]); err != nil {
			return err
		}
	}
	return nil
}

func vethIntact(host, h *netlink.Handle, ifc Interface) bool {
	hl, err := host.LinkByName(ifc.HostVeth)
	if err != nil || hl.Attrs().MasterIndex == 0 || hl.Attrs().Flags&net.FlagUp == 0 {
		return false
	}
	cl, err := h.LinkByName(ifc.Name)
	return err == nil && cl.Attrs().Flags&net.FlagUp != 0 && cl.Type() == "veth"
}

// createVeth makes the pair, the container end straight in the sandbox
// under its final name. Leftovers of a failed attempt are removed only
// when the kernel reports them, which keeps the common path short.
func (m *Manager) createVeth(n *NetworkInfo, h *netlink.Handle, ns netns.NsHandle, ifc *Interface) error {
	err := m.addVeth(n, ns, ifc)
	if errors.Is(err, syscall.EEXIST) {
		if err := m.deleteLink(ifc.HostVeth); err != nil {
			return err
		}
		if l, err := h.LinkByName(ifc.Name); err == nil {
			if err := h.LinkDel(l); err != nil {
				return err
			}
		}
		err = m.addVeth(n, ns, ifc)
	}
	if err != nil {
		return fmt.Errorf("create veth %s: %w", ifc.HostVeth, err)
	}
	peer, err := h.LinkByName(ifc.Name)
	if err != nil {
		return err
	}
	// Up first: the carrier event that lets the bridge forward to this port
	// travels asynchronously (linkwatch) while the addresses go on.
	if err := h.LinkSetUp(peer); err != nil {
		return err
	}
	if ifc.IPv6.IsValid() || hasLinkLocal6(ifc) {
		if err := inNS(ns, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/"+ifc.Name+"/disable_ipv6", []byte("0"), 0o644)
		}); err != nil {
			return err
		}
	}
	if ifc.IPv4.IsValid() {
		if err := h.AddrAdd(peer, &netlink.Addr{IPNet: ipNet(ifc.IPv4, n.Subnet4.Bits())}); err != nil && !errors.Is(err, syscall.EEXIST) {
			return err
		}
	}
	if ifc.IPv6.IsValid() {
		if err := h.AddrAdd(peer, &netlink.Addr{IPNet: ipNet(ifc.IPv6, n.Subnet6.Bits()), Flags: unix.IFA_F_NODAD}); err != nil && !errors.Is(err, syscall.EEXIST) {
			return err
		}
	}
	for _, a := range ifc.LinkLocal {
		if err := h.AddrAdd(peer, linkLocalAddr(a)); err != nil && !errors.Is(err, syscall.EEXIST) {
			return err
		}
	}
	return m.waitCarrier(ifc.HostVeth)
}

// waitCarrier waits (briefly) until the host end reports its carrier: only
// then does the bridge forward to the port. A packet sent before — the
// first ARP request for the container, say — is lost, and its sender
// retries only a second later.
func (m *Manager) waitCarrier(name string) error {
	for deadline := time.Now().Add(500 * time.Millisecond); ; time.Sleep(200 * time.Microsecond) {
		l, err := m.nl.LinkByName(name)
		if err != nil {
			return err
		}
		if l.Attrs().OperState == netlink.OperUp || time.Now().After(deadline) {
			return nil
		}
	}
}

// addVeth creates the pair: host end up, on the bridge, tagged with the
// root, in hairpin mode (with br_netfilter, a container reaching its own
// published port is DNATed at bridge level and must be sent back out of
// the port it came in).
func (m *Manager) addVeth(n *NetworkInfo, ns netns.NsHandle, ifc *Interface) error {
	br, err := m.nl.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s of %s: %w", n.Bridge, n.Spec.Name, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU, attrs.MasterIndex, attrs.Flags = ifc.HostVeth, n.MTU, br.Attrs().Index, net.FlagUp
	attrs.Alias = linkAlias(m.opt.Root)
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: ifc.Name, PeerNamespace: netlink.NsFd(int(ns)), PeerTxQLen: -1}
	if ifc.MAC != "" {
		if veth.PeerHardwareAddr, err = net.ParseMAC(ifc.MAC); err != nil {
			return fmt.Errorf("mac_address %q: %w", ifc.MAC, err)
		}
	}
	if err := m.nl.LinkAdd(veth); err != nil {
		return err
	}
	// LinkAdd filled in the index.
	return m.nl.LinkSetHairpin(veth, true)
}

// macFor derives a container's MAC from its IPv4 address, as Docker does,
// so that a recreated container keeps its peers' ARP entries valid.
func macFor(v4 netip.Addr, id, network string) string {
	if v4.Is4() {
		b := v4.As4()
		return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}.String()
	}
	h := shortHash("mac", id, network)
	return "02:42:" + h[0:2] + ":" + h[2:4] + ":" + h[4:6] + ":" + h[6:8]
}

// syncDefaultRoutes points the default routes at the gateway of the
// highest-priority non-internal network (the first one on a tie).
func syncDefaultRoutes(st *diskState, h *netlink.Handle, rec *endpointRecord, old *endpointRecord) error {
	for _, v4 := range []bool{true, false} {
		if !v4 && !hasIPv6(rec) && !hasIPv6(old) {
			continue // no IPv6 address now or before: no IPv6 default route to manage
		}
		var best *Interface
		var gw netip.Addr
		for i := range rec.Interfaces {
			ifc := &rec.Interfaces[i]
			n := st.Networks[ifc.Network]
			g := n.Gateway6
			if v4 {
				g = n.Gateway4
			}
			has := ifc.IPv6.IsValid()
			if v4 {
				has = ifc.IPv4.IsValid()
			}
			if n.Spec.Internal || !has || !g.IsValid() {
				continue
			}
			if best == nil || ifc.Priority > best.Priority {
				best, gw = ifc, g
			}
		}
		if err := setDefaultRoute(h, best, gw, v4); err != nil {
			return err
		}
	}
	return nil
}

func setDefaultRoute(h *netlink.Handle, ifc *Interface, gw netip.Addr, v4 bool) error {
	family, dst := netlink.FAMILY_V6, &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	if v4 {
		family, dst = netlink.FAMILY_V4, &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	if ifc == nil {
		routes, err := dumpRetry(func() ([]netlink.Route, error) { return h.RouteListFiltered(family, &netlink.Route{Dst: nil}, 0) })
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				if err := h.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
					return err
				}
			}
		}
		return nil
	}
	link, err := h.LinkByName(ifc.Name)
	if err != nil {
		return err
	}
	return h.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: gw.AsSlice()})
}

// Detach removes container id's endpoints, published ports, DNS records and
// files; its sandbox stays (RemoveSandbox removes it). Missing is nil.
//
// For a start-first update, Detach the old container before stopping it:
// its published ports move to the other replicas at once, and connections
// it already accepted keep flowing while it drains.
func (m *Manager) Detach(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := m.lockEndpoint(id)
	if err != nil {
		return err
	}
	defer unlock(false)
	return m.detach(ctx, id, true, false)
}

// detach does Detach's work; the caller holds the endpoint's lock. Its
// published ports leave the firewall first (under the allocation lock,
// with the interfaces recorded as stale), then the links go, then the
// record: a crash in between leaves a record naming what may remain.
// With dropNS (RemoveSandbox), the container's namespace is removed
// before the links: see dropSandbox.
func (m *Manager) detach(ctx context.Context, id string, draining, dropNS bool) error {
	r, err := m.record(ctx, id)
	if err != nil {
		return err
	}
	if r == nil {
		if dropNS {
			if err := removeNetns(m.SandboxPath(id)); err != nil {
				return err
			}
		}
		return os.RemoveAll(m.filesDir(id))
	}
	if len(r.Ports) > 0 {
		err := m.mutate(ctx, func(st *diskState) error {
			st.Endpoints[id] = &endpointRecord{Endpoint: r.Endpoint, Netns: r.Netns,
				Stale: r.links()}
			return m.applyFirewall(st)
		})
		if err != nil {
			return err
		}
	}
	links := r.links()
	if r.Parked {
		if links, err = m.unclaimed(id, links); err != nil {
			return err
		}
	}
	if dropNS {
		if err := m.dropSandbox(id, links); err != nil {
			return err
		}
	}
	for _, i := range links {
		if err := m.deleteLink(i.HostVeth); err != nil {
			return err
		}
	}
	m.forgetFlows(r, draining)
	if err := removeEndpoint(m.stateDir, id); err != nil {
		return err
	}
	return os.RemoveAll(m.filesDir(id))
}

// dropSandbox removes container id's namespace and waits (briefly) for the
// kernel to destroy the veth pairs that had an end in it. The kernel
// destroys the namespaces that die together in one batch, with one
// synchronisation for all their devices, where deleting each pair by
// itself costs one under the rtnl lock: removing 50 containers' links
// one by one took most of a down. A pair still there after the wait (its
// namespace held by a process not yet gone) is deleted by the caller.
func (m *Manager) dropSandbox(id string, links []Interface) error {
	if err := removeNetns(m.SandboxPath(id)); err != nil {
		return err
	}
	if len(links) == 0 {
		return nil
	}
	pause := 500 * time.Microsecond
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(pause) {
		left := false
		for _, i := range links {
			if _, err := m.nl.LinkByName(i.HostVeth); err == nil {
				left = true
				break
			}
		}
		if !left {
			return nil
		}
		pause = min(2*pause, 10*time.Millisecond)
	}
	return nil
}

// RemoveSandbox detaches container id and removes its network namespace.
// Missing is nil.
func (m *Manager) RemoveSandbox(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := m.lockEndpoint(id)
	if err != nil {
		return err
	}
	if err := m.detach(ctx, id, false, true); err != nil {
		unlock(false)
		return err
	}
	removeTemps(filepath.Join(m.stateDir, endpointsDir), ".tmp-"+id+".json-", 0)
	unlock(true)
	return nil
}

// removeTemps removes the temporary files in dir whose names start with
// prefix and that are older than age: what a writer killed between
// creating one and renaming it left. Best effort.
func removeTemps(dir, prefix string, age time.Duration) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if age > 0 {
			if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < age {
				continue
			}
		}
		os.Remove(filepath.Join(dir, e.Name()))
	}
}

func hasIPv6(r *endpointRecord) bool {
	if r == nil {
		return false
	}
	for _, i := range r.Interfaces {
		if i.IPv6.IsValid() {
			return true
		}
	}
	return false
}

// linkLocalIPs parses link_local_ips: link-local unicast addresses only.
func linkLocalIPs(ips []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Unmap().IsLinkLocalUnicast() {
			return nil, fmt.Errorf("link_local_ips: %q is not a link-local address (169.254.0.0/16, fe80::/10)", s)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

func hasLinkLocal6(ifc *Interface) bool {
	for _, a := range ifc.LinkLocal {
		if a.Is6() {
			return true
		}
	}
	return false
}

func linkLocalAddr(a netip.Addr) *netlink.Addr {
	if a.Is4() {
		return &netlink.Addr{IPNet: ipNet(a, 16)}
	}
	return &netlink.Addr{IPNet: ipNet(a, 64), Flags: unix.IFA_F_NODAD}
}
