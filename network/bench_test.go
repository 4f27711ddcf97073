package network

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/berth-dev/berth/state"
)

// BenchmarkAttach measures what networking adds to a container's start:
// sandbox, veth pair on a bridge, address, routes, DNS record and the
// hosts/resolv.conf/hostname files. BenchmarkAttachNone is the same
// container with network_mode none (a namespace with loopback only).
func BenchmarkAttach(b *testing.B)     { benchAttach(b, "") }
func BenchmarkAttachNone(b *testing.B) { benchAttach(b, "none") }

func benchAttach(b *testing.B, mode string) {
	e := newTestEnv(b, "bench", "")
	ctx := context.Background()
	if _, err := e.m.EnsureNetwork(ctx, netSpec("b_net", "")); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("bench%d", i)
		ep := Endpoint{ID: id, Name: "b-svc-" + id, Project: "b", Service: "svc", NetworkMode: mode}
		if mode == "" {
			ep.Networks = []state.NetworkAttachment{{Network: "b_net"}}
		}
		if _, err := e.m.Attach(ctx, ep); err != nil {
			b.Fatal(err)
		}
	}
	// Removal is timed apart: namespaces are torn down asynchronously by the
	// kernel, and interleaving it with creation measures the kernel's
	// cleanup work rather than a container's start.
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		if err := e.m.RemoveSandbox(ctx, fmt.Sprintf("bench%d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAttachDelta alternates bridge and none containers and reports
// the medians and their difference: what joining a bridge network adds to
// a container's start, robust to a machine whose load drifts.
func BenchmarkAttachDelta(b *testing.B) {
	e := newTestEnv(b, "delta", "")
	ctx := context.Background()
	if _, err := e.m.EnsureNetwork(ctx, netSpec("b_net", "")); err != nil {
		b.Fatal(err)
	}
	var bridge, none []time.Duration
	var ids []string
	for i := 0; i < b.N; i++ {
		for k, mode := range []string{"", "none"} {
			if i%2 == 1 {
				mode = []string{"none", ""}[k]
			}
			id := fmt.Sprintf("d%d%s", i, mode)
			ep := Endpoint{ID: id, Name: "b-svc-" + id, Project: "b", Service: "svc", NetworkMode: mode}
			if mode == "" {
				ep.Networks = []state.NetworkAttachment{{Network: "b_net"}}
			}
			t0 := time.Now()
			if _, err := e.m.Attach(ctx, ep); err != nil {
				b.Fatal(err)
			}
			if d := time.Since(t0); mode == "" {
				bridge = append(bridge, d)
			} else {
				none = append(none, d)
			}
			ids = append(ids, id)
		}
	}
	b.StopTimer()
	med := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2]) / 1e6
	}
	b.ReportMetric(med(bridge), "bridge-ms")
	b.ReportMetric(med(none), "none-ms")
	b.ReportMetric(med(bridge)-med(none), "delta-ms")
	for _, id := range ids {
		if err := e.m.RemoveSandbox(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThroughput compares bulk TCP transfers from the host to a
// container through its published port with transfers to the container's
// address directly, for both families of a dual-stack network: IPv4 on
// 127.0.0.1 and on the gateway (nftables DNAT), IPv6 on the gateway
// (nftables DNAT) and on ::1 (the userland proxy). After a warm-up
// transfer per path, every round measures each published path (in a
// rotating order) between two direct transfers of its family, ABBA, and
// takes the ratio of the transfer times there: a machine load that drifts
// weighs on both sides alike. The median ratio over the rounds is
// reported, along with each path's median rate.
func BenchmarkThroughput(b *testing.B) {
	e := newTestEnv(b, "tput", "")
	ctx := context.Background()
	spec := netSpec("b_net", "")
	spec.EnableIPv6 = true
	if _, err := e.m.EnsureNetwork(ctx, spec); err != nil {
		b.Fatal(err)
	}
	att, err := e.m.Attach(ctx, Endpoint{ID: "sink", Name: "b-sink-1", Project: "b", Service: "sink",
		Networks: []state.NetworkAttachment{{Network: "b_net"}},
		Ports:    []state.Port{{HostPort: 9000, ContainerPort: 9000}}})
	if err != nil {
		b.Fatal(err)
	}
	var l net.Listener
	if err := inSandbox(b, att.NetnsPath, func() (err error) { l, err = net.Listen("tcp", ":9000"); return err }); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Write([]byte{1}) // everything arrived
				c.Close()
			}()
		}
	}()
	n, err := e.m.Network(ctx, "b_net")
	if err != nil {
		b.Fatal(err)
	}
	ifc := att.Interfaces[0]
	paths := []struct{ name, addr, direct string }{
		{"direct", net.JoinHostPort(ifc.IPv4.String(), "9000"), ""},
		{"loopback", "127.0.0.1:9000", "direct"},
		{"gateway", net.JoinHostPort(n.Gateway4.String(), "9000"), "direct"},
		{"direct6", net.JoinHostPort(ifc.IPv6.String(), "9000"), ""},
		{"loopback6", "[::1]:9000", "direct6"},
		{"gateway6", net.JoinHostPort(n.Gateway6.String(), "9000"), "direct6"},
	}
	index := map[string]int{}
	for k, p := range paths {
		index[p.name] = k
	}
	const size = 64 << 20
	buf := make([]byte, 1<<20)
	transfer := func(addr string, size int) time.Duration {
		var conn net.Conn
		var err error
		// The proxy follows the allocation file a moment after Attach.
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if err = inSandbox(b, e.host.path, func() (err error) {
				conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
				return err
			}); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		t0 := time.Now()
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := conn.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		conn.(*net.TCPConn).CloseWrite()
		if _, err := conn.Read(buf[:1]); err != nil {
			b.Fatal(addr, err)
		}
		return time.Since(t0)
	}
	for _, p := range paths {
		transfer(p.addr, 16<<20)
	}
	b.ResetTimer()
	rates := make([][]float64, len(paths))
	ratios := make([][]float64, len(paths))
	var published []int
	for k, p := range paths {
		if p.direct != "" {
			published = append(published, k)
		}
	}
	b.SetBytes(size * 4 * int64(len(published)))
	for i := 0; i < b.N; i++ {
		for j := range published {
			k := published[(j+i)%len(published)]
			d := index[paths[k].direct]
			// direct, published, published, direct (or the reverse on odd
			// rounds): a load that drifts during the four transfers
			// weighs on both sides alike.
			order := []int{d, k, k, d}
			if i%2 == 1 {
				order = []int{k, d, d, k}
			}
			var took [2]time.Duration // direct, published
			for _, x := range order {
				dt := transfer(paths[x].addr, size)
				rates[x] = append(rates[x], float64(size)/1e6/dt.Seconds())
				took[map[bool]int{true: 0, false: 1}[x == d]] += dt
			}
			ratios[k] = append(ratios[k], took[0].Seconds()/took[1].Seconds())
		}
	}
	b.StopTimer()
	med := func(r []float64) float64 {
		sort.Float64s(r)
		return r[len(r)/2]
	}
	for k, p := range paths {
		b.ReportMetric(med(rates[k]), p.name+"-MB/s")
		if p.direct != "" {
			b.ReportMetric(med(ratios[k]), p.name+"/"+p.direct)
		}
	}
}
