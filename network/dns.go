package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// DNSOptions configures ServeDNS.
type DNSOptions struct {
	StateDir  string        // the Manager's allocation directory (Root/network)
	RunDir    string        // the Manager's runtime directory (RunRoot/network)
	Upstreams []string      // default: the host's resolv.conf nameservers
	Poll      time.Duration // how often the allocation file is checked; default 100ms
}

// ServeDNS is the DNS responder berth runs as a small process (`berth
// network dns-server`). It listens on port 53 of every network's gateway,
// answers service names, aliases, container names and hostnames for the
// containers sharing a network with the asker, and forwards the rest. It
// also runs the userland proxy of published ports that nftables cannot
// serve (proxy.go). Its only state is the allocation file, re-read when it
// changes, so it can be killed and restarted at any time. It returns when
// no network is left.
func ServeDNS(ctx context.Context, o DNSOptions) error {
	if o.Poll == 0 {
		o.Poll = 100 * time.Millisecond
	}
	if len(o.Upstreams) == 0 {
		o.Upstreams = hostResolv().Nameservers
	}
	release, err := lockDNS(ctx, o.RunDir)
	if err != nil {
		return err
	}
	defer release()
	s := &dnsServer{opt: o, listeners: map[netip.Addr][]*dns.Server{}, proxy: newUserProxy()}
	defer s.closeAll()
	defer s.proxy.closeAll()
	started := false
	tick := time.NewTicker(o.Poll)
	defer tick.Stop()
	changed := watchDir(ctx, o.StateDir)
	var handled *diskState
	proxied := true
	for {
		s.refresh()
		if st := s.state.Load(); st != nil && (st != handled || !proxied) {
			if st != handled {
				s.listen(st)
			}
			handled = st
			// Listeners that could not open (a port a host process held)
			// are retried on every tick.
			proxied = s.proxy.converge(proxiesFor(st))
			if !started {
				started = true
				// The Manager wrote dns.pid when it started this process
				// (so that concurrent callers do not start another);
				// dns.ready says the listeners are up. Both are rewritten
				// for a responder started by hand.
				me := []byte(strconv.Itoa(os.Getpid()))
				if err := writeFileAtomic(filepath.Join(o.RunDir, "dns.pid"), me, 0o644); err != nil {
					return err
				}
				if err := writeFileAtomic(filepath.Join(o.RunDir, "dns.ready"), me, 0o644); err != nil {
					return err
				}
			}
			if len(st.Networks) == 0 && s.lastNetworkGone() {
				return nil
			}
		}
		if _, err := os.Stat(o.StateDir); os.IsNotExist(err) {
			// The whole state root went away (a test's temporary root, a
			// manual cleanup): nothing is left to serve.
			removeOwnPidfile(o.RunDir)
			return nil
		}
		select {
		case <-ctx.Done():
			removeOwnPidfile(o.RunDir)
			return nil
		case <-tick.C:
		case <-changed:
		}
	}
}

// watchDir signals (coalesced) every change in dir, so that the zone and
// the proxy follow an Attach within milliseconds rather than a poll
// period. When inotify is unavailable the channel never fires and the
// poll alone remains.
func watchDir(ctx context.Context, dir string) <-chan struct{} {
	ch := make(chan struct{}, 1)
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return ch
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_CREATE|unix.IN_DELETE); err != nil {
		unix.Close(fd)
		return ch
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: pollable, Close ends the Read
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
				// At most one reload per 10 ms: a burst of attaches
				// (each one a write) costs one parse of the file, not
				// one each.
				time.Sleep(10 * time.Millisecond)
			default:
			}
		}
	}()
	return ch
}

