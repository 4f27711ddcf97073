package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// create and scale are up with some of its options fixed: one code path
// converges the project whatever the command.
func init() {
	register(func() *cobra.Command {
		var o upOptions
		cmd := &cobra.Command{
			Use:   "create [OPTIONS] [SERVICE...]",
			Short: "Create containers for a service without starting them",
			RunE: func(cmd *cobra.Command, args []string) error {
				o.noStart, o.detach = true, true
				return runUp(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, args)
			},
		}
		f := cmd.Flags()
		f.BoolVar(&o.build, "build", false, "Build images before creating containers")
		f.BoolVar(&o.noBuild, "no-build", false, "Don't build an image, even if it's missing")
		f.StringVar(&o.pull, "pull", "", `Pull image before running ("always"|"missing"|"never")`)
		f.BoolVar(&o.forceRecreate, "force-recreate", false, "Recreate containers even if nothing changed")
		f.BoolVar(&o.noRecreate, "no-recreate", false, "Never recreate existing containers")
		f.BoolVar(&o.removeOrphans, "remove-orphans", false, "Remove containers of services not in the compose file")
		f.StringArrayVar(&o.scale, "scale", nil, "Scale SERVICE to NUM instances")
		f.BoolVar(&o.dryRun, "dry-run", false, "Print the plan and change nothing")
		return cmd
	})
	register(func() *cobra.Command {
		var o upOptions
		cmd := &cobra.Command{
			Use:   "scale [SERVICE=REPLICAS...]",
			Short: "Scale services",
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				o.scale, o.detach, o.noRecreate = args, true, true
				var services []string
				for _, a := range args {
					name, _, _ := strings.Cut(a, "=")
					services = append(services, name)
				}
				return runUp(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, services)
			},
		}
		cmd.Flags().BoolVar(&o.noDeps, "no-deps", false, "Don't start linked services")
		cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "Print the plan and change nothing")
		return cmd
	})
}
