package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/berth-dev/berth/network"
	"github.com/spf13/cobra"
)

func openNetworks() (*network.Manager, error) {
	return network.New(network.Options{Root: global.root, RunRoot: global.runRoot})
}

func init() {
	register(func() *cobra.Command {
		cmd := &cobra.Command{Use: "network", Short: "Manage berth's networks"}
		cmd.AddCommand(networkLsCmd(), networkInspectCmd(), networkRmCmd(), networkPruneCmd(), networkDNSServerCmd())
		return cmd
	})
}

func networkLsCmd() *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := openNetworks()
			if err != nil {
				return err
			}
			defer m.Close()
			nets, err := m.Networks(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				for _, n := range nets {
					fmt.Fprintln(out, n.Spec.Name)
				}
				return nil
			case format == "json":
				return json.NewEncoder(out).Encode(nets)
			case format != "":
				return fmt.Errorf("--format: unknown format %q (want json)", format)
			}
			users, err := m.Endpoints(cmd.Context(), "")
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPROJECT\tBRIDGE\tSUBNET\tGATEWAY\tCONTAINERS")
			for _, n := range nets {
				subnet := n.Subnet4.String()
				if n.Subnet6.IsValid() {
					subnet += "," + n.Subnet6.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", n.Spec.Name, n.Spec.Project, n.Bridge, subnet, n.Gateway4, networkUsers(users, n.Spec.Name))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display network names")
	cmd.Flags().StringVar(&format, "format", "", "Output format: json")
	return cmd
}

func networkUsers(users map[string]network.Attachment, name string) int {
	n := 0
	for _, a := range users {
		for _, i := range a.Interfaces {
			if i.Network == name {
				n++
				break
			}
		}
	}
	return n
}

// networkView is what `berth network inspect` prints for one network.
type networkView struct {
	network.NetworkInfo
	Containers map[string]networkContainerView `json:"containers"`
}

// networkContainerView is one container's endpoint on the network.
type networkContainerView struct {
	Name string `json:"name"`
	network.Interface
}

func networkInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Display detailed information on networks",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openNetworks()
			if err != nil {
				return err
			}
			defer m.Close()
			var views []networkView
			for _, name := range args {
				n, err := m.Network(cmd.Context(), name)
				if err != nil {
					return err
				}
				users, err := m.Endpoints(cmd.Context(), name)
				if err != nil {
					return err
				}
				v := networkView{NetworkInfo: n, Containers: map[string]networkContainerView{}}
				for id, a := range users {
					for _, i := range a.Interfaces {
						if i.Network == name {
							v.Containers[id] = networkContainerView{Name: a.Name, Interface: i}
						}
					}
				}
				views = append(views, v)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "    ")
			return enc.Encode(views)
		},
	}
}

func networkRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks no container uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openNetworks()
			if err != nil {
				return err
			}
			defer m.Close()
			var errs []error
			for _, name := range args {
				if _, err := m.Network(cmd.Context(), name); err != nil {
					errs = append(errs, err)
					continue
				}
				if err := m.RemoveNetwork(cmd.Context(), name); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return errors.Join(errs...)
		},
	}
}

func networkPruneCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove all networks no container uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := openNetworks()
			if err != nil {
				return err
			}
			defer m.Close()
			removed, err := m.Prune(cmd.Context(), nil)
			sort.Strings(removed)
			if len(removed) > 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "Deleted Networks:")
				for _, n := range removed {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "Do not prompt for confirmation (berth never prompts)")
	return cmd
}
