package main

import (
	"os"

	"github.com/spf13/cobra"
)

// globalOptions are the flags every command shares, as docker compose's.
type globalOptions struct {
	files            []string
	projectName      string
	projectDirectory string
	profiles         []string
	envFiles         []string
	root             string
	runRoot          string
	progress         string
	parallel         int
}

var global globalOptions

// commands collects the constructors of every subcommand; each command's
// file registers itself in an init function so that files do not collide.
var commands []func() *cobra.Command

func register(f func() *cobra.Command) { commands = append(commands, f) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Declarative compose orchestrator with its own builder, layer store and runtime",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := root.PersistentFlags()
	f.StringArrayVarP(&global.files, "file", "f", nil, "Compose configuration files (- for stdin)")
	f.StringVarP(&global.projectName, "project-name", "p", "", "Project name")
	f.StringVar(&global.projectDirectory, "project-directory", "", "Alternate working directory (default: the directory of the first compose file)")
	f.StringArrayVar(&global.profiles, "profile", nil, "Profiles to enable")
	f.StringArrayVar(&global.envFiles, "env-file", nil, "Alternate environment files")
	f.StringVar(&global.root, "root", envOr("BERTH_ROOT", "/var/lib/berth"), "State root")
	f.StringVar(&global.runRoot, "run-root", envOr("BERTH_RUN_ROOT", "/run/berth"), "Runtime state root")
	f.StringVar(&global.progress, "progress", "auto", "Progress output: auto, tty, plain, json, quiet")
	f.IntVar(&global.parallel, "parallel", -1, "Maximum parallel operations (-1: unlimited)")
	for _, c := range commands {
		root.AddCommand(c())
	}
	return root
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// shadowFileFlag lets a command use -f for itself (logs -f, rm -f, as in
// compose): cobra panics when an inherited flag's shorthand is taken, and
// skips inherited flags whose name the command defines, so the command
// gets its own --file (no shorthand, hidden) bound to the global one.
func shadowFileFlag(c *cobra.Command) {
	c.Flags().StringArrayVar(&global.files, "file", nil, "Compose configuration files")
	c.Flags().MarkHidden("file")
}