// lockDNS makes sure one responder runs per run directory; a newcomer waits
// a moment for one that is shutting down.
func lockDNS(ctx context.Context, runDir string) (func(), error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(runDir, "dns.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(3 * time.Second)
	for unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.Close()
			return nil, errors.New("dns: another responder is running")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() { f.Close() }, nil
}

func removeOwnPidfile(runDir string) {
	for _, name := range []string{"dns.ready", "dns.pid"} {
		p := filepath.Join(runDir, name)
		if b, err := os.ReadFile(p); err == nil && string(b) == strconv.Itoa(os.Getpid()) {
			os.Remove(p)
		}
	}
}

type dnsServer struct {
	opt       DNSOptions
	zone      atomic.Pointer[zone]
	state     atomic.Pointer[diskState]
	mu        sync.Mutex
	listeners map[netip.Addr][]*dns.Server
	proxy     *userProxy

	fileMu   sync.Mutex
	fileSeen *stateStamp
}

// refresh reloads the zone when the allocation state changed (its stamp,
// see store.go) and returns the new state, else nil. Queries call it too,
// so an answer never lags a finished Attach.
func (s *dnsServer) refresh() *diskState {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	stamp, err := readStamp(s.opt.StateDir)
	if err != nil || (s.fileSeen != nil && *s.fileSeen == stamp) {
		return nil
	}
	st, err := loadState(s.opt.StateDir)
	if err != nil {
		return nil
	}
	s.fileSeen = &stamp
	s.zone.Store(newZone(st))
	s.state.Store(st)
	return st
}

// lastNetworkGone confirms, under the allocation lock, that no network is
// left, and gives up the pid file while still holding the lock so that a
// Manager adding a network either sees this process alive and still
// serving, or gone.
//
// The responder never creates the state directory or its lock: when they
// are gone (the whole state root was removed), so is every network, and
// re-creating them would leave files in a directory being deleted.
func (s *dnsServer) lastNetworkGone() bool {
	f, err := os.OpenFile(filepath.Join(s.opt.StateDir, "lock"), os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		removeOwnPidfile(s.opt.RunDir)
		return true
	}
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX) != nil {
		return false
	}
	st, err := loadState(s.opt.StateDir)
	if err != nil || len(st.Networks) > 0 {
		return false
	}
	removeOwnPidfile(s.opt.RunDir)
	return true
}

// listen converges the listeners to one UDP and one TCP socket per gateway
// (IPv4 and, on networks with enable_ipv6, IPv6).
func (s *dnsServer) listen(st *diskState) {
	want := map[netip.Addr]bool{}
	for _, n := range st.Networks {
		for _, gw := range []netip.Addr{n.Gateway4, n.Gateway6} {
			if gw.IsValid() {
				want[gw] = true
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, srvs := range s.listeners {
		if !want[a] {
			for _, srv := range srvs {
				srv.Shutdown()
			}
			delete(s.listeners, a)
		}
	}
	for a := range want {
		if _, ok := s.listeners[a]; ok {
			continue
		}
		srvs, err := s.serve(a)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dns: listen %s: %v\n", a, err)
			continue
		}
		s.listeners[a] = srvs
	}
}

func (s *dnsServer) serve(a netip.Addr) ([]*dns.Server, error) {
	addr := net.JoinHostPort(a.String(), "53")
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return nil, err
	}
	h := dns.HandlerFunc(s.handle)
	srvs := []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}}
	for _, srv := range srvs {
		go srv.ActivateAndServe()
	}
	return srvs, nil
}

func (s *dnsServer) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, srvs := range s.listeners {
		for _, srv := range srvs {
			srv.Shutdown()
		}
		delete(s.listeners, a)
	}
}

func (s *dnsServer) handle(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	client := addrOf(w.RemoteAddr())
	s.refresh()
	z := s.zone.Load()
	if z == nil || !z.local(client) {
		// Gateways are host addresses other machines may reach: berth's
		// responder must not become an open resolver.
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		w.WriteMsg(m)
		return
	}
	if q.Qclass == dns.ClassINET && q.Qtype == dns.TypePTR {
		if name, ok := z.reverse(client, q.Name); ok {
			w.WriteMsg(answerPTR(req, q, name))
			return
		}
	}
	if q.Qclass == dns.ClassINET {
		if addrs, ok := z.lookup(client, q.Name); ok {
			w.WriteMsg(answer(req, q, addrs))
			return
		}
	}
	s.forward(w, req, z.upstreams(client, s.opt.Upstreams))
}

func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// answer carries every address of the name in the asked family; a name
// that exists with no address of that family gets an empty NOERROR.
func answer(req *dns.Msg, q dns.Question, addrs []netip.Addr) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 0}
	for _, a := range addrs {
		switch {
		case a.Is4() && q.Qtype == dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case a.Is6() && q.Qtype == dns.TypeAAAA:
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	return m
}

func answerPTR(req *dns.Msg, q dns.Question, name string) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: dns.Fqdn(name)}}
	return m
}

func (s *dnsServer) forward(w dns.ResponseWriter, req *dns.Msg, upstreams []string) {
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
	for _, u := range upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			u = net.JoinHostPort(u, "53")
		}
		resp, _, err := c.Exchange(req, u)
		if err == nil {
			resp.Id = req.Id
			w.WriteMsg(resp)
			return
		}
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	w.WriteMsg(m)
}

