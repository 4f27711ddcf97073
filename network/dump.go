package network

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// dumpRetry runs a netlink dump (links, routes, addresses) again while the
// kernel says a concurrent change interrupted it (NLM_F_DUMP_INTR; the
// library returns what it got with ErrDumpInterrupted). On a host where
// other software adds and removes links at the same moment, a network
// create failed with "results may be incomplete or inconsistent".
func dumpRetry[T any](dump func() (T, error)) (T, error) {
	var v T
	var err error
	for range 20 {
		if v, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return v, err
}
