package network

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// applyFirewall makes berth's table the one st describes, in one netlink
// transaction, which is what lets a published port move between
// containers without dropping a connection. Only rules and map elements
// are replaced: chains and maps that stay wanted are kept (only those no
// longer wanted go), and a port's balancing map keeps all its slots
// (addBalancer). Replacing the whole table on each change left, now and
// then, a connection opened meanwhile with no NAT at all, refused by the
// host: TestFirewallChangeKeepsNAT failed 5 runs of 11 on it, and about
// one start-first update in a hundred lost a request.
func (m *Manager) applyFirewall(st *diskState) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(m.host)))
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: TableName(m.opt.Root), Family: nftables.TableFamilyINet}
	if len(st.Networks) == 0 {
		c.AddTable(t) // makes the delete below valid when the table is absent
		c.DelTable(t)
	} else {
		hooked := hookedChains(t)
		old, err := clearTable(c, t, hooked)
		if err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		made := tableObjects{}
		if err := buildTable(c, t, hooked, st, made); err != nil {
			return err
		}
		old.dropUnless(c, made)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return nil
}

// tableChains are the chains attached to netfilter hooks.
type tableChains struct{ pre, out, post, fwd *nftables.Chain }

func (h tableChains) all() []*nftables.Chain { return []*nftables.Chain{h.pre, h.out, h.post, h.fwd} }

func hookedChains(t *nftables.Table) tableChains {
	accept := nftables.ChainPolicyAccept
	nat := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio}
	}
	return tableChains{
		pre:  nat("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		out:  nat("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
		post: nat("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
		fwd: &nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept},
	}
}

// tableObjects names the chains (hooked ones aside) and maps a change
// makes.
type tableObjects map[string]bool

// clearTable queues what empties table t (the rules of its chains, the
// elements of its maps) and returns the chains and maps it has; the
// hooked chains are kept when they are the ones wanted. A table that is
// missing, or made by a berth whose hooked chains differ, is replaced
// whole (nothing old is returned then).
func clearTable(c *nftables.Conn, t *nftables.Table, want tableChains) (*oldObjects, error) {
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, err
	}
	var have []*nftables.Chain
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == t.Name {
			have = append(have, ch)
		}
	}
	old := &oldObjects{}
	if !sameHooks(have, want.all()) {
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		for _, ch := range want.all() {
			c.AddChain(ch)
		}
		return old, nil
	}
	if old.sets, err = c.GetSets(t); err != nil {
		return nil, err
	}
	for _, ch := range have {
		c.FlushChain(ch)
		if ch.Hooknum == nil {
			old.chains = append(old.chains, ch)
		}
	}
	for _, s := range old.sets {
		c.FlushSet(s)
	}
	return old, nil
}

// oldObjects are the chains (hooked ones aside) and maps a table had.
type oldObjects struct {
	chains []*nftables.Chain
	sets   []*nftables.Set
}

// dropUnless queues the removal of those not made again: maps first (their
// elements held chains).
func (o *oldObjects) dropUnless(c *nftables.Conn, made tableObjects) {
	for _, s := range o.sets {
		if !made[s.Name] {
			c.DelSet(s)
		}
	}
	for _, ch := range o.chains {
		if !made[ch.Name] {
			c.DelChain(ch)
		}
	}
}

// sameHooks tells whether the hooked chains of have are exactly want.
func sameHooks(have, want []*nftables.Chain) bool {
	n := 0
	for _, h := range have {
		if h.Hooknum == nil {
			continue
		}
		n++
		ok := false
		for _, w := range want {
			ok = ok || (h.Name == w.Name && h.Type == w.Type && *h.Hooknum == *w.Hooknum &&
				h.Priority != nil && *h.Priority == *w.Priority)
		}
		if !ok {
			return false
		}
	}
	return n == len(want)
}

func sortedNetworks(st *diskState) []*NetworkInfo {
	ns := make([]*NetworkInfo, 0, len(st.Networks))
	for _, n := range st.Networks {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].Spec.Name < ns[j].Spec.Name })
	return ns
}

// buildTable queues the rules st asks for, and the chains and maps they
// use (an existing one is kept: adding it again is no change), recorded in
// made.
func buildTable(c *nftables.Conn, t *nftables.Table, h tableChains, st *diskState, made tableObjects) error {
	ports := made.chain(c, t, "ports")
	pre, out, post, fwd := h.pre, h.out, h.post, h.fwd

	// Published ports answer on every local address (or the one asked for).
	for _, ch := range []*nftables.Chain{pre, out} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(localDst(), jump("ports"))})
	}
	nets := sortedNetworks(st)
	for _, n := range nets {
		addNetworkNAT(c, t, post, n)
	}
	// Traffic a published port brought in crosses networks on purpose.
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(ctStatusDNAT(), verdict(expr.VerdictAccept))})
	for _, a := range nets {
		if a.Spec.Internal {
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(ifname(true, a.Bridge, true), ifname(false, a.Bridge, false), verdict(expr.VerdictDrop))})
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(ifname(false, a.Bridge, true), ifname(true, a.Bridge, false), verdict(expr.VerdictDrop))})
		}
		for _, b := range nets {
			if a != b {
				c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(ifname(true, a.Bridge, true), ifname(false, b.Bridge, true), verdict(expr.VerdictDrop))})
			}
		}
	}
	return addPortRules(c, t, ports, st, made)
}

