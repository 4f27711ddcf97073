package network

import (
	"net/netip"
	"reflect"
	"testing"
)

// FuzzResolvConf: whatever the host's resolv.conf holds, what berth writes
// for a container reads back the same.
func FuzzResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 10.0.0.1\nsearch a b\noptions ndots:2\n"))
	f.Add([]byte("domain x\n#c\n;d\nnameserver\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rc := parseResolvConf(b)
		again := parseResolvConf([]byte(rc.String()))
		if !reflect.DeepEqual(rc, again) {
			t.Fatalf("round trip: %q -> %q", rc.String(), again.String())
		}
	})
}

// FuzzAllocateAddr: an allocated address is always usable and never taken.
func FuzzAllocateAddr(f *testing.F) {
	f.Add([]byte{10, 213, 5, 0}, uint8(29), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, base []byte, bits uint8, takenLow []byte) {
		a, ok := netip.AddrFromSlice(base)
		if !ok || !a.Is4() || bits < 16 || bits > 32 {
			return
		}
		subnet := netip.PrefixFrom(a, int(bits)).Masked()
		taken := map[netip.Addr]bool{}
		for _, x := range takenLow {
			b := subnet.Addr().As4()
			b[3] |= x
			taken[netip.AddrFrom4(b)] = true
		}
		got, err := AllocateAddr(subnet, netip.Prefix{}, taken)
		if err != nil {
			return
		}
		if taken[got] || !usable(subnet, got) {
			t.Fatalf("allocated %s in %s (taken %v)", got, subnet, taken)
		}
	})
}
