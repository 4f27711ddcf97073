package network

import (
	"net/netip"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func TestPoolAllocateSkipsUsedAndHostRoutes(t *testing.T) {
	used := []netip.Prefix{pfx("10.213.0.0/24"), pfx("10.213.1.128/25"), pfx("192.0.2.0/24")}
	got, err := DefaultPool4.Allocate(used)
	if err != nil || got != pfx("10.213.2.0/24") {
		t.Fatalf("got %v %v, want 10.213.2.0/24", got, err)
	}
	// A host route covering the whole pool leaves nothing.
	if _, err := DefaultPool4.Allocate([]netip.Prefix{pfx("10.0.0.0/8")}); err == nil {
		t.Fatal("allocated inside a host route")
	}
}

func TestPoolAllocateIPv6(t *testing.T) {
	got, err := DefaultPool6.Allocate([]netip.Prefix{pfx("fd42:b0::/64"), pfx("fd00::/64")})
	if err != nil || got != pfx("fd42:b0:0:1::/64") {
		t.Fatalf("got %v %v", got, err)
	}
}

func TestPoolCarriesAcrossBytes(t *testing.T) {
	p := Pool{Base: pfx("10.213.0.0/16"), Bits: 28}
	var used []netip.Prefix
	for i := 0; i < 17; i++ {
		s, err := p.Allocate(used)
		if err != nil {
			t.Fatal(err)
		}
		used = append(used, s)
	}
	if used[16] != pfx("10.213.1.0/28") {
		t.Fatalf("17th /28 = %v", used[16])
	}
}

func TestPoolExhausted(t *testing.T) {
	p := Pool{Base: pfx("10.213.0.0/23"), Bits: 24}
	used := []netip.Prefix{pfx("10.213.0.0/24"), pfx("10.213.1.0/24")}
	if _, err := p.Allocate(used); err == nil {
		t.Fatal("want exhaustion")
	}
}

func TestAllocateAddr(t *testing.T) {
	subnet := pfx("10.213.5.0/29")
	taken := map[netip.Addr]bool{firstHost(subnet): true}
	var got []string
	for {
		a, err := AllocateAddr(subnet, netip.Prefix{}, taken)
		if err != nil {
			break
		}
		taken[a] = true
		got = append(got, a.String())
	}
	want := "[10.213.5.2 10.213.5.3 10.213.5.4 10.213.5.5 10.213.5.6]"
	if s := fmtList(got); s != want {
		t.Fatalf("got %s want %s (no network, gateway or broadcast)", s, want)
	}
}

func TestAllocateAddrRange(t *testing.T) {
	a, err := AllocateAddr(pfx("10.213.5.0/24"), pfx("10.213.5.128/25"), map[netip.Addr]bool{})
	if err != nil || a != addr("10.213.5.128") {
		t.Fatalf("got %v %v", a, err)
	}
	if _, err := AllocateAddr(pfx("10.213.5.0/24"), pfx("10.9.0.0/25"), nil); err == nil {
		t.Fatal("range outside subnet accepted")
	}
}

func TestCheckStatic(t *testing.T) {
	s := pfx("10.213.7.0/24")
	taken := map[netip.Addr]bool{addr("10.213.7.1"): true, addr("10.213.7.9"): true}
	for _, c := range []struct {
		a  string
		ok bool
	}{{"10.213.7.10", true}, {"10.213.7.9", false}, {"10.213.7.1", false}, {"10.213.7.0", false}, {"10.213.7.255", false}, {"10.213.8.2", false}} {
		err := CheckStatic(s, addr(c.a), taken)
		if (err == nil) != c.ok {
			t.Errorf("%s: err=%v want ok=%v", c.a, err, c.ok)
		}
	}
	if err := CheckStatic(pfx("fd42:b0:0:3::/64"), addr("fd42:b0:0:3::ffff"), nil); err != nil {
		t.Errorf("ipv6 static: %v", err)
	}
}

func TestNamesFitAndAreStable(t *testing.T) {
	if BridgeName("/r", "p_default") != BridgeName("/r", "p_default") || BridgeName("/r", "p_default") == BridgeName("/r", "q_default") {
		t.Fatal("bridge names not stable/distinct")
	}
	for _, n := range []string{BridgeName("/r", "a-very-long-project-name_and-a-long-network"), hostVethName("id", "n")} {
		if len(n) > 15 {
			t.Errorf("%q longer than 15", n)
		}
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}
