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

// BenchmarkThroughput compares a bulk TCP transfer from the host to a
// container through its published port (on 127.0.0.1 and on the network's
// gateway address) with one to the container's address directly. The
// paths take turns, so that a drifting machine load hits them alike; it
// reports each path's median and the published/direct ratios.
func BenchmarkThroughput(b *testing.B) {
	e := newTestEnv(b, "tput", "")
	ctx := context.Background()
	if _, err := e.m.EnsureNetwork(ctx, netSpec("b_net", "")); err != nil {
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
	paths := []struct{ name, addr string }{
		{"direct", net.JoinHostPort(att.Interfaces[0].IPv4.String(), "9000")},
		{"loopback", "127.0.0.1:9000"},
		{"gateway", net.JoinHostPort(n.Gateway4.String(), "9000")},
	}
	const size = 64 << 20
	buf := make([]byte, 1<<20)
	transfer := func(addr string) time.Duration {
		var conn net.Conn
		if err := inSandbox(b, e.host.path, func() (err error) {
			conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
			return err
		}); err != nil {
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
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	rates := make([][]float64, len(paths))
	b.SetBytes(size * int64(len(paths)))
	for i := 0; i < b.N; i++ {
		for k := range paths {
			k = (k + i) % len(paths)
			rates[k] = append(rates[k], float64(size)/1e6/transfer(paths[k].addr).Seconds())
		}
	}
	b.StopTimer()
	med := func(r []float64) float64 {
		sort.Float64s(r)
		return r[len(r)/2]
	}
	direct := med(rates[0])
	for k, p := range paths {
		b.ReportMetric(med(rates[k]), p.name+"-MB/s")
		if k > 0 {
			b.ReportMetric(med(rates[k])/direct, p.name+"/direct")
		}
	}
}