// zone is the read-only view of the allocation file the handler answers from.
type zone struct {
	byAddr    map[netip.Addr]*endpointRecord
	endpoints []*endpointRecord
	gateways  map[string]bool
	subnets   []netip.Prefix
}

// local reports whether a query comes from one of berth's networks.
func (z *zone) local(a netip.Addr) bool {
	for _, p := range z.subnets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func newZone(st *diskState) *zone {
	z := &zone{byAddr: map[netip.Addr]*endpointRecord{}, gateways: map[string]bool{}}
	ids := make([]string, 0, len(st.Endpoints))
	for id := range st.Endpoints {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := st.Endpoints[id]
		if r.Parked {
			continue // no process behind it, no name
		}
		z.endpoints = append(z.endpoints, r)
		for _, i := range r.Interfaces {
			z.byAddr[i.IPv4], z.byAddr[i.IPv6] = r, r
		}
	}
	delete(z.byAddr, netip.Addr{})
	for _, n := range st.Networks {
		for _, gw := range []netip.Addr{n.Gateway4, n.Gateway6} {
			if gw.IsValid() {
				z.gateways[gw.String()] = true
			}
		}
		for _, p := range []netip.Prefix{n.Subnet4, n.Subnet6} {
			if p.IsValid() {
				z.subnets = append(z.subnets, p)
			}
		}
	}
	return z
}

// lookup resolves name for the container at client: the addresses, on the
// networks they share, of every container answering to that name.
func (z *zone) lookup(client netip.Addr, qname string) ([]netip.Addr, bool) {
	asker := z.byAddr[client]
	if asker == nil {
		return nil, false
	}
	shared := map[string]bool{}
	for _, i := range asker.Interfaces {
		shared[i.Network] = true
	}
	name := strings.ToLower(strings.TrimSuffix(qname, "."))
	// links: "db:database" makes database name db's replicas, for the
	// linking container only (as Docker's resolver does on user networks).
	linked := ""
	for _, l := range asker.Endpoint.Links {
		if svc, alias, _ := strings.Cut(l, ":"); strings.EqualFold(alias, name) {
			linked = svc
		}
	}
	var out []netip.Addr
	found := false
	for _, r := range z.endpoints {
		link := linked != "" && r.Endpoint.Project == asker.Endpoint.Project && strings.EqualFold(r.Endpoint.Service, linked)
		for _, i := range r.Interfaces {
			if shared[i.Network] && (link || answersTo(r.Endpoint, i, name)) {
				found = true
				for _, a := range []netip.Addr{i.IPv4, i.IPv6} {
					if a.IsValid() {
						out = append(out, a)
					}
				}
			}
		}
	}
	return out, found
}

func answersTo(ep Endpoint, i Interface, name string) bool {
	names := append([]string{ep.Service, ep.Name, hostname(ep)}, i.Aliases...)
	if ep.Domainname != "" {
		names = append(names, hostname(ep)+"."+ep.Domainname)
	}
	for _, n := range names {
		if n != "" && strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// reverse answers a PTR query for an address of a container on a network
// the asker shares: the container's name (as Docker's resolver does), so
// that servers logging their peers' names do not wait on the upstream.
func (z *zone) reverse(client netip.Addr, qname string) (string, bool) {
	asker := z.byAddr[client]
	if asker == nil {
		return "", false
	}
	shared := map[string]bool{}
	for _, i := range asker.Interfaces {
		shared[i.Network] = true
	}
	for _, r := range z.endpoints {
		for _, i := range r.Interfaces {
			if !shared[i.Network] {
				continue
			}
			for _, a := range []netip.Addr{i.IPv4, i.IPv6} {
				if a.IsValid() && strings.EqualFold(reverseName(a), qname) {
					return r.Endpoint.Name, r.Endpoint.Name != ""
				}
			}
		}
	}
	return "", false
}

func reverseName(a netip.Addr) string {
	n, err := dns.ReverseAddr(a.String())
	if err != nil {
		return ""
	}
	return n
}

// upstreams are the container's dns: servers, else the host's, never
// berth's own listeners (which would loop).
func (z *zone) upstreams(client netip.Addr, def []string) []string {
	list := def
	if z != nil {
		if r := z.byAddr[client]; r != nil && len(r.Endpoint.DNS) > 0 {
			list = r.Endpoint.DNS
		}
	}
	var out []string
	for _, u := range list {
		if z == nil || !z.gateways[u] {
			out = append(out, u)
		}
	}
	return out
}
