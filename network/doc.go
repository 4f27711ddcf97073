// Package network gives berth containers their networking: one Linux bridge
// per compose network (netlink), addresses from berth's own IPAM, a network
// namespace per container with veth endpoints, forwarding, masquerade,
// isolation and published ports in berth's own nftables table, and a small
// DNS responder for service names.
//
// The Manager is declarative: every method converges one object (a network,
// a container's endpoints) to the description it is given, from whatever
// state the machine is in, including one a crash left behind. Set converges
// everything at once. Allocations live in one JSON file under the state root,
// written atomically under a flock so that several berth processes can share
// it; the DNS responder reads the same file.
package network
