package main

import (
	"context"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/berth-dev/berth/network"
	"github.com/spf13/cobra"
)

// networkDNSServerCmd is the responder the network layer starts on demand
// (a re-exec of this binary); users never run it. It also hosts the
// userland proxy of IPv6 published ports (network/proxy.go).
func networkDNSServerCmd() *cobra.Command {
	var o network.DNSOptions
	cmd := &cobra.Command{
		Use:    "dns-server",
		Short:  "Serve service-name DNS and the IPv6 port proxy for berth networks (started by berth itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.StateDir == "" {
				o.StateDir = filepath.Join(global.root, "network")
			}
			if o.RunDir == "" {
				o.RunDir = filepath.Join(global.runRoot, "network")
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return network.ServeDNS(ctx, o)
		},
	}
	cmd.Flags().StringVar(&o.StateDir, "state-dir", "", "Allocation directory (default: <root>/network)")
	cmd.Flags().StringVar(&o.RunDir, "run-dir", "", "Runtime directory (default: <run-root>/network)")
	cmd.Flags().StringArrayVar(&o.Upstreams, "upstream", nil, "Upstream resolver (default: the host's resolv.conf)")
	return cmd
}