func addNetworkNAT(c *nftables.Conn, t *nftables.Table, post *nftables.Chain, n *NetworkInfo) {
	masq := []expr.Any{&expr.Masq{}}
	if !n.Spec.Internal {
		for _, s := range []netip.Prefix{n.Subnet4, n.Subnet6} {
			if s.IsValid() {
				c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(addrMatch(true, s), ifname(false, n.Bridge, false), masq)})
			}
		}
	}
	// 127.0.0.1 clients of published ports: the container must be able to answer.
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(addrMatch(true, netip.MustParsePrefix("127.0.0.0/8")), ifname(false, n.Bridge, true), masq)})
	// Hairpin: a container reaching a published port of itself or a peer on
	// its own bridge must see the answer come from the gateway it asked.
	// (Matched by source subnet: with br_netfilter the input interface is
	// unknown in postrouting.)
	for _, s := range []netip.Prefix{n.Subnet4, n.Subnet6} {
		if s.IsValid() {
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(addrMatch(true, s), ifname(false, n.Bridge, true), ctStatusDNAT(), masq)})
		}
	}
}

// portGroup is one host IP/port/protocol and the containers behind it.
type portGroup struct {
	key     PublishedPort // HostIP, HostPort, Protocol
	targets []portTarget
}

type portTarget struct {
	v4, v6 netip.Addr
	port   int
}

// groupPorts collects every published port of every endpoint, grouping the
// replicas that share a host port, in a stable order.
func groupPorts(st *diskState) []*portGroup {
	groups := map[PublishedPort]*portGroup{}
	ids := make([]string, 0, len(st.Endpoints))
	for id := range st.Endpoints {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := st.Endpoints[id]
		if len(r.Interfaces) == 0 {
			continue
		}
		// Published ports reach the container on its first network's address.
		ifc := r.Interfaces[0]
		for _, p := range r.Ports {
			k := PublishedPort{HostIP: p.HostIP, HostPort: p.HostPort, Protocol: p.Protocol}
			g := groups[k]
			if g == nil {
				g = &portGroup{key: k}
				groups[k] = g
			}
			g.targets = append(g.targets, portTarget{v4: ifc.IPv4, v6: ifc.IPv6, port: p.ContainerPort})
		}
	}
	out := make([]*portGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].key, out[j].key
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.HostPort != b.HostPort {
			return a.HostPort < b.HostPort
		}
		return a.HostIP < b.HostIP
	})
	return out
}

func addPortRules(c *nftables.Conn, t *nftables.Table, ports *nftables.Chain, st *diskState, made tableObjects) error {
	for _, g := range groupPorts(st) {
		for _, v4 := range []bool{true, false} {
			var match []expr.Any
			if g.key.HostIP != "" {
				a, err := netip.ParseAddr(g.key.HostIP)
				if err != nil {
					return fmt.Errorf("port %d: host ip %q: %w", g.key.HostPort, g.key.HostIP, err)
				}
				if a.Is4() != v4 || (a.Is6() && a.IsLoopback()) {
					continue // [::1]: the userland proxy (proxy.go)
				}
				if !a.IsUnspecified() {
					match = addrMatchDst(netip.PrefixFrom(a, a.BitLen()))
				}
			}
			if match == nil {
				match = nfproto(v4)
				if !v4 {
					// A DNATed packet from ::1 could never leave lo (IPv6
					// has no route_localnet): the proxy serves [::1].
					match = addrNotMatch(false, netip.PrefixFrom(netip.IPv6Loopback(), 128))
				}
			}
			var targets []netip.AddrPort
			for _, tg := range g.targets {
				a := tg.v6
				if v4 {
					a = tg.v4
				}
				if a.IsValid() {
					targets = append(targets, netip.AddrPortFrom(a, uint16(tg.port)))
				}
			}
			if len(targets) == 0 {
				continue
			}
			match = cat(match, l4proto(g.key.Protocol), dport(g.key.HostPort))
			if err := addBalancer(c, t, ports, made, match, targets, balancerName(g.key, v4), v4); err != nil {
				return err
			}
		}
	}
	return nil
}

