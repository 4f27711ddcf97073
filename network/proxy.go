package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The userland proxy covers what nftables cannot do for published ports:
//
//   - IPv6 loopback: a packet from ::1 is never routed out of lo (IPv6 has
//     no route_localnet), so a DNAT to a container address is dropped. The
//     proxy listens on [::1]:PORT and the DNAT rules skip ::1.
//   - IPv6 clients of a container without an IPv6 address (an IPv4-only
//     network published on all addresses, or on an IPv6 host IP): as
//     Docker's docker-proxy does, the proxy listens on the IPv6 side and
//     connects to the container's IPv4 address.
//
// It runs inside the DNS responder (one long-lived process per state root,
// in the host namespace), follows the allocation file like the DNS zone
// does, and closes a listener as soon as its port is no longer published.
// Connections it already carries keep going until either side closes.

// proxyKey is one listening socket of the proxy.
type proxyKey struct {
	Addr  netip.Addr // ::1, ::, or a specific IPv6 host address
	Port  int
	Proto string // tcp or udp
}

func (k proxyKey) String() string {
	return net.JoinHostPort(k.Addr.String(), strconv.Itoa(k.Port)) + "/" + k.Proto
}

// proxiesFor is the proxy's desired state: every listener and the
// container addresses behind it (replicas are taken round robin).
func proxiesFor(st *diskState) map[proxyKey][]netip.AddrPort {
	out := map[proxyKey][]netip.AddrPort{}
	for _, g := range groupPorts(st) {
		var v4, v6 []netip.AddrPort
		for _, t := range g.targets {
			if t.v4.IsValid() {
				v4 = append(v4, netip.AddrPortFrom(t.v4, uint16(t.port)))
			}
			if t.v6.IsValid() {
				v6 = append(v6, netip.AddrPortFrom(t.v6, uint16(t.port)))
			}
		}
		targets := v6
		if len(targets) == 0 {
			targets = v4
		}
		if len(targets) == 0 {
			continue
		}
		k := proxyKey{Port: g.key.HostPort, Proto: g.key.Protocol}
		switch ip := hostIPAddr(g.key.HostIP); {
		case !ip.IsValid() || ip == netip.IPv6Unspecified():
			// All addresses: nftables serves IPv6 when the containers
			// have IPv6 addresses, except on ::1.
			k.Addr = netip.IPv6Loopback()
			if len(v6) == 0 {
				k.Addr = netip.IPv6Unspecified()
			}
		case ip.Is4():
			continue
		case ip.IsLoopback() || len(v6) == 0:
			k.Addr = ip
		default:
			continue // nftables
		}
		out[k] = targets
	}
	return out
}

// hostIPAddr parses a published port's host IP ("" and bad ones give the
// zero Addr).
func hostIPAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// userProxy is the set of listeners the responder process runs.
type userProxy struct {
	mu        sync.Mutex
	listeners map[proxyKey]*proxyListener
	failed    map[proxyKey]string // the last error logged for a listener that does not open
}

func newUserProxy() *userProxy {
	return &userProxy{listeners: map[proxyKey]*proxyListener{}, failed: map[proxyKey]string{}}
}

// converge opens, retargets and closes listeners to match want. It
// returns false when a listener could not be opened (retried later).
func (p *userProxy) converge(want map[proxyKey][]netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, l := range p.listeners {
		if _, ok := want[k]; !ok {
			l.close()
			delete(p.listeners, k)
		}
	}
	for k := range p.failed {
		if _, ok := want[k]; !ok {
			delete(p.failed, k)
		}
	}
	ok := true
	for k, targets := range want {
		l := p.listeners[k]
		if l == nil {
			var err error
			if l, err = listenProxy(k); err != nil {
				// Retried on every poll, logged once per error (a host
				// without IPv6 would otherwise fill the log).
				if p.failed[k] != err.Error() {
					fmt.Fprintf(os.Stderr, "proxy: listen %s: %v\n", k, err)
					p.failed[k] = err.Error()
				}
				ok = false
				continue
			}
			delete(p.failed, k)
			p.listeners[k] = l
		}
		t := append([]netip.AddrPort(nil), targets...)
		l.targets.Store(&t)
	}
	return ok
}

func (p *userProxy) closeAll() { p.converge(nil) }

// keys lists the open listeners, sorted (for tests and logs).
func (p *userProxy) keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k := range p.listeners {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}

type proxyListener struct {
	key     proxyKey
	targets atomic.Pointer[[]netip.AddrPort]
	next    atomic.Uint32
	tcp     net.Listener
	udp     *net.UDPConn
	done    chan struct{}

	mu    sync.Mutex
	flows map[netip.AddrPort]*udpFlow
}

