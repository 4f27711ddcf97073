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

// BridgeName is the Linux bridge of the network with this full name.
func BridgeName(network string) string { return bridgePrefix + shortHash("net", network)[:11] }

// hostVethName is the host end of a container's endpoint on a network.
func hostVethName(id, network string) string {
	return hostVethPrefix + shortHash("veth", id, network)[:12]
}

// bridgeMAC is a stable, locally administered unicast address for a bridge.
func bridgeMAC(network string) net.HardwareAddr {
	h := sha256.Sum256([]byte("mac\x00" + network))
	return net.HardwareAddr{0x02, h[0], h[1], h[2], h[3], h[4]}
}