// balancerName names a published port's map after the port, so that it
// stays the same map while the port stays published, whatever else comes
// and goes.
func balancerName(k PublishedPort, v4 bool) string {
	name := fmt.Sprintf("lb-%s-%d", k.Protocol, k.HostPort)
	if k.HostIP != "" {
		name += "-" + strings.NewReplacer(".", "_", ":", "_").Replace(k.HostIP)
	}
	if v4 {
		return name + "-4"
	}
	return name + "-6"
}

// balancerSlots is the size of every balancing map: divisible by 1 to 6,
// so that up to six targets share a port's connections evenly.
const balancerSlots = 60

// addBalancer spreads a port's new connections over its targets round
// robin: a counter modulo balancerSlots picks a slot of a map, slot i
// holding target i modulo their number (address . port, which the DNAT
// reads). Targets coming and going only change the map's elements, and
// every slot exists before and after a change: a packet whose rule and
// map lookup straddle a transaction still finds a target. Changes that
// made or deleted chains and maps, or a counter modulo the number of
// targets (a slot missing on the other side of the change), now and then
// left a connection opened meanwhile with no NAT at all
// (TestFirewallChangeKeepsNAT).
func addBalancer(c *nftables.Conn, t *nftables.Table, ports *nftables.Chain, made tableObjects, match []expr.Any, targets []netip.AddrPort, name string, v4 bool) error {
	addrType, fam, protoReg := nftables.TypeIPAddr, uint32(unix.NFPROTO_IPV4), uint32(unix.NFT_REG32_01)
	if !v4 {
		// The address fills register 1, the port begins register 2.
		addrType, fam, protoReg = nftables.TypeIP6Addr, unix.NFPROTO_IPV6, unix.NFT_REG_2
	}
	// A named map: the library marks anonymous and constant sets' keys
	// big-endian, and `nft list` would then print numgen's host-order
	// keys as 16777216 instead of 1.
	set := &nftables.Set{Table: t, Name: name, IsMap: true, KeyType: nftables.TypeInteger,
		DataType: nftables.MustConcatSetType(addrType, nftables.TypeInetService), KeyByteOrder: binaryutil.NativeEndian}
	var elems []nftables.SetElement
	for i := range balancerSlots {
		tg := targets[i%len(targets)]
		// address . port: the port big-endian, padded to a register.
		val := append(tg.Addr().AsSlice(), byte(tg.Port()>>8), byte(tg.Port()), 0, 0)
		elems = append(elems, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)), Val: val})
	}
	made[set.Name] = true
	if err := c.AddSet(set, elems); err != nil {
		return err
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: ports, Exprs: cat(match,
		[]expr.Any{
			&expr.Numgen{Register: 1, Modulus: balancerSlots, Type: unix.NFT_NG_INCREMENTAL},
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: set.Name, SetID: set.ID},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegProtoMin: protoReg, Specified: true},
		})})
	return nil
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}

func localDst() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func nfproto(v4 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV6)
	if v4 {
		p = unix.NFPROTO_IPV4
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

func ifname(in bool, name string, eq bool) []expr.Any {
	key, op := expr.MetaKeyOIFNAME, expr.CmpOpNeq
	if in {
		key = expr.MetaKeyIIFNAME
	}
	if eq {
		op = expr.CmpOpEq
	}
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: b}}
}

// addrMatch matches the source address against p (family included).
func addrMatch(src bool, p netip.Prefix) []expr.Any {
	off, n := uint32(16), uint32(4)
	if p.Addr().Is6() {
		off, n = 24, 16
	}
	if src {
		off -= n
	}
	mask := ipNet(p.Addr(), p.Bits()).Mask
	return cat(nfproto(p.Addr().Is4()), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	})
}

func addrMatchDst(p netip.Prefix) []expr.Any { return addrMatch(false, p) }

// addrNotMatch is addrMatch negated (the family still has to match).
func addrNotMatch(src bool, p netip.Prefix) []expr.Any {
	m := addrMatch(src, p)
	last := *m[len(m)-1].(*expr.Cmp)
	last.Op = expr.CmpOpNeq
	m[len(m)-1] = &last
	return m
}

func ctStatusDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ctStatusDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func l4proto(proto string) []expr.Any {
	p := byte(unix.IPPROTO_TCP)
	if proto == "udp" {
		p = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

func dport(port int) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(port))},
	}
}

// ctStatusDstNAT is IPS_DST_NAT of the conntrack status bits.
const ctStatusDstNAT = 1 << 5

// chain queues the regular chain name (kept if it exists) and records it.
func (made tableObjects) chain(c *nftables.Conn, t *nftables.Table, name string) *nftables.Chain {
	made[name] = true
	return c.AddChain(&nftables.Chain{Name: name, Table: t})
}