// reusePort lets the proxy's sockets and hostPortFree's probe share a port:
// a port only berth's own proxy holds (it lags the allocation file by a few
// milliseconds) is free for a new container.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func listenProxy(k proxyKey) (*proxyListener, error) {
	l := &proxyListener{key: k, done: make(chan struct{}), flows: map[netip.AddrPort]*udpFlow{}}
	lc := net.ListenConfig{Control: reusePort}
	// "tcp6"/"udp6": IPV6_V6ONLY, so [::] leaves IPv4 to nftables.
	addr := net.JoinHostPort(k.Addr.String(), strconv.Itoa(k.Port))
	if k.Proto == "udp" {
		pc, err := lc.ListenPacket(context.Background(), "udp6", addr)
		if err != nil {
			return nil, err
		}
		l.udp = pc.(*net.UDPConn)
		// The address each datagram was sent to, so that answers leave
		// from it (a [::] listener on a host with several addresses).
		if rc, err := l.udp.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1) })
		}
		go l.serveUDP()
		go l.expireUDP()
		return l, nil
	}
	tl, err := lc.Listen(context.Background(), "tcp6", addr)
	if err != nil {
		return nil, err
	}
	l.tcp = tl
	go l.serveTCP()
	return l, nil
}

func (l *proxyListener) close() {
	close(l.done)
	if l.tcp != nil {
		l.tcp.Close()
	}
	if l.udp != nil {
		l.udp.Close()
		l.mu.Lock()
		for a, f := range l.flows {
			f.conn.Close()
			delete(l.flows, a)
		}
		l.mu.Unlock()
	}
}

// dial connects to the next target round robin, trying the others when it
// does not answer (a replica going away).
func (l *proxyListener) dial(network string) (net.Conn, error) {
	tp := l.targets.Load()
	if tp == nil || len(*tp) == 0 {
		return nil, errors.New("no target")
	}
	ts := *tp
	start := int(l.next.Add(1) - 1)
	var err error
	for i := range ts {
		var c net.Conn
		if c, err = net.DialTimeout(network, ts[(start+i)%len(ts)].String(), 5*time.Second); err == nil {
			return c, nil
		}
	}
	return nil, err
}

func (l *proxyListener) serveTCP() {
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like
			continue
		}
		go l.pipeTCP(c.(*net.TCPConn))
	}
}

// pipeTCP carries one connection both ways (splice(2) on Linux), passing
// half-closes along so that request/response protocols that shut down
// their write side still work.
func (l *proxyListener) pipeTCP(in *net.TCPConn) {
	defer in.Close()
	oc, err := l.dial("tcp")
	if err != nil {
		return
	}
	out := oc.(*net.TCPConn)
	defer out.Close()
	done := make(chan struct{})
	go func() {
		if _, err := io.Copy(out, in); err != nil {
			// A reset, not a half-close: the other way ends too.
			in.Close()
			out.Close()
		}
		out.CloseWrite()
		close(done)
	}()
	if _, err := io.Copy(in, out); err != nil {
		in.Close()
		out.Close()
	}
	in.CloseWrite()
	<-done
}

// udpFlow is one client of a UDP listener, with its own socket to the
// container (whose answers go back to that client).
type udpFlow struct {
	conn net.Conn
	last atomic.Int64               // unix nanoseconds of the last packet either way
	dst  atomic.Pointer[netip.Addr] // the host address the client sends to
}

// udpIdle is how long a UDP flow without traffic is kept.
const udpIdle = 60 * time.Second

func (l *proxyListener) serveUDP() {
	buf := make([]byte, 65535)
	oob := make([]byte, 128)
	for {
		n, oobn, _, from, err := l.udp.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f := l.flow(from)
		if f == nil {
			continue
		}
		f.last.Store(time.Now().UnixNano())
		if dst, ok := pktinfoDst(oob[:oobn]); ok {
			f.dst.Store(&dst)
		}
		f.conn.Write(buf[:n])
	}
}

// pktinfoDst is the destination address of a datagram (IPV6_PKTINFO).
func pktinfoDst(oob []byte) (netip.Addr, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= 16 {
			return netip.AddrFrom16([16]byte(m.Data[:16])), true
		}
	}
	return netip.Addr{}, false
}

func (l *proxyListener) flow(from netip.AddrPort) *udpFlow {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.flows[from]; f != nil {
		return f
	}
	c, err := l.dial("udp")
	if err != nil {
		return nil
	}
	f := &udpFlow{conn: c}
	l.flows[from] = f
	go func() {
		buf := make([]byte, 65535)
		for {
			n, err := c.Read(buf)
			if err != nil {
				l.mu.Lock()
				if l.flows[from] == f {
					delete(l.flows, from)
				}
				l.mu.Unlock()
				c.Close()
				return
			}
			f.last.Store(time.Now().UnixNano())
			var oob []byte
			if dst := f.dst.Load(); dst != nil {
				oob = unix.PktInfo6(&unix.Inet6Pktinfo{Addr: dst.As16()})
			}
			l.udp.WriteMsgUDPAddrPort(buf[:n], oob, from)
		}
	}()
	return f
}

func (l *proxyListener) expireUDP() {
	t := time.NewTicker(udpIdle / 4)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		cut := time.Now().Add(-udpIdle).UnixNano()
		l.mu.Lock()
		for a, f := range l.flows {
			if f.last.Load() < cut {
				f.conn.Close()
				delete(l.flows, a)
			}
		}
		l.mu.Unlock()
	}
}
