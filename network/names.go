package network

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
)

// Interface names are limited to 15 bytes, so berth's are a fixed prefix plus
// a short hash: stable across runs (so a crash-left link is recognised) and
// free of whatever characters project names contain.
const (
	bridgePrefix   = "bth-" // not "br-": Docker's bridges are br-<hex>
	hostVethPrefix = "bve"
)

func shortHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DefaultRoot is the state root whose objects carry the plain names (the
// table "berth"); objects of any other root carry a tag of it, so that
// several roots (a test's, a second installation) can share a host.
const DefaultRoot = "/var/lib/berth"

// rootTag is "" for the default root, else a short hash of the root.
func rootTag(root string) string {
	if root == DefaultRoot || root == DefaultRoot+"/" {
		return ""
	}
	return shortHash("root", root)[:8]
}

// BridgeName is the Linux bridge of the network with this full name under
// the given state root.
func BridgeName(root, network string) string {
	return bridgePrefix + shortHash("net", rootTag(root), network)[:11]
}

// TableName is berth's nftables table (family inet) for the given state
// root. berth never reads or writes any other table.
func TableName(root string) string {
	if t := rootTag(root); t != "" {
		return "berth-" + t
	}
	return "berth"
}

// linkAlias marks the links a root made (IFLA_IFALIAS), so that cleaning
// up after a crash never takes another root's.
func linkAlias(root string) string { return "berth " + shortHash("root", root)[:12] }

// hostVethName is the host end of a container's endpoint on a network.
func hostVethName(id, network string) string {
	return hostVethPrefix + shortHash("veth", id, network)[:12]
}

// bridgeMAC is a stable, locally administered unicast address for a bridge.
func bridgeMAC(network string) net.HardwareAddr {
	h := sha256.Sum256([]byte("mac\x00" + network))
	return net.HardwareAddr{0x02, h[0], h[1], h[2], h[3], h[4]}
}
