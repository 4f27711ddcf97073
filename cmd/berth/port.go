package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func init() {
	register(func() *cobra.Command {
		var index int
		var protocol string
		cmd := &cobra.Command{
			Use:   "port [OPTIONS] SERVICE PRIVATE_PORT",
			Short: "Print the public port for a port binding",
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				port, err := strconv.Atoi(args[1])
				if err != nil {
					return fmt.Errorf("invalid port %q", args[1])
				}
				t, err := openProject(cmd.Context())
				if err != nil {
					return err
				}
				cs, err := t.containers(cmd.Context(), args[:1], false)
				if err != nil {
					return err
				}
				for _, c := range cs {
					if c.Number != index {
						continue
					}
					for _, p := range c.Ports {
						if p.ContainerPort == port && strings.EqualFold(p.Protocol, protocol) {
							fmt.Fprintln(cmd.OutOrStdout(), net.JoinHostPort(firstOf(p.HostIP, "0.0.0.0"), strconv.Itoa(p.HostPort))) // [::1]:8080
							return nil
						}
					}
					return fmt.Errorf("no port %d/%s published for %s", port, protocol, c.Name)
				}
				return fmt.Errorf("service %q has no container number %d", args[0], index)
			},
		}
		cmd.Flags().IntVar(&index, "index", 1, "Index of the container if the service has several replicas")
		cmd.Flags().StringVar(&protocol, "protocol", "tcp", "tcp or udp")
		return cmd
	})
}
