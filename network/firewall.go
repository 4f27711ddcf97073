package network

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// applyFirewall replaces berth's table with the one st describes, in one
// netlink transaction: packets see the old rules or the new ones, never a
// mix, which is what lets a published port move between containers without
// dropping a connection.
func (m *Manager) applyFirewall(st *diskState) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(m.host)))
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: TableName(m.opt.Root), Family: nftables.TableFamilyINet}
	c.AddTable(t) // makes the delete below valid when the table is absent
	c.DelTable(t)
	if len(st.Networks) > 0 {
		c.AddTable(t)
		if err := buildTable(c, t, st); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return nil
}

func sortedNetworks(st *diskState) []*NetworkInfo {
	ns := make([]*NetworkInfo, 0, len(st.Networks))
	for _, n := range st.Networks {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].Spec.Name < ns[j].Spec.Name })
	return ns
}

func buildTable(c *nftables.Conn, t *nftables.Table, st *diskState) error {
	accept := nftables.ChainPolicyAccept
	nat := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio})
	}
	ports := c.AddChain(&nftables.Chain{Name: "ports", Table: t})
	pre := nat("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := nat("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := nat("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})

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
	return addPortRules(c, t, ports, st)
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

func addPortRules(c *nftables.Conn, t *nftables.Table, ports *nftables.Chain, st *diskState) error {
	for gi, g := range groupPorts(st) {
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
			var dnats [][]expr.Any
			for _, tg := range g.targets {
				a := tg.v6
				if v4 {
					a = tg.v4
				}
				if !a.IsValid() {
					continue
				}
				dnats = append(dnats, dnat(a, tg.port))
			}
			if len(dnats) == 0 {
				continue
			}
			match = cat(match, l4proto(g.key.Protocol), dport(g.key.HostPort))
			if len(dnats) == 1 {
				c.AddRule(&nftables.Rule{Table: t, Chain: ports, Exprs: cat(match, dnats[0])})
				continue
			}
			if err := addBalancer(c, t, ports, match, dnats, fmt.Sprintf("lb%d-%s", gi, map[bool]string{true: "4", false: "6"}[v4])); err != nil {
				return err
			}
		}
	}
	return nil
}

// addBalancer spreads new connections over the targets round robin: one
// chain per target and a numgen-indexed verdict map that jumps to them.
func addBalancer(c *nftables.Conn, t *nftables.Table, ports *nftables.Chain, match []expr.Any, dnats [][]expr.Any, prefix string) error {
	// A named map: the library marks anonymous and constant sets' keys
	// big-endian, and `nft list` would then print numgen's host-order
	// keys as 16777216 instead of 1.
	set := &nftables.Set{Table: t, Name: prefix, IsMap: true,
		KeyType: nftables.TypeInteger, DataType: nftables.TypeVerdict, KeyByteOrder: binaryutil.NativeEndian}
	var elems []nftables.SetElement
	for i, d := range dnats {
		name := fmt.Sprintf("%s-%d", prefix, i)
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: d})
		elems = append(elems, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)),
			VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: name}})
	}
	if err := c.AddSet(set, elems); err != nil {
		return err
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: ports, Exprs: cat(match,
		[]expr.Any{
			&expr.Numgen{Register: 1, Modulus: uint32(len(dnats)), Type: unix.NFT_NG_INCREMENTAL},
			&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: set.Name, SetID: set.ID},
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

func dnat(a netip.Addr, port int) []expr.Any {
	fam := uint32(unix.NFPROTO_IPV6)
	if a.Is4() {
		fam = unix.NFPROTO_IPV4
	}
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: a.AsSlice()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(uint16(port))},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// ctStatusDstNAT is IPS_DST_NAT of the conntrack status bits.
const ctStatusDstNAT = 1 << 5
