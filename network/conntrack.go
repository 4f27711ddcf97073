package network

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// conntrack's TCP states: a connection whose SYN has not been answered,
// one being opened, one open.
const (
	tcpSynSent     = 1
	tcpSynRecv     = 2
	tcpEstablished = 3
)

// flowFilter matches the NATed flows (published ports) that lead to one of
// a set of container addresses.
type flowFilter struct {
	addrs map[netip.Addr]bool
	// unansweredOnly keeps connections the container already accepted: it
	// may still be draining them after it stopped being published.
	unansweredOnly bool
}

func (f flowFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	to, ok := netip.AddrFromSlice(flow.Reverse.SrcIP)
	if !ok || !f.addrs[to.Unmap()] || flow.Forward.DstIP.Equal(flow.Reverse.SrcIP) {
		return false
	}
	if !f.unansweredOnly {
		return true
	}
	switch flow.Forward.Protocol {
	case unix.IPPROTO_UDP:
		return true
	case unix.IPPROTO_TCP:
		tcp, ok := flow.ProtoInfo.(*netlink.ProtoInfoTCP)
		return ok && tcp.State == tcpSynSent
	}
	return false
}

// natFlowsTo is the filter of the NATed flows to the addresses of ifcs.
func natFlowsTo(ifcs []Interface, unansweredOnly bool) flowFilter {
	f := flowFilter{addrs: map[netip.Addr]bool{}, unansweredOnly: unansweredOnly}
	for _, i := range ifcs {
		f.addrs[i.IPv4], f.addrs[i.IPv6] = true, true
	}
	return f
}

// forgetFlows drops conntrack's NAT bindings to containers that are no
// longer published: a SYN retransmitted (or a UDP "connection") bound to a
// removed replica would otherwise keep going to it until the entry expires,
// instead of being balanced again onto a live one.
func (m *Manager) forgetFlows(r *endpointRecord, unansweredOnly bool) {
	if len(r.Ports) == 0 {
		return
	}
	f := natFlowsTo(r.Interfaces, unansweredOnly)
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		// Best effort: without conntrack support there is nothing to forget.
		m.nl.ConntrackDeleteFilters(netlink.ConntrackTable, fam, f)
	}
}

// WaitConnections waits, up to timeout, until no TCP connection that
// clients opened through container id's published ports is still open
// (being opened or established): a container taken out of a port's
// balancing (drained) keeps serving those until they end.
func (m *Manager) WaitConnections(ctx context.Context, id string, timeout time.Duration) error {
	r, err := m.record(ctx, id)
	if err != nil || r == nil {
		return err
	}
	f := natFlowsTo(r.links(), false)
	for deadline := time.Now().Add(timeout); ; {
		n, err := m.openFlows(f)
		if err != nil || n == 0 || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// openFlows counts f's TCP flows being opened or established.
func (m *Manager) openFlows(f flowFilter) (int, error) {
	n := 0
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		flows, err := m.nl.ConntrackTableList(netlink.ConntrackTable, fam)
		if err != nil {
			return 0, fmt.Errorf("conntrack: %w", err)
		}
		for _, fl := range flows {
			tcp, ok := fl.ProtoInfo.(*netlink.ProtoInfoTCP)
			if ok && f.MatchConntrackFlow(fl) && (tcp.State == tcpSynRecv || tcp.State == tcpEstablished) {
				n++
			}
		}
	}
	return n, nil
}
