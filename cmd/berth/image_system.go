package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func init() {
	register(func() *cobra.Command {
		c := &cobra.Command{Use: "system", Short: "Manage berth's state"}
		c.AddCommand(newSystemDfCmd())
		return c
	})
}

func newImagePruneCmd() *cobra.Command {
	var all, force bool
	c := &cobra.Command{
		Use:   "prune",
		Short: "Remove dangling images (all unused with -a) and reclaim unreferenced content",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			s, err := openImageStore()
			if err != nil {
				return err
			}
			removed, st, err := s.Prune(ctx, all)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if len(removed) > 0 {
				fmt.Fprintln(w, "Deleted Images:")
				for _, r := range removed {
					fmt.Fprintln(w, "untagged:", familiar(r))
				}
			}
			fmt.Fprintf(w, "Total reclaimed space: %s\n", humanSize(st.Bytes))
			return nil
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "Remove all images not used by a container")
	c.Flags().BoolVar(&force, "force", false, "Do not prompt for confirmation (berth never prompts)")
	return c
}

func newSystemDfCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "df",
		Short: "Show the layer store's disk usage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore()
			if err != nil {
				return err
			}
			u, err := s.DiskUsage()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "TYPE\tTOTAL\tSIZE\tRECLAIMABLE")
			fmt.Fprintf(tw, "Images\t%d\t%s\t%s\n", u.Images, humanSize(u.ImageBytes), humanSize(u.ReclaimableBytes))
			fmt.Fprintf(tw, "Unpacked layers\t%d\t%s\t\n", u.Layers, humanSize(u.LayerBytes))
			fmt.Fprintf(tw, "Container snapshots\t%d\t%s\t\n", u.Snapshots, humanSize(u.SnapshotBytes))
			return tw.Flush()
		},
	}
}
