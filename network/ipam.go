package network

import (
	"fmt"
	"net/netip"
)

// Pool is where networks without an ipam subnet get theirs: the first
// Base-contained prefix of length Bits that overlaps nothing in use.
type Pool struct {
	Base netip.Prefix
	Bits int
}

// Default pools stay clear of the ranges hosts and other tools commonly use.
var (
	DefaultPool4 = Pool{Base: netip.MustParsePrefix("10.213.0.0/16"), Bits: 24}
	DefaultPool6 = Pool{Base: netip.MustParsePrefix("fd42:b0::/48"), Bits: 64}
)

// Allocate returns the first free subnet of the pool.
func (p Pool) Allocate(used []netip.Prefix) (netip.Prefix, error) {
	base := p.Base.Masked()
	if p.Bits < base.Bits() || p.Bits > base.Addr().BitLen() {
		return netip.Prefix{}, fmt.Errorf("ipam: pool %s cannot hold /%d subnets", base, p.Bits)
	}
	step := p.Bits - base.Bits()
	if step > 20 {
		step = 20 // a million candidates is plenty; the rest of the pool stays unused
	}
	for i := 0; i < 1<<step; i++ {
		cand := netip.PrefixFrom(nthSubnet(base.Addr(), p.Bits, uint64(i)), p.Bits)
		if !overlapsAny(cand, used) {
			return cand, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("ipam: pool %s is exhausted", base)
}

// nthSubnet adds i to the address at the position of a /bits network.
func nthSubnet(a netip.Addr, bits int, i uint64) netip.Addr {
	b := a.AsSlice()
	pos := bits - 1 // bit index (from the left) of the lowest network bit
	for carry := i; carry > 0 && pos >= 0; pos-- {
		byteIdx, bit := pos/8, 7-pos%8
		cur := uint64(b[byteIdx]>>bit) & 1
		sum := cur + carry&1
		carry >>= 1
		if sum&1 == 1 {
			b[byteIdx] |= 1 << bit
		} else {
			b[byteIdx] &^= 1 << bit
		}
		carry += sum >> 1
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

func overlapsAny(p netip.Prefix, others []netip.Prefix) bool {
	for _, o := range others {
		if o.IsValid() && o.Addr().Is4() == p.Addr().Is4() && p.Overlaps(o) {
			return true
		}
	}
	return false
}

// firstHost is the conventional gateway: the network address plus one.
func firstHost(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

// lastAddr is the highest address of the prefix (the IPv4 broadcast).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// usable reports whether a can be given to an endpoint of subnet.
func usable(subnet netip.Prefix, a netip.Addr) bool {
	if !subnet.Contains(a) || a == subnet.Masked().Addr() {
		return false
	}
	return !(a.Is4() && subnet.Bits() < 31 && a == lastAddr(subnet))
}

// AllocateAddr picks the lowest free address of subnet (within ipRange when
// valid); taken holds the gateway and every address already handed out.
func AllocateAddr(subnet, ipRange netip.Prefix, taken map[netip.Addr]bool) (netip.Addr, error) {
	from := subnet
	if ipRange.IsValid() {
		if !subnet.Contains(ipRange.Addr()) {
			return netip.Addr{}, fmt.Errorf("ipam: ip_range %s is outside subnet %s", ipRange, subnet)
		}
		from = ipRange
	}
	for a := from.Masked().Addr(); from.Contains(a); a = a.Next() {
		if usable(subnet, a) && !taken[a] {
			return a, nil
		}
		if !a.Next().IsValid() {
			break
		}
	}
	return netip.Addr{}, fmt.Errorf("ipam: no free address in %s", from)
}

// CheckStatic validates a requested address (ipv4_address/ipv6_address).
func CheckStatic(subnet netip.Prefix, a netip.Addr, taken map[netip.Addr]bool) error {
	if !usable(subnet, a) {
		return fmt.Errorf("ipam: address %s is not usable in subnet %s", a, subnet)
	}
	if taken[a] {
		return fmt.Errorf("ipam: address %s is already in use", a)
	}
	return nil
}
